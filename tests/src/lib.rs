//! Helpers for end-to-end tests: run the real `postern` binary in host mode on loopback, and ask it
//! things the way an admin would (its command line), so the tests see what users see.

pub mod appliance;
pub mod dhcp_server;
pub mod dkimpy;
pub mod dns;
pub mod dovecot;
pub mod host;
pub mod peers;
pub mod policy_server;
pub mod postfix;
pub mod scanners;
pub mod sntp_server;
pub mod tls_front;
pub mod update;
