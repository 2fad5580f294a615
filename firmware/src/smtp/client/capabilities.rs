//! What a server offers in its EHLO/LHLO reply (RFC 5321 §4.1.1.1), as far as delivery uses it.

/// The extensions delivery uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// RFC 2920.
    pub pipelining: bool,
    /// SIZE offered (RFC 1870); the limit, 0 when the server named none.
    pub size: Option<usize>,
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
    pub starttls: bool,
    pub enhanced_status_codes: bool,
    /// RFC 3461 DSN.
    pub dsn: bool,
}

impl Capabilities {
    /// The capabilities in the lines of a positive EHLO/LHLO reply (their text after `250-`).
    /// The first line is the server's name; an unknown or odd line costs only itself.
    pub fn from_ehlo<S: AsRef<str>>(lines: &[S]) -> Capabilities {
        let mut c = Capabilities::default();
        for line in lines.iter().skip(1) {
            let mut words = line.as_ref().split_whitespace();
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
}

#[cfg(test)]
mod tests {
    use super::super::ReplyParser;
    use super::*;

    fn caps(bytes: &[u8]) -> Capabilities {
        let mut p = ReplyParser::new();
        p.feed(bytes);
        let r = p.next_reply().unwrap().unwrap();
        Capabilities::from_ehlo(&r.lines)
    }

    #[test]
    fn dovecot_lhlo_and_postfix_ehlo_capabilities() {
        let c = caps(b"250-host Dovecot ready.\r\n250-8BITMIME\r\n250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
        assert!(c.pipelining && c.eight_bit_mime && c.starttls && c.enhanced_status_codes);
        assert_eq!(c.size, None);
        let c = caps(b"250-sink\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n");
        assert_eq!(c.size, Some(0));
        assert!(c.smtputf8 && !c.dsn);
        let c = caps(b"250-mx.example.com\r\n250-PIPELINING\r\n250 size 1000\r\n");
        assert_eq!(c.size, Some(1000));
        assert!(!c.starttls);
    }

    /// smtp-sink ends its EHLO reply with an empty `250 ` line.
    #[test]
    fn empty_last_capability_line_still_parses() {
        let c = caps(b"250-smtp-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250-XCLIENT NAME HELO\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 \r\n");
        assert!(
            c.pipelining && c.eight_bit_mime && c.enhanced_status_codes && c.dsn,
            "{c:?}"
        );
    }

    #[test]
    fn the_server_name_is_not_a_keyword() {
        assert_eq!(caps(b"250 PIPELINING\r\n"), Capabilities::default());
    }
}
