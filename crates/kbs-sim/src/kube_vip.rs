//! kube-vip in ARP mode for the control plane, as its static pod runs it (kube-vip.io
//! docs/installation/static): leader election through the Lease `plndr-cp-lock` in
//! kube-system (client-go leaderelection semantics: duration, renew deadline, retry period),
//! and the leader holds the VIP on its interface (`ip addr add VIP/32 dev IFACE`) and
//! announces it with a gratuitous ARP (`arping -U` when installed). A leader that cannot
//! renew within the renew deadline steps down and removes the VIP.
//!
//! Which kubeconfig it uses matters: the manifest mounts a host file at
//! /etc/kubernetes/admin.conf; on the init node of 1.29+ that must be super-admin.conf,
//! because admin.conf is Forbidden until `kubeadm init` created the `kubeadm:cluster-admins`
//! binding, and init cannot get there without the VIP (kube-vip/kube-vip#684).

use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::kubeclient::{Client, Kubeconfig};

/// Settings from the manifest's environment (kube-vip's `vip_*` variables).
#[derive(Debug, Clone)]
pub struct Settings {
    pub address: String,
    pub interface: String,
    pub cidr: u8,
    pub lease_name: String,
    pub namespace: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
    pub identity: String,
}

impl Settings {
    pub fn from_env(get: impl Fn(&str) -> Option<String>, identity: &str) -> Result<Settings, String> {
        let secs = |k: &str, d: u64| Duration::from_secs(get(k).and_then(|v| v.parse().ok()).unwrap_or(d));
        let address = get("address").or_else(|| get("vip_address")).unwrap_or_default();
        if address.is_empty() {
            return Err("no address is specified for kube-vip to expose services on".into());
        }
        Ok(Settings {
            address,
            interface: get("vip_interface").unwrap_or_else(|| "eth0".into()),
            cidr: get("vip_cidr").and_then(|v| v.parse().ok()).unwrap_or(32),
            lease_name: get("vip_leasename").unwrap_or_else(|| "plndr-cp-lock".into()),
            namespace: get("cp_namespace").unwrap_or_else(|| "kube-system".into()),
            lease_duration: secs("vip_leaseduration", 5),
            renew_deadline: secs("vip_renewdeadline", 3),
            retry_period: secs("vip_retryperiod", 1),
            identity: identity.to_string(),
        })
    }
}

/// The host's network, behind a trait so tests never touch interfaces.
pub trait Net {
    fn has_addr(&self, cidr: &str, iface: &str) -> bool;
    fn add_addr(&self, cidr: &str, iface: &str) -> Result<(), String>;
    fn del_addr(&self, cidr: &str, iface: &str) -> Result<(), String>;
    /// Gratuitous ARP; `Ok(false)` when no arping is installed.
    fn gratuitous_arp(&self, ip: &str, iface: &str) -> Result<bool, String>;
}

/// `ip` and `arping` on the guest.
pub struct RealNet;

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

impl Net for RealNet {
    fn has_addr(&self, cidr: &str, iface: &str) -> bool {
        run("ip", &["-o", "addr", "show", "dev", iface]).is_ok_and(|o| o.contains(&format!(" {cidr} ")))
    }
    fn add_addr(&self, cidr: &str, iface: &str) -> Result<(), String> {
        run("ip", &["addr", "add", cidr, "dev", iface]).map(|_| ())
    }
    fn del_addr(&self, cidr: &str, iface: &str) -> Result<(), String> {
        run("ip", &["addr", "del", cidr, "dev", iface]).map(|_| ())
    }
    fn gratuitous_arp(&self, ip: &str, iface: &str) -> Result<bool, String> {
        let found = [
            "/usr/sbin/arping",
            "/usr/bin/arping",
            "/sbin/arping",
            "/bin/arping",
        ]
        .iter()
        .any(|p| std::path::Path::new(p).exists());
        if !found {
            return Ok(false);
        }
        run("arping", &["-U", "-c", "1", "-I", iface, ip]).map(|_| true)
    }
}

/// client-go's MicroTime format (`2026-11-22T03:00:00.123456Z`).
fn micro_time(t: SystemTime) -> String {
    let micros = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_micros())
        .unwrap_or(0);
    crate::clock::rfc3339(t).replace('Z', &format!(".{micros:06}Z"))
}

