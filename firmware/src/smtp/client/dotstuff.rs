//! The body on the wire (RFC 5321 §4.5.2): a line starting with `.` gets another `.`, every line
//! ends in CRLF (a bare LF from a sloppy client becomes CRLF), and `.` CRLF ends the data.
//! Works on chunks, so a body can stream from flash without being held whole.

/// Streaming dot-stuffer: feed chunks, then `finish`.
#[derive(Debug, Clone)]
pub struct DotStuffer {
    line_start: bool,
    last_cr: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer {
            line_start: true,
            last_cr: false,
        }
    }
}

impl DotStuffer {
    pub fn new() -> DotStuffer {
        DotStuffer::default()
    }

    /// Append the stuffed form of `chunk` to `out`. A line at a time: the bytes between line
    /// ends are copied whole (a byte loop was a few per cent of a relay's CPU).
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        out.reserve(chunk.len() + chunk.len() / 64 + 2);
        let mut rest = chunk;
        while let Some(&first) = rest.first() {
            if self.line_start && first == b'.' {
                out.push(b'.');
            }
            let Some(lf) = memchr::memchr(b'\n', rest) else {
                out.extend_from_slice(rest);
                self.last_cr = rest.last() == Some(&b'\r');
                self.line_start = false;
                return;
            };
            let line = &rest[..lf];
            out.extend_from_slice(line);
            // The CR before this LF may have ended the last chunk.
            let cr = match line.last() {
                Some(&b) => b == b'\r',
                None => self.last_cr,
            };
            if !cr {
                out.push(b'\r');
            }
            out.push(b'\n');
            self.last_cr = false;
            self.line_start = true;
            rest = &rest[lf + 1..];
        }
    }

    /// Close the data: a final CRLF if the body lacked one (just the LF after a trailing CR, so
    /// no bare CR goes out), then `.` CRLF.
    pub fn finish(self, out: &mut Vec<u8>) {
        if self.last_cr {
            out.push(b'\n');
        } else if !self.line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// The whole body stuffed and terminated, for small messages and tests.
pub fn dot_stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    let mut s = DotStuffer::new();
    s.push(body, &mut out);
    s.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn leading_dots_are_doubled_and_data_ends_with_dot_line() {
        assert_eq!(
            dot_stuff(b".hidden\r\nok\r\n.\r\n..two\r\n"),
            b"..hidden\r\nok\r\n..\r\n...two\r\n.\r\n"
        );
        assert_eq!(dot_stuff(b"no newline"), b"no newline\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b".\r\n");
        assert_eq!(dot_stuff(b"bare\nlf\n.x"), b"bare\r\nlf\r\n..x\r\n.\r\n");
        assert_eq!(dot_stuff(b"ends in cr\r"), b"ends in cr\r\n.\r\n");
    }

    /// The whole body stuffed in pieces cut at `cuts`.
    fn stuffed_in_pieces(body: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut wire = Vec::new();
        let mut s = DotStuffer::new();
        let mut from = 0;
        for &c in cuts {
            s.push(&body[from..c], &mut wire);
            from = c;
        }
        s.push(&body[from..], &mut wire);
        s.finish(&mut wire);
        wire
    }

    #[test]
    fn seams_between_pieces_change_nothing() {
        // A dot line split right before its dot, CRLF split between CR and LF, a bare LF at a
        // seam, and a body that ends without CRLF in the last piece.
        let body = b"a\r\n.dot\r\nb\r\n.\r\nc\nd";
        let whole = dot_stuff(body);
        assert_eq!(whole, b"a\r\n..dot\r\nb\r\n..\r\nc\r\nd\r\n.\r\n");
        for cut in 0..=body.len() {
            assert_eq!(stuffed_in_pieces(body, &[cut]), whole, "cut at {cut}");
        }
        let every: Vec<usize> = (1..body.len()).collect();
        assert_eq!(stuffed_in_pieces(body, &every), whole, "one byte a piece");
        // CR ending one piece, its LF starting the next: one CRLF, not CR CR LF.
        assert_eq!(stuffed_in_pieces(b"x\r\n", &[2]), b"x\r\n.\r\n");
    }

    /// What a receiving server does: strip one leading dot per line up to the end marker.
    fn unstuff(wire: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for line in wire.split_inclusive(|&b| b == b'\n') {
            if line == b".\r\n" {
                return out;
            }
            out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        }
        panic!("no end of data");
    }

    proptest! {
        #[test]
        fn stuffing_round_trips_in_any_chunking(
            lines in proptest::collection::vec("[.a-z ]{0,6}", 0..12),
            cut in 0usize..64,
        ) {
            let body: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\r\n").into_bytes()).collect();
            let mut wire = Vec::new();
            let mut s = DotStuffer::new();
            let cut = cut.min(body.len());
            s.push(&body[..cut], &mut wire);
            s.push(&body[cut..], &mut wire);
            s.finish(&mut wire);
            prop_assert_eq!(unstuff(&wire), body);
        }

        /// Any bytes (dots, bare CRs and LFs), cut anywhere: the same wire as stuffing one byte
        /// at a time, the way the rules read.
        #[test]
        fn line_at_a_time_equals_byte_at_a_time(
            body in proptest::collection::vec(
                proptest::sample::select(vec![b'.', b'\r', b'\n', b'a']),
                0..40,
            ),
            cuts in proptest::collection::vec(0usize..40, 0..4),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(body.len())).collect();
            cuts.sort_unstable();
            prop_assert_eq!(stuffed_in_pieces(&body, &cuts), byte_at_a_time(&body));
        }
    }

    fn byte_at_a_time(body: &[u8]) -> Vec<u8> {
        let (mut out, mut line_start, mut last_cr) = (Vec::new(), true, false);
        for &b in body {
            if line_start && b == b'.' {
                out.push(b'.');
            }
            if b == b'\n' && !last_cr {
                out.push(b'\r');
            }
            out.push(b);
            last_cr = b == b'\r';
            line_start = b == b'\n';
        }
        if last_cr {
            out.push(b'\n');
        } else if !line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        out
    }
}
