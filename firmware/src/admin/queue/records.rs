//! The records of one queued message in time order, for `postern queue show`: its arrival, each
//! recipient's outcome, who waited after each delivery round and why, and every deferral, hold,
//! release, requeue and flush, each with the time its spool record carries (unknown for records
//! written by firmware that kept no times).

use std::fmt::Write;

use super::json_str;
use crate::mail::{QueueState, RecipientOutcome, Relay, StateEvent};
use crate::smtp::received::iso8601_utc;
use crate::spool::MessageHistory;

/// What one record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// The message was queued.
    Arrival {
        sender: String,
        size: u64,
        nrcpt: usize,
    },
    /// A recipient reached its final outcome.
    Outcome {
        to: Rcpt,
        outcome: RecipientOutcome,
    },
    /// A recipient was tried, or held back, and waits.
    Waiting {
        to: Rcpt,
        reason: String,
        /// Who gave the answer; None where the record does not say.
        relay: Option<Relay>,
    },
    Deferred {
        until: u64,
        reason: String,
    },
    Held,
    Released,
    Requeued,
    /// Made active by `queue flush`.
    Flushed,
    /// Earlier state changes the spool no longer keeps.
    Omitted(u32),
}

/// A recipient as the log names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rcpt {
    pub address: String,
    pub original: Option<String>,
}

/// One record: when (Unix seconds; None unknown) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub at: Option<u64>,
    pub what: What,
}

/// Every record of the message, oldest first. Each outcome is placed among the state changes by
/// how many came before it (the spool counts them), so that records of one second keep the order
/// they were written in; outcomes written by firmware that kept no times come last.
pub fn timeline(h: &MessageHistory) -> Vec<Record> {
    let e = &h.summary.envelope;
    let rcpt = |i: usize| {
        e.recipients.get(i).map(|r| Rcpt {
            address: r.address.clone(),
            original: r.original.clone(),
        })
    };
    let mut out = vec![Record {
        at: Some(e.arrival),
        what: What::Arrival {
            sender: e.sender.clone(),
            size: h.summary.size,
            nrcpt: e.recipients.len(),
        },
    }];
    let mut timed = Vec::new();
    let mut untimed = Vec::new();
    for (i, outcome) in h.summary.outcomes.iter().enumerate() {
        let (Some(outcome), Some(to)) = (outcome, rcpt(i)) else {
            continue;
        };
        let what = What::Outcome {
            to,
            outcome: outcome.clone(),
        };
        match h.outcome_times.get(i).copied().flatten() {
            Some(t) => timed.push((
                t.after_changes,
                Record {
                    at: Some(t.at),
                    what,
                },
            )),
            None => untimed.push(Record { at: None, what }),
        }
    }
    timed.sort_by_key(|(after, r)| (*after, r.at));
    let mut timed = timed.into_iter().peekable();
    let mut outcomes_up_to = |version: u32, out: &mut Vec<Record>| {
        while let Some((_, r)) = timed.next_if(|(after, _)| *after <= version) {
            out.push(r);
        }
    };
    if h.changes_before > 0 {
        out.push(Record {
            at: None,
            what: What::Omitted(h.changes_before),
        });
    }
    outcomes_up_to(h.changes_before, &mut out);
    let mut before = QueueState::Active;
    for (i, change) in h.changes.iter().enumerate() {
        out.extend(change_records(change, &before, &rcpt));
        before = change.state.clone();
        outcomes_up_to(h.changes_before + i as u32 + 1, &mut out);
    }
    outcomes_up_to(u32::MAX, &mut out);
    out.extend(untimed);
    out
}

/// A state change as records: who waits (a deferral), then the change itself, named by what it
/// changed from as postsuper names it.
fn change_records(
    c: &StateEvent,
    before: &QueueState,
    rcpt: &impl Fn(usize) -> Option<Rcpt>,
) -> Vec<Record> {
    let mut out: Vec<Record> = c
        .waiting
        .iter()
        .flat_map(|w| {
            w.recipients.iter().filter_map(|&i| {
                Some(Record {
                    at: c.at,
                    what: What::Waiting {
                        to: rcpt(i as usize)?,
                        reason: w.reason.clone(),
                        relay: w.relay.clone(),
                    },
                })
            })
        })
        .collect();
    let what = match (&c.state, before) {
        (QueueState::Deferred { until, reason }, _) => What::Deferred {
            until: *until,
            reason: reason.clone(),
        },
        (QueueState::Hold, _) => What::Held,
        (QueueState::Active, _) if c.flushed => What::Flushed,
        (QueueState::Active, QueueState::Hold) => What::Released,
        (QueueState::Active, _) => What::Requeued,
    };
    out.push(Record { at: c.at, what });
    out
}

