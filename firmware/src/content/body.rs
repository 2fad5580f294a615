//! The copy of a message the content checks read: RAM, bounded by `posternContentScanLimit`.
//!
//! The body streams to flash as it arrives; the one check that needs the whole message (spam
//! training) reads this copy at the end of data. No copy is made when it is not on. Past the limit the copy is dropped at once, so a big message costs no more RAM than
//! the limit.

/// A bounded copy of one message.
#[derive(Debug)]
pub struct BodyCopy {
    limit: u64,
    bytes: Vec<u8>,
    /// Total bytes seen, kept after the copy is dropped.
    size: u64,
}

impl BodyCopy {
    pub fn new(limit: u64) -> BodyCopy {
        BodyCopy {
            limit,
            bytes: Vec::new(),
            size: 0,
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            self.bytes = Vec::new();
        } else {
            self.bytes.extend_from_slice(chunk);
        }
    }

    /// Counts bytes no check needs kept.
    pub fn count(&mut self, chunk: &[u8]) {
        self.size += chunk.len() as u64;
    }

    /// The whole message, or `None` when it was bigger than the limit.
    pub fn whole(&self) -> Option<&[u8]> {
        (self.size <= self.limit).then_some(&self.bytes[..])
    }

    /// The whole message, taken out of the copy (`None` when it was bigger than the limit).
    pub fn take(&mut self) -> Option<Vec<u8>> {
        (self.size <= self.limit).then(|| std::mem::take(&mut self.bytes))
    }

    pub fn size(&self) -> u64 {
        self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_the_limit_the_copy_is_dropped() {
        let mut c = BodyCopy::new(10);
        c.feed(b"12345");
        c.feed(b"67890");
        assert_eq!(c.whole(), Some(&b"1234567890"[..]));
        c.feed(b"x");
        assert_eq!(c.whole(), None);
        assert_eq!(c.bytes.capacity(), 0);
        c.feed(b"y");
        assert_eq!((c.whole(), c.size()), (None, 12));
    }
}
