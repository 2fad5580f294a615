//! Server replies: collecting the lines of one (possibly multiline) reply from the socket buffer,
//! then parsing them with smtp-proto's client-side parsers.

use std::fmt;

use smtp_proto::response::parser::ResponseReceiver;
use smtp_proto::{EhloResponse, Error as ProtoError};

/// Longest reply accepted; a peer sending more is broken or hostile.
pub const MAX_REPLY: usize = 64 * 1024;

/// One server reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// The enhanced status code (RFC 3463) when the server gave one.
    pub esc: Option<[u8; 3]>,
    /// The text, continuation lines joined with a space.
    pub text: String,
}

impl Reply {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// The enhanced status code, or one made from the reply class as Postfix does.
    pub fn status(&self) -> String {
        let class = (self.code / 100) as u8;
        match self.esc {
            Some([c, s, d]) if c == class => format!("{c}.{s}.{d}"),
            _ => format!("{class}.0.0"),
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some([c, s, d]) = self.esc {
            write!(f, " {c}.{s}.{d}")?;
        }
        if !self.text.is_empty() {
            write!(f, " {}", self.text)?;
        }
        Ok(())
    }
}

/// Why the bytes are not a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    TooLong,
    Malformed(String),
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::TooLong => write!(f, "reply longer than {MAX_REPLY} bytes"),
            ReplyError::Malformed(s) => write!(f, "malformed reply: {s}"),
        }
    }
}

/// The length of the first complete reply at the start of `buf` (all its lines), if there is one.
/// A reply ends with a line whose fourth byte is not `-`.
pub fn complete_reply_len(buf: &[u8]) -> Result<Option<usize>, ReplyError> {
    let mut start = 0;
    while let Some(nl) = buf
        .get(start..)
        .and_then(|b| b.iter().position(|&c| c == b'\n'))
    {
        let line = buf.get(start..start + nl).unwrap_or_default();
        let end = start + nl + 1;
        if line.len() < 3 || !line.iter().take(3).all(u8::is_ascii_digit) {
            return Err(ReplyError::Malformed(
                String::from_utf8_lossy(line).trim_end().to_string(),
            ));
        }
        if line.get(3) != Some(&b'-') {
            return Ok(Some(end));
        }
        start = end;
        if start > MAX_REPLY {
            return Err(ReplyError::TooLong);
        }
    }
    if buf.len() > MAX_REPLY {
        return Err(ReplyError::TooLong);
    }
    Ok(None)
}

/// Parse one complete reply (as delimited by [`complete_reply_len`]).
pub fn parse_reply(raw: &[u8]) -> Result<Reply, ReplyError> {
    let mut rx = ResponseReceiver::default();
    let mut it = raw.iter();
    match rx.parse(&mut it) {
        Ok(r) => Ok(Reply {
            code: r.code,
            esc: (r.esc != [0, 0, 0]).then_some(r.esc),
            text: r
                .message
                .split('\n')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
        }),
        Err(ProtoError::ResponseTooLong) => Err(ReplyError::TooLong),
        Err(e) => Err(ReplyError::Malformed(format!("{e:?}"))),
    }
}

/// What an EHLO/LHLO reply offers that delivery uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    pub pipelining: bool,
    /// SIZE offered; the limit, 0 when the server named none.
    pub size: Option<usize>,
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
    pub starttls: bool,
    pub enhanced_status_codes: bool,
    /// RFC 3461 DSN.
    pub dsn: bool,
}

/// The capabilities in a positive EHLO/LHLO reply. When smtp-proto cannot read a reply as EHLO,
/// a plain scan of the keyword lines decides, so one odd line does not cost all extensions.
pub fn parse_capabilities(raw: &[u8]) -> Capabilities {
    let mut it = raw.iter();
    match EhloResponse::parse(&mut it) {
        Ok(e) => Capabilities {
            pipelining: e.has_capability(smtp_proto::EXT_PIPELINING),
            size: e.has_capability(smtp_proto::EXT_SIZE).then_some(e.size),
            eight_bit_mime: e.has_capability(smtp_proto::EXT_8BIT_MIME),
            smtputf8: e.has_capability(smtp_proto::EXT_SMTP_UTF8),
            starttls: e.has_capability(smtp_proto::EXT_START_TLS),
            enhanced_status_codes: e.has_capability(smtp_proto::EXT_ENHANCED_STATUS_CODES),
            dsn: e.has_capability(smtp_proto::EXT_DSN),
        },
        Err(_) => scan_capabilities(raw),
    }
}