/// Flash holds what servers said: no control character reaches a terminal.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect()
}

fn to_text(to: &Rcpt) -> String {
    match &to.original {
        Some(o) => format!("to=<{}>, orig_to=<{}>", clean(&to.address), clean(o)),
        None => format!("to=<{}>", clean(&to.address)),
    }
}

/// One line per record, the time first (`-` when unknown), the rest in the mail log's words.
pub fn text(records: &[Record]) -> String {
    let mut out = String::new();
    for r in records {
        let at = r.at.map_or_else(|| "-".to_string(), iso8601_utc);
        let what = match &r.what {
            What::Arrival {
                sender,
                size,
                nrcpt,
            } => format!(
                "from=<{}>, size={size}, nrcpt={nrcpt} (queued)",
                clean(sender)
            ),
            What::Outcome {
                to,
                outcome: RecipientOutcome::Delivered { relay, reply },
            } => format!(
                "{}, relay={}, status=sent ({})",
                to_text(to),
                clean(relay),
                clean(reply)
            ),
            What::Outcome {
                to,
                outcome:
                    RecipientOutcome::Failed {
                        status,
                        diagnostic,
                        remote_mta,
                    },
            } => format!(
                "{}, relay={}, dsn={}, status=bounced ({})",
                to_text(to),
                remote_mta.as_deref().map_or("none".into(), clean),
                clean(status),
                clean(diagnostic)
            ),
            What::Waiting { to, reason, relay } => {
                let relay = relay
                    .as_ref()
                    .map(|r| format!(", relay={}", clean(r.as_str())))
                    .unwrap_or_default();
                format!(
                    "{}{relay}, status=deferred ({})",
                    to_text(to),
                    clean(reason)
                )
            }
            What::Deferred { until, reason } => {
                format!("deferred until {} ({})", iso8601_utc(*until), clean(reason))
            }
            What::Held => "placed on hold".into(),
            What::Released => "released from hold".into(),
            What::Requeued => "requeued".into(),
            What::Flushed => "flushed".into(),
            What::Omitted(n) => format!("({n} earlier state changes no longer kept)"),
        };
        let _ = writeln!(out, "{at:<25} {what}");
    }
    out
}

/// The records as a JSON array of objects: `time` (Unix seconds or null), `type`, and what each
/// type says.
pub fn json(records: &[Record]) -> String {
    let items: Vec<String> = records.iter().map(json_record).collect();
    format!("[{}]", items.join(", "))
}

