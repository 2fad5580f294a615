//! The kernel's hostname (what `uname -n` says).

use std::io;

/// Sets the hostname; the kernel limits it to 64 bytes.
pub fn set(name: &str) -> io::Result<()> {
    rustix::system::sethostname(name.as_bytes()).map_err(io::Error::from)
}

/// The current hostname.
pub fn get() -> String {
    String::from_utf8_lossy(rustix::system::uname().nodename().to_bytes()).into_owned()
}
