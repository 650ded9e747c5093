//! [`Connection`]: one authenticated russh session per host, opened once and shared by every task of
//! a run. Channels are multiplexed on it (see `exec.rs`); a semaphore keeps the number of open
//! channels under the server's `MaxSessions`.
//!
//! Connecting is TCP (or a bastion's direct-tcpip channel, see `bastion.rs`), then the SSH
//! handshake with the host key check, both under one timeout; then authentication (`auth.rs`).
//! Only failures before authentication are retried.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::host_keys::{entries_for, lookup_name, preferred_algorithms, ClientHandler, HostKeyPolicy};
use crate::{auth, ConnectOptions, Error, Target};

/// An authenticated SSH connection to one host. Cheap to share (`Arc<Connection>`): every method takes
/// `&self` and concurrent calls run on separate channels.
pub struct Connection {
    pub(crate) name: String,
    pub(crate) user: String,
    pub(crate) handle: Handle<ClientHandler>,
    pub(crate) channels: Arc<Semaphore>,
    /// Keeps the bastion's session alive as long as this one tunnels through it.
    _jump: Option<Arc<Connection>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("name", &self.name)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// How the byte stream to the host is made.
#[derive(Clone)]
enum Route {
    Direct,
    Via(Arc<Connection>),
}

impl Connection {
    /// Connect and authenticate, through `target.bastion` if set. Targets behind the same bastion
    /// (connected with clones of the same options) share one session to it.
    pub async fn connect(target: &Target, opts: &ConnectOptions) -> Result<Connection, Error> {
        match &target.bastion {
            Some(bastion) => {
                let jump = opts
                    .bastions
                    .get(bastion, opts)
                    .await
                    .map_err(|reason| Error::Bastion {
                        host: target.name.clone(),
                        bastion: bastion.name.clone(),
                        reason,
                    })?;
                Connection::connect_via(target, opts, jump).await
            }
            None => connect_with_retries(target, opts, Route::Direct).await,
        }
    }

    /// Connect to `target` through an established connection to a jump host (ProxyJump), ignoring
    /// `target.bastion`. The target's host key is checked under the target's own name, not the
    /// jump host's.
    pub async fn connect_via(
        target: &Target,
        opts: &ConnectOptions,
        jump: Arc<Connection>,
    ) -> Result<Connection, Error> {
        connect_with_retries(target, opts, Route::Via(jump)).await
    }

    /// The host's name as given in [`Target::name`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The remote user logged in as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Whether the session has ended (network failure, server shutdown, keepalive timeout).
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Say goodbye to the server; later calls fail. Dropping the last handle also ends the
    /// connection, less politely.
    pub async fn close(&self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "kbs done", "en")
            .await;
    }

    pub(crate) fn session_error(&self, during: &str, reason: impl std::fmt::Display) -> Error {
        Error::Session {
            host: self.name.clone(),
            during: during.to_string(),
            reason: reason.to_string(),
        }
    }
}

async fn connect_with_retries(
    target: &Target,
    opts: &ConnectOptions,
    route: Route,
) -> Result<Connection, Error> {
    if target.host.is_empty() || target.user.is_empty() {
        return Err(Error::InvalidInput {
            host: target.name.clone(),
            reason: "host address and user must not be empty".into(),
        });
    }
    let keys = auth::load_keys(target, opts).await;
    let mut delay = opts.retry_backoff;
    let mut attempt = 0;
    let mut handle = loop {
        match handshake(target, opts, route.clone()).await {
            Ok(h) => break h,
            Err(e) if e.is_retryable() && attempt < opts.retries => {
                attempt += 1;
                warn!(host = %target.name, attempt, "connection failed, retrying in {delay:?}: {e}");
                tokio::time::sleep(delay).await;
                delay = delay.saturating_mul(2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(e),
        }
    };
    // Bounded too, so a server that stalls after the handshake cannot hang the run; generous because
    // an agent may ask a human to confirm or touch a key.
    let auth_timeout = opts.connect_timeout.saturating_mul(3);
    tokio::time::timeout(auth_timeout, auth::authenticate(&mut handle, target, &keys))
        .await
        .map_err(|_| Error::Session {
            host: target.name.clone(),
            during: "authenticating".into(),
            reason: format!("no answer within {auth_timeout:?}"),
        })??;
    debug!(host = %target.name, user = %target.user, "authenticated");
    Ok(Connection {
        name: target.name.clone(),
        user: target.user.clone(),
        handle,
        channels: Arc::new(Semaphore::new(opts.max_channels.max(1))),
        _jump: match route {
            Route::Direct => None,
            Route::Via(j) => Some(j),
        },
    })
}

/// One attempt at TCP + SSH handshake (including the host key check), bounded by the connect timeout.
async fn handshake(
    target: &Target,
    opts: &ConnectOptions,
    route: Route,
) -> Result<Handle<ClientHandler>, Error> {
    let addr = target.addr();
    let policy = HostKeyPolicy {
        name: target.name.clone(),
        host: target.host.clone(),
        port: target.port,
        files: opts.known_hosts.clone(),
        accept_new: opts.accept_new_host_keys,
    };
    let known = entries_for(
        &policy.files,
        &lookup_name(&target.host, target.port),
        &target.name,
    )?;
    let mut config = client::Config {
        keepalive_interval: opts.keepalive_interval,
        keepalive_max: 3,
        // Long phases (image pulls, kubeadm init) are silent for minutes; keepalives detect dead peers.
        inactivity_timeout: None,
        nodelay: true,
        ..Default::default()
    };
    config.preferred.key = Cow::Owned(preferred_algorithms(&known, &config.preferred.key));
    let config = Arc::new(config);
    let verdict = Arc::new(Mutex::new(None));
    let handler = ClientHandler {
        policy,
        verdict: verdict.clone(),
    };
    let connect_err = |reason: String| Error::Connect {
        host: target.name.clone(),
        addr: addr.clone(),
        reason,
    };
    debug!(host = %target.name, %addr, via = matches!(route, Route::Via(_)), "connecting");
    let attempt = async {
        match &route {
            Route::Direct => {
                let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
                    .await
                    .map_err(|e| connect_err(e.to_string()))?;
                client::connect_stream(config, tcp, handler).await
            }
            Route::Via(jump) => {
                let stream = crate::bastion::tunnel(jump, target).await?;
                client::connect_stream(config, stream, handler).await
            }
        }
        .map_err(|e| connect_err(format!("SSH handshake failed: {e}")))
    };
    match tokio::time::timeout(opts.connect_timeout, attempt).await {
        Ok(Ok(handle)) => Ok(handle),
        Ok(Err(e)) => {
            // A refused host key shows up as a handshake error; report the real reason instead.
            let refused = verdict.lock().unwrap_or_else(|p| p.into_inner()).take();
            Err(refused.unwrap_or(e))
        }
        Err(_) => Err(Error::ConnectTimeout {
            host: target.name.clone(),
            addr,
            timeout: opts.connect_timeout,
        }),
    }
}
