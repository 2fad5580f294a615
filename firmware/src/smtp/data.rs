//! The DATA body decoder: dot-unstuffing and end-of-data detection with strict line discipline.
//!
//! Only `<CR><LF>.<CR><LF>` ends the data (RFC 5321 §4.1.1.4). Every other line ending is an error,
//! never a line break: this is the defence against SMTP smuggling (CVE-2023-51766 and its kin),
//! where two servers disagree on where a message ends and the tail becomes a second, forged one.
//!
//! - A bare `<LF>` (not after `<CR>`) stops the decoder with [`DataError::BareLf`]. Postfix 3.9
//!   with `smtpd_forbid_bare_newline = reject` answers such a message with
//!   `550 5.5.2 <myhostname> Error: bare <LF> received` (the code is
//!   `smtpd_forbid_bare_newline_reject_code`; the first fixes of December 2023 sent 521) and
//!   disconnects; the session does the same (see `Refusal::BareLf`).
//! - A bare `<CR>` (not followed by `<LF>`) stops it with [`DataError::BareCr`]. Postfix passes bare
//!   CR through; we refuse it like Sendmail 8.18's `u` option, with Postfix's reply shape
//!   (`550 5.5.2 <myhostname> Error: bare <CR> received`), because a bare CR is what some
//!   downstream servers take as a line end.
//!
//! The decoder keeps four bits of state, so any split of the input gives the same output.

/// Why the body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataError {
    BareLf,
    BareCr,
}