fn parse_micro(s: &str) -> Option<SystemTime> {
    let (base, frac) = s
        .trim_end_matches('Z')
        .split_once('.')
        .unwrap_or((s.trim_end_matches('Z'), "0"));
    let t = crate::store::bootstrap::parse_rfc3339(&format!("{base}Z"))?;
    let micros: u64 = format!("{frac:0<6}").get(..6)?.parse().ok()?;
    Some(t + Duration::from_micros(micros))
}

/// One kube-vip instance's election state.
pub struct KubeVip<N: Net> {
    pub s: Settings,
    pub net: N,
    pub client: Client,
    pub leader: bool,
    last_renew: Option<Instant>,
    pub log: Vec<String>,
    pub clock: crate::clock::Clock,
}

impl<N: Net> KubeVip<N> {
    pub fn new(s: Settings, net: N, kc: Kubeconfig, clock: crate::clock::Clock) -> Result<Self, String> {
        let mut client = Client::new(kc)?;
        client.timeout = Duration::from_secs(2);
        client.user_agent = "kube-vip/v1.0.3".into();
        Ok(KubeVip {
            s,
            net,
            client,
            leader: false,
            last_renew: None,
            log: Vec::new(),
            clock,
        })
    }

    /// A logrus text line: the message quoted as Go's `%q` does (logrus TextFormatter).
    fn say(&mut self, level: &str, msg: String) {
        let line = format!(
            "time=\"{}\" level={level} msg={}",
            crate::clock::rfc3339(self.clock.now()),
            crate::gofmt::quote(&msg)
        );
        eprintln!("{line}");
        self.log.push(line);
    }

    fn lease_path(&self, name: bool) -> String {
        let base = format!(
            "/apis/coordination.k8s.io/v1/namespaces/{}/leases",
            self.s.namespace
        );
        if name {
            format!("{base}/{}", self.s.lease_name)
        } else {
            base
        }
    }

