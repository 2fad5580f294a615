//! Reading server replies (RFC 5321 §4.2): bytes in, whole replies out. A reply is one or more
//! lines `ddd-text` ending with a line `ddd text` (or `ddd` alone); each line may start with an
//! enhanced status code (RFC 2034), which is taken off the text. Lines end in LF, with or
//! without CR, as the servers we meet send them.
//!
//! Feeding the same bytes in any split gives the same replies: the parser holds the unfinished
//! reply itself, so a reply may arrive one byte at a time.

use std::fmt;

use crate::mail::{EnhancedStatus, Reply};

/// Longest reply accepted (all its lines); a peer sending more is broken or hostile.
pub const MAX_REPLY: usize = 64 * 1024;

/// One reply as the server sent it: the parsed [`Reply`] (continuation lines joined by a space)
/// and each line's text after `ddd-` (what EHLO's keywords are read from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReply {
    pub reply: Reply,
    pub lines: Vec<String>,
}

/// Why the bytes are not a reply. After an error the connection is out of step: drop it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// More than [`MAX_REPLY`] bytes without the end of the reply.
    TooLong,
    /// A line that does not start with a three-digit code and a separator; the line as sent.
    Malformed(String),
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::TooLong => write!(f, "reply longer than {MAX_REPLY} bytes"),
            ReplyError::Malformed(line) => write!(f, "malformed reply: {line}"),
        }
    }
}

impl std::error::Error for ReplyError {}

/// Collects bytes from the server and hands out complete replies, in order.
#[derive(Debug, Default, Clone)]
pub struct ReplyParser {
    /// Bytes received and not yet handed out as a reply.
    buf: Vec<u8>,
    /// Where the next unread line starts in `buf` (earlier lines belong to the reply in hand).
    scanned: usize,
    /// How far `buf` is known to hold no line end past `scanned`: a line trickling in is searched
    /// once, not again with every read (quadratic in a hostile peer's 64 KiB).
    searched: usize,
    /// The lines of the unfinished reply.
    lines: Vec<Line>,
}

#[derive(Debug, Clone)]
struct Line {
    code: u16,
    esc: Option<EnhancedStatus>,
    /// The text after the separator, as sent (EHLO keywords).
    raw: String,
    /// Where in `raw` the text after its enhanced status code starts: one String per line, not
    /// three.
    text_at: usize,
}

impl Line {
    /// The text without its enhanced status code.
    fn text(&self) -> &str {
        self.raw.get(self.text_at..).unwrap_or_default()
    }
}

impl ReplyParser {
    pub fn new() -> ReplyParser {
        ReplyParser::default()
    }

    /// Take bytes read from the server.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Where bytes read from the server go without a copy: room for `at_least` more is made,
    /// and whatever is appended is fed (tokio's `read_buf` appends, and zeroes nothing).
    pub fn inbox(&mut self, at_least: usize) -> &mut Vec<u8> {
        self.buf.reserve(at_least);
        &mut self.buf
    }

    /// The next complete reply, `None` when more bytes are needed.
    pub fn next_reply(&mut self) -> Result<Option<ServerReply>, ReplyError> {
        loop {
            let rest = self.buf.get(self.scanned..).unwrap_or_default();
            let from = self.searched.saturating_sub(self.scanned);
            let found = rest
                .get(from..)
                .unwrap_or_default()
                .iter()
                .position(|&b| b == b'\n');
            let Some(nl) = found.map(|i| from + i) else {
                self.searched = self.buf.len();
                return if self.buf.len() > MAX_REPLY {
                    Err(ReplyError::TooLong)
                } else {
                    Ok(None)
                };
            };
            let end = self.scanned + nl + 1;
            if end > MAX_REPLY {
                return Err(ReplyError::TooLong);
            }
            let raw = rest.get(..nl).unwrap_or_default();
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            let (line, last) = parse_line(raw)?;
            self.lines.push(line);
            self.scanned = end;
            if last {
                self.buf.drain(..end);
                self.scanned = 0;
                self.searched = 0;
                return Ok(Some(self.take_reply()));
            }
        }
    }

