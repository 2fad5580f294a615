//! rspamd's HTTP protocol, without sockets: the requests (`POST /checkv2` to score,
//! `/learnspam` and `/learnham` to train) and the parse of rspamd's answers.
//!
//! ```text
//! POST /checkv2 HTTP/1.1           HTTP/1.1 200 OK
//! Host: 127.0.0.1:11334            Content-Length: 226
//! Content-Length: 1234             Content-Type: application/json
//! Connection: close
//! IP: 192.0.2.1                    {"score":15.0,"required_score":15.0,"action":"reject",
//! From: <a@example.com>             "symbols":{"GTUBE":{"score":0.0,...}},...}
//! Rcpt: <b@example.com>
//!
//! <message>
//! ```
//!
//! The envelope goes in rspamd's own request fields (`IP`, `From`, `Rcpt`, `Helo`, `User`), so
//! its SPF and reputation rules see what the box saw. A controller with a `password` gets it in
//! `Password:` (rspamd 3.4 answers `401 Unauthorized` to a wrong or missing one).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::Deserialize;

use crate::content::scanner::Class;

/// The longest answer read: rspamd's JSON with every symbol's options.
pub const MAX_REPLY: usize = 256 * 1024;

/// What the box knows of a message that rspamd would otherwise guess from its headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub client: Option<IpAddr>,
    /// The HELO name; empty, none was given.
    pub helo: String,
    /// The reverse path; empty for the null sender.
    pub sender: String,
    pub recipients: Vec<String>,
    /// The SASL user of an authenticated client.
    pub user: Option<String>,
}

/// The head of a `/checkv2` request for a message of `len` bytes (the message follows it).
pub fn check_request(host: &str, len: usize, facts: &Facts, password: Option<&str>) -> Vec<u8> {
    let mut head = request_head("/checkv2", host, len, password);
    let mut field = |name: &str, value: &str| {
        // A value that would break the request's framing is left out, not cleaned.
        if !value.is_empty() && !value.chars().any(|c| c.is_control()) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    };
    if let Some(ip) = facts.client {
        field("IP", &ip.to_string());
    }
    field("Helo", &facts.helo);
    field("From", &format!("<{}>", facts.sender));
    for rcpt in &facts.recipients {
        field("Rcpt", &format!("<{rcpt}>"));
    }
    if let Some(user) = &facts.user {
        field("User", user);
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// The head of a learn request for a message of `len` bytes: it teaches rspamd's Bayes
/// classifier that the message is `class`. Only the controller worker answers it.
pub fn learn_request(host: &str, len: usize, class: Class, password: Option<&str>) -> Vec<u8> {
    let path = match class {
        Class::Spam => "/learnspam",
        Class::Ham => "/learnham",
    };
    let mut head = request_head(path, host, len, password);
    head.push_str("\r\n");
    head.into_bytes()
}

fn request_head(path: &str, host: &str, len: usize, password: Option<&str>) -> String {
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len}\r\nConnection: close\r\n"
    );
    // The setting admits one printable line only; checked again as it goes on the wire.
    if let Some(p) = password.filter(|p| !p.chars().any(|c| c.is_control())) {
        head.push_str(&format!("Password: {p}\r\n"));
    }
    head
}

/// rspamd's verdict on a message.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReply {
    /// The message's score (for GTUBE and other forced actions, the threshold of that action).
    pub score: f64,
    /// The score of rspamd's own `reject` action.
    pub required_score: Option<f64>,
    /// rspamd's own action (`no action`, `add header`, `reject`, ...), as it names it.
    pub action: Option<String>,
    /// The symbols that hit, by name.
    pub symbols: Vec<String>,
}

/// What a learn request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LearnReply {
    /// rspamd learned the message.
    Learned,
    /// rspamd declined, and says why: learned already, too few tokens to learn from.
    Declined(String),
}

