//! One function per kind of line. They take the facts and return the line without the
//! `program[pid]:` prefix (the sink adds that), exactly as Postfix's qmgr, smtp, lmtp and bounce
//! daemons word them, and the router's line for a forwarding target it leaves out.

use std::borrow::Cow;
use std::fmt;
use std::fmt::Write as _;
use std::time::Duration;

use crate::mail::QueueId;

/// What became of a recipient in one attempt (`status=` in the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Sent,
    Deferred,
    Bounced,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Sent => "sent",
            Status::Deferred => "deferred",
            Status::Bounced => "bounced",
        }
    }
}

/// Postfix's `delays=a/b/c/d`: before the queue manager, in the queue manager (waiting, deferred),
/// connection setup (DNS, greeting, EHLO, TLS), and transmission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delays {
    pub before_queue: Duration,
    pub in_queue: Duration,
    pub connection: Duration,
    pub transmission: Duration,
}

impl Delays {
    /// `delay=`: the whole time since arrival.
    pub fn total(&self) -> Duration {
        self.before_queue + self.in_queue + self.connection + self.transmission
    }
}

/// The facts of one `to=` line: one recipient, one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryLine<'a> {
    pub qid: QueueId,
    pub to: &'a str,
    /// The address the client gave, when routing rewrote it (`orig_to=`).
    pub orig_to: Option<&'a str>,
    /// `host[ip]:port`, or `none` when no connection was made.
    pub relay: Option<&'a str>,
    pub delays: Delays,
    /// Enhanced status code, e.g. `2.0.0`.
    pub dsn: &'a str,
    pub status: Status,
    /// The text in parentheses: the next hop's reply or why there was none.
    pub detail: &'a str,
}

/// `QID: to=<rcpt>, relay=host[ip]:port, delay=1.2, delays=0.01/0/0.3/0.9, dsn=2.0.0, status=sent (250 ...)`
pub fn delivery_line(f: &DeliveryLine<'_>) -> String {
    let mut s = String::with_capacity(128 + f.detail.len());
    let _ = write!(s, "{}: to=<{}>, ", f.qid, clean(f.to));
    if let Some(o) = f.orig_to {
        let _ = write!(s, "orig_to=<{}>, ", clean(o));
    }
    let _ = write!(
        s,
        "relay={}, delay={}, delays={}/{}/{}/{}, dsn={}, status={} ({})",
        f.relay.map(clean).unwrap_or_else(|| "none".into()),
        secs(f.delays.total()),
        secs(f.delays.before_queue),
        secs(f.delays.in_queue),
        secs(f.delays.connection),
        secs(f.delays.transmission),
        clean(f.dsn),
        f.status.as_str(),
        clean(f.detail),
    );
    s
}

/// `QID: from=<sender>, size=1234, nrcpt=2 (queue active)`: the message entered the active queue.
pub fn active_line(qid: QueueId, from: &str, size: u64, nrcpt: usize) -> String {
    format!(
        "{qid}: from=<{}>, size={size}, nrcpt={nrcpt} (queue active)",
        clean(from)
    )
}

/// `QID: removed`: the message left the queue for good.
pub fn removed_line(qid: QueueId) -> String {
    format!("{qid}: removed")
}

/// `QID: from=<sender>, status=expired, returned to sender`: the lifetime ran out.
/// For a bounce (null sender) Postfix drops it instead and says so.
pub fn expired_line(qid: QueueId, from: &str) -> String {
    if from.is_empty() {
        format!("{qid}: from=<>, status=expired, dropped (undeliverable bounce)")
    } else {
        format!(
            "{qid}: from=<{}>, status=expired, returned to sender",
            clean(from)
        )
    }
}

/// `<rcpt> -> <target>: dropped from expansion: 5.1.1 ...`: one target of a forwarding list cannot
/// be delivered to, so the router leaves it out and the rest of the list still gets the mail.
pub fn dropped_from_expansion_line(rcpt: &str, target: &str, reason: &dyn fmt::Display) -> String {
    format!(
        "<{}> -> <{}>: dropped from expansion: {reason}",
        clean(rcpt),
        clean(target)
    )
}

/// Which notification a message caused, as the bounce daemon words it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notification {
    NonDelivery,
    Delay,
    Success,
}

/// `QID: sender non-delivery notification: NEWQID`.
pub fn notification_line(qid: QueueId, kind: Notification, new: QueueId) -> String {
    let what = match kind {
        Notification::NonDelivery => "non-delivery",
        Notification::Delay => "delay",
        Notification::Success => "delivery status",
    };
    format!("{qid}: sender {what} notification: {new}")
}

/// Seconds as Postfix prints them: two significant decimals under 10 s, whole above 100.
/// Written straight into the line: a `String` per figure was five allocations per `to=` line.
fn secs(d: Duration) -> Secs {
    Secs(d)
}

