//! The kernel interfaces PID 1 needs: mounts, hostname, kernel modules, network links and routes,
//! the console's termios, power, and reaping children.
//!
//! Each function does one system call's worth of work and returns `std::io::Result`, so the
//! firmware decides what is fatal. Only [`net`] needs `unsafe` (ioctls rustix does not wrap).

pub mod console;
pub mod hostname;
pub mod modules;
pub mod mounts;
pub mod net;
pub mod power;
pub mod reap;
