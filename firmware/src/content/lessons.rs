//! Where a training mail's lessons lie: its attached messages (message/rfc822 or message/global
//! parts, as the mailbox server forwards a "junk" click), found as the mail streams by, so that
//! training reads each one back from the spool instead of holding the mail in RAM.
//!
//! [`LessonWalk`] follows the MIME structure a line at a time, as the attachment check does: each
//! header section (the message's, a part's) is read by mail-parser, multipart boundaries are
//! stacked, and an attached message's bytes are skipped to the boundary that ends it (its own
//! parts are not looked into, as mail-parser does not count them among the outer message's). The
//! delimiter's line end before a boundary belongs to the boundary (RFC 2046 §5.1.1).

use mail_parser::{MessageParser, MimeHeaders};

use super::headers::HEAD_LIMIT;

/// The most attached messages learned from one training mail.
pub const MAX_LEARNED: usize = 100;

/// Multiparts open at once before the walk stops opening more (mail-parser stops at 50 too).
const MAX_NESTING: usize = 50;

/// Longest line kept whole: a boundary line is far shorter, so a longer line is content.
const LINE_KEEP: usize = 8 * 1024;

/// One attached message, by byte offsets in the mail as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lesson {
    /// Where its part's header section starts.
    pub part: u64,
    /// Where the attached message starts (after the part's header section).
    pub start: u64,
    /// Where it ends (before the boundary's line end).
    pub end: u64,
    /// It has a transfer encoding (base64, quoted-printable; RFC 2046 forbids it, mail clients
    /// still do it): its bytes are not the message, which must be decoded out of the part.
    pub encoded: bool,
}

/// The lessons of one mail, fed its bytes as they arrive.
#[derive(Debug)]
pub struct LessonWalk {
    /// Bytes fed so far.
    offset: u64,
    /// The line being read, up to [`LINE_KEEP`], and where it started.
    line: Vec<u8>,
    line_start: u64,
    /// The current line is longer than [`LINE_KEEP`]: content, never a boundary.
    long_line: bool,
    /// Length of the line end of the line before the current one (0 at the start).
    last_eol: u64,
    /// The last byte fed was a CR (a CRLF may be split between two pieces).
    last_cr: bool,
    at: Place,
    /// Boundaries of the open multiparts, innermost last.
    boundaries: Vec<Vec<u8>>,
    found: Vec<Lesson>,
}

#[derive(Debug)]
enum Place {
    /// A header section starting at this offset, up to [`HEAD_LIMIT`].
    Header { start: u64, bytes: Vec<u8> },
    /// A preamble, an epilogue or a part that is not a message: until the next boundary.
    Skip,
    /// An attached message: until the next boundary of an enclosing multipart.
    Attached {
        part: u64,
        start: u64,
        encoded: bool,
    },
}

impl Default for LessonWalk {
    fn default() -> LessonWalk {
        LessonWalk {
            offset: 0,
            line: Vec::new(),
            line_start: 0,
            long_line: false,
            last_eol: 0,
            last_cr: false,
            at: Place::Header {
                start: 0,
                bytes: Vec::new(),
            },
            boundaries: Vec::new(),
            found: Vec::new(),
        }
    }
}