fn scan_capabilities(raw: &[u8]) -> Capabilities {
    let mut c = Capabilities::default();
    let text = String::from_utf8_lossy(raw);
    // The first line is the server's name, not a keyword.
    for line in text.lines().skip(1) {
        let mut words = line.get(4..).unwrap_or_default().split_whitespace();
        let Some(kw) = words.next() else { continue };
        match kw.to_ascii_uppercase().as_str() {
            "PIPELINING" => c.pipelining = true,
            "SIZE" => c.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
            "8BITMIME" => c.eight_bit_mime = true,
            "SMTPUTF8" => c.smtputf8 = true,
            "STARTTLS" => c.starttls = true,
            "ENHANCEDSTATUSCODES" => c.enhanced_status_codes = true,
            "DSN" => c.dsn = true,
            _ => {}
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn multiline_reply_is_one_reply() {
        let buf = b"250-mx.example.com\r\n250-PIPELINING\r\n250 SIZE 1000\r\n354 next";
        let n = complete_reply_len(buf).unwrap().unwrap();
        assert_eq!(&buf[n..], b"354 next");
        assert_eq!(complete_reply_len(&buf[..20]).unwrap(), None);
        let caps = parse_capabilities(&buf[..n]);
        assert!(caps.pipelining);
        assert_eq!(caps.size, Some(1000));
        assert!(!caps.starttls);
    }

    #[test]
    fn enhanced_codes_and_text() {
        let r = parse_reply(b"452 4.2.2 <bob@example.com> Mailbox is full\r\n").unwrap();
        assert_eq!(r.code, 452);
        assert_eq!(r.status(), "4.2.2");
        assert_eq!(r.to_string(), "452 4.2.2 <bob@example.com> Mailbox is full");
        let r = parse_reply(b"550 no such user\r\n").unwrap();
        assert_eq!(r.status(), "5.0.0");
        assert_eq!(r.to_string(), "550 no such user");
        let r = parse_reply(b"250-2.0.0 first\r\n250 2.0.0 second\r\n").unwrap();
        assert_eq!(r.text, "first second");
    }

    #[test]
    fn dovecot_lhlo_and_postfix_ehlo_capabilities() {
        let lhlo = b"250-host Dovecot ready.\r\n250-8BITMIME\r\n250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n250-PIPELINING\r\n250 STARTTLS\r\n";
        let c = parse_capabilities(lhlo);
        assert!(c.pipelining && c.eight_bit_mime && c.starttls && c.enhanced_status_codes);
        assert_eq!(c.size, None);
        let ehlo = b"250-sink\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n";
        let c = parse_capabilities(ehlo);
        assert_eq!(c.size, Some(0));
        assert!(c.smtputf8);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(complete_reply_len(b"hello\r\n").is_err());
        assert!(complete_reply_len(&[b'2'; MAX_REPLY + 10]).is_err());
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(Some(n)) = complete_reply_len(&bytes) {
                let _ = parse_reply(&bytes[..n]);
                let _ = parse_capabilities(&bytes[..n]);
            }
        }
    }
}

#[cfg(test)]
mod smtp_sink_ehlo {
    use super::*;

    /// smtp-sink ends its EHLO reply with an empty `250 ` line.
    #[test]
    fn empty_last_capability_line_still_parses() {
        let ehlo = b"250-smtp-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250-XCLIENT NAME HELO\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 \r\n";
        assert_eq!(complete_reply_len(ehlo).unwrap(), Some(ehlo.len()));
        let c = parse_capabilities(ehlo);
        assert!(
            c.pipelining && c.eight_bit_mime && c.enhanced_status_codes,
            "{c:?}"
        );
    }
}
