//! The serial console: the first-boot wizard on a box never set up, then a login with the console
//! password and a numbered menu (status, network, host name and time, directory, mail routing,
//! queue, TLS, diagnostics, the command line, factory reset, reboot, power off), redrawn after
//! each action.
//!
//! It reads whole lines and writes plain text, so it works the same on a vt100, a linux console,
//! a dumb or 0×0 serial tty and through a pipe. The core ([`session`], [`wizard`], [`form`]) is
//! sans-IO: lines in, text out, every action an admin command (the command line's and control
//! socket's); [`run`] is the thin layer over a reader and a writer.

pub mod form;
pub mod line;
pub mod session;
pub mod wizard;

use std::io::{BufRead, Write};

pub use session::{ConsoleExit, MENU_PROMPT, Operations, PROMPT, Platform, Session, Start};

/// Runs a session until it ends or the input does. Must not be called from inside the tokio
/// runtime's worker threads: [`crate::admin::Admin`] carries commands out by blocking on it.
pub fn run(
    mut input: impl BufRead,
    mut output: impl Write,
    ops: &impl Operations,
    platform: &impl Platform,
    start: Start,
) -> ConsoleExit {
    let (mut session, text) = Session::start(ops, platform, start);
    let _ = write!(output, "{text}");
    loop {
        let secret = session.secret();
        let _ = write!(output, "{}", session.prompt());
        let _ = output.flush();
        if secret {
            platform.set_echo(false);
        }
        let line = read_line(&mut input);
        if secret {
            platform.set_echo(true);
            // The admin's Enter was not echoed either.
            let _ = writeln!(output);
        }
        let Some(line) = line else {
            return ConsoleExit::Eof;
        };
        let out = session.line(&line);
        let _ = write!(output, "{}", out.text);
        if let Some(cmd) = out.listing {
            list(cmd, &mut input, &mut output, ops, platform);
        }
        if let Some(wait) = out.pause {
            let _ = output.flush();
            platform.pause(wait);
        }
        if let Some(exit) = out.exit {
            let _ = output.flush();
            return exit;
        }
        while session.is_following() {
            let _ = write!(output, "{}", session.follow());
            let _ = output.flush();
            if platform.input_waiting(FOLLOW_POLL) {
                // The line that stops the follow is not a command.
                let _ = read_line(&mut input);
                session.stop_following();
            }
        }
    }
}

/// Writes a listing part by part as it is made. A million queued messages take hours on a
/// serial line: Enter stops it between parts, as it stops `log --follow`, and so does a console
/// that cannot be written to.
fn list(
    cmd: crate::admin::AdminCommand,
    input: &mut impl BufRead,
    output: &mut impl Write,
    ops: &impl Operations,
    platform: &impl Platform,
) {
    let mut stopped = false;
    let reply = ops.execute_in_parts(cmd, &mut |part| {
        if write!(output, "{part}").is_err() {
            return false;
        }
        let _ = output.flush();
        if platform.input_waiting(std::time::Duration::ZERO) {
            // The line that stops the listing is not a command.
            let _ = read_line(input);
            stopped = true;
            return false;
        }
        true
    });
    if stopped {
        let _ = writeln!(output, "(listing stopped)");
        return;
    }
    let _ = write!(output, "{}", reply.text);
    if !reply.text.is_empty() && !reply.text.ends_with('\n') {
        let _ = writeln!(output);
    }
}

/// How often `log --follow` looks for new lines.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// One line, or None at end of input. Bytes that are not UTF-8 are replaced (and then refused
/// as the noise they are) rather than ending the console.
fn read_line(input: &mut impl BufRead) -> Option<String> {
    let mut buf = Vec::new();
    match input.read_until(b'\n', &mut buf) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(String::from_utf8_lossy(&buf).into_owned()),
    }
}

#[cfg(test)]
mod tests;
