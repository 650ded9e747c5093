//! What a command runs against: the kubeadm version, the host probe, the clock, the
//! filesystem root and the output streams. Tests build one with fakes; the binary uses
//! [`Context::from_env`].

use std::path::PathBuf;

use crate::clock::Clock;
use crate::config::HostFacts;
use crate::preflight::{HostProbe, RealHost};
use crate::version::Version;

pub struct Context {
    pub version: Version,
    pub probe: Box<dyn HostProbe>,
    pub clock: Clock,
    /// Prefix for every file kubeadm writes or checks under /etc and /var
    /// (`KBS_SIM_ROOT`; empty on a lab guest).
    pub root: PathBuf,
    pub host: HostFacts,
    pub stdout: String,
    pub stderr: String,
    /// Print as we go (the binary) or only collect (tests).
    pub live: bool,
    /// The answer to a prompt (tests); `None` reads a line from stdin.
    pub stdin_line: Option<String>,
    /// How long init waits for the API server (kubeadm's default
    /// `controlPlaneComponentHealthCheck` is 4m0s; tests shorten it).
    pub control_plane_timeout: std::time::Duration,
}

impl Context {
    pub fn from_env() -> Context {
        let root = std::env::var_os("KBS_SIM_ROOT")
            .map(PathBuf::from)
            .unwrap_or_default();
        Context {
            version: Version::current(),
            probe: Box::new(RealHost),
            clock: Clock::default(),
            root,
            host: detect_host(),
            stdout: String::new(),
            stderr: String::new(),
            live: true,
            stdin_line: None,
            control_plane_timeout: std::time::Duration::from_secs(240),
        }
    }

    /// `/etc/kubernetes/pki` under the root.
    pub fn path(&self, abs: &str) -> PathBuf {
        if self.root.as_os_str().is_empty() {
            PathBuf::from(abs)
        } else {
            self.root.join(abs.trim_start_matches('/'))
        }
    }

    pub fn out(&mut self, line: &str) {
        if self.live {
            println!("{line}");
        } else {
            self.stdout.push_str(line);
            self.stdout.push('\n');
        }
    }

    pub fn err(&mut self, text: &str) {
        if self.live {
            eprint!("{text}");
        } else {
            self.stderr.push_str(text);
        }
    }

    /// A config-loading warning, attributed to the kubeadm source file that logs it.
    pub fn config_warning(&mut self, msg: &str) {
        let source = if msg.starts_with("could not fetch a Kubernetes version") {
            "version.go:104"
        } else if msg.starts_with("falling back to the local client version") {
            "version.go:105"
        } else {
            "initconfiguration.go:332"
        };
        self.warn(source, msg);
    }

    /// A klog warning line (`W1122 02:47:26.000000    1234 file.go:N] msg`).
    pub fn warn(&mut self, source: &str, msg: &str) {
        let now = time::OffsetDateTime::from_unix_timestamp(crate::clock::unix_seconds(self.clock.now()))
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let line = format!(
            "W{:02}{:02} {:02}:{:02}:{:02}.000000 {:>7} {source}] {msg}\n",
            now.month() as u8,
            now.day(),
            now.hour(),
            now.minute(),
            now.second(),
            std::process::id()
        );
        self.err(&line);
    }

    pub fn flush(&mut self) {
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
}

/// Node name and default address as kubeadm would detect them: the kernel hostname, and
/// the first non-loopback address /etc/hosts gives it (the lab writes every host there;
/// guests have no default route). Read from the file, not through the resolver, so
/// running kubeadm never sends a DNS query.
fn detect_host() -> HostFacts {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    HostFacts {
        default_address: address_in_hosts(&hosts, &hostname),
        hostname,
    }
}

fn address_in_hosts(hosts: &str, hostname: &str) -> Option<std::net::IpAddr> {
    hosts.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let ip: std::net::IpAddr = fields.next()?.parse().ok()?;
        (!ip.is_loopback() && fields.any(|n| n == hostname)).then_some(ip)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn address_from_etc_hosts() {
        let hosts =
            "127.0.0.1 localhost\n127.0.1.1 host01\n10.61.0.11 host01 host01.lab # lab\n10.61.0.12 host02\n";
        assert_eq!(
            super::address_in_hosts(hosts, "host01"),
            Some("10.61.0.11".parse().unwrap())
        );
        assert_eq!(super::address_in_hosts(hosts, "host09"), None);
    }
}
