//! The serial console's line discipline: canonical lines with echo, CR read as end of line, LF
//! written as CRLF. That is what a person at a serial terminal (and the QEMU test driver) expects,
//! whatever state the kernel left the tty in.

use rustix::termios::{InputModes, LocalModes, OptionalActions, OutputModes, tcgetattr, tcsetattr};
use std::io;
use std::os::fd::AsFd;

/// Puts a tty into the line mode the console prompt reads in. Not a tty (a pipe): nothing to do.
pub fn set_line_mode(fd: impl AsFd) -> io::Result<()> {
    let fd = fd.as_fd();
    let mut t = match tcgetattr(fd) {
        Ok(t) => t,
        Err(rustix::io::Errno::NOTTY) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    t.input_modes.insert(InputModes::ICRNL);
    t.input_modes.remove(InputModes::IGNCR | InputModes::INLCR);
    t.output_modes
        .insert(OutputModes::OPOST | OutputModes::ONLCR);
    t.local_modes
        .insert(LocalModes::ICANON | LocalModes::ECHO | LocalModes::ECHOE);
    // ^C must not signal PID 1.
    t.local_modes.remove(LocalModes::ISIG);
    tcsetattr(fd, OptionalActions::Now, &t).map_err(io::Error::from)
}

/// Turns the tty's echo on or off (off while a password is typed). Not a tty: nothing to do.
pub fn set_echo(fd: impl AsFd, on: bool) -> io::Result<()> {
    let fd = fd.as_fd();
    let mut t = match tcgetattr(fd) {
        Ok(t) => t,
        Err(rustix::io::Errno::NOTTY) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    t.local_modes.set(LocalModes::ECHO, on);
    tcsetattr(fd, OptionalActions::Now, &t).map_err(io::Error::from)
}

/// Waits up to `wait` for input on `fd`; whether some came (or the line hung up).
pub fn readable(fd: impl AsFd, wait: std::time::Duration) -> io::Result<bool> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: i64::try_from(wait.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(wait.subsec_nanos()),
    };
    let n = poll(&mut fds, Some(&timeout)).map_err(io::Error::from)?;
    Ok(n > 0)
}
