//! Boots Postern images under QEMU and drives their serial console.
//!
//! [`Machine::boot`] starts `qemu-system-<arch>` on an image directory made by `mkimage`
//! (`kernel`, `initramfs.cpio.zst`) with the flash as a raw file on virtio-blk, or
//! ([`BootOptions::disk`]) on the flashable disk image under UEFI (OVMF / AAVMF), user networking
//! with host port forwards (or, [`Network::Udp`], a link whose frames a test process sends and
//! receives as UDP datagrams), and the serial console either on the terminal (for `make run`) or on a
//! Unix socket driven by a [`Console`] (for tests). With the socket, QEMU waits for us to connect
//! before it starts the guest, so no early output is lost.

mod console;
mod machine;

pub use console::{Console, ConsoleError};
pub use machine::{
    Arch, BootOptions, ConsoleMode, DEFAULT_FLASH_SIZE, Forward, Machine, Network, POWEROFF_GRACE,
};
