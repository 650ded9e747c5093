//! From the inventory to SSH: each host's effective settings (inventory over `~/.ssh/config` over
//! defaults) turned into a [`kbs_ssh::Target`] and the options to connect with.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kbs_inventory::{Bastion, Host, Inventory, SshSettings};
use kbs_ssh::ssh_config::{self, SshConfigEntry};
use kbs_ssh::{ConnectOptions, Privilege, Secret, Target};

/// Where to reach one host and how to become root on it.
#[derive(Debug, Clone)]
pub struct HostAccess {
    pub target: Target,
    pub options: ConnectOptions,
    /// The privilege for steps that need root: none when the SSH user is root, else sudo.
    pub privilege: Privilege,
}

/// Run-wide SSH choices from the command line.
pub struct AccessDefaults {
    pub base: ConnectOptions,
    /// `Some` when the user gave `--connect-timeout`; it then beats the inventory.
    pub connect_timeout_flag: Option<Duration>,
    pub ssh_config: Option<PathBuf>,
    pub become_password: Option<Secret>,
}

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Works out how to reach `host`. Fails only if the user's ssh_config cannot be read.
pub fn host_access(
    inventory: &Inventory,
    host: &Host,
    defaults: &AccessDefaults,
) -> Result<HostAccess, String> {
    let from_config = match &defaults.ssh_config {
        Some(path) => config_settings(path, host)?,
        None => SshSettings::default(),
    };
    let settings = inventory.ssh_settings(host).or(&from_config);
    let user = settings.user.clone().unwrap_or_else(local_user);

    let mut options = defaults.base.clone();
    options.connect_timeout = defaults
        .connect_timeout_flag
        .or(settings.connect_timeout)
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    if let Some(file) = &settings.known_hosts_file {
        // Keys learned with --accept-new-host-keys go to the inventory's own file, listed first.
        options.known_hosts.retain(|known| known != file);
        options.known_hosts.insert(0, file.clone());
    }

    let identity_files: Vec<PathBuf> = settings.identity_file.iter().cloned().collect();
    let bastion = settings
        .bastion
        .as_ref()
        .map(|jump| Box::new(bastion_target(jump, &user, &identity_files)));
    let target = Target {
        name: host.name.clone(),
        host: host.address.clone(),
        port: settings.port.unwrap_or(22),
        user,
        identity_files,
        use_agent: true,
        bastion,
    };
    let privilege = if settings.uses_sudo() {
        Privilege::Sudo {
            password: defaults.become_password.clone(),
        }
    } else {
        Privilege::None
    };
    Ok(HostAccess {
        target,
        options,
        privilege,
    })
}

/// A jump host inherits the user and keys of the host behind it unless it names its own user.
fn bastion_target(jump: &Bastion, user: &str, identity_files: &[PathBuf]) -> Target {
    let mut target = Target::new(
        format!("bastion {}", jump.host),
        jump.host.clone(),
        jump.user.clone().unwrap_or_else(|| user.to_string()),
    );
    target.port = jump.port.unwrap_or(22);
    target.identity_files = identity_files.to_vec();
    target
}

/// What ssh_config says for the host, asked first by its inventory name and then by its address,
/// so both `Host host01` and `Host 192.168.61.*` blocks apply (the name's block wins).
fn config_settings(path: &Path, host: &Host) -> Result<SshSettings, String> {
    let by_name = lookup(path, &host.name)?;
    let by_address = lookup(path, &host.address)?;
    Ok(by_name.or(&by_address))
}

fn lookup(path: &Path, alias: &str) -> Result<SshSettings, String> {
    let entry = ssh_config::lookup(path, alias).map_err(|error| error.to_string())?;
    Ok(settings_from_config(&entry))
}

/// ssh_config's view as inventory-shaped settings. Its `HostName` is not used: the inventory's
/// `address` is required and always says where to connect.
fn settings_from_config(entry: &SshConfigEntry) -> SshSettings {
    SshSettings {
        user: entry.user.clone(),
        port: entry.port,
        identity_file: entry.identity_files.first().cloned(),
        bastion: entry.proxy_jump.first().and_then(|jump| parse_jump(jump)),
        ..SshSettings::default()
    }
}