    /// Forget everything unread: after STARTTLS nothing said in clear may count (RFC 3207 §4.2).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.scanned = 0;
        self.searched = 0;
        self.lines.clear();
    }

    fn take_reply(&mut self) -> ServerReply {
        let code = self.lines.first().map_or(0, |l| l.code);
        // RFC 2034 repeats the code on every line; the last one given stands.
        let esc = self.lines.iter().rev().find_map(|l| l.esc);
        // Sized once: grown piece by piece, each reply's text was a reallocation.
        let room = self.lines.iter().map(|l| l.text().len() + 1).sum();
        let mut text = String::with_capacity(room);
        for t in self.lines.iter().map(|l| l.text().trim()) {
            if t.is_empty() {
                continue;
            }
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(t);
        }
        ServerReply {
            // Straight from the peer: the text stays as sent; it is only ever logged.
            reply: Reply { code, esc, text },
            // Drained, not taken: the parser keeps its room for the next reply's lines.
            lines: self.lines.drain(..).map(|l| l.raw).collect(),
        }
    }
}

/// One line without its line end: the line and whether it is the reply's last.
fn parse_line(raw: &[u8]) -> Result<(Line, bool), ReplyError> {
    let malformed = || ReplyError::Malformed(String::from_utf8_lossy(raw).trim_end().to_string());
    let (code, sep, text) = match raw {
        [a, b, c, rest @ ..] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
            let code = [a, b, c]
                .iter()
                .fold(0u16, |n, d| n * 10 + u16::from(**d - b'0'));
            match rest {
                [] => (code, None, &[][..]),
                [sep @ (b' ' | b'-'), text @ ..] => (code, Some(*sep), text),
                _ => return Err(malformed()),
            }
        }
        _ => return Err(malformed()),
    };
    let raw = String::from_utf8_lossy(text).into_owned();
    let (esc, text) = split_status(&raw);
    // What split_status leaves is always the end of the line.
    let text_at = raw.len().saturating_sub(text.len());
    let line = Line {
        code,
        esc,
        raw,
        text_at,
    };
    Ok((line, sep != Some(b'-')))
}

/// An enhanced status code at the start of the text, when there is a valid one followed by a
/// space or the end of the line; otherwise the text is left whole.
fn split_status(text: &str) -> (Option<EnhancedStatus>, &str) {
    let (word, rest) = text.split_once(' ').unwrap_or((text, ""));
    match word.parse::<EnhancedStatus>() {
        Ok(esc) => (Some(esc), rest),
        Err(_) => (None, text),
    }
}

/// Whether a reply lets the conversation go on (2xx, or 3xx such as 354).
pub fn accepts(reply: &Reply) -> bool {
    (200..400).contains(&reply.code)
}

