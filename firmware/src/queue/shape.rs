//! qshape's table: queued mail by domain and age, the first thing a Postfix admin looks at when a
//! queue grows ("is it one destination, and since when?").
//!
//! Columns are qshape's age buckets in minutes (under 5, under 10, ... under 1280, older); rows are
//! recipient domains, counting recipients still to deliver (or, by sender, sender domains counting
//! messages, as `qshape -s` does), biggest first, under a TOTAL row.

use std::collections::HashMap;
use std::fmt::{self, Write};

use super::filter::{domain_of, pending_addresses};
use super::manager::MessageView;
use crate::mail::Envelope;

/// qshape's bucket bounds in minutes; a last column holds everything older.
pub const BUCKETS: [u64; 9] = [5, 10, 20, 40, 80, 160, 320, 640, 1280];

/// Rows by recipient domain or by sender domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeBy {
    Recipient,
    Sender,
}

/// One row: a total and one count per age bucket (`BUCKETS.len() + 1` of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeRow {
    pub domain: String,
    pub total: u64,
    pub counts: Vec<u64>,
}

impl ShapeRow {
    fn new(domain: String) -> ShapeRow {
        ShapeRow {
            domain,
            total: 0,
            counts: vec![0; BUCKETS.len() + 1],
        }
    }

    fn add(&mut self, bucket: usize, n: u64) {
        self.total += n;
        if let Some(c) = self.counts.get_mut(bucket) {
            *c += n;
        }
    }
}

/// The table: TOTAL first, then one row per domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub total: ShapeRow,
    pub rows: Vec<ShapeRow>,
}

/// The age bucket of a message `age` seconds old.
fn bucket(age: u64) -> usize {
    let minutes = age / 60;
    BUCKETS
        .iter()
        .position(|&b| minutes < b)
        .unwrap_or(BUCKETS.len())
}

/// The shape of these messages at `now` (Unix seconds).
pub fn shape<'a>(
    messages: impl IntoIterator<Item = (&'a MessageView, &'a Envelope)>,
    by: ShapeBy,
    now: u64,
) -> Shape {
    let mut counter = ShapeCounter::new(by, now);
    for (view, envelope) in messages {
        counter.add(view, envelope);
    }
    counter.finish()
}

/// [`shape`] a message at a time: a big queue is counted as it is read, not held.
pub struct ShapeCounter {
    rows: HashMap<String, ShapeRow>,
    total: ShapeRow,
    by: ShapeBy,
    now: u64,
}

impl ShapeCounter {
    pub fn new(by: ShapeBy, now: u64) -> ShapeCounter {
        ShapeCounter {
            rows: HashMap::new(),
            total: ShapeRow::new("TOTAL".into()),
            by,
            now,
        }
    }

    pub fn add(&mut self, view: &MessageView, envelope: &Envelope) {
        let b = bucket(self.now.saturating_sub(view.arrival));
        let (rows, total) = (&mut self.rows, &mut self.total);
        let mut count = |key: String| {
            rows.entry(key.clone())
                .or_insert_with(|| ShapeRow::new(key))
                .add(b, 1);
            total.add(b, 1);
        };
        match self.by {
            ShapeBy::Sender if envelope.sender.is_empty() => count("MAILER-DAEMON".into()),
            ShapeBy::Sender => count(domain_of(&envelope.sender).to_ascii_lowercase()),
            ShapeBy::Recipient => pending_addresses(view, envelope)
                .for_each(|a| count(domain_of(a).to_ascii_lowercase())),
        }
    }