struct Secs(Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_secs_f64();
        if s == 0.0 {
            f.write_str("0")
        } else if s < 0.1 {
            // 0.004 rounds to "0.00": Postfix writes that as plain 0, never "0.".
            let mut t = Figure::default();
            write!(t, "{s:.2}")?;
            let t = t.as_str().trim_end_matches('0').trim_end_matches('.');
            f.write_str(if t.is_empty() { "0" } else { t })
        } else if s < 10.0 {
            let mut t = Figure::default();
            write!(t, "{s:.1}")?;
            f.write_str(t.as_str().strip_suffix(".0").unwrap_or(t.as_str()))
        } else {
            write!(f, "{}", s.round() as u64)
        }
    }
}

/// A figure formatted on the stack, to be trimmed before it is written.
#[derive(Default)]
struct Figure {
    bytes: [u8; 24],
    len: usize,
}

impl Figure {
    fn as_str(&self) -> &str {
        std::str::from_utf8(self.bytes.get(..self.len).unwrap_or_default()).unwrap_or_default()
    }
}

impl fmt::Write for Figure {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.bytes
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Text from peers goes into the log: no line breaks or control characters may split a line.
/// Most text has none, and is then not copied.
pub(super) fn clean_with(s: &str, with: char) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| if c.is_control() { with } else { c })
            .collect(),
    )
}

fn clean(s: &str) -> Cow<'_, str> {
    clean_with(s, ' ')
}

#[cfg(test)]
mod tests {
    #[test]
    fn peer_text_cannot_split_a_line_and_clean_text_is_not_copied() {
        use super::clean;
        use std::borrow::Cow;
        assert_eq!(clean("a\r\nb\tc"), "a  b c");
        assert!(matches!(clean("user@example.com"), Cow::Borrowed(_)));
    }

    #[test]
    fn short_delays_print_as_postfix_does() {
        use super::secs;
        use std::time::Duration;
        assert_eq!(secs(Duration::from_micros(4000)).to_string(), "0");
        assert_eq!(secs(Duration::from_millis(20)).to_string(), "0.02");
        assert_eq!(secs(Duration::from_millis(300)).to_string(), "0.3");
        assert_eq!(secs(Duration::from_secs(12)).to_string(), "12");
    }

    use super::*;

    fn qid() -> QueueId {
        QueueId::new(1_795_000_000_000, 7)
    }

    #[test]
    fn sent_line_has_postfix_shape() {
        let line = delivery_line(&DeliveryLine {
            qid: qid(),
            to: "bob@example.com",
            orig_to: None,
            relay: Some("mx.example.com[192.0.2.1]:25"),
            delays: Delays {
                before_queue: Duration::from_millis(20),
                in_queue: Duration::ZERO,
                connection: Duration::from_millis(300),
                transmission: Duration::from_millis(900),
            },
            dsn: "2.0.0",
            status: Status::Sent,
            detail: "250 2.0.0 Ok: queued as 4Xyz",
        });
        assert_eq!(
            line,
            format!(
                "{}: to=<bob@example.com>, relay=mx.example.com[192.0.2.1]:25, delay=1.2, \
                 delays=0.02/0/0.3/0.9, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4Xyz)",
                qid()
            )
        );
    }

    #[test]
    fn deferred_line_without_relay_says_none_and_keeps_one_line() {
        let line = delivery_line(&DeliveryLine {
            qid: qid(),
            to: "a@b.example",
            orig_to: Some("alias@b.example"),
            relay: None,
            delays: Delays {
                in_queue: Duration::from_secs(4000),
                ..Delays::default()
            },
            dsn: "4.4.1",
            status: Status::Deferred,
            detail: "connect to b.example[192.0.2.9]:25: Connection refused\r\nINJECTED",
        });
        assert!(line.contains("orig_to=<alias@b.example>, relay=none, delay=4000,"));
        assert!(line.contains("status=deferred (connect to"));
        assert!(!line.contains('\n') && !line.contains('\r'));
    }

    #[test]
    fn queue_lines() {
        let q = qid();
        assert_eq!(
            active_line(q, "a@example.com", 1234, 2),
            format!("{q}: from=<a@example.com>, size=1234, nrcpt=2 (queue active)")
        );
        assert_eq!(removed_line(q), format!("{q}: removed"));
        assert!(expired_line(q, "a@x.example").ends_with("status=expired, returned to sender"));
        assert!(expired_line(q, "").contains("from=<>"));
        let n = QueueId::new(1_795_000_000_001, 0);
        assert_eq!(
            notification_line(q, Notification::NonDelivery, n),
            format!("{q}: sender non-delivery notification: {n}")
        );
    }
}
