//! Peers shared by the firmware's integration tests.

pub mod dovecot;
pub mod slapd;