/// What a call to [`DataDecoder::decode`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// All input was consumed; the body goes on.
    NeedMore,
    /// `<CR><LF>.<CR><LF>` was seen; the given number of input bytes were consumed (including the
    /// terminator). What follows belongs to the next command.
    End(usize),
    /// The body broke line discipline after the given number of input bytes.
    Error(DataError, usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line (the DATA command's CRLF counts as one).
    LineStart,
    /// A dot at the start of a line: end of data or a stuffed dot.
    Dot,
    /// `<CR>` after a line-start dot.
    DotCr,
    /// Inside a line.
    Mid,
    /// `<CR>` inside a line.
    Cr,
}

/// Decodes one DATA body.
#[derive(Debug, Clone)]
pub struct DataDecoder {
    state: State,
}

impl Default for DataDecoder {
    fn default() -> Self {
        DataDecoder {
            state: State::LineStart,
        }
    }
}

impl DataDecoder {
    pub fn new() -> DataDecoder {
        DataDecoder::default()
    }

    /// Decodes `input`, appending the unstuffed body (with its CRLF line ends) to `out`.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Progress {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Mid => {
                    // Fast path: copy the run of ordinary bytes up to the next CR or LF.
                    let rest = input.get(i..).unwrap_or_default();
                    // memchr2 looks at many bytes at a time: this loop is most of a body's cost.
                    let run = memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
                    out.extend_from_slice(rest.get(..run).unwrap_or_default());
                    i += run;
                    match input.get(i) {
                        Some(b'\r') => self.state = State::Cr,
                        Some(_) => return Progress::Error(DataError::BareLf, i),
                        None => return Progress::NeedMore,
                    }
                }
                State::Cr => match input.get(i) {
                    Some(b'\n') => {
                        out.extend_from_slice(b"\r\n");
                        self.state = State::LineStart;
                    }
                    _ => return Progress::Error(DataError::BareCr, i),
                },
                State::LineStart => match input.get(i) {
                    Some(b'.') => self.state = State::Dot,
                    Some(b'\r') => self.state = State::Cr,
                    Some(b'\n') => return Progress::Error(DataError::BareLf, i),
                    Some(&b) => {
                        out.push(b);
                        self.state = State::Mid;
                    }
                    None => {}
                },
                State::Dot => match input.get(i) {
                    Some(b'\r') => self.state = State::DotCr,
                    Some(b'\n') => return Progress::Error(DataError::BareLf, i),
                    // A stuffed dot: the client doubled it, we drop it (RFC 5321 §4.5.2).
                    Some(&b) => {
                        out.push(b);
                        self.state = State::Mid;
                    }
                    None => {}
                },
                State::DotCr => match input.get(i) {
                    Some(b'\n') => {
                        self.state = State::LineStart;
                        return Progress::End(i + 1);
                    }
                    _ => return Progress::Error(DataError::BareCr, i),
                },
            }
            i += 1;
        }
        Progress::NeedMore
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::{Just, Strategy, any};

    use super::*;

    fn decode_all(input: &[u8]) -> (Vec<u8>, Progress) {
        let mut d = DataDecoder::new();
        let mut out = Vec::new();
        let p = d.decode(input, &mut out);
        (out, p)
    }

    #[test]
    fn only_crlf_dot_crlf_ends_the_data() {
        let (out, p) = decode_all(b"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n");
        assert_eq!(out, b"Subject: x\r\n\r\nhello\r\n".to_vec());
        assert_eq!(p, Progress::End(24));
    }

    #[test]
    fn dots_are_unstuffed() {
        let (out, p) = decode_all(b"..leading\r\n.\r\n");
        assert_eq!(out, b".leading\r\n".to_vec());
        assert!(matches!(p, Progress::End(_)));
        let (out, _) = decode_all(b"...\r\na.b\r\n.\r\n");
        assert_eq!(out, b"..\r\na.b\r\n".to_vec());
    }

    #[test]
    fn smuggling_sequences_are_errors_not_ends() {
        for (input, err) in [
            (&b"a\r\n\n.\n"[..], DataError::BareLf),
            (b"a\n.\r\n", DataError::BareLf),
            (b"a\r\n.\n", DataError::BareLf),
            (b"a\r.\r\n", DataError::BareCr),
            (b"a\rb\r\n.\r\n", DataError::BareCr),
            (b"a\r\n.\rX", DataError::BareCr),
            (b"\n", DataError::BareLf),
        ] {
            let (_, p) = decode_all(input);
            assert!(
                matches!(p, Progress::Error(e, _) if e == err),
                "{input:?}: {p:?}"
            );
        }
    }

    #[test]
    fn byte_at_a_time_gives_the_same_body() {
        let input = b"x\r\n..y\r\n.z\r\n\r\n.\r\n";
        let (whole, _) = decode_all(input);
        let mut d = DataDecoder::new();
        let mut out = Vec::new();
        let mut end = None;
        for (n, b) in input.iter().enumerate() {
            if let Progress::End(k) = d.decode(std::slice::from_ref(b), &mut out) {
                assert_eq!(k, 1);
                end = Some(n + 1);
            }
        }
        assert_eq!(out, whole);
        assert_eq!(end, Some(input.len()));
    }

    /// What a client sends for `lines`: dot-stuffed, CRLF line ends, the terminator.
    fn stuffed(lines: &[Vec<u8>]) -> Vec<u8> {
        let mut wire = Vec::new();
        for l in lines {
            if l.first() == Some(&b'.') {
                wire.push(b'.');
            }
            wire.extend_from_slice(l);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b".\r\n");
        wire
    }

    proptest::proptest! {
        #[test]
        fn unstuffing_inverts_stuffing_in_any_chunking(
            lines in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::prop_oneof![Just(b'.'), Just(b'a'), any::<u8>()]
                        .prop_filter("no line ends", |b| *b != b'\r' && *b != b'\n'),
                    0..20,
                ),
                0..20,
            ),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let wire = stuffed(&lines);
            let want: Vec<u8> = lines.iter().flat_map(|l| [&l[..], b"\r\n"].concat()).collect();
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
            cuts.sort_unstable();
            cuts.push(wire.len());
            let mut d = DataDecoder::new();
            let mut out = Vec::new();
            let mut start = 0;
            let mut ended_at = None;
            for cut in cuts {
                if cut <= start {
                    continue;
                }
                match d.decode(&wire[start..cut], &mut out) {
                    Progress::End(n) => { ended_at = Some(start + n); break; }
                    Progress::Error(e, _) => proptest::prop_assert!(false, "{e:?}"),
                    Progress::NeedMore => {}
                }
                start = cut;
            }
            proptest::prop_assert_eq!(ended_at, Some(wire.len()));
            proptest::prop_assert_eq!(out, want);
        }
    }
}
