//! Reading a committed message's body back from flash, whole or a piece at a time.
//!
//! Delivery reads a body in pieces so that a session holds one piece in RAM whatever the message
//! size. Every chunk record a piece touches is read whole and its CRC checked before any of its
//! bytes are handed out, so damage is found in the piece that holds it: before the final dot of a
//! transaction that streams the body, never after.

use hal::flash::Flash;

use crate::mail::QueueId;

use super::index::Loc;
use super::record::Kind;
use super::{Spool, SpoolError};

/// Bytes of message a chunk record at `loc` holds (its body is a 4-byte index, then the bytes).
fn chunk_bytes(loc: Loc) -> u64 {
    u64::from(loc.len.saturating_sub(4))
}

impl<F: Flash> Spool<F> {
    /// Reads a committed message's body back from flash, checking every chunk's CRC.
    pub fn read_body(&mut self, qid: QueueId) -> Result<Vec<u8>, SpoolError> {
        self.read_body_part(qid, 0, usize::MAX)
    }

    /// Up to `max` bytes of a committed message's body from byte `offset` on (fewer only at the
    /// end of the body; none past it). Each chunk record read is CRC checked: `Damaged` if one
    /// fails. The chunks are looked up afresh on every call, so compaction may move them between
    /// the pieces of one delivery.
    pub fn read_body_part(
        &mut self,
        qid: QueueId,
        offset: u64,
        max: usize,
    ) -> Result<Vec<u8>, SpoolError> {
        self.read_part(qid, true, offset, max)
    }

    /// [`Spool::read_body_part`] of a message still being received: the content checks read
    /// back what is on flash before the commit (the 250 waits for their verdict). Its held
    /// header section, not written yet, is not part of it.
    pub fn read_incoming_part(
        &mut self,
        qid: QueueId,
        offset: u64,
        max: usize,
    ) -> Result<Vec<u8>, SpoolError> {
        self.read_part(qid, false, offset, max)
    }

    fn read_part(
        &mut self,
        qid: QueueId,
        committed: bool,
        offset: u64,
        max: usize,
    ) -> Result<Vec<u8>, SpoolError> {
        let e = self
            .index
            .get(&qid)
            .filter(|e| e.committed() == committed)
            .ok_or(SpoolError::NoSuchMessage(qid))?;
        let want = (max as u64).min(e.size().saturating_sub(offset));
        // The chunks that hold [offset, offset + want), with where the first one starts.
        let mut start = 0u64;
        let mut chunks: Vec<(u64, Loc)> = Vec::new();
        for loc in e.chunks() {
            let len = chunk_bytes(loc);
            if start + len > offset && start < offset + want {
                chunks.push((start, loc));
            }
            start += len;
        }
        let mut out = Vec::with_capacity(want as usize);
        let mut buf = Vec::new();
        for (at, loc) in chunks {
            self.read_record(qid, Kind::Chunk, loc, &mut buf)?;
            let bytes = buf.get(4..).ok_or(SpoolError::Damaged(qid))?;
            let from = offset.saturating_sub(at) as usize;
            let to = (offset + want - at).min(bytes.len() as u64) as usize;
            out.extend_from_slice(bytes.get(from..to).ok_or(SpoolError::Damaged(qid))?);
        }
        Ok(out)
    }
}
