//! The harness itself: a large fleet starts quickly and every server speaks SSH on its own port.

use std::collections::HashSet;
use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use kbs_testkit::{ClientKey, KeyType, SilentListener, SshdFleet, SshdOptions, TempDir};

#[test]
fn hundred_servers_start_quickly_and_stop_on_drop() {
    let dir = TempDir::new().unwrap();
    let key = ClientKey::generate(dir.path(), KeyType::Ed25519, None);
    let started = Instant::now();
    let fleet = SshdFleet::start(100, &SshdOptions::new().authorize(&key));
    let took = started.elapsed();
    assert_eq!(fleet.len(), 100);
    let ports: HashSet<u16> = fleet.iter().map(|s| s.port()).collect();
    assert_eq!(ports.len(), 100, "ports must be distinct");
    let keys: HashSet<&str> = fleet.iter().map(|s| s.host_key()).collect();
    assert_eq!(keys.len(), 100, "each server needs its own host key");
    assert!(took < Duration::from_secs(60), "starting 100 sshd took {took:?}");
    eprintln!("100 sshd started in {took:?}");

    let pids: Vec<u32> = fleet.iter().map(|s| s.pid()).collect();
    drop(fleet);
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z")),
            "sshd {pid} still running after drop"
        );
    }
}

#[test]
fn silent_listener_accepts_and_says_nothing() {
    let silent = SilentListener::start();
    let mut s = TcpStream::connect(("127.0.0.1", silent.port())).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut buf = [0u8; 1];
    let err = loop {
        match s.read(&mut buf) {
            Ok(n) => panic!("the silent listener sent {n} bytes"),
            // Signals from the other test's child processes interrupt the read: read again.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
}

#[test]
fn distinct_fleet_gives_each_server_its_own_loopback_address() {
    let dir = TempDir::new().unwrap();
    let key = ClientKey::generate(dir.path(), KeyType::Ed25519, None);
    let fleet = SshdFleet::start_distinct(3, &SshdOptions::new().authorize(&key));
    let hosts: Vec<&str> = fleet.iter().map(|s| s.host()).collect();
    assert_eq!(hosts, ["127.1.0.1", "127.1.0.2", "127.1.0.3"]);
    for s in fleet.iter() {
        let mut banner = [0u8; 4];
        let mut c = TcpStream::connect((s.host(), s.port())).unwrap();
        c.read_exact(&mut banner).unwrap();
        assert_eq!(&banner, b"SSH-");
        assert!(s
            .known_hosts_entry()
            .host
            .starts_with(&format!("[{}]:", s.host())));
    }
}
