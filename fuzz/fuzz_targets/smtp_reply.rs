//! The SMTP/LMTP client's reply parser, on whatever a next hop sends back.
//!
//! Input: one byte of repetitions, two bytes seeding the split points, then the server's bytes.
//! The bytes are repeated (1 time in 2, up to 64 times) so a flood past [`MAX_REPLY`] is reachable
//! from the 1 KiB inputs of the checked-in corpus. Properties:
//! - no panic, whatever the bytes;
//! - fed whole, in pieces of up to 4 KiB (a delivery session's read) or a byte at a time, the
//!   same replies come out in the same order and the run ends the same way (waiting, or the
//!   same error);
//! - memory is bounded by [`MAX_REPLY`] and the piece in hand, not by what the peer sends (the
//!   replies are taken out as they come and only a digest of them kept: a delivery session acts
//!   on each reply and drops it, so the harness does not count a pile of them against the
//!   parser);
//! - every reply written back as lines `ddd-text` / `ddd text` reads as the same reply.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::smtp::client::{MAX_REPLY, ReplyError, ReplyParser, ServerReply};
use postern_fuzz::{Counting, bounded};

#[global_allocator]
static ALLOC: Counting = Counting;

/// A delivery session reads at most this much before asking for the next reply.
const READ: usize = 4096;

/// What one run gives: the replies (or a digest of them), and how it stopped (`None`: waiting
/// for more bytes).
#[derive(Debug, Default, PartialEq)]
struct Run {
    replies: Vec<ServerReply>,
    /// How many replies, and a hash of them in order.
    count: usize,
    digest: u64,
    end: Option<ReplyError>,
}

impl Run {
    fn add(&mut self, r: ServerReply, keep: bool) {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut h = DefaultHasher::new();
        self.digest.hash(&mut h);
        format!("{r:?}").hash(&mut h);
        self.digest = h.finish();
        self.count += 1;
        if keep {
            self.replies.push(r);
        }
    }

    /// The same run without the replies kept, to compare with one that did not keep them.
    fn summary(&self) -> (usize, u64, Option<ReplyError>) {
        (self.count, self.digest, self.end.clone())
    }
}

/// Takes every reply out of `p` into `run`; false once it failed.
fn drain(p: &mut ReplyParser, run: &mut Run, keep: bool) -> bool {
    loop {
        match p.next_reply() {
            Ok(Some(r)) => run.add(r, keep),
            Ok(None) => return true,
            Err(e) => {
                run.end = Some(e);
                return false;
            }
        }
    }
}

fn in_pieces(bytes: &[u8], sizes: impl Iterator<Item = usize>, keep: bool) -> Run {
    let mut p = ReplyParser::new();
    let mut run = Run::default();
    let mut rest = bytes;
    for size in sizes {
        if rest.is_empty() {
            break;
        }
        let (piece, after) = rest.split_at(size.max(1).min(rest.len()));
        rest = after;
        p.feed(piece);
        if !drain(&mut p, &mut run, keep) {
            break;
        }
    }
    run
}

/// Piece sizes from a small xorshift seeded by the input: a mix of 1-byte and larger reads.
fn sizes(seed: u16) -> impl Iterator<Item = usize> {
    let mut x = u32::from(seed) | 0x1_0000;
    std::iter::repeat_with(move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        match x % 4 {
            0 => 1,
            1 => (x >> 8) as usize % 16 + 1,
            _ => (x >> 8) as usize % READ + 1,
        }
    })
}

/// The reply as a server would send it, every line with the reply's code.
fn written(r: &ServerReply) -> Vec<u8> {
    let mut out = Vec::new();
    let last = r.lines.len().saturating_sub(1);
    for (i, line) in r.lines.iter().enumerate() {
        let sep = if i == last { ' ' } else { '-' };
        out.extend_from_slice(format!("{:03}{sep}{line}\r\n", r.reply.code).as_bytes());
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let [reps, s0, s1, body @ ..] = data else {
        return;
    };
    let times = if reps & 0x80 != 0 {
        usize::from(reps & 0x3f) + 1
    } else {
        1
    };
    let bytes = body.repeat(times);

    let whole = in_pieces(&bytes, std::iter::once(bytes.len()), true);
    // Each line is kept twice (as sent, and without its status code) and may grow threefold
    // from invalid UTF-8; a line's bookkeeping is about 64 bytes and lines are at least 4 bytes.
    let bound = 32 * (MAX_REPLY + READ);
    let split = bounded(bound, "reply parser", || {
        in_pieces(&bytes, sizes(u16::from_le_bytes([*s0, *s1])), false)
    });
    assert_eq!(
        whole.summary(),
        split.summary(),
        "split points changed the replies"
    );
    if bytes.len() <= 512 {
        let bytewise = in_pieces(&bytes, std::iter::repeat(1), true);
        assert_eq!(whole, bytewise, "byte at a time");
    }

    for r in &whole.replies {
        assert!(!r.lines.is_empty());
        assert!(r.reply.code <= 999);
        let mut again = ReplyParser::new();
        again.feed(&written(r));
        assert_eq!(
            again.next_reply().ok(),
            Some(Some(r.clone())),
            "written back"
        );
        assert_eq!(again.next_reply().ok(), Some(None));
    }
    if whole.end == Some(ReplyError::TooLong) {
        assert!(
            bytes.len() > MAX_REPLY,
            "too long from {} bytes",
            bytes.len()
        );
    }
});
