//! Host patterns: names, globs, roles and groups; a term matching nothing is an error.

mod common;

use common::load;
use kbs_inventory::{Inventory, SelectError};

const HOSTS: &str = "cluster:
  podSubnet: 172.31.0.0/16
  endpoint: {mode: external, address: api.example.com}
groups:
  dmz: {}
  empty: {}
hosts:
  - name: host01
    address: 10.0.0.11
    roles: [control-plane]
  - name: host02
    address: 10.0.0.12
    roles: [control-plane]
  - name: host03
    address: 10.0.0.13
    roles: [control-plane]
  - name: host04
    address: 10.0.0.14
    roles: [worker]
    groups: [dmz]
  - name: web01
    address: 10.0.0.21
    roles: [worker]
";

fn inventory() -> Inventory {
    load(HOSTS).inventory
}

fn select(pattern: &str) -> Result<Vec<String>, SelectError> {
    inventory()
        .select(pattern)
        .map(|hosts| hosts.iter().map(|h| h.name.clone()).collect())
}

#[test]
fn names_globs_roles_and_groups() {
    assert_eq!(select("host02").unwrap(), ["host02"]);
    assert_eq!(
        select("host0*").unwrap(),
        ["host01", "host02", "host03", "host04"]
    );
    assert_eq!(select("host0[13]").unwrap(), ["host01", "host03"]);
    assert_eq!(select("role:worker").unwrap(), ["host04", "web01"]);
    assert_eq!(select("group:dmz").unwrap(), ["host04"]);
    assert_eq!(select("*").unwrap().len(), 5);
}

#[test]
fn terms_combine_in_inventory_order_without_repeats() {
    assert_eq!(
        select("web01, role:control-plane,host01").unwrap(),
        ["host01", "host02", "host03", "web01"]
    );
}

#[test]
fn a_term_matching_nothing_is_an_error_naming_it() {
    let error = select("host01,hots02").unwrap_err();
    assert_eq!(
        error.to_string(),
        "no host matches `hots02` (did you mean `host02`?)"
    );
    assert_eq!(select("db*").unwrap_err().to_string(), "no host matches `db*`");
    assert_eq!(
        select("group:empty").unwrap_err(),
        SelectError::NoMatch {
            term: "group:empty".into(),
            suggestion: None
        }
    );
}

#[test]
fn unknown_roles_and_groups_suggest_one() {
    assert_eq!(
        select("role:workers").unwrap_err().to_string(),
        "unknown role `workers` in `role:workers` (did you mean `worker`?); roles are control-plane, worker, lb"
    );
    assert_eq!(
        select("group:dmx").unwrap_err().to_string(),
        "group `dmx` in `group:dmx` is not defined in the inventory (did you mean `dmz`?)"
    );
}

#[test]
fn empty_terms_are_errors() {
    assert_eq!(select("").unwrap_err().to_string(), "empty host pattern");
    assert_eq!(
        select("host01,,host02").unwrap_err().to_string(),
        "empty host pattern term in `host01,,host02`"
    );
}
