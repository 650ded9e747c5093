//! SSH transport of kbs: russh connections, authentication, host keys, bastions, sudo, exec and upload.
//!
//! - One [`Connection`] per host for the whole run; every command is a channel multiplexed on it
//!   (at most [`ConnectOptions::max_channels`] at once, under sshd's `MaxSessions`).
//! - Host keys are verified against known_hosts: unknown keys refused unless
//!   [`ConnectOptions::accept_new_host_keys`], changed keys always refused, naming file and line.
//! - Auth tries the ssh-agent's keys, then key files (RSA only with rsa-sha2-256/512); encrypted keys
//!   are unlocked once per run from [`ConnectOptions::key_passphrase`], `KBS_KEY_PASSPHRASE` or a
//!   [`PassphrasePrompt`].
//! - Bastions (ProxyJump) tunnel with direct-tcpip; hosts behind one bastion share its session.
//! - [`Privilege::Sudo`] uses `sudo -n`, or `sudo -S` with the password on stdin only.
//! - Secrets ([`Secret`], upload contents) travel only on stdin: never in arguments, environment,
//!   logs or errors. [`Connection::upload`] writes files atomically with mode and owner.
//! - [`run_windowed`] runs many hosts as a sliding window.
//!
//! ```no_run
//! use kbs_ssh::{Command, ConnectOptions, Connection, Privilege, Target};
//!
//! # async fn demo() -> Result<(), kbs_ssh::Error> {
//! let mut target = Target::new("host01", "192.168.61.11", "vagrant");
//! target.identity_files = vec!["/home/me/.ssh/id_ed25519".into()];
//! let conn = Connection::connect(&target, &ConnectOptions::default()).await?;
//! let out = conn
//!     .exec(&Command::new("cat /etc/os-release").privilege(Privilege::Sudo { password: None }))
//!     .await?
//!     .checked()?;
//! println!("{}", out.stdout_str());
//! conn.upload(b"secret\n", "/etc/kbs/token", 0o600, None, &Privilege::Sudo { password: None }).await?;
//! # Ok(()) }
//! ```
//!
//! `ssh_config::lookup` reads `~/.ssh/config` for a host alias; the CLI merges it under inventory values.

mod auth;
mod bastion;
mod connection;
mod error;
mod exec;
mod host_keys;
mod options;
mod secret;
pub mod ssh_config;
mod sudo;
mod upload;
mod window;

pub use auth::PASSPHRASE_ENV;
pub use connection::Connection;
pub use error::{Error, Result};
pub use exec::{Chunk, Command, ExitStatus, Output};
pub use options::{ConnectOptions, PassphrasePrompt, Target};
pub use secret::Secret;
pub use sudo::Privilege;
pub use upload::Owner;
pub use window::run_windowed;
