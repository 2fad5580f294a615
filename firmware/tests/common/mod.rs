//! Shared by the firmware's integration tests: the real peers they start, and the envelopes and
//! recipients they hand to the spool, the queue and delivery. Each test binary uses a part of
//! it, so what one leaves unused is not dead code.
#![allow(dead_code)]

pub mod admin;
pub mod dovecot;
pub mod fixtures;
pub mod ldap_store;
pub mod peers;
pub mod ports;
pub mod slapd;
