//! The content stage's verdict, one line per message, in amavisd-new's shape, so an admin who
//! greps `Blocked INFECTED` or `Passed SPAMMY` on a Zimbra MTA finds the same here:
//!
//! ```text
//! QID: Blocked INFECTED (Eicar-Test-Signature) {RejectedInbound}, [192.0.2.1] <a@x> -> <b@y>, Hits: -, size: 812, 35 ms
//! QID: Passed SPAMMY {RelayedTaggedInbound}, [192.0.2.1] <a@x> -> <b@y>, Hits: 7.1, size: 812, 1210 ms
//! ```

use std::net::IpAddr;
use std::time::Duration;

use crate::mail::QueueId;

/// The facts of one verdict.
#[derive(Debug, Clone)]
pub struct VerdictLine<'a> {
    pub qid: QueueId,
    /// `Blocked`, `Passed` or `Deferred`.
    pub action: &'a str,
    /// amavis's content category: `CLEAN`, `SPAMMY`, `SPAM`, `INFECTED`, `BANNED`, `UNCHECKED`,
    /// `LOOP`.
    pub category: &'a str,
    /// In parentheses after the category: the signature, the file name, the scanner's error.
    pub detail: Option<&'a str>,
    /// Where it went: `RejectedInbound`, `RelayedInbound`, `RelayedTaggedInbound`,
    /// `TempFailedInbound`.
    pub disposition: &'a str,
    pub client: Option<IpAddr>,
    pub sender: &'a str,
    pub recipients: &'a [&'a str],
    /// The spam score, when the spam scanner gave one.
    pub hits: Option<&'a str>,
    pub size: u64,
    pub elapsed: Duration,
}

pub fn verdict_line(v: &VerdictLine<'_>) -> String {
    let detail = v
        .detail
        .map(|d| format!(" ({})", clean(d)))
        .unwrap_or_default();
    let client = v.client.map(|ip| format!("[{ip}] ")).unwrap_or_default();
    let rcpts: Vec<String> = v
        .recipients
        .iter()
        .map(|r| format!("<{}>", clean(r)))
        .collect();
    format!(
        "{}: {} {}{detail} {{{}}}, {client}<{}> -> {}, Hits: {}, size: {}, {} ms",
        v.qid,
        v.action,
        v.category,
        v.disposition,
        clean(v.sender),
        rcpts.join(","),
        v.hits.unwrap_or("-"),
        v.size,
        v.elapsed.as_millis()
    )
}

fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amavis_shape() {
        let line = verdict_line(&VerdictLine {
            qid: QueueId(0x1234),
            action: "Blocked",
            category: "INFECTED",
            detail: Some("Eicar-Test-Signature"),
            disposition: "RejectedInbound",
            client: Some("192.0.2.1".parse().unwrap()),
            sender: "a@x.example",
            recipients: &["b@y.example", "c@y.example\r\n"],
            hits: None,
            size: 812,
            elapsed: Duration::from_millis(35),
        });
        assert!(
            line.ends_with(
                ": Blocked INFECTED (Eicar-Test-Signature) {RejectedInbound}, [192.0.2.1] \
<a@x.example> -> <b@y.example>,<c@y.example  >, Hits: -, size: 812, 35 ms"
            ),
            "{line}"
        );
    }
}
