//! The message as the scanners read it at the end of data: back from the spool a piece at a
//! time, before the commit, so a session holds one piece in RAM whatever the message size.
//!
//! The body is on flash by then (chunk records, not yet committed); its header section is still
//! held in RAM for the content stage's edits ([`super::headers`]), so the message is that head
//! followed by the body read back. Tests and in-RAM messages use [`MessageBytes`].

use std::future::Future;
use std::pin::Pin;

use crate::spool::{Incoming, SpoolError};

/// Most bytes read back at once: a few spool chunks, one scanner write.
pub const PIECE: usize = 64 * 1024;

/// A piece being read.
pub type PieceRead<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>, SpoolError>> + Send + 'a>>;

/// Random access to the whole message (headers and body, as received).
pub trait StoredMessage: Sync {
    fn size(&self) -> u64;

    /// At most `max` bytes from byte `offset` on; at least one unless `offset` is at the end.
    fn read_at(&self, offset: u64, max: usize) -> PieceRead<'_>;
}

/// A message in RAM.
#[derive(Debug, Clone, Copy)]
pub struct MessageBytes<'a>(pub &'a [u8]);

impl StoredMessage for MessageBytes<'_> {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&self, offset: u64, max: usize) -> PieceRead<'_> {
        Box::pin(std::future::ready(Ok(piece_of(self.0, offset, max))))
    }
}

fn piece_of(bytes: &[u8], offset: u64, max: usize) -> Vec<u8> {
    let from = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let to = from.saturating_add(max).min(bytes.len());
    bytes[from..to].to_vec()
}

/// A message being received: its held header section, then the body written to the spool
/// (every byte of it written out: [`Incoming::write_out`]).
pub struct Received<'a> {
    pub head: &'a [u8],
    pub body: &'a Incoming,
    /// Body bytes on the spool.
    pub body_size: u64,
}

impl StoredMessage for Received<'_> {
    fn size(&self) -> u64 {
        self.head.len() as u64 + self.body_size
    }

    fn read_at(&self, offset: u64, max: usize) -> PieceRead<'_> {
        let head = self.head.len() as u64;
        if offset < head {
            let piece = piece_of(self.head, offset, max);
            return Box::pin(std::future::ready(Ok(piece)));
        }
        Box::pin(self.body.read_part(offset - head, max))
    }
}

/// A byte range of a stored message, read as a message of its own (an attached message).
pub struct Slice<'a> {
    pub message: &'a dyn StoredMessage,
    pub start: u64,
    pub end: u64,
}

impl StoredMessage for Slice<'_> {
    fn size(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    fn read_at(&self, offset: u64, max: usize) -> PieceRead<'_> {
        let left = self.size().saturating_sub(offset);
        let max = max.min(usize::try_from(left).unwrap_or(usize::MAX));
        if max == 0 {
            return Box::pin(std::future::ready(Ok(Vec::new())));
        }
        self.message.read_at(self.start + offset, max)
    }
}

/// Reads a message from its start to its end, [`PIECE`] bytes at a time.
pub struct Pieces<'a> {
    message: &'a dyn StoredMessage,
    offset: u64,
}

impl<'a> Pieces<'a> {
    pub fn new(message: &'a dyn StoredMessage) -> Pieces<'a> {
        Pieces { message, offset: 0 }
    }

    /// From byte `offset` on.
    pub fn from_offset(message: &'a dyn StoredMessage, offset: u64) -> Pieces<'a> {
        Pieces { message, offset }
    }

    /// The next piece, or `None` at the end. A store that runs dry before the size it stated
    /// is damaged.
    pub async fn next_piece(&mut self) -> Result<Option<Vec<u8>>, SpoolError> {
        let size = self.message.size();
        if self.offset >= size {
            return Ok(None);
        }
        let max = PIECE.min((size - self.offset) as usize);
        let mut piece = self.message.read_at(self.offset, max).await?;
        if piece.is_empty() {
            return Err(SpoolError::Failed);
        }
        piece.truncate(max);
        self.offset += piece.len() as u64;
        Ok(Some(piece))
    }

    /// Every remaining piece, in order, into `f`.
    pub async fn each(mut self, mut f: impl FnMut(&[u8])) -> Result<(), SpoolError> {
        while let Some(piece) = self.next_piece().await? {
            f(&piece);
        }
        Ok(())
    }
}

/// How much of the message is read at a time while looking for the end of its header section.
const HEAD_STEP: usize = 4096;

/// The message's header section, through its empty line (all of a message that has none), read
/// from its start; `None` when it is longer than `limit`. The body starts at its length.
pub async fn read_head(
    message: &dyn StoredMessage,
    limit: usize,
) -> Result<Option<Vec<u8>>, SpoolError> {
    let size = message.size();
    let mut head: Vec<u8> = Vec::new();
    loop {
        let offset = head.len() as u64;
        if offset >= size {
            return Ok(Some(head));
        }
        let max = HEAD_STEP.min((size - offset) as usize);
        let piece = message.read_at(offset, max).await?;
        if piece.is_empty() {
            return Err(SpoolError::Failed);
        }
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&piece[..piece.len().min(max)]);
        if let Some(p) = head[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            head.truncate(from + p + 4);
            return Ok((head.len() <= limit).then_some(head));
        }
        if head.len() > limit {
            return Ok(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_of(message: &[u8], limit: usize) -> Option<Vec<u8>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(read_head(&MessageBytes(message), limit))
            .unwrap()
    }

    #[test]
    fn the_head_ends_at_its_empty_line_wherever_the_reads_fall() {
        let mut m = b"Subject: x\r\n".repeat(400);
        m.extend_from_slice(b"\r\nbody\r\n");
        let head = head_of(&m, 64 * 1024).unwrap();
        assert_eq!(head.len(), 400 * 12 + 2);
        assert!(head.ends_with(b"x\r\n\r\n"));
        // Longer than the limit: not held.
        assert_eq!(head_of(&m, 4000), None);
        // No empty line: the whole message is its head.
        assert_eq!(head_of(b"Subject: x\r\n", 100).unwrap(), b"Subject: x\r\n");
        assert_eq!(head_of(b"", 100).unwrap(), b"");
    }
}
