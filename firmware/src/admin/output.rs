//! Where a long answer goes as it is made: in parts to its reader (the control socket, the
//! serial console), so a listing of a million queued messages is never one string in RAM; or
//! whole into the reply (every other caller of `Admin::execute`).

use std::fmt;

use tokio::sync::mpsc;

/// Text sent once this much has gathered: a few hundred lines a part.
const PART: usize = 64 * 1024;

pub struct Output {
    text: String,
    parts: Option<mpsc::Sender<String>>,
}

impl Output {
    /// Everything kept for the reply.
    pub fn whole() -> Output {
        Output {
            text: String::new(),
            parts: None,
        }
    }

    /// Sent to `parts` as it gathers; the reply carries only the rest.
    pub fn parts(parts: mpsc::Sender<String>) -> Output {
        Output {
            text: String::new(),
            parts: Some(parts),
        }
    }

    pub fn push_str(&mut self, s: &str) {
        self.text.push_str(s);
    }

    /// Sends what has gathered, once it is a part's worth; false when the reader went away.
    pub async fn flush(&mut self) -> bool {
        match &self.parts {
            Some(tx) if self.text.len() >= PART => {
                tx.send(std::mem::take(&mut self.text)).await.is_ok()
            }
            _ => true,
        }
    }

    /// What was written and not sent.
    pub fn rest(&mut self) -> String {
        std::mem::take(&mut self.text)
    }
}

impl fmt::Write for Output {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.text.push_str(s);
        Ok(())
    }
}