/// `[user@]host[:port]` of a ProxyJump hop.
fn parse_jump(text: &str) -> Option<Bastion> {
    let (user, rest) = match text.rsplit_once('@') {
        Some((user, rest)) => (Some(user.to_string()), rest),
        None => (None, text),
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host.to_string(), Some(port.parse().ok()?)),
        _ => (rest.to_string(), None),
    };
    if host.is_empty() {
        return None;
    }
    Some(Bastion { user, host, port })
}

/// OpenSSH's default user: the local one.
fn local_user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|user| !user.is_empty())
        .unwrap_or_else(|| "root".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn inventory(yaml: &str, dir: &Path) -> Inventory {
        let path = dir.join("inventory.yaml");
        std::fs::write(&path, yaml).unwrap();
        kbs_inventory::load(&path).unwrap().inventory
    }

    fn defaults(ssh_config: Option<PathBuf>) -> AccessDefaults {
        let mut base = ConnectOptions::new();
        base.known_hosts = vec![PathBuf::from("/home/me/.ssh/known_hosts")];
        AccessDefaults {
            base,
            connect_timeout_flag: None,
            ssh_config,
            become_password: None,
        }
    }

    const ONE_HOST: &str = "cluster:\n  kubernetesVersion: \"1.36\"\n  podSubnet: 172.31.0.0/16\n\
        ssh:\n  knownHostsFile: ./known_hosts\n  connectTimeout: 3s\n\
        hosts:\n  - name: host01\n    address: 10.61.0.11\n    roles: [control-plane]\n";

    #[test]
    fn inventory_values_win_over_ssh_config_which_wins_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = ONE_HOST.replace("ssh:\n", "ssh:\n  user: admin\n");
        let inventory = inventory(&yaml, dir.path());
        let config = dir.path().join("config");
        let mut file = std::fs::File::create(&config).unwrap();
        writeln!(
            file,
            "Host host01\n  User fromconfig\n  Port 2222\n  ProxyJump jump@10.61.0.1:22"
        )
        .unwrap();

        let access = host_access(&inventory, &inventory.hosts[0], &defaults(Some(config))).unwrap();
        assert_eq!(access.target.user, "admin", "the inventory's user wins");
        assert_eq!(
            access.target.port, 2222,
            "ssh_config fills what the inventory leaves open"
        );
        assert_eq!(access.target.host, "10.61.0.11");
        let jump = access.target.bastion.expect("ProxyJump becomes the bastion");
        assert_eq!(
            (jump.user.as_str(), jump.host.as_str(), jump.port),
            ("jump", "10.61.0.1", 22)
        );
        assert!(matches!(access.privilege, Privilege::Sudo { password: None }));
    }

    #[test]
    fn without_ssh_config_defaults_apply_and_the_inventory_known_hosts_comes_first() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = ONE_HOST.replace("ssh:\n", "ssh:\n  user: root\n");
        let inventory = inventory(&yaml, dir.path());
        let access = host_access(&inventory, &inventory.hosts[0], &defaults(None)).unwrap();
        assert_eq!(access.target.port, 22);
        assert!(matches!(access.privilege, Privilege::None), "root needs no sudo");
        assert_eq!(access.options.connect_timeout, Duration::from_secs(3));
        assert_eq!(
            access.options.known_hosts,
            vec![
                dir.path().join("known_hosts"),
                PathBuf::from("/home/me/.ssh/known_hosts")
            ]
        );
    }

    #[test]
    fn the_connect_timeout_flag_beats_the_inventory() {
        let dir = tempfile::tempdir().unwrap();
        let inventory = inventory(ONE_HOST, dir.path());
        let mut defaults = defaults(None);
        defaults.connect_timeout_flag = Some(Duration::from_secs(1));
        let access = host_access(&inventory, &inventory.hosts[0], &defaults).unwrap();
        assert_eq!(access.options.connect_timeout, Duration::from_secs(1));
    }

    #[test]
    fn proxy_jump_hops_parse_or_are_ignored_when_malformed() {
        assert_eq!(
            parse_jump("ops@jump.example:2200"),
            Some(Bastion {
                user: Some("ops".into()),
                host: "jump.example".into(),
                port: Some(2200)
            })
        );
        assert_eq!(parse_jump("jump").map(|b| b.host), Some("jump".to_string()));
        assert_eq!(parse_jump("jump:notaport"), None);
    }
}
