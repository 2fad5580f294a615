//! An expect-style driver for the guest's serial line: send a line, wait for a pattern.
//!
//! The guest's tty ends lines with CRLF and echoes what we type; [`Console`] drops every `\r`, so
//! patterns and transcripts use plain `\n`.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Why a wait on the console failed. Each carries the transcript so far, for the test report.
#[derive(Debug)]
pub enum ConsoleError {
    /// The pattern did not appear in time.
    Timeout {
        pattern: String,
        waited: Duration,
        transcript: String,
    },
    /// The guest (QEMU) closed the serial line.
    Closed {
        pattern: String,
        transcript: String,
    },
    Io(io::Error),
}

impl fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConsoleError::Timeout {
                pattern,
                waited,
                transcript,
            } => write!(
                f,
                "{pattern:?} did not appear on the console within {:.1} s; console so far:\n{transcript}",
                waited.as_secs_f64()
            ),
            ConsoleError::Closed {
                pattern,
                transcript,
            } => {
                write!(
                    f,
                    "console closed before {pattern:?} appeared; console so far:\n{transcript}"
                )
            }
            ConsoleError::Io(e) => write!(f, "console: {e}"),
        }
    }
}

impl std::error::Error for ConsoleError {}

/// The serial console of a running guest.
pub struct Console {
    stream: UnixStream,
    /// Everything received, `\r` removed.
    transcript: String,
    /// How much of the transcript earlier waits have consumed.
    consumed: usize,
    /// Bytes of an incomplete UTF-8 sequence carried to the next read.
    pending: Vec<u8>,
    closed: bool,
}

impl Console {
    pub fn new(stream: UnixStream) -> Console {
        Console {
            stream,
            transcript: String::new(),
            consumed: 0,
            pending: Vec::new(),
            closed: false,
        }
    }

    /// Types a line (ending it with CR, as a terminal's Enter key does).
    pub fn send_line(&mut self, line: &str) -> io::Result<()> {
        self.stream.write_all(line.as_bytes())?;
        self.stream.write_all(b"\r")?;
        self.stream.flush()
    }

    /// Waits until `pattern` appears after what earlier waits consumed; returns the text up to and
    /// including it, and consumes that much.
    pub fn wait_for(&mut self, pattern: &str, timeout: Duration) -> Result<String, ConsoleError> {
        let start = Instant::now();
        loop {
            if let Some(at) = self
                .transcript
                .get(self.consumed..)
                .and_then(|t| t.find(pattern))
            {
                let end = self.consumed + at + pattern.len();
                let text = self
                    .transcript
                    .get(self.consumed..end)
                    .unwrap_or_default()
                    .to_string();
                self.consumed = end;
                return Ok(text);
            }
            if self.closed {
                return Err(ConsoleError::Closed {
                    pattern: pattern.into(),
                    transcript: self.transcript.clone(),
                });
            }
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(ConsoleError::Timeout {
                    pattern: pattern.into(),
                    waited: timeout,
                    transcript: self.transcript.clone(),
                });
            }
            self.read_some(left).map_err(ConsoleError::Io)?;
        }
    }

    /// Reads whatever arrives within `wait` (for draining output after the guest stopped).
    pub fn read_for(&mut self, wait: Duration) -> io::Result<()> {
        let start = Instant::now();
        while !self.closed {
            let left = wait.saturating_sub(start.elapsed());
            if left.is_zero() {
                break;
            }
            self.read_some(left)?;
        }
        Ok(())
    }

    /// Everything the guest printed so far, `\r` removed.
    pub fn transcript(&self) -> &str {
        &self.transcript
    }

    fn read_some(&mut self, wait: Duration) -> io::Result<()> {
        self.stream
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        let mut buf = [0u8; 4096];
        match self.stream.read(&mut buf) {
            Ok(0) => self.closed = true,
            Ok(n) => self.push(buf.get(..n).unwrap_or_default()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => self.closed = true,
            Err(e) => return Err(e),
        }
        Ok(())
    }

    fn push(&mut self, bytes: &[u8]) {
        self.pending
            .extend(bytes.iter().copied().filter(|&b| b != b'\r'));
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(s) => s.len(),
            // Keep an incomplete sequence at the end for the next read; replace real garbage.
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.pending.len(),
        };
        let chunk: Vec<u8> = self.pending.drain(..valid).collect();
        self.transcript.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_strip_cr_and_consume_in_order() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut console = Console::new(a);
        b.write_all(b"boot\r\npostern> status\r\nhostname: postern\r\npostern> ")
            .unwrap();
        let first = console
            .wait_for("postern> ", Duration::from_secs(5))
            .unwrap();
        assert_eq!(first, "boot\npostern> ");
        let second = console
            .wait_for("postern> ", Duration::from_secs(5))
            .unwrap();
        assert_eq!(second, "status\nhostname: postern\npostern> ");
        console.send_line("poweroff").unwrap();
        let mut typed = [0u8; 9];
        b.read_exact(&mut typed).unwrap();
        assert_eq!(&typed, b"poweroff\r");
    }

    #[test]
    fn timeouts_and_closed_lines_report_the_transcript() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut console = Console::new(a);
        b.write_all("caf\u{e9}".as_bytes().get(..4).unwrap())
            .unwrap();
        match console.wait_for("never", Duration::from_millis(50)) {
            Err(ConsoleError::Timeout { transcript, .. }) => assert_eq!(transcript, "caf"),
            other => panic!("{other:?}"),
        }
        b.write_all(&[0xa9]).unwrap();
        drop(b);
        match console.wait_for("never", Duration::from_secs(5)) {
            Err(ConsoleError::Closed { transcript, .. }) => assert_eq!(transcript, "caf\u{e9}"),
            other => panic!("{other:?}"),
        }
    }
}
