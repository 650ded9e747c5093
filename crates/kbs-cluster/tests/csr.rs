//! The kubelet serving CSR policy, with real PKCS#10 requests made by rcgen, and the approval
//! loop against a fake control plane whose kubectl lists, approves and "signs" CSRs.

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use kbs_cluster::csr::{approve_serving_csrs, judge, node_identities, parse_request};
use kbs_engine::testing::{fail_with, ok_with, FakeTransport};
use kbs_engine::Remote;
use kbs_inventory::Inventory;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};
use serde_json::{json, Value};

fn inventory() -> Inventory {
    let yaml = "cluster:
  podSubnet: 172.31.0.0/16
  endpoint: {mode: haproxy, port: 8443}
hosts:
  - {name: host01, address: 192.168.61.11, roles: [control-plane]}
  - {name: host02, address: 192.168.61.12, roles: [worker]}
  - {name: host03, address: host03.lab.example, nodeIp: 10.0.0.13, roles: [worker]}
  - {name: lb1, address: 192.168.61.20, roles: [lb]}
";
    Inventory::from_str(yaml, Path::new("inventory.yaml"))
        .unwrap()
        .inventory
}

/// A PEM CSR with this subject and these SANs.
fn request(cn: &str, orgs: &[&str], dns: &[&str], ips: &[&str], email: Option<&str>) -> String {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(dns.iter().map(|d| d.to_string()).collect::<Vec<_>>()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    for o in orgs {
        dn.push(DnType::OrganizationName, *o);
    }
    params.distinguished_name = dn;
    for ip in ips {
        params
            .subject_alt_names
            .push(SanType::IpAddress(ip.parse::<IpAddr>().unwrap()));
    }
    if let Some(e) = email {
        params
            .subject_alt_names
            .push(SanType::Rfc822Name(e.try_into().unwrap()));
    }
    params.serialize_request(&key).unwrap().pem().unwrap()
}

/// The CertificateSigningRequest object the API server would hold.
fn csr(name: &str, user: &str, pem: &str, usages: &[&str]) -> Value {
    json!({"metadata": {"name": name},
        "spec": {"signerName": "kubernetes.io/kubelet-serving", "username": user,
                 "groups": ["system:nodes", "system:authenticated"], "usages": usages,
                 "request": base64::engine::general_purpose::STANDARD.encode(pem)},
        "status": {}})
}

fn good(node: &str, ip: &str) -> Value {
    let user = format!("system:node:{node}");
    csr(
        &format!("csr-{node}"),
        &user,
        &request(&user, &["system:nodes"], &[node], &[ip], None),
        &["digital signature", "server auth"],
    )
}

#[test]
fn parses_subject_and_sans_of_a_real_request() {
    let pem = request(
        "system:node:host01",
        &["system:nodes"],
        &["host01"],
        &["192.168.61.11"],
        None,
    );
    let info = parse_request(pem.as_bytes()).unwrap();
    assert_eq!(info.common_names, ["system:node:host01"]);
    assert_eq!(info.organizations, ["system:nodes"]);
    assert_eq!(info.dns, ["host01"]);
    assert_eq!(info.ips, ["192.168.61.11".parse::<IpAddr>().unwrap()]);
    assert!(
        parse_request(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")
            .is_err()
    );
}

#[test]
fn a_node_asking_for_its_own_names_and_addresses_is_approved() {
    let nodes = node_identities(&inventory());
    assert_eq!(
        judge(&good("host01", "192.168.61.11"), &nodes),
        Ok("host01".to_string())
    );
    // host03: its address is a DNS name, its node IP the only address.
    let user = "system:node:host03";
    let req = request(
        user,
        &["system:nodes"],
        &["host03", "host03.lab.example"],
        &["10.0.0.13"],
        None,
    );
    let c = csr(
        "csr-3",
        user,
        &req,
        &["digital signature", "key encipherment", "server auth"],
    );
    assert_eq!(judge(&c, &nodes), Ok("host03".to_string()));
    assert!(!nodes.contains_key("lb1"), "an lb-only host runs no kubelet");
}

#[test]
fn a_forged_request_for_another_hosts_address_is_refused() {
    let nodes = node_identities(&inventory());
    // host02's kubelet asks for a certificate that also serves host01's IP.
    let forged = good("host02", "192.168.61.11");
    assert_eq!(
        judge(&forged, &nodes).unwrap_err(),
        "IP address 192.168.61.11 is not an address of host02 in the inventory (192.168.61.12)"
    );
    // …or for host01's name.
    let user = "system:node:host02";
    let req = request(user, &["system:nodes"], &["host01"], &["192.168.61.12"], None);
    let err = judge(&csr("c", user, &req, &["server auth"]), &nodes).unwrap_err();
    assert_eq!(
        err,
        "DNS name `host01` is not a name of host02 in the inventory (host02)"
    );
    // …or a CN that differs from who asked.
    let req = request("system:node:host01", &["system:nodes"], &["host02"], &[], None);
    let err = judge(&csr("c", user, &req, &["server auth"]), &nodes).unwrap_err();
    assert!(
        err.starts_with("subject CN [\"system:node:host01\"] is not the requestor"),
        "{err}"
    );
}

#[test]
fn every_other_rule_refuses_with_its_reason() {
    let nodes = node_identities(&inventory());
    let user = "system:node:host01";
    let fine = request(user, &["system:nodes"], &["host01"], &["192.168.61.11"], None);
    let mut c = csr("c", user, &fine, &["digital signature", "server auth"]);
    c["spec"]["signerName"] = json!("kubernetes.io/kube-apiserver-client");
    assert!(judge(&c, &nodes)
        .unwrap_err()
        .starts_with("signer `kubernetes.io/kube-apiserver-client`"));
    let c = csr("c", "system:node:host09", &fine, &["server auth"]);
    assert_eq!(
        judge(&c, &nodes).unwrap_err(),
        "requestor `system:node:host09`: `host09` is not a node of the inventory"
    );
    let c = csr("c", "alice", &fine, &["server auth"]);
    assert!(judge(&c, &nodes)
        .unwrap_err()
        .contains("is not a node (system:node:<name>)"));
    let mut c = csr("c", user, &fine, &["server auth"]);
    c["spec"]["groups"] = json!(["system:authenticated"]);
    assert!(judge(&c, &nodes)
        .unwrap_err()
        .contains("not in group system:nodes"));
    let c = csr("c", user, &fine, &["server auth", "client auth"]);
    assert!(judge(&c, &nodes)
        .unwrap_err()
        .starts_with("usage `client auth` is not allowed"));
    let c = csr("c", user, &fine, &["digital signature"]);
    assert_eq!(judge(&c, &nodes).unwrap_err(), "usages lack `server auth`");
    let req = request(user, &["system:masters"], &["host01"], &[], None);
    assert!(judge(&csr("c", user, &req, &["server auth"]), &nodes)
        .unwrap_err()
        .starts_with("subject O"));
    let req = request(user, &["system:nodes"], &["host01"], &[], Some("root@host01"));
    assert!(judge(&csr("c", user, &req, &["server auth"]), &nodes)
        .unwrap_err()
        .starts_with("SAN "));
}

/// kubectl on a control plane: lists the CSRs, approves (and, like the signer, issues) by name.
fn fake_api(csrs: Vec<Value>) -> (Arc<FakeTransport>, Arc<Mutex<Vec<Value>>>) {
    let state = Arc::new(Mutex::new(csrs));
    let s = state.clone();
    let fake = FakeTransport::new(move |script| {
        let mut csrs = s.lock().unwrap();
        if script.text.contains(" get certificatesigningrequests -o json") {
            return ok_with(&json!({"items": *csrs}).to_string());
        }
        if let Some(name) = script.text.split("certificate approve ").nth(1) {
            let name = name.trim();
            return match csrs.iter_mut().find(|c| c["metadata"]["name"] == name) {
                Some(c) => {
                    c["status"] = json!({"conditions": [{"type": "Approved", "status": "True"}], "certificate": "Y2VydA=="});
                    ok_with(&format!(
                        "certificatesigningrequest.certificates.k8s.io/{name} approved\n"
                    ))
                }
                None => fail_with(1, "Error from server (NotFound)"),
            };
        }
        fail_with(1, "unexpected script")
    });
    (Arc::new(fake), state)
}

#[tokio::test]
async fn approves_the_good_ones_and_waits_until_every_node_has_a_certificate() {
    let (fake, _) = fake_api(vec![
        good("host01", "192.168.61.11"),
        good("host02", "192.168.61.12"),
        good("host03", "10.0.0.13"),
    ]);
    let remote = Remote::new(fake.clone());
    let report = approve_serving_csrs(&inventory(), &remote, Duration::from_secs(5))
        .await
        .unwrap();
    let approved: Vec<&str> = report.approved.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(approved, ["host01", "host02", "host03"]);
    assert_eq!(report.nodes, ["host01", "host02", "host03"]);
    assert!(report.refused.is_empty());
    assert!(fake
        .scripts()
        .iter()
        .any(|s| s == "kubectl --kubeconfig /etc/kubernetes/admin.conf certificate approve csr-host02"));
    // Run again: all issued, nothing approved twice.
    let again = approve_serving_csrs(&inventory(), &remote, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(again.approved.is_empty());
}

#[tokio::test]
async fn a_forged_csr_stays_pending_and_the_timeout_names_node_and_reason() {
    let mut forged = good("host02", "192.168.61.11");
    forged["metadata"]["name"] = json!("csr-forged");
    let (fake, state) = fake_api(vec![
        good("host01", "192.168.61.11"),
        forged,
        good("host03", "10.0.0.13"),
    ]);
    let remote = Remote::new(fake.clone());
    let err = approve_serving_csrs(&inventory(), &remote, Duration::from_millis(300))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("no approved and issued kubelet serving certificate: host02"),
        "{text}"
    );
    assert!(text.contains(
        "csr-forged (from system:node:host02): IP address 192.168.61.11 is not an address of host02 in the inventory"
    ), "{text}");
    assert!(!fake.scripts().iter().any(|s| s.contains("approve csr-forged")));
    let csrs = state.lock().unwrap();
    let forged = csrs
        .iter()
        .find(|c| c["metadata"]["name"] == "csr-forged")
        .unwrap();
    assert!(forged["status"].get("conditions").is_none(), "still pending");
}
