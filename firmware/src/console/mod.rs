//! The serial console: an admin prompt that takes the same commands as the command line, plus
//! `poweroff` and `reboot`. It reads lines, so it works on any terminal, a 0x0 serial tty or a pipe.

use std::io::{BufRead, Write};

use clap::{Parser, Subcommand};

use crate::admin::{Admin, AdminCommand, words};

/// The prompt, also what tests wait for.
pub const PROMPT: &str = "postern> ";

/// Why the prompt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleExit {
    /// The admin asked to power the box off.
    Poweroff,
    /// The admin asked to reboot.
    Reboot,
    /// The console went away (end of input).
    Eof,
}

#[derive(Debug, Parser)]
#[command(
    name = "",
    no_binary_name = true,
    disable_version_flag = true,
    help_template = "{subcommands}"
)]
struct Line {
    #[command(subcommand)]
    command: ConsoleCommand,
}

#[derive(Debug, Subcommand)]
enum ConsoleCommand {
    #[command(flatten)]
    Admin(AdminCommand),
    /// Stop the services, flush the flash and power the box off.
    Poweroff,
    /// Stop the services, flush the flash and restart the box.
    Reboot,
}

/// Runs the prompt until poweroff, reboot or end of input. Must not be called from inside the
/// tokio runtime's worker threads: commands are carried out by blocking on it.
pub fn run(mut input: impl BufRead, mut output: impl Write, admin: &Admin) -> ConsoleExit {
    let _ = writeln!(
        output,
        "Postern {}. Type 'help' for the commands.",
        env!("CARGO_PKG_VERSION")
    );
    loop {
        let _ = write!(output, "{PROMPT}");
        let _ = output.flush();
        let Some(line) = read_line(&mut input) else {
            return ConsoleExit::Eof;
        };
        let words = match words::split(&line) {
            Ok(w) if w.is_empty() => continue,
            Ok(w) => w,
            Err(e) => {
                let _ = writeln!(output, "error: {e}");
                continue;
            }
        };
        let command = match Line::try_parse_from(&words) {
            Ok(l) => l.command,
            Err(e) => {
                let _ = write!(output, "{}", e.render());
                continue;
            }
        };
        match command {
            ConsoleCommand::Poweroff => return ConsoleExit::Poweroff,
            ConsoleCommand::Reboot => return ConsoleExit::Reboot,
            ConsoleCommand::Admin(cmd) => {
                if let Some(question) = cmd.confirmation() {
                    let _ = write!(output, "{question} [y/N] ");
                    let _ = output.flush();
                    let yes = read_line(&mut input).is_some_and(|a| {
                        matches!(a.trim().to_ascii_lowercase().as_str(), "y" | "yes")
                    });
                    if !yes {
                        let _ = writeln!(output, "not done");
                        continue;
                    }
                }
                let reply = admin.execute_blocking(cmd);
                let _ = write!(output, "{}", reply.text);
                if !reply.text.is_empty() && !reply.text.ends_with('\n') {
                    let _ = writeln!(output);
                }
            }
        }
    }
}

/// One line without its end (CRLF or LF: serial terminals send CR), or None at end of input.
/// Bytes that are not UTF-8 are replaced rather than ending the prompt.
fn read_line(input: &mut impl BufRead) -> Option<String> {
    let mut buf = Vec::new();
    match input.read_until(b'\n', &mut buf) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(
            String::from_utf8_lossy(&buf)
                .trim_end_matches(['\r', '\n'])
                .to_string(),
        ),
    }
}
