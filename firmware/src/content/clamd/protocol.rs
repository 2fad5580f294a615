//! clamd's INSTREAM protocol, without sockets: the bytes to send and the parse of the answer.
//!
//! `zINSTREAM\0`, then the message in chunks, each a 4-byte big-endian length and its bytes, then
//! a zero length. clamd answers one NUL-terminated line: `stream: OK`, `stream: NAME FOUND`, or
//! `... ERROR` (`INSTREAM size limit exceeded. ERROR` past its StreamMaxLength).

use std::fmt;

/// The command that opens a scan (the `z` form: NUL-terminated command and reply).
pub const INSTREAM: &[u8] = b"zINSTREAM\0";

/// The zero-length chunk that ends the stream.
pub const END_OF_STREAM: [u8; 4] = [0; 4];

/// The longest reply accepted; a signature name is short, so more is not clamd.
pub const MAX_REPLY: usize = 1024;

/// The length prefix of one chunk.
pub fn chunk_header(len: usize) -> [u8; 4] {
    (len as u32).to_be_bytes()
}

/// What clamd found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanResult {
    Clean,
    /// The signature name, as clamd reports it (`Eicar-Test-Signature`).
    Infected(String),
}

/// An answer that is not a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClamdReplyError {
    /// clamd said ERROR (the text, e.g. `INSTREAM size limit exceeded`).
    Error(String),
    /// Not a line clamd writes.
    Garbled,
}

impl fmt::Display for ClamdReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClamdReplyError::Error(text) => write!(f, "clamd error: {text}"),
            ClamdReplyError::Garbled => f.write_str("unreadable clamd reply"),
        }
    }
}

impl std::error::Error for ClamdReplyError {}

/// Parses one reply (with or without its NUL and line end). Never panics.
pub fn parse_reply(reply: &[u8]) -> Result<ScanResult, ClamdReplyError> {
    let end = reply.iter().position(|&b| b == 0).unwrap_or(reply.len());
    let line = std::str::from_utf8(&reply[..end])
        .map_err(|_| ClamdReplyError::Garbled)?
        .trim_end_matches(['\r', '\n']);
    // `stream: ...`, or `1: stream: ...` when clamd numbers replies (IDSESSION).
    let verdict = line.rsplit_once(": ").map_or(line, |(_, verdict)| verdict);
    if verdict == "OK" {
        return Ok(ScanResult::Clean);
    }
    if let Some(name) = verdict.strip_suffix(" FOUND") {
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_graphic()) {
            return Err(ClamdReplyError::Garbled);
        }
        return Ok(ScanResult::Infected(name.to_string()));
    }
    if let Some(text) = line.strip_suffix(" ERROR") {
        return Err(ClamdReplyError::Error(
            text.chars().filter(|c| !c.is_control()).collect(),
        ));
    }
    Err(ClamdReplyError::Garbled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn clamd_replies() {
        assert_eq!(parse_reply(b"stream: OK\0"), Ok(ScanResult::Clean));
        assert_eq!(
            parse_reply(b"stream: Eicar-Test-Signature.UNOFFICIAL FOUND\0"),
            Ok(ScanResult::Infected(
                "Eicar-Test-Signature.UNOFFICIAL".into()
            ))
        );
        assert_eq!(
            parse_reply(b"1: stream: Win.Trojan.Agent-1 FOUND\n"),
            Ok(ScanResult::Infected("Win.Trojan.Agent-1".into()))
        );
        assert_eq!(
            parse_reply(b"INSTREAM size limit exceeded. ERROR\0"),
            Err(ClamdReplyError::Error(
                "INSTREAM size limit exceeded.".into()
            ))
        );
        for junk in [
            &b""[..],
            b"\0",
            b"stream:",
            b"stream:  FOUND\0",
            b"\xff\xfe OK",
            b"HTTP/1.1 400",
        ] {
            assert!(parse_reply(junk).is_err(), "{junk:?}");
        }
        assert_eq!(chunk_header(0x0102), [0, 0, 1, 2]);
    }

    proptest! {
        #[test]
        fn any_bytes_parse_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_reply(&bytes);
        }

        #[test]
        fn found_lines_give_the_name_back(name in "[A-Za-z0-9.\\-_]{1,60}") {
            let line = format!("stream: {name} FOUND\0");
            prop_assert_eq!(parse_reply(line.as_bytes()), Ok(ScanResult::Infected(name)));
        }
    }
}