    /// One try to acquire or renew (client-go `tryAcquireOrRenew`); true when we hold it.
    fn try_acquire_or_renew(&mut self) -> Result<bool, String> {
        let now = self.clock.now();
        let lock = format!("{}/{}", self.s.namespace, self.s.lease_name);
        let r = self
            .client
            .get(&self.lease_path(true))
            .map_err(|e| format!("error retrieving resource lock {lock}: {e}"))?;
        let spec = json!({"holderIdentity": self.s.identity, "leaseDurationSeconds": self.s.lease_duration.as_secs(),
            "renewTime": micro_time(now), "leaseTransitions": 0});
        if r.status == 404 {
            let mut spec = spec;
            spec["acquireTime"] = json!(micro_time(now));
            let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.s.lease_name, "namespace": self.s.namespace}, "spec": spec});
            let c = self
                .client
                .send_json("POST", &self.lease_path(false), &lease)
                .map_err(|e| format!("error initially creating leader election record: {e}"))?;
            return if c.ok() {
                Ok(true)
            } else {
                Err(format!(
                    "error initially creating leader election record: {}",
                    c.message()
                ))
            };
        }
        if !r.ok() {
            return Err(format!("error retrieving resource lock {lock}: {}", r.message()));
        }
        let mut lease = r.body;
        let holder = lease
            .pointer("/spec/holderIdentity")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let renew = lease
            .pointer("/spec/renewTime")
            .and_then(Value::as_str)
            .and_then(parse_micro);
        let dur = lease
            .pointer("/spec/leaseDurationSeconds")
            .and_then(Value::as_u64)
            .map(Duration::from_secs)
            .unwrap_or(self.s.lease_duration);
        let expired = renew.is_none_or(|t| t + dur < now);
        if holder != self.s.identity && !holder.is_empty() && !expired {
            return Ok(false);
        }
        let transitions = lease
            .pointer("/spec/leaseTransitions")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let mut spec = spec;
        if holder != self.s.identity {
            spec["acquireTime"] = json!(micro_time(now));
            spec["leaseTransitions"] = json!(transitions + 1);
        } else {
            spec["acquireTime"] = lease
                .pointer("/spec/acquireTime")
                .cloned()
                .unwrap_or(json!(micro_time(now)));
            spec["leaseTransitions"] = json!(transitions);
        }
        lease["spec"] = spec;
        let u = self
            .client
            .send_json("PUT", &self.lease_path(true), &lease)
            .map_err(|e| format!("Failed to update lock: {e}"))?;
        // A Conflict means someone else renewed first: not leader this round.
        Ok(u.ok())
    }

    fn vip_cidr(&self) -> String {
        format!("{}/{}", self.s.address, self.s.cidr)
    }

    /// One retry period's work.
    pub fn step(&mut self) {
        match self.try_acquire_or_renew() {
            Ok(true) => {
                self.last_renew = Some(Instant::now());
                if !self.leader {
                    self.leader = true;
                    self.say(
                        "info",
                        format!("Node [{}] is assuming leadership of the cluster", self.s.identity),
                    );
                }
                let (cidr, iface) = (self.vip_cidr(), self.s.interface.clone());
                if !self.net.has_addr(&cidr, &iface) {
                    match self.net.add_addr(&cidr, &iface) {
                        Ok(()) => {
                            self.say("info", format!("Added VIP {cidr} to interface {iface}"));
                            match self.net.gratuitous_arp(&self.s.address, &iface) {
                                Ok(true) => self.say("info", format!("Gratuitous Arp broadcast will repeat every 3 seconds for [{}/{iface}]", self.s.address)),
                                Ok(false) => self.say("warning", "arping not found: skipping the gratuitous ARP (the lab bridge learns the address on first use)".into()),
                                Err(e) => self.say("error", format!("gratuitous ARP failed: {e}")),
                            }
                        }
                        Err(e) => self.say("error", format!("could not add VIP {cidr} to {iface}: {e}")),
                    }
                }
            }
            Ok(false) => self.step_down(None),
            Err(e) => {
                // client-go logs the error and keeps the leadership until the renew deadline.
                self.say("error", e);
                let lost = self
                    .last_renew
                    .is_none_or(|t| t.elapsed() >= self.s.renew_deadline);
                if self.leader && lost {
                    self.step_down(Some("failed to renew lease: timed out waiting for the condition"));
                }
            }
        }
    }

    /// Stopping (SIGTERM from the kubelet or systemd): the leader releases the VIP as kube-vip's
    /// cluster stop does (`[VIP] Releasing the Virtual IP [ADDR]`, pkg/cluster); the Lease then
    /// expires and another control plane takes over.
    pub fn stop(&mut self) {
        let (cidr, iface) = (self.vip_cidr(), self.s.interface.clone());
        if self.leader && self.net.has_addr(&cidr, &iface) {
            self.say(
                "info",
                format!("[VIP] Releasing the Virtual IP [{}]", self.s.address),
            );
            if let Err(e) = self.net.del_addr(&cidr, &iface) {
                self.say("warning", e);
            }
        }
        self.leader = false;
    }

    fn step_down(&mut self, why: Option<&str>) {
        if self.leader {
            self.leader = false;
            if let Some(w) = why {
                self.say("error", format!("leaderelection lost: {w}"));
            }
            self.say(
                "info",
                format!("Node [{}] is no longer the leader", self.s.identity),
            );
        }
        let (cidr, iface) = (self.vip_cidr(), self.s.interface.clone());
        if self.net.has_addr(&cidr, &iface) {
            match self.net.del_addr(&cidr, &iface) {
                Ok(()) => self.say("info", format!("Removed VIP {cidr} from interface {iface}")),
                Err(e) => self.say("error", format!("could not remove VIP {cidr}: {e}")),
            }
        }
    }
}

