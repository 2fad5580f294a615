//! SMTP replies: a code, an enhanced status code (RFC 3463, sent on every reply but the greeting,
//! the EHLO/LHLO list and the 334/354 intermediates, as RFC 2034 asks) and one line of text.
//!
//! Text that came from elsewhere (a router's rejection, a spool error) is cleaned of CR, LF and control characters first, so no
//! reply can ever carry a second line the client would read as another answer.

use std::fmt;

use super::EnhancedStatus;

/// One SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code (RFC 5321 §4.2).
    pub code: u16,
    /// The enhanced status code (class, subject, detail); `None` where RFC 2034 has none.
    pub esc: Option<EnhancedStatus>,
    /// The text after the codes.
    pub text: String,
}

impl Reply {
    /// A reply with an enhanced status code. Control characters in `text` become spaces.
    pub fn new(code: u16, esc: impl Into<EnhancedStatus>, text: impl Into<String>) -> Reply {
        Reply {
            code,
            esc: Some(esc.into()),
            text: clean(text.into()),
        }
    }

    /// A reply without an enhanced status code (greeting, 334, 354).
    pub fn bare(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            esc: None,
            text: clean(text.into()),
        }
    }

    /// 2xx.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 4xx or 5xx.
    pub fn is_error(&self) -> bool {
        self.code >= 400
    }

    /// 4xx: try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx: failed for good.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// Appends the reply, CRLF-terminated, to `out`. The space after the codes stays even
    /// before an empty text: RFC 4954's empty challenge is `334 SP CRLF`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        // Room for it all at once: `write!` would grow the buffer piece by piece.
        out.reserve(16 + self.text.len());
        // Writing into a Vec cannot fail.
        let _ = match self.esc {
            Some(esc) => write!(out, "{} {esc} {}\r\n", self.code, self.text),
            None => write!(out, "{} {}\r\n", self.code, self.text),
        };
    }
}

/// As logs and bounces show a reply: no trailing space when the text is empty (`250 2.0.0`).
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(esc) = self.esc {
            write!(f, " {esc}")?;
        }
        if !self.text.is_empty() {
            write!(f, " {}", self.text)?;
        }
        Ok(())
    }
}

fn clean(text: String) -> String {
    if text.bytes().any(|b| b.is_ascii_control()) {
        text.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_one_line_with_enhanced_codes() {
        let mut out = Vec::new();
        Reply::new(250, [2, 0, 0], "Ok").write_to(&mut out);
        Reply::bare(354, "End data with <CR><LF>.<CR><LF>").write_to(&mut out);
        assert_eq!(
            out,
            b"250 2.0.0 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n".to_vec()
        );
    }

    #[test]
    fn empty_text_keeps_its_space_on_the_wire_only() {
        let mut out = Vec::new();
        Reply::bare(334, "").write_to(&mut out);
        assert_eq!(out, b"334 \r\n".to_vec());
        assert_eq!(Reply::bare(334, "").to_string(), "334");
        assert_eq!(Reply::new(250, [2, 0, 0], "").to_string(), "250 2.0.0");
    }

    #[test]
    fn injected_line_breaks_are_neutralised() {
        let mut out = Vec::new();
        Reply::new(550, [5, 1, 1], "no\r\n250 2.0.0 Ok").write_to(&mut out);
        assert_eq!(out, b"550 5.1.1 no  250 2.0.0 Ok\r\n".to_vec());
    }
}
