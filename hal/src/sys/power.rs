//! Powering off and rebooting the box, and what Ctrl-Alt-Del does.

use rustix::system::{RebootCommand, reboot};
use std::io;

/// What to do at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    Poweroff,
    Reboot,
}

/// Flushes every filesystem and block device buffer to the hardware.
pub fn sync() {
    rustix::fs::sync();
}

/// Syncs, then powers off or restarts. Returns only if the kernel refused (not PID 1, or no
/// CAP_SYS_BOOT).
pub fn shutdown(action: PowerAction) -> io::Error {
    sync();
    let cmd = match action {
        PowerAction::Poweroff => RebootCommand::PowerOff,
        PowerAction::Reboot => RebootCommand::Restart,
    };
    match reboot(cmd) {
        Ok(()) => io::Error::other("reboot(2) returned"),
        Err(e) => e.into(),
    }
}

/// Makes Ctrl-Alt-Del send SIGINT to PID 1 instead of restarting at once, so it can shut down cleanly.
pub fn ctrl_alt_del_signals_init() -> io::Result<()> {
    reboot(RebootCommand::CadOff).map_err(io::Error::from)
}
