//! The hardware watchdog (`/dev/watchdog`, Linux's watchdog API): once opened it must be petted
//! within its timeout or the machine resets. Closing it after writing 'V' (the magic close)
//! disarms it, for a clean shutdown.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

/// `WDIOC_SETTIMEOUT`: `_IOWR('W', 6, int)`.
const WDIOC_SETTIMEOUT: libc::c_ulong = 0xC004_5706;

/// An armed watchdog.
pub struct Watchdog {
    device: File,
}

impl Watchdog {
    /// Opens (and so arms) the watchdog at `path`; `None` if the machine has none.
    pub fn open(path: &Path) -> io::Result<Option<Watchdog>> {
        match OpenOptions::new().write(true).open(path) {
            Ok(device) => Ok(Some(Watchdog { device })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sets the timeout; returns the one the driver took (drivers round to what they support).
    pub fn set_timeout(&self, secs: u32) -> io::Result<u32> {
        let mut t = libc::c_int::try_from(secs).unwrap_or(libc::c_int::MAX);
        // SAFETY: WDIOC_SETTIMEOUT reads and writes one int, which `t` is and outlives the call.
        let r = unsafe { libc::ioctl(self.device.as_raw_fd(), WDIOC_SETTIMEOUT, &mut t) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(u32::try_from(t).unwrap_or(secs))
    }

    /// Tells the watchdog the machine is alive.
    pub fn pet(&mut self) -> io::Result<()> {
        self.device.write_all(b"\0")
    }

    /// Disarms it (magic close), for a clean shutdown.
    pub fn disarm(mut self) -> io::Result<()> {
        self.device.write_all(b"V")
    }
}
