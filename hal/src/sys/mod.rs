//! The kernel interfaces PID 1 needs: mounts, hostname, kernel modules, network links and routes,
//! the console's termios, power, and reaping children; the wall clock (SNTP's UDP exchange,
//! clock_settime) and ICMP echo for the diagnostics.
//!
//! Each function does one system call's worth of work and returns `std::io::Result`, so the
//! firmware decides what is fatal. Only [`net`], [`packet`], [`watchdog`] and [`memory`] need
//! `unsafe` (ioctls, the packet socket and `malloc_trim`, which rustix does not wrap).

pub mod arp;
pub mod clock;
pub mod console;
pub mod dhcp;
pub mod dhcp_client;
pub mod dhcp_socket;
pub mod hostname;
pub mod icmp;
pub mod limits;
pub mod memory;
pub mod modules;
pub mod mounts;
pub mod net;
pub mod net6;
pub mod packet;
pub mod power;
pub mod reap;
pub mod router_dns;
pub mod watchdog;
