//! SSH settings merge host > groups (later listed wins) > cluster, and leave the rest open.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::load;
use kbs_inventory::{Bastion, SshSettings};

const LAYERED: &str = "cluster:
  podSubnet: 172.31.0.0/16
ssh:
  user: admin
  port: 22
  sudo: true
  connectTimeout: 10s
groups:
  dmz:
    ssh: {bastion: jump@10.0.0.1, port: 2200, user: dmz}
  legacy:
    ssh: {port: 2201}
hosts:
  - name: plain
    address: 10.0.0.11
    roles: [control-plane, worker]
  - name: grouped
    address: 10.0.0.12
    roles: [worker]
    groups: [dmz, legacy]
  - name: overridden
    address: 10.0.0.13
    roles: [worker]
    groups: [legacy, dmz]
    ssh: {user: root, sudo: false}
";

#[test]
fn cluster_settings_apply_to_plain_hosts() {
    let inventory = load(LAYERED).inventory;
    let ssh = inventory.ssh_settings(inventory.host("plain").expect("host"));
    assert_eq!(ssh.user.as_deref(), Some("admin"));
    assert_eq!(ssh.port, Some(22));
    assert_eq!(ssh.bastion, None);
    assert_eq!(ssh.connect_timeout, Some(Duration::from_secs(10)));
    assert_eq!(ssh.identity_file, None, "left open for ~/.ssh/config");
}

#[test]
fn later_groups_win_over_earlier_ones_and_over_the_cluster() {
    let inventory = load(LAYERED).inventory;
    let ssh = inventory.ssh_settings(inventory.host("grouped").expect("host"));
    assert_eq!(ssh.port, Some(2201), "legacy is listed after dmz");
    assert_eq!(ssh.user.as_deref(), Some("dmz"));
    assert_eq!(
        ssh.bastion,
        Some(Bastion {
            user: Some("jump".into()),
            host: "10.0.0.1".into(),
            port: None
        })
    );
    assert_eq!(ssh.sudo, Some(true));
}

#[test]
fn host_settings_win_over_groups() {
    let inventory = load(LAYERED).inventory;
    let ssh = inventory.ssh_settings(inventory.host("overridden").expect("host"));
    assert_eq!(ssh.user.as_deref(), Some("root"));
    assert_eq!(ssh.port, Some(2200), "dmz is listed after legacy here");
    assert_eq!(ssh.sudo, Some(false));
    assert!(!ssh.uses_sudo());
}

#[test]
fn or_fills_only_open_fields_for_the_ssh_config_layer() {
    let inventory = SshSettings {
        user: Some("ops".into()),
        ..SshSettings::default()
    };
    let ssh_config = SshSettings {
        user: Some("someone".into()),
        port: Some(2222),
        identity_file: Some(PathBuf::from("/home/me/.ssh/id")),
        ..SshSettings::default()
    };
    let merged = inventory.or(&ssh_config);
    assert_eq!(merged.user.as_deref(), Some("ops"));
    assert_eq!(merged.port, Some(2222));
    assert_eq!(merged.identity_file, Some(PathBuf::from("/home/me/.ssh/id")));
    assert_eq!(merged.sudo, None);
}

#[test]
fn sudo_defaults_to_yes_unless_root() {
    assert!(SshSettings::default().uses_sudo());
    assert!(!SshSettings {
        user: Some("root".into()),
        ..SshSettings::default()
    }
    .uses_sudo());
    assert!(SshSettings {
        user: Some("root".into()),
        sudo: Some(true),
        ..SshSettings::default()
    }
    .uses_sudo());
}