/// An answer that is not a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RspamdReplyError {
    /// rspamd answered with an HTTP error (`500 invalid command`, `403 Unauthorized`).
    Failed { status: u16, text: String },
    /// Not HTTP, not rspamd's JSON, or cut short.
    Garbled,
}

impl fmt::Display for RspamdReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RspamdReplyError::Failed { status, text } => {
                write!(f, "rspamd error {status}: {text}")
            }
            RspamdReplyError::Garbled => f.write_str("unreadable rspamd reply"),
        }
    }
}

impl std::error::Error for RspamdReplyError {}

/// An HTTP answer split into its parts.
struct Response<'a> {
    status: u16,
    reason: &'a str,
    body: &'a [u8],
}

/// Whether `reply` holds a whole answer: its head and `Content-Length` bytes of body. Without a
/// length the answer ends when rspamd closes the connection.
pub fn is_complete(reply: &[u8]) -> bool {
    let Some(end) = head_end(reply) else {
        return false;
    };
    let Ok(head) = std::str::from_utf8(&reply[..end]) else {
        return false;
    };
    content_length(head).is_some_and(|len| reply.len() - (end + 4) >= len)
}

fn head_end(reply: &[u8]) -> Option<usize> {
    reply.windows(4).position(|w| w == b"\r\n\r\n")
}

fn content_length(head: &str) -> Option<usize> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })
}

fn parse_response(reply: &[u8]) -> Result<Response<'_>, RspamdReplyError> {
    let end = head_end(reply).ok_or(RspamdReplyError::Garbled)?;
    let head = std::str::from_utf8(&reply[..end]).map_err(|_| RspamdReplyError::Garbled)?;
    let status_line = head.split("\r\n").next().unwrap_or("");
    let mut words = status_line.splitn(3, ' ');
    let (Some(proto), Some(status)) = (words.next(), words.next()) else {
        return Err(RspamdReplyError::Garbled);
    };
    if !proto.starts_with("HTTP/1.") || status.len() != 3 {
        return Err(RspamdReplyError::Garbled);
    }
    let status: u16 = status.parse().map_err(|_| RspamdReplyError::Garbled)?;
    let chunked = head.split("\r\n").skip(1).any(|line| {
        line.split_once(':').is_some_and(|(n, v)| {
            n.trim().eq_ignore_ascii_case("transfer-encoding")
                && !v.trim().eq_ignore_ascii_case("identity")
        })
    });
    if chunked {
        // rspamd sends a length; a proxy in front that re-frames the answer is not supported.
        return Err(RspamdReplyError::Garbled);
    }
    let mut body = &reply[end + 4..];
    if let Some(len) = content_length(head) {
        body = body.get(..len).ok_or(RspamdReplyError::Garbled)?;
    }
    Ok(Response {
        status,
        reason: words.next().unwrap_or(""),
        body,
    })
}

/// The failure of a non-2xx answer: rspamd's JSON `error`, or the reason phrase.
fn failure(r: &Response<'_>) -> RspamdReplyError {
    RspamdReplyError::Failed {
        status: r.status,
        text: shown(&error_text(r)),
    }
}

fn error_text(r: &Response<'_>) -> String {
    #[derive(Deserialize)]
    struct ErrorJson {
        error: String,
    }
    serde_json::from_slice::<ErrorJson>(r.body)
        .map(|e| e.error)
        .unwrap_or_else(|_| r.reason.to_string())
}

