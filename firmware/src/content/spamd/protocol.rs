//! spamd's SPAMC/1.5 protocol, without sockets: requests (SYMBOLS to score, TELL to learn) and
//! the parse of spamd's answer.
//!
//! ```text
//! SYMBOLS SPAMC/1.5            SPAMD/1.1 0 EX_OK
//! Content-length: 1234         Content-length: 25
//!                              Spam: True ; 1000.0 / 5.0
//! <message>
//!                              GTUBE,MISSING_DATE
//! ```

use std::fmt;

/// The longest answer read: a score line and a symbol list.
pub const MAX_REPLY: usize = 64 * 1024;

pub use crate::content::scanner::Class;

/// The head of a SYMBOLS request for a message of `len` bytes (the message follows it).
pub fn symbols_request(len: usize) -> Vec<u8> {
    format!("SYMBOLS SPAMC/1.5\r\nContent-length: {len}\r\n\r\n").into_bytes()
}

/// The head of a TELL request that learns the message as `class` into the local database.
pub fn tell_request(len: usize, class: Class) -> Vec<u8> {
    let class = match class {
        Class::Spam => "spam",
        Class::Ham => "ham",
    };
    format!(
        "TELL SPAMC/1.5\r\nMessage-class: {class}\r\nSet: local\r\nContent-length: {len}\r\n\r\n"
    )
    .into_bytes()
}

/// spamd's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct SpamdReply {
    /// The score of a CHECK/SYMBOLS, if the answer has a `Spam:` line.
    pub score: Option<f64>,
    /// The rules that hit (SYMBOLS).
    pub symbols: Vec<String>,
    /// What a TELL changed (`DidSet: local`).
    pub did_set: Option<String>,
}

/// An answer that is not a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpamdReplyError {
    /// spamd answered with an error code (`SPAMD/1.0 76 Bad header line`).
    Failed { code: u32, text: String },
    /// Not spamd's protocol, or cut short.
    Garbled,
}

impl fmt::Display for SpamdReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpamdReplyError::Failed { code, text } => write!(f, "spamd error {code}: {text}"),
            SpamdReplyError::Garbled => f.write_str("unreadable spamd reply"),
        }
    }
}

impl std::error::Error for SpamdReplyError {}

/// Parses a whole answer (spamd closes the connection after it). Never panics.
pub fn parse_reply(reply: &[u8]) -> Result<SpamdReply, SpamdReplyError> {
    let text = std::str::from_utf8(reply).map_err(|_| SpamdReplyError::Garbled)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    let mut words = status.splitn(3, ' ');
    let (Some(proto), Some(code)) = (words.next(), words.next()) else {
        return Err(SpamdReplyError::Garbled);
    };
    if !proto.starts_with("SPAMD/") {
        return Err(SpamdReplyError::Garbled);
    }
    let code: u32 = code.parse().map_err(|_| SpamdReplyError::Garbled)?;
    if code != 0 {
        let text = words
            .next()
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_control());
        return Err(SpamdReplyError::Failed {
            code,
            text: text.take(200).collect(),
        });
    }
    let mut reply = SpamdReply {
        score: None,
        symbols: Vec::new(),
        did_set: None,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("Spam") {
            reply.score = Some(score(value)?);
        } else if name.eq_ignore_ascii_case("DidSet") {
            reply.did_set = Some(value.trim().to_string());
        }
    }
    reply.symbols = body
        .trim()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_string)
        .collect();
    Ok(reply)
}

/// The score of `True ; 1000.0 / 5.0`.
fn score(value: &str) -> Result<f64, SpamdReplyError> {
    let (_, numbers) = value.split_once(';').ok_or(SpamdReplyError::Garbled)?;
    let (score, _threshold) = numbers.split_once('/').ok_or(SpamdReplyError::Garbled)?;
    score
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite())
        .ok_or(SpamdReplyError::Garbled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spamd_answers() {
        let gtube = parse_reply(
            b"SPAMD/1.1 0 EX_OK\r\nContent-length: 18\r\nSpam: True ; 1000.0 / 5.0\r\n\r\nGTUBE,MISSING_DATE",
        )
        .unwrap();
        assert_eq!(gtube.score, Some(1000.0));
        assert_eq!(gtube.symbols, ["GTUBE", "MISSING_DATE"]);
        let ham = parse_reply(b"SPAMD/1.1 0 EX_OK\r\nSpam: False ; -0.5 / 5.0\r\n\r\n").unwrap();
        assert_eq!((ham.score, ham.symbols.len()), (Some(-0.5), 0));
        let told = parse_reply(b"SPAMD/1.1 0 EX_OK\r\nDidSet: local\r\n\r\n").unwrap();
        assert_eq!(told.did_set.as_deref(), Some("local"));
        assert_eq!(
            parse_reply(b"SPAMD/1.0 76 Bad header line: x\r\n"),
            Err(SpamdReplyError::Failed {
                code: 76,
                text: "Bad header line: x".into()
            })
        );
        for junk in [
            &b""[..],
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"SPAMD/1.1 x EX_OK",
            b"SPAMD/1.1 0 EX_OK\r\nSpam: True ; NaN / 5.0\r\n\r\n",
            b"SPAMD/1.1 0 EX_OK\r\nSpam: True\r\n\r\n",
            b"\xff\xfe",
        ] {
            assert!(parse_reply(junk).is_err(), "{junk:?}");
        }
        assert_eq!(
            symbols_request(5),
            b"SYMBOLS SPAMC/1.5\r\nContent-length: 5\r\n\r\n"
        );
        assert!(
            String::from_utf8(tell_request(5, Class::Ham))
                .unwrap()
                .contains("Message-class: ham\r\nSet: local\r\n")
        );
    }

    proptest! {
        #[test]
        fn any_bytes_parse_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_reply(&bytes);
        }

        #[test]
        fn any_text_after_a_good_status_parses_without_panic(rest in "\\PC{0,200}") {
            let reply = format!("SPAMD/1.1 0 EX_OK\r\n{rest}");
            let _ = parse_reply(reply.as_bytes());
        }

        #[test]
        fn scores_come_back(score in -100.0f64..2000.0) {
            let reply = format!("SPAMD/1.1 0 EX_OK\r\nSpam: True ; {score:.1} / 5.0\r\n\r\n");
            let parsed = parse_reply(reply.as_bytes()).unwrap().score.unwrap();
            prop_assert!((parsed - score).abs() < 0.051);
        }
    }
}
