//! The content stage: checks that read the message itself, run as its body streams to the spool
//! and decided at the end of data, before the 250, so a refused message is refused to the client
//! (no backscatter) and never queued.
//!
//! [`Scan`] is one message's pass: [`Scan::feed`] sees every body chunk as it is written to flash
//! (nothing is held back but what a check needs), [`Scan::finish`] gives the verdict. Today it runs
//! one check:
//!
//! - [`hops`]: more `Received:` headers than `hopcount_limit` is a mail loop, `554 5.4.6`, as
//!   Postfix's cleanup refuses it; two systems that catch-all to each other end in a bounce at the
//!   sender, not a storm.
//!
//! Attachment blocking, the virus scan and the spam score (same pass, same verdict) join it here.

pub mod hops;

use crate::config::MtaConfig;
use crate::mail::Reply;

use hops::HopCount;

/// Why the content stage refuses a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// More `Received:` headers than `hopcount_limit`.
    TooManyHops { count: usize, limit: u32 },
}

impl Rejection {
    /// The answer to the end of data, in Postfix's words.
    pub fn reply(&self) -> Reply {
        match self {
            Rejection::TooManyHops { .. } => Reply::new(
                554,
                [5, 4, 6],
                "Error: too many hops (mail forwarding loop)",
            ),
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::TooManyHops { count, limit } => write!(
                f,
                "5.4.6 mail forwarding loop: {count} Received headers, hopcount_limit is {limit}"
            ),
        }
    }
}

impl std::error::Error for Rejection {}

/// The content checks of one message, fed its body as it arrives.
#[derive(Debug)]
pub struct Scan {
    hops: HopCount,
}

impl Scan {
    /// The checks as the settings are when the message begins.
    pub fn new(config: &MtaConfig) -> Scan {
        Scan {
            hops: HopCount::new(config.hopcount_limit),
        }
    }

    /// Body bytes, in order, exactly as they go to the spool.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.hops.feed(chunk);
    }

    /// The verdict once the whole body was fed.
    pub fn finish(&self) -> Result<(), Rejection> {
        self.hops.verdict()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_looping_message_is_refused_with_554_5_4_6() {
        let config = MtaConfig::default();
        let mut scan = Scan::new(&config);
        for _ in 0..=config.hopcount_limit {
            scan.feed(b"Received: from a by b\r\n");
        }
        scan.feed(b"\r\nbody\r\n");
        let refused = scan.finish().unwrap_err();
        assert_eq!(
            refused.reply().to_string(),
            "554 5.4.6 Error: too many hops (mail forwarding loop)"
        );
        let mut fine = Scan::new(&config);
        fine.feed(b"Received: from a by b\r\n\r\nReceived: in the body\r\n");
        assert_eq!(fine.finish(), Ok(()));
    }
}
