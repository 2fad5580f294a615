//! The console's input, read by one thread and handed out line by line, so that the same serial
//! line serves first the boot-time "services are not running" prompt and then the admin prompt.

use std::io::{self, BufRead, Read};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

/// Lines from the console (each with its line end), until the console goes away.
pub struct ConsoleInput {
    rx: Receiver<Vec<u8>>,
    line: Vec<u8>,
    pos: usize,
}

impl ConsoleInput {
    /// Starts the thread that reads `source` line by line.
    pub fn spawn(mut source: impl BufRead + Send + 'static) -> io::Result<ConsoleInput> {
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name("console-in".into())
            .spawn(move || {
                loop {
                    let mut line = Vec::new();
                    match source.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if tx.send(line).is_err() {
                                break;
                            }
                        }
                    }
                }
            })?;
        Ok(ConsoleInput {
            rx,
            line: Vec::new(),
            pos: 0,
        })
    }

    /// The next whole line if one arrives within `wait`, without its line end. `Err` once the
    /// console has gone away.
    pub fn next_line_within(&mut self, wait: Duration) -> Result<Option<String>, ()> {
        if self.pos < self.line.len() {
            let rest = String::from_utf8_lossy(&self.line[self.pos..])
                .trim_end_matches(['\r', '\n'])
                .to_string();
            self.pos = self.line.len();
            return Ok(Some(rest));
        }
        let line = match self.rx.recv_timeout(wait) {
            Ok(l) => l,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => return Ok(None),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Err(()),
        };
        Ok(Some(
            String::from_utf8_lossy(&line)
                .trim_end_matches(['\r', '\n'])
                .to_string(),
        ))
    }
}

impl Read for ConsoleInput {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ConsoleInput {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos >= self.line.len() {
            match self.rx.recv() {
                Ok(line) => {
                    self.line = line;
                    self.pos = 0;
                }
                Err(_) => return Ok(&[]),
            }
        }
        Ok(self.line.get(self.pos..).unwrap_or(&[]))
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.line.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_out_whole_then_as_a_stream() {
        let mut input =
            ConsoleInput::spawn(io::Cursor::new(b"reboot\r\nstatus\nquit\n".to_vec())).unwrap();
        assert_eq!(
            input.next_line_within(Duration::from_secs(5)),
            Ok(Some("reboot".into()))
        );
        let mut rest = String::new();
        input.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "status\nquit\n");
        assert_eq!(input.next_line_within(Duration::from_millis(10)), Err(()));
    }
}
