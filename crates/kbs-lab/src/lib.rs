//! The local lab: hosts as systemd-nspawn machines, a signed apt repository, and faults.