fn json_record(r: &Record) -> String {
    let time = r.at.map_or_else(|| "null".to_string(), |t| t.to_string());
    let to = |to: &Rcpt| match &to.original {
        Some(o) => format!(
            "\"recipient\": {}, \"orig_to\": {}",
            json_str(&to.address),
            json_str(o)
        ),
        None => format!("\"recipient\": {}", json_str(&to.address)),
    };
    let rest = match &r.what {
        What::Arrival {
            sender,
            size,
            nrcpt,
        } => format!(
            "\"type\": \"arrival\", \"sender\": {}, \"message_size\": {size}, \"nrcpt\": {nrcpt}",
            json_str(sender)
        ),
        What::Outcome {
            to: t,
            outcome: RecipientOutcome::Delivered { relay, reply },
        } => format!(
            "\"type\": \"recipient\", {}, \"status\": \"sent\", \"relay\": {}, \"reason\": {}",
            to(t),
            json_str(relay),
            json_str(reply)
        ),
        What::Outcome {
            to: t,
            outcome:
                RecipientOutcome::Failed {
                    status,
                    diagnostic,
                    remote_mta,
                },
        } => format!(
            "\"type\": \"recipient\", {}, \"status\": \"bounced\", \"relay\": {}, \"dsn\": {}, \"reason\": {}",
            to(t),
            remote_mta.as_deref().map_or("null".into(), json_str),
            json_str(status),
            json_str(diagnostic)
        ),
        What::Waiting {
            to: t,
            reason,
            relay,
        } => {
            // Like a bounce's: null when no server answered; absent where the record does not say.
            let relay = match relay {
                Some(Relay::Host(h)) => format!(", \"relay\": {}", json_str(h)),
                Some(Relay::Nobody) => ", \"relay\": null".into(),
                None => String::new(),
            };
            format!(
                "\"type\": \"recipient\", {}, \"status\": \"deferred\"{relay}, \"reason\": {}",
                to(t),
                json_str(reason)
            )
        }
        What::Deferred { until, reason } => format!(
            "\"type\": \"deferred\", \"until\": {until}, \"reason\": {}",
            json_str(reason)
        ),
        What::Held => "\"type\": \"hold\"".into(),
        What::Released => "\"type\": \"release\"".into(),
        What::Requeued => "\"type\": \"requeue\"".into(),
        What::Flushed => "\"type\": \"flush\"".into(),
        What::Omitted(n) => format!("\"type\": \"omitted\", \"count\": {n}"),
    };
    format!("{{\"time\": {time}, {rest}}}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::{BodyType, ClientInfo, Envelope, Notify, QueueId, Recipient, Relay, Waiting};
    use crate::spool::{MessageSummary, OutcomeTime};

    const T: u64 = 1_795_253_464;

    fn history() -> MessageHistory {
        let envelope = Envelope {
            sender: "a@example.com".into(),
            recipients: (0..2)
                .map(|i| Recipient {
                    address: format!("user{i}@example.org"),
                    original: None,
                    orcpt: None,
                    notify: Notify::DEFAULT,
                    next_hop: "smtp:example.org".parse().unwrap(),
                })
                .collect(),
            ret: None,
            envid: None,
            body_type: BodyType::SevenBit,
            smtputf8: false,
            arrival: T,
            client: ClientInfo::default(),
        };
        MessageHistory {
            summary: MessageSummary {
                qid: QueueId(1),
                envelope,
                outcomes: vec![
                    Some(RecipientOutcome::Delivered {
                        relay: "mx.example.org[192.0.2.1]:25".into(),
                        reply: "250 2.0.0 Ok".into(),
                    }),
                    None,
                ],
                state: QueueState::Active,
                size: 5,
            },
            outcome_times: vec![
                Some(OutcomeTime {
                    at: T + 600,
                    after_changes: 3,
                }),
                None,
            ],
            changes: vec![
                StateEvent {
                    at: Some(T + 1),
                    state: QueueState::Deferred {
                        until: T + 301,
                        reason: "connect refused".into(),
                    },
                    waiting: vec![Waiting {
                        recipients: vec![0, 1],
                        reason: "connect refused".into(),
                        relay: Some(Relay::Nobody),
                    }],
                    flushed: false,
                },
                StateEvent {
                    at: Some(T + 100),
                    state: QueueState::Hold,
                    waiting: Vec::new(),
                    flushed: false,
                },
                StateEvent {
                    at: Some(T + 200),
                    state: QueueState::Active,
                    waiting: Vec::new(),
                    flushed: false,
                },
            ],
            changes_before: 0,
        }
    }

    #[test]
    fn records_read_in_time_order_in_the_log_words() {
        let t = text(&timeline(&history()));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines,
            [
                "2026-11-21T09:31:04+00:00 from=<a@example.com>, size=5, nrcpt=2 (queued)",
                "2026-11-21T09:31:05+00:00 to=<user0@example.org>, relay=none, status=deferred (connect refused)",
                "2026-11-21T09:31:05+00:00 to=<user1@example.org>, relay=none, status=deferred (connect refused)",
                "2026-11-21T09:31:05+00:00 deferred until 2026-11-21T09:36:05+00:00 (connect refused)",
                "2026-11-21T09:32:44+00:00 placed on hold",
                "2026-11-21T09:34:24+00:00 released from hold",
                "2026-11-21T09:41:04+00:00 to=<user0@example.org>, relay=mx.example.org[192.0.2.1]:25, status=sent (250 2.0.0 Ok)",
            ]
        );
    }

    #[test]
    fn a_record_without_a_time_shows_a_dash() {
        let mut h = history();
        h.outcome_times[0] = None;
        h.changes[1].at = None;
        h.changes[1].state = QueueState::Active;
        h.changes_before = 3;
        let t = text(&timeline(&h));
        assert!(
            t.contains("\n-                         to=<user0@example.org>, relay="),
            "{t}"
        );
        assert!(t.contains("-                         requeued\n"), "{t}");
        assert!(
            t.contains("(3 earlier state changes no longer kept)"),
            "{t}"
        );
        let j = json(&timeline(&h));
        assert!(j.contains("{\"time\": null, \"type\": \"requeue\"}"), "{j}");
    }

    #[test]
    fn records_of_one_second_keep_the_order_they_were_written_in() {
        let mut h = history();
        for c in &mut h.changes {
            c.at = Some(T);
        }
        h.outcome_times[0] = Some(OutcomeTime {
            at: T,
            after_changes: 1,
        });
        let t = text(&timeline(&h));
        let what: Vec<&str> = t.lines().map(|l| &l[26..]).collect();
        assert_eq!(
            what[3],
            "deferred until 2026-11-21T09:36:05+00:00 (connect refused)"
        );
        assert!(what[4].contains("status=sent"), "{t}");
        assert_eq!(what[5..], ["placed on hold", "released from hold"]);
    }

    #[test]
    fn json_names_each_record() {
        let j = json(&timeline(&history()));
        assert!(
            j.starts_with("[{\"time\": 1795253464, \"type\": \"arrival\""),
            "{j}"
        );
        assert!(
            j.contains("{\"time\": 1795253564, \"type\": \"hold\"}"),
            "{j}"
        );
        assert!(j.contains("\"type\": \"release\""), "{j}");
        assert!(
            j.contains("\"status\": \"sent\", \"relay\": \"mx.example.org[192.0.2.1]:25\""),
            "{j}"
        );
    }

    #[test]
    fn a_deferral_names_its_relay_and_a_flush_is_a_flush() {
        let mut h = history();
        h.changes[0].waiting = vec![
            Waiting {
                recipients: vec![0],
                reason: "host mx[192.0.2.1] said: 451 4.7.1 greylisted".into(),
                relay: Some(Relay::Host("mx[192.0.2.1]:25".into())),
            },
            // As firmware that kept no relay wrote it.
            Waiting {
                recipients: vec![1],
                reason: "connect refused".into(),
                relay: None,
            },
        ];
        h.changes[1].state = QueueState::Active;
        h.changes[1].flushed = true;
        let t = text(&timeline(&h));
        assert!(
            t.contains(" to=<user0@example.org>, relay=mx[192.0.2.1]:25, status=deferred (host mx[192.0.2.1] said: 451 4.7.1 greylisted)\n"),
            "{t}"
        );
        assert!(
            t.contains(" to=<user1@example.org>, status=deferred (connect refused)\n"),
            "{t}"
        );
        assert!(t.contains("09:32:44+00:00 flushed\n"), "{t}");
        assert!(t.contains("09:34:24+00:00 requeued\n"), "{t}");
        let j = json(&timeline(&h));
        assert!(
            j.contains("\"status\": \"deferred\", \"relay\": \"mx[192.0.2.1]:25\", \"reason\""),
            "{j}"
        );
        assert!(
            j.contains(
                "\"recipient\": \"user1@example.org\", \"status\": \"deferred\", \"reason\""
            ),
            "{j}"
        );
        assert!(j.contains("\"type\": \"flush\""), "{j}");
        h.changes[0].waiting[1].relay = Some(Relay::Nobody);
        let j = json(&timeline(&h));
        assert!(
            j.contains(
                "\"status\": \"deferred\", \"relay\": null, \"reason\": \"connect refused\""
            ),
            "{j}"
        );
    }

    #[test]
    fn control_characters_from_flash_stay_off_the_terminal() {
        let mut h = history();
        h.changes[0].waiting[0].reason = "evil\x1b[2Jreason\r\n".into();
        let t = text(&timeline(&h));
        assert!(!t.contains('\x1b') && t.contains("evil_[2Jreason__"), "{t}");
    }
}
