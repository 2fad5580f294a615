//! Postern's hardware abstraction layer: the only code that touches devices and the kernel.
//!
//! - [`flash`]: erase blocks behind `embedded_storage::nor_flash` over a file, a block device, an MTD
//!   device or RAM (with fault injection for power-cut tests); `flash::Device` opens whichever a
//!   path holds and locks it against a second postern.
//! - [`crc32c`]: CRC-32C with the CPU's instruction where it has one, the table elsewhere.
//! - [`sys`]: what PID 1 asks of the kernel: mounts, hostname, modules, links and routes, the
//!   console's termios, power and reaping.
//!
//! Everything above this crate (the `postern` firmware) sees types, never file descriptors.

pub mod crc32c;
pub mod flash;
pub mod sys;
