//! A queued message's body as delivery reads it: a piece at a time from the spool, so that a
//! delivery holds one piece in RAM whatever the message size (a 5 MB relay must not cost 5 MB
//! per session). The queue defines [`BodySource`]; the runner serves it from its store, and tests
//! from bytes in RAM ([`BodyBytes`]).

use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// Most bytes delivery asks for at once: a few spool chunks, one socket write.
pub const BODY_PIECE: usize = 64 * 1024;

/// A piece being read.
pub type BodyRead<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>, BodyError>> + Send + 'a>>;

/// Random access to one message's body as stored (CRLF lines, not dot-stuffed).
pub trait BodySource: Sync {
    /// Body size in bytes, as stored (for SIZE= and the server's size limit).
    fn size(&self) -> u64;

    /// At most `max` bytes from byte `offset` on; at least one unless `offset` is at the end.
    /// A piece is only handed out once it has passed the store's integrity check.
    fn read_at(&self, offset: u64, max: usize) -> BodyRead<'_>;
}

/// Why a body could not be read (to the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The store refused the piece (damaged on flash, message gone, spool stopped), in its words:
    /// the store's error type is its own, the queue only shows it.
    Unreadable(String),
    /// The store had no bytes where the message's size says more follow.
    Short { offset: u64, size: u64 },
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Unreadable(why) => f.write_str(why),
            BodyError::Short { offset, size } => {
                write!(f, "message body ends at byte {offset} of {size}")
            }
        }
    }
}

impl std::error::Error for BodyError {}

/// Reads a body from its start to its end, one piece at a time.
pub struct BodyReader<'a> {
    body: &'a dyn BodySource,
    offset: u64,
    piece: usize,
}

impl<'a> BodyReader<'a> {
    /// Pieces of at most `piece` bytes (at least one).
    pub fn new(body: &'a dyn BodySource, piece: usize) -> BodyReader<'a> {
        BodyReader {
            body,
            offset: 0,
            piece: piece.max(1),
        }
    }

    /// Whether the whole body has been read: the next piece would be `None`.
    pub fn is_done(&self) -> bool {
        self.offset >= self.body.size()
    }

    /// The next piece, or `None` once the whole body has been read.
    pub async fn next_piece(&mut self) -> Result<Option<Vec<u8>>, BodyError> {
        let size = self.body.size();
        if self.offset >= size {
            return Ok(None);
        }
        let mut piece = self.body.read_at(self.offset, self.piece).await?;
        if piece.is_empty() {
            return Err(BodyError::Short {
                offset: self.offset,
                size,
            });
        }
        // A store that hands out more than was asked must not run past the stated size.
        piece.truncate(self.piece.min((size - self.offset) as usize));
        self.offset += piece.len() as u64;
        Ok(Some(piece))
    }
}

/// A body already in RAM: a DSN made on the spot, tests.
#[derive(Debug, Clone, Copy)]
pub struct BodyBytes<'a>(pub &'a [u8]);

impl BodySource for BodyBytes<'_> {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&self, offset: u64, max: usize) -> BodyRead<'_> {
        let from = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.0.len());
        let to = from.saturating_add(max).min(self.0.len());
        let piece = self.0.get(from..to).unwrap_or_default().to_vec();
        Box::pin(std::future::ready(Ok(piece)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads like a spool whose chunk at byte `fail_at` fails its check.
    struct DamagedAt {
        body: Vec<u8>,
        fail_at: usize,
    }

    impl BodySource for DamagedAt {
        fn size(&self) -> u64 {
            self.body.len() as u64
        }

        fn read_at(&self, offset: u64, max: usize) -> BodyRead<'_> {
            if offset >= self.fail_at as u64 {
                let e = BodyError::Unreadable("stored body damaged".into());
                return Box::pin(std::future::ready(Err(e)));
            }
            let to = self.fail_at.min(offset as usize + max);
            let piece = self
                .body
                .get(offset as usize..to)
                .unwrap_or_default()
                .to_vec();
            Box::pin(std::future::ready(Ok(piece)))
        }
    }

    async fn read_all(body: &dyn BodySource, piece: usize) -> Result<Vec<Vec<u8>>, BodyError> {
        let mut r = BodyReader::new(body, piece);
        let mut out = Vec::new();
        while let Some(p) = r.next_piece().await? {
            out.push(p);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn a_body_is_read_in_pieces_of_at_most_the_asked_size() {
        let body: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let pieces = read_all(&BodyBytes(&body), 300).await.unwrap();
        let lens: Vec<usize> = pieces.iter().map(Vec::len).collect();
        assert_eq!(lens, [300, 300, 300, 100]);
        assert_eq!(pieces.concat(), body);
        assert!(read_all(&BodyBytes(b""), 300).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_reader_knows_when_the_last_piece_was_handed_out() {
        let bytes = vec![b'x'; 100];
        let body = BodyBytes(&bytes);
        let mut r = BodyReader::new(&body, 64);
        assert!(!r.is_done());
        assert_eq!(r.next_piece().await.unwrap().map(|p| p.len()), Some(64));
        assert!(!r.is_done(), "36 bytes are left");
        assert_eq!(r.next_piece().await.unwrap().map(|p| p.len()), Some(36));
        assert!(r.is_done(), "delivery sends the final dot with this piece");
        assert_eq!(r.next_piece().await.unwrap(), None);
        assert!(BodyReader::new(&BodyBytes(b""), 64).is_done());
    }

    #[tokio::test]
    async fn a_store_that_runs_dry_before_the_size_is_an_error() {
        #[derive(Debug)]
        struct Lying;
        impl BodySource for Lying {
            fn size(&self) -> u64 {
                10
            }
            fn read_at(&self, offset: u64, _: usize) -> BodyRead<'_> {
                let piece = if offset == 0 {
                    b"abcd".to_vec()
                } else {
                    vec![]
                };
                Box::pin(std::future::ready(Ok(piece)))
            }
        }
        assert_eq!(
            read_all(&Lying, 64).await,
            Err(BodyError::Short {
                offset: 4,
                size: 10
            })
        );
    }

    #[tokio::test]
    async fn a_damaged_piece_stops_the_reader() {
        let body = DamagedAt {
            body: vec![b'x'; 100],
            fail_at: 40,
        };
        let mut r = BodyReader::new(&body, 64);
        assert_eq!(r.next_piece().await.unwrap().map(|p| p.len()), Some(40));
        assert!(matches!(
            r.next_piece().await,
            Err(BodyError::Unreadable(_))
        ));
    }
}