impl LessonWalk {
    /// Mail bytes, in order, exactly as received.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            let (piece, ended) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (&chunk[..=i], true),
                None => (chunk, false),
            };
            chunk = &chunk[piece.len()..];
            if self.line.is_empty() && !self.long_line {
                self.line_start = self.offset;
            }
            self.offset += piece.len() as u64;
            if !self.long_line && self.line.len() + piece.len() <= LINE_KEEP {
                self.line.extend_from_slice(piece);
            } else {
                // Too long to be a boundary or a header line worth reading: content.
                if !self.long_line {
                    self.content_line();
                }
                self.long_line = true;
            }
            if ended {
                if !self.long_line {
                    let line = std::mem::take(&mut self.line);
                    self.whole_line(&line);
                    self.line = line;
                }
                self.line.clear();
                self.long_line = false;
                let cr = match piece.len() {
                    1 => self.last_cr,
                    n => piece[n - 2] == b'\r',
                };
                self.last_eol = if cr { 2 } else { 1 };
            }
            self.last_cr = piece.last() == Some(&b'\r');
        }
    }

    /// The attached messages, in order (at most [`MAX_LEARNED`]); none when the mail has none,
    /// and it is then learned whole.
    pub fn finish(mut self) -> Vec<Lesson> {
        if !self.line.is_empty() && !self.long_line {
            let line = std::mem::take(&mut self.line);
            self.whole_line(&line);
        }
        if let Place::Header { bytes, .. } = &mut self.at {
            let head = std::mem::take(bytes);
            self.header_section(&head, self.offset);
        }
        if let Place::Attached {
            part,
            start,
            encoded,
        } = self.at
        {
            self.push(Lesson {
                part,
                start,
                end: self.offset,
                encoded,
            });
        }
        self.found
    }

    fn push(&mut self, lesson: Lesson) {
        if self.found.len() < MAX_LEARNED && lesson.end >= lesson.start {
            self.found.push(lesson);
        }
    }

    /// A line that went past [`LINE_KEEP`]: what was kept of it is content.
    fn content_line(&mut self) {
        if let Place::Header { .. } = self.at {
            // A header line that long: the section is not read (mail-parser would not find a
            // message there either).
            self.at = Place::Skip;
        }
        self.line.clear();
    }

    fn whole_line(&mut self, line: &[u8]) {
        if let Some((depth, closing)) = self.boundary(line) {
            if let Place::Attached {
                part,
                start,
                encoded,
            } = self.at
            {
                let end = self.line_start.saturating_sub(self.last_eol).max(start);
                self.push(Lesson {
                    part,
                    start,
                    end,
                    encoded,
                });
            }
            self.boundaries.truncate(depth + 1);
            self.at = if closing {
                self.boundaries.pop();
                Place::Skip
            } else {
                Place::Header {
                    start: self.offset,
                    bytes: Vec::new(),
                }
            };
            return;
        }
        if let Place::Header { bytes, .. } = &mut self.at {
            // mail-parser ends a header section at a line of nothing but white space.
            if line.iter().all(u8::is_ascii_whitespace) {
                let head = std::mem::take(bytes);
                self.header_section(&head, self.offset);
            } else if bytes.len() + line.len() > HEAD_LIMIT {
                self.at = Place::Skip;
            } else {
                bytes.extend_from_slice(line);
            }
        }
    }

    /// Which open multipart `line` is a boundary of (the innermost that matches) and whether it
    /// closes it. As mail-parser, a line that starts with the delimiter is one.
    fn boundary(&self, line: &[u8]) -> Option<(usize, bool)> {
        let rest = line.strip_prefix(b"--")?;
        self.boundaries.iter().enumerate().rev().find_map(|(i, b)| {
            let after = rest.strip_prefix(&b[..])?;
            Some((i, after.starts_with(b"--")))
        })
    }

    /// A complete header section (its content starts at `content`): it says what follows.
    fn header_section(&mut self, head: &[u8], content: u64) {
        let part = match &self.at {
            Place::Header { start, .. } => *start,
            _ => content,
        };
        self.at = Place::Skip;
        let Some(headers) = MessageParser::default().parse_headers(head) else {
            return;
        };
        let Some(ctype) = headers.content_type() else {
            return;
        };
        let (kind, subtype) = (ctype.ctype(), ctype.subtype().unwrap_or(""));
        if kind.eq_ignore_ascii_case("multipart") {
            if let Some(b) = ctype.attribute("boundary")
                && !b.is_empty()
                && self.boundaries.len() < MAX_NESTING
            {
                self.boundaries.push(b.as_bytes().to_vec());
            }
        } else if kind.eq_ignore_ascii_case("message")
            && (subtype.eq_ignore_ascii_case("rfc822") || subtype.eq_ignore_ascii_case("global"))
        {
            let encoding = headers.content_transfer_encoding().unwrap_or("7bit");
            let encoded = !["7bit", "8bit", "binary"]
                .iter()
                .any(|e| encoding.eq_ignore_ascii_case(e));
            self.at = Place::Attached {
                part,
                start: content,
                encoded,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::PartType;

    fn walk(mail: &[u8], piece: usize) -> Vec<Lesson> {
        let mut w = LessonWalk::default();
        for p in mail.chunks(piece) {
            w.feed(p);
        }
        w.finish()
    }

    /// The attached messages as mail-parser reads them out of the whole mail.
    fn parsed(mail: &[u8]) -> Vec<Vec<u8>> {
        MessageParser::default()
            .parse(mail)
            .map(|m| {
                m.parts
                    .iter()
                    .filter_map(|p| match &p.body {
                        PartType::Message(inner) => Some(inner.raw_message().to_vec()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn forwarded(boundary: &str, inner: &[&str], eol: &str) -> String {
        let mut m = format!(
            "From: a@example.com{eol}Subject: junk{eol}MIME-Version: 1.0{eol}\
             Content-Type: multipart/mixed; boundary=\"{boundary}\"{eol}{eol}preamble{eol}"
        );
        m += &format!("--{boundary}{eol}Content-Type: text/plain{eol}{eol}see attached{eol}");
        for i in inner {
            m += &format!("--{boundary}{eol}Content-Type: message/rfc822{eol}{eol}{i}{eol}");
        }
        m += &format!("--{boundary}--{eol}epilogue{eol}");
        m
    }

    /// The walk finds the bytes mail-parser gives as the attached messages, wherever the pieces
    /// fall, with CRLF or bare LF line ends, with inner multiparts and look-alike boundaries.
    #[test]
    fn the_lessons_are_the_attached_messages_mail_parser_reads() {
        let one = "From: s@spam.test\r\nSubject: buy\r\n\r\nBuy now\r\n--b1x not ours\r\n";
        let two = "From: t@spam.test\r\nContent-Type: multipart/alternative; boundary=in\r\n\r\n\
                   --in\r\nContent-Type: text/plain\r\n\r\ncheap\r\n--in--\r\n";
        for (mail, n) in [
            (forwarded("b1", &[one, two], "\r\n"), 2),
            (forwarded("b1", &[one], "\n").replace("\r\n", "\n"), 1),
            (forwarded("=_x", &[two, one, two], "\r\n"), 3),
        ] {
            let expected = parsed(mail.as_bytes());
            assert_eq!(expected.len(), n, "{mail}");
            for piece in [1, 2, 7, 100, 4096] {
                let found = walk(mail.as_bytes(), piece);
                let got: Vec<&[u8]> = found
                    .iter()
                    .map(|l| &mail.as_bytes()[l.start as usize..l.end as usize])
                    .collect();
                assert_eq!(got, expected, "pieces of {piece}: {found:?}");
                assert!(found.iter().all(|l| !l.encoded && l.part < l.start));
            }
        }
    }

    #[test]
    fn a_mail_without_attached_messages_has_no_lessons() {
        let plain = b"From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n";
        assert_eq!(walk(plain, 3), vec![]);
        let mixed = forwarded("b", &[], "\r\n");
        assert_eq!(walk(mixed.as_bytes(), 5), vec![]);
        assert_eq!(walk(b"", 1), vec![]);
    }

    /// A base64 attached message is marked: its bytes are to be decoded, not learned as they are.
    #[test]
    fn an_encoded_attached_message_is_marked() {
        let mail = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
                    Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n\
                    U3ViamVjdDogeA0KDQpoaQ0K\r\n--b--\r\n";
        let found = walk(mail.as_bytes(), 9);
        assert_eq!(found.len(), 1);
        assert!(found[0].encoded);
        assert_eq!(&mail[found[0].part as usize..][..13], "Content-Type:");
        assert_eq!(
            &mail[found[0].start as usize..found[0].end as usize],
            "U3ViamVjdDogeA0KDQpoaQ0K"
        );
    }

    /// A mail that is itself an attached message (its own type message/rfc822), unterminated
    /// parts, and more than [`MAX_LEARNED`] attached messages.
    #[test]
    fn odd_shapes_end_cleanly() {
        let whole = "Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nhi\r\n";
        let found = walk(whole.as_bytes(), 4);
        assert_eq!(found.len(), 1);
        assert_eq!(
            &whole[found[0].start as usize..found[0].end as usize],
            "Subject: inner\r\n\r\nhi\r\n"
        );
        let cut = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
                   Content-Type: message/rfc822\r\n\r\nSubject: cut";
        let found = walk(cut.as_bytes(), 3);
        assert_eq!(
            &cut[found[0].start as usize..found[0].end as usize],
            "Subject: cut"
        );
        let many: Vec<&str> = vec!["Subject: s\r\n\r\nx"; MAX_LEARNED + 5];
        let mail = forwarded("b", &many, "\r\n");
        assert_eq!(walk(mail.as_bytes(), 4096).len(), MAX_LEARNED);
    }
}