/// The enhanced status code a reply stands for: its own when its class matches the reply
/// code's, else one made from the reply class (`5.0.0`), as Postfix does.
pub fn status_of(reply: &Reply) -> EnhancedStatus {
    let class = u8::try_from(reply.code / 100).unwrap_or(5);
    match reply.esc {
        Some(esc) if esc.class() == class => esc,
        _ => EnhancedStatus::of(class, 0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(bytes: &[u8]) -> Result<Vec<ServerReply>, ReplyError> {
        let mut p = ReplyParser::new();
        p.feed(bytes);
        let mut out = Vec::new();
        while let Some(r) = p.next_reply()? {
            out.push(r);
        }
        Ok(out)
    }

    fn one(bytes: &[u8]) -> Reply {
        let mut r = all(bytes).unwrap();
        assert_eq!(r.len(), 1, "{r:?}");
        r.remove(0).reply
    }

    #[test]
    fn multiline_reply_is_one_reply_and_the_next_waits() {
        let mut p = ReplyParser::new();
        p.feed(b"250-mx.example.com\r\n250-PIPELINING\r\n250 SIZE 1000\r\n354 next");
        let r = p.next_reply().unwrap().unwrap();
        assert_eq!(r.reply.code, 250);
        assert_eq!(r.lines, ["mx.example.com", "PIPELINING", "SIZE 1000"]);
        assert_eq!(p.next_reply().unwrap(), None);
        p.feed(b"\r\n");
        assert_eq!(p.next_reply().unwrap().unwrap().reply.text, "next");
    }

    #[test]
    fn enhanced_codes_are_typed_and_text_is_joined() {
        let r = one(b"452 4.2.2 <bob@example.com> Mailbox is full\r\n");
        assert_eq!(r.code, 452);
        assert_eq!(r.esc, Some(EnhancedStatus::of(4, 2, 2)));
        assert_eq!(status_of(&r).to_string(), "4.2.2");
        assert_eq!(r.to_string(), "452 4.2.2 <bob@example.com> Mailbox is full");
        let r = one(b"550 no such user\r\n");
        assert_eq!(status_of(&r).to_string(), "5.0.0");
        assert_eq!(r.to_string(), "550 no such user");
        let r = one(b"250-2.0.0 first\r\n250 2.0.0 second\r\n");
        assert_eq!(r.text, "first second");
        // A code of the wrong class is kept but not believed.
        let r = one(b"550 2.1.1 odd\r\n");
        assert_eq!(status_of(&r).to_string(), "5.0.0");
        // Not a valid status code: it stays text.
        let r = one(b"250 9.9.9 x\r\n");
        assert_eq!((r.esc, r.text.as_str()), (None, "9.9.9 x"));
        let r = one(b"250\n");
        assert_eq!((r.code, r.text.as_str()), (250, ""));
    }

    #[test]
    fn garbage_and_floods_are_errors_not_panics() {
        assert!(matches!(all(b"hello\r\n"), Err(ReplyError::Malformed(l)) if l == "hello"));
        assert!(matches!(all(b"250x\r\n"), Err(ReplyError::Malformed(_))));
        assert_eq!(all(&[b'2'; MAX_REPLY + 10]), Err(ReplyError::TooLong));
        let mut flood = Vec::new();
        while flood.len() <= MAX_REPLY {
            flood.extend_from_slice(b"250-more\r\n");
        }
        assert_eq!(all(&flood), Err(ReplyError::TooLong));
        // Up to the limit is fine, even past smtp-proto's 4 KiB.
        let mut big = b"250-".to_vec();
        big.extend(std::iter::repeat_n(b'x', 8000));
        big.extend_from_slice(b"\r\n250 end\r\n");
        assert_eq!(all(&big).unwrap().len(), 1);
    }

    #[test]
    fn a_reply_trickling_in_a_byte_at_a_time_is_not_rescanned() {
        // A next hop sending its longest line one byte per read: each read must cost the byte,
        // not the line so far (64 KiB reads of up to 64 KiB each would be 2^31 steps). After
        // each read the bytes searched reach the end, so the next search starts at the new byte.
        let mut p = ReplyParser::new();
        p.feed(b"250-");
        assert_eq!(p.next_reply(), Ok(None));
        for _ in 0..MAX_REPLY - 100 {
            p.feed(b"x");
            let from = p.searched;
            assert_eq!(p.next_reply(), Ok(None));
            assert_eq!((from + 1, p.searched), (p.buf.len(), p.buf.len()));
        }
        p.feed(b"\r\n250 end\r\n");
        assert_eq!(p.next_reply().unwrap().unwrap().lines.len(), 2);
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = all(&bytes);
        }

        #[test]
        fn split_points_do_not_change_the_replies(
            lines in proptest::collection::vec(
                ("[2-5][0-5][0-9]", "[ -]", "([245]\\.[0-9]{1,3}\\.[0-9]{1,3} )?[ -~]{0,20}", "\r?\n"),
                0..10),
            cuts in proptest::collection::vec(0usize..400, 0..6),
        ) {
            let bytes: Vec<u8> = lines
                .iter()
                .flat_map(|(c, s, t, e)| format!("{c}{s}{t}{e}").into_bytes())
                .collect();
            let whole = all(&bytes);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut p = ReplyParser::new();
            let mut got = Vec::new();
            let mut from = 0;
            let mut failed = None;
            for to in cuts.into_iter().chain([bytes.len()]) {
                p.feed(&bytes[from..to]);
                from = to;
                loop {
                    match p.next_reply() {
                        Ok(Some(r)) => got.push(r),
                        Ok(None) => break,
                        Err(e) => { failed = Some(e); break; }
                    }
                }
                if failed.is_some() { break; }
            }
            match (whole, failed) {
                (Ok(w), None) => prop_assert_eq!(w, got),
                (Err(e), Some(f)) => prop_assert_eq!(e, f),
                (w, f) => prop_assert!(false, "whole {:?} vs split {:?}", w, f),
            }
        }
    }
}