/// At most 200 printable characters: the text goes into the log and a header.
fn shown(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// Parses the answer to `/checkv2`. Never panics.
pub fn parse_check_reply(reply: &[u8]) -> Result<CheckReply, RspamdReplyError> {
    #[derive(Deserialize)]
    struct CheckJson {
        score: f64,
        required_score: Option<f64>,
        action: Option<String>,
        #[serde(default)]
        symbols: BTreeMap<String, serde::de::IgnoredAny>,
    }
    let r = parse_response(reply)?;
    if r.status != 200 {
        return Err(failure(&r));
    }
    let json: CheckJson = serde_json::from_slice(r.body).map_err(|_| RspamdReplyError::Garbled)?;
    if !json.score.is_finite() {
        return Err(RspamdReplyError::Garbled);
    }
    Ok(CheckReply {
        score: json.score,
        required_score: json.required_score.filter(|s| s.is_finite()),
        action: json.action.map(|a| shown(&a)),
        symbols: json
            .symbols
            .into_keys()
            .filter(|s| !s.is_empty() && s.len() <= 100 && s.chars().all(|c| c.is_ascii_graphic()))
            .collect(),
    })
}

/// Parses the answer to a learn request. Never panics.
///
/// rspamd 3.4 says `200 {"success":true}` when it learned, `404` when the message was learned
/// already, `204` when it has too few words to learn from; those two are not failures (spamd
/// says "did nothing" for the same).
pub fn parse_learn_reply(reply: &[u8]) -> Result<LearnReply, RspamdReplyError> {
    #[derive(Deserialize)]
    struct LearnJson {
        success: bool,
    }
    let r = parse_response(reply)?;
    match r.status {
        200 => match serde_json::from_slice::<LearnJson>(r.body) {
            Ok(LearnJson { success: true }) => Ok(LearnReply::Learned),
            Ok(LearnJson { success: false }) => Ok(LearnReply::Declined(shown(&error_text(&r)))),
            Err(_) => Err(RspamdReplyError::Garbled),
        },
        204 | 404 => Ok(LearnReply::Declined(shown(&error_text(&r)))),
        _ => Err(failure(&r)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An answer as rspamd 3.4 words it.
    fn answer(status: &str, body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {status}\r\nConnection: close\r\nServer: rspamd/3.4\r\n\
Content-Length: {}\r\nContent-Type: application/json\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    #[test]
    fn rspamd_scores() {
        let gtube = answer(
            "200 OK",
            r#"{"is_skipped":true,"score":15.0,"required_score":15.0,"action":"reject","symbols":{"GTUBE":{"name":"GTUBE","score":0.0,"metric_score":0.0}},"messages":{"smtp_message":"Gtube pattern"},"message-id":"undef","time_real":0.2}"#,
        );
        assert!(is_complete(&gtube));
        assert!(!is_complete(&gtube[..gtube.len() - 1]));
        let reply = parse_check_reply(&gtube).unwrap();
        assert_eq!(reply.score, 15.0);
        assert_eq!(reply.required_score, Some(15.0));
        assert_eq!(reply.action.as_deref(), Some("reject"));
        assert_eq!(reply.symbols, ["GTUBE"]);
        let ham = answer(
            "200 OK",
            r#"{"score":-0.5,"required_score":15.0,"action":"no action","symbols":{"MIME_GOOD":{},"ARC_NA":{}}}"#,
        );
        let reply = parse_check_reply(&ham).unwrap();
        assert_eq!((reply.score, reply.symbols.len()), (-0.5, 2));
        assert_eq!(reply.symbols, ["ARC_NA", "MIME_GOOD"]);
    }

    #[test]
    fn rspamd_errors_and_junk_are_not_verdicts() {
        let invalid = answer(
            "500 invalid command",
            r#"{"error":"invalid command","error_domain":"protocol-error"}"#,
        );
        assert_eq!(
            parse_check_reply(&invalid),
            Err(RspamdReplyError::Failed {
                status: 500,
                text: "invalid command".into()
            })
        );
        for junk in [
            &b""[..],
            b"HTTP/1.1 200 OK\r\n",
            b"SPAMD/1.1 0 EX_OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n\r\nnot json",
            b"HTTP/1.1 200 OK\r\n\r\n{\"score\":\"high\"}",
            b"HTTP/1.1 200 OK\r\n\r\n{\"score\":1e999}",
            b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"score\":1}",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n{\"score\":1}\r\n0\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n{\"score\":1}",
            b"\xff\xfe\r\n\r\n",
        ] {
            assert!(parse_check_reply(junk).is_err(), "{junk:?}");
        }
        // Without a length, the answer is what came before rspamd closed.
        assert_eq!(
            parse_check_reply(b"HTTP/1.0 200 OK\r\n\r\n{\"score\":2.5}")
                .unwrap()
                .score,
            2.5
        );
    }

    #[test]
    fn rspamd_learns_or_says_why_not() {
        assert_eq!(
            parse_learn_reply(&answer("200 OK", r#"{"success":true}"#)),
            Ok(LearnReply::Learned)
        );
        let again = answer(
            "404 <1@spam.example> has been already learned as spam, ignore it",
            r#"{"error":"<1@spam.example> has been already learned as spam, ignore it"}"#,
        );
        assert_eq!(
            parse_learn_reply(&again),
            Ok(LearnReply::Declined(
                "<1@spam.example> has been already learned as spam, ignore it".into()
            ))
        );
        let short = b"HTTP/1.1 204 <undef> contains less tokens than required for bayes classifier: 3 < 11\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            parse_learn_reply(short),
            Ok(LearnReply::Declined(
                "<undef> contains less tokens than required for bayes classifier: 3 < 11".into()
            ))
        );
        let refused = answer("403 Unauthorized", r#"{"error":"Unauthorized"}"#);
        assert_eq!(
            parse_learn_reply(&refused),
            Err(RspamdReplyError::Failed {
                status: 403,
                text: "Unauthorized".into()
            })
        );
    }

    #[test]
    fn requests_carry_the_envelope_but_never_a_broken_field() {
        let facts = Facts {
            client: Some("192.0.2.1".parse().unwrap()),
            helo: "mx.example\r\nX-Evil: 1".into(),
            sender: "a@example.com".into(),
            recipients: vec!["b@example.com".into(), "c@example.com".into()],
            user: None,
        };
        let head = String::from_utf8(check_request("127.0.0.1:11334", 12, &facts, None)).unwrap();
        assert_eq!(
            head,
            "POST /checkv2 HTTP/1.1\r\nHost: 127.0.0.1:11334\r\nContent-Length: 12\r\n\
Connection: close\r\nIP: 192.0.2.1\r\nFrom: <a@example.com>\r\nRcpt: <b@example.com>\r\n\
Rcpt: <c@example.com>\r\n\r\n"
        );
        let learn = String::from_utf8(learn_request("[::1]:11334", 5, Class::Ham, None)).unwrap();
        assert!(learn.starts_with("POST /learnham HTTP/1.1\r\n"), "{learn}");
        assert!(learn.ends_with("Content-Length: 5\r\nConnection: close\r\n\r\n"));
        let with_password =
            String::from_utf8(learn_request("[::1]:11334", 5, Class::Spam, Some("q1 w2"))).unwrap();
        assert!(
            with_password.ends_with("Connection: close\r\nPassword: q1 w2\r\n\r\n"),
            "{with_password}"
        );
        let checked =
            String::from_utf8(check_request("[::1]:11334", 5, &facts, Some("q1"))).unwrap();
        assert!(
            checked.contains("\r\nPassword: q1\r\nIP: 192.0.2.1\r\n"),
            "{checked}"
        );
    }

    proptest! {
        #[test]
        fn any_bytes_parse_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_check_reply(&bytes);
            let _ = parse_learn_reply(&bytes);
            let _ = is_complete(&bytes);
        }

        #[test]
        fn any_body_after_a_good_head_parses_without_panic(body in "\\PC{0,200}") {
            let reply = answer("200 OK", &body);
            let _ = parse_check_reply(&reply);
            let _ = parse_learn_reply(&reply);
        }

        #[test]
        fn scores_come_back(score in -100.0f64..2000.0) {
            let reply = answer("200 OK", &format!("{{\"score\":{score},\"symbols\":{{}}}}"));
            // serde_json's fast float parse may differ in the last bit.
            prop_assert!((parse_check_reply(&reply).unwrap().score - score).abs() < 1e-9);
        }
    }
}