/// The kube-vip process (`kube-vip manager`), settings from the environment; the
/// kubeconfig is the host file the kubelet resolved for /etc/kubernetes/admin.conf.
pub fn main(_args: &[String]) -> i32 {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let s = match Settings::from_env(|k| std::env::var(k).ok(), &hostname) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "time=\"{}\" level=fatal msg=\"{e}\"",
                crate::clock::rfc3339(SystemTime::now())
            );
            return 1;
        }
    };
    let path =
        std::env::var("KBS_SIM_KUBE_VIP_KUBECONFIG").unwrap_or_else(|_| "/etc/kubernetes/admin.conf".into());
    let kc = match Kubeconfig::load(std::path::Path::new(&path)) {
        Ok(k) => k,
        Err(e) => {
            eprintln!(
                "time=\"{}\" level=fatal msg=\"could not create k8s clientset: {e}\"",
                crate::clock::rfc3339(SystemTime::now())
            );
            return 1;
        }
    };
    let period = s.retry_period;
    // In control-plane mode kube-vip talks to the API server of its own node, not to the VIP it
    // is about to hold: it replaces the kubeconfig's server with `kubernetes:<port>`, which the
    // manifest's hostAliases map to 127.0.0.1 (kube-vip pkg/manager: NewClientset(…,
    // "kubernetes:<port>")). TLS checks the name `kubernetes`, one of the API server's SANs.
    let port: u16 = std::env::var("port")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(6443);
    let mut kc = kc;
    kc.server = format!("https://kubernetes:{port}");
    let alias = std::env::var(crate::kubelet::static_pods::HOST_ALIASES_ENV)
        .ok()
        .and_then(|a| crate::kubelet::static_pods::host_alias(&a, "kubernetes"));
    let mut vip = match KubeVip::new(s, RealNet, kc, crate::clock::Clock::default()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("kube-vip: {e}");
            return 1;
        }
    };
    vip.client.connect_to = alias.map(|ip| std::net::SocketAddr::new(ip, port));
    crate::signals::on_terminate();
    while !crate::signals::terminating() {
        vip.step();
        vip.log.clear();
        std::thread::sleep(period);
    }
    vip.stop();
    0
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;
    use crate::apiserver::admission::PortRange;
    use crate::apiserver::tests::{Fixture, ADMIN, SUPER};

    #[derive(Clone, Default)]
    struct FakeNet(Rc<RefCell<Vec<String>>>);
    impl Net for FakeNet {
        fn has_addr(&self, cidr: &str, _: &str) -> bool {
            self.0.borrow().iter().any(|a| a == cidr)
        }
        fn add_addr(&self, cidr: &str, _: &str) -> Result<(), String> {
            self.0.borrow_mut().push(cidr.into());
            Ok(())
        }
        fn del_addr(&self, cidr: &str, _: &str) -> Result<(), String> {
            self.0.borrow_mut().retain(|a| a != cidr);
            Ok(())
        }
        fn gratuitous_arp(&self, _: &str, _: &str) -> Result<bool, String> {
            Ok(false)
        }
    }

    fn settings(id: &str) -> Settings {
        let env = |k: &str| match k {
            "address" => Some("10.61.0.10".to_string()),
            "vip_interface" => Some("host0".to_string()),
            "vip_leaseduration" => Some("3".to_string()),
            "vip_renewdeadline" => Some("1".to_string()),
            "vip_retryperiod" => Some("1".to_string()),
            _ => None,
        };
        Settings::from_env(env, id).unwrap()
    }

    #[test]
    fn admin_conf_is_forbidden_super_admin_leads_and_the_vip_moves_on_expiry() {
        let f = Fixture::start(PortRange::default());
        let net1 = FakeNet::default();
        let mut with_admin = KubeVip::new(
            settings("host01"),
            net1.clone(),
            f.kubeconfig(Some(ADMIN)),
            Clock::default(),
        )
        .unwrap();
        with_admin.step();
        assert!(!with_admin.leader);
        assert!(net1.0.borrow().is_empty());
        assert!(
            with_admin.log[0].contains(r#"msg="error retrieving resource lock kube-system/plndr-cp-lock: leases.coordination.k8s.io \"plndr-cp-lock\" is forbidden: User \"kubernetes-admin\" cannot get resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"kube-system\"""#),
            "{:?}",
            with_admin.log
        );

        let mut one = KubeVip::new(
            settings("host01"),
            net1.clone(),
            f.kubeconfig(Some(SUPER)),
            Clock::default(),
        )
        .unwrap();
        one.step();
        assert!(one.leader);
        assert_eq!(*net1.0.borrow(), vec!["10.61.0.10/32".to_string()]);
        // Stopped, the leader releases the address; started again, it leads again.
        one.stop();
        assert!(net1.0.borrow().is_empty());
        assert!(one
            .log
            .last()
            .unwrap()
            .ends_with(r#"msg="[VIP] Releasing the Virtual IP [10.61.0.10]""#));
        one.step();
        assert!(one.leader);
        assert_eq!(*net1.0.borrow(), vec!["10.61.0.10/32".to_string()]);
        let net2 = FakeNet::default();
        let mut two = KubeVip::new(
            settings("host02"),
            net2.clone(),
            f.kubeconfig(Some(SUPER)),
            Clock::default(),
        )
        .unwrap();
        two.step();
        assert!(!two.leader);
        // host01 stops renewing; after the lease duration host02 takes over.
        std::thread::sleep(Duration::from_millis(3600));
        two.step();
        assert!(two.leader);
        assert_eq!(*net2.0.borrow(), vec!["10.61.0.10/32".to_string()]);
        one.step();
        assert!(!one.leader);
        assert!(net1.0.borrow().is_empty(), "the old leader released the VIP");
    }

    use crate::clock::Clock;

    #[test]
    fn micro_time_round_trip() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_795_000_000_123_456);
        assert_eq!(parse_micro(&micro_time(t)), Some(t));
    }
}