    pub fn finish(self) -> Shape {
        let mut rows: Vec<ShapeRow> = self.rows.into_values().collect();
        rows.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.domain.cmp(&b.domain)));
        Shape {
            total: self.total,
            rows,
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut heads = vec!["T".to_string()];
        heads.extend(BUCKETS.iter().map(|b| b.to_string()));
        heads.push(format!("{}+", BUCKETS[BUCKETS.len() - 1]));
        let all = || std::iter::once(&self.total).chain(&self.rows);
        let name_w = all().map(|r| r.domain.len()).max().unwrap_or(5);
        let widths: Vec<usize> = heads
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let widest = all()
                    .map(|r| {
                        let v = if i == 0 { r.total } else { r.counts[i - 1] };
                        v.to_string().len()
                    })
                    .max()
                    .unwrap_or(1);
                h.len().max(widest)
            })
            .collect();
        let mut line = format!("{:>name_w$}", "");
        for (h, w) in heads.iter().zip(&widths) {
            let _ = write!(line, " {h:>w$}");
        }
        writeln!(f, "{line}")?;
        for r in all() {
            let mut line = format!("{:>name_w$} {:>w$}", r.domain, r.total, w = widths[0]);
            for (c, w) in r.counts.iter().zip(&widths[1..]) {
                let _ = write!(line, " {c:>w$}");
            }
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::{ClientInfo, Notify, QueueId, QueueState, Recipient, Transport};
    use crate::queue::{RcptState, RcptView};

    fn msg(sender: &str, rcpts: &[&str], arrival: u64) -> (MessageView, Envelope) {
        let hop: Transport = "smtp:[127.0.0.1]:25".parse().unwrap();
        let env = Envelope {
            sender: sender.into(),
            recipients: rcpts
                .iter()
                .map(|a| Recipient {
                    address: (*a).into(),
                    original: None,
                    orcpt: None,
                    notify: Notify::DEFAULT,
                    next_hop: hop.clone(),
                })
                .collect(),
            ret: None,
            envid: None,
            body_type: Default::default(),
            smtputf8: false,
            arrival,
            client: ClientInfo::default(),
        };
        let view = MessageView {
            qid: QueueId(arrival),
            arrival,
            size: 1,
            null_sender: sender.is_empty(),
            state: QueueState::Active,
            next_attempt: None,
            attempts: 0,
            last_reason: None,
            recipients: (0..rcpts.len())
                .map(|index| RcptView {
                    index,
                    next_hop: hop.clone(),
                    state: RcptState::Pending,
                    last_reason: None,
                    last_relay: None,
                })
                .collect(),
        };
        (view, env)
    }

    #[test]
    fn buckets_are_qshapes() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(4 * 60 + 59), 0);
        assert_eq!(bucket(5 * 60), 1);
        assert_eq!(bucket(1279 * 60), 8);
        assert_eq!(bucket(1280 * 60), 9);
    }

    #[test]
    fn rows_count_recipients_by_domain_and_age() {
        let now = 1_000_000;
        let msgs = [
            msg("a@s.example", &["x@b.example", "y@B.example"], now - 60),
            msg("a@s.example", &["z@c.example"], now - 3000 * 60),
            msg("", &["x@b.example"], now - 15 * 60),
        ];
        let s = shape(msgs.iter().map(|(v, e)| (v, e)), ShapeBy::Recipient, now);
        assert_eq!(s.total.total, 4);
        assert_eq!(s.rows[0].domain, "b.example");
        assert_eq!(s.rows[0].total, 3);
        assert_eq!(s.rows[0].counts[0], 2);
        assert_eq!(s.rows[0].counts[2], 1);
        assert_eq!(s.rows[1].counts[9], 1);
        let text = s.to_string();
        let mut lines = text.lines();
        let head = lines.next().unwrap();
        assert!(head.trim_start().starts_with("T 5 10 20"), "{text}");
        assert!(head.ends_with("1280+"), "{text}");
        let total: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(
            total,
            [
                "TOTAL", "4", "2", "0", "1", "0", "0", "0", "0", "0", "0", "1"
            ]
        );

        let s = shape(msgs.iter().map(|(v, e)| (v, e)), ShapeBy::Sender, now);
        assert_eq!(s.total.total, 3);
        assert_eq!(
            (s.rows[0].domain.as_str(), s.rows[0].total),
            ("s.example", 2)
        );
        assert_eq!(s.rows[1].domain, "MAILER-DAEMON");
    }
}
