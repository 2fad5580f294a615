//! `postern queue show`: one message as postcat shows a queue file. The envelope first (arrival,
//! sender, client, each recipient's outcome or the reason it waits), then every record in time
//! order with the time it carries (see [`records`]), then the headers, and the body when asked;
//! `--json` gives the same as one object.

use std::fmt::Write;

use super::super::Reply;
use super::json_str;
use super::records::{self, Record};
use crate::mail::{QueueId, QueueState, RecipientOutcome, Relay};
use crate::queue::runner::QueueHandle;
use crate::queue::{MessageView, QueueName};
use crate::smtp::received::rfc5322_date;
use crate::spool::{MessageHistory, SpoolHandle};

pub async fn show(
    spool: &SpoolHandle,
    queue: &QueueHandle,
    qid: &str,
    body: bool,
    json: bool,
) -> Reply {
    let id: QueueId = match qid.parse() {
        Ok(id) => id,
        Err(e) => return Reply::failed(format!("{e}\n")),
    };
    let view = queue.get(id).await;
    let stored = match spool.history(id).await {
        Ok(Some(m)) => m,
        Ok(None) => return Reply::failed(format!("{qid}: no such message in the queue\n")),
        Err(e) => return Reply::failed(format!("{qid}: {e}\n")),
    };
    let message = match spool.read_body(id).await {
        Ok(b) => b,
        Err(e) => return Reply::failed(format!("{qid}: message unreadable: {e}\n")),
    };
    let text = String::from_utf8_lossy(&message).replace("\r\n", "\n");
    let (headers, rest) = split_headers(&text);
    let timeline = records::timeline(&stored);
    if json {
        let rest = body.then_some(rest);
        return Reply::ok(show_json(&stored, view.as_ref(), &timeline, headers, rest) + "\n");
    }
    let queue_name = QueueName::of(&stored.summary.state);
    let mut out = envelope_text(&stored, view.as_ref());
    let _ = writeln!(out, "*** HISTORY {queue_name}/{id} ***");
    out.push_str(&records::text(&timeline));
    let _ = writeln!(out, "*** MESSAGE CONTENTS {queue_name}/{id} ***");
    out.push_str(headers);
    if !headers.ends_with('\n') {
        out.push('\n');
    }
    if body {
        out.push('\n');
        out.push_str(rest);
        if !rest.is_empty() && !rest.ends_with('\n') {
            out.push('\n');
        }
    }
    let _ = writeln!(out, "*** MESSAGE FILE END {queue_name}/{id} ***");
    Reply::ok(out)
}

/// The envelope records: what the message is now.
fn envelope_text(stored: &MessageHistory, view: Option<&MessageView>) -> String {
    let m = &stored.summary;
    let (id, e) = (m.qid, &m.envelope);
    let queue_name = QueueName::of(&m.state);
    let mut out = String::new();
    let _ = writeln!(out, "*** ENVELOPE RECORDS {queue_name}/{id} ***");
    let _ = writeln!(out, "queue_id: {id}");
    let _ = writeln!(out, "queue: {queue_name}");
    let _ = writeln!(out, "message_size: {}", m.size);
    let _ = writeln!(out, "message_arrival_time: {}", rfc5322_date(e.arrival));
    let _ = writeln!(out, "sender: <{}>", e.sender);
    if let Some(addr) = e.client.addr {
        let _ = writeln!(
            out,
            "client: {} [{addr}] helo={}",
            e.client.protocol, e.client.helo
        );
    }
    if let Some(user) = &e.client.auth {
        let _ = writeln!(out, "sasl_username: {user}");
    }
    if let Some(tls) = &e.client.tls {
        let _ = writeln!(out, "tls: {tls}");
    }
    if let Some(envid) = &e.envid {
        let _ = writeln!(out, "envid: {envid}");
    }
    if let QueueState::Deferred { until, reason } = &m.state {
        let _ = writeln!(out, "deferred_until: {} ({reason})", rfc5322_date(*until));
    }
    if let Some(v) = view {
        let _ = writeln!(out, "attempts: {}", v.attempts);
        if let Some(reason) = &v.last_reason {
            let _ = writeln!(out, "last_reason: {reason}");
        }
    }
    for (i, r) in e.recipients.iter().enumerate() {
        let rstate = match m.outcomes.get(i).cloned().flatten() {
            Some(RecipientOutcome::Delivered { relay, reply }) => {
                format!("delivered via {relay} ({reply})")
            }
            Some(RecipientOutcome::Failed {
                status, diagnostic, ..
            }) => format!("failed {status} ({diagnostic})"),
            None => match pending_reason(view, i) {
                Some((reason, Some(relay))) => {
                    format!("pending relay={} ({reason})", relay.as_str())
                }
                Some((reason, None)) => format!("pending ({reason})"),
                None => "pending".to_string(),
            },
        };
        let orig = r
            .original
            .as_deref()
            .map(|o| format!(" orig_to=<{o}>"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "recipient: <{}>{orig} next_hop={} {rstate}",
            r.address, r.next_hop
        );
    }
    out
}

/// Why recipient `index` still waits, as the queue manager last heard, and from whom.
fn pending_reason(view: Option<&MessageView>, index: usize) -> Option<(String, Option<Relay>)> {
    let r = view?.recipients.iter().find(|x| x.index == index)?;
    Some((r.last_reason.clone()?, r.last_relay.clone()))
}

/// `{"queue_name": .., "queue_id": .., "arrival_time": .., "message_size": .., "sender": ..,
/// "recipients": [..], "records": [..], "headers": ..}` and `"body"` when asked.
fn show_json(
    stored: &MessageHistory,
    view: Option<&MessageView>,
    timeline: &[Record],
    headers: &str,
    body: Option<&str>,
) -> String {
    let m = &stored.summary;
    let recipients: Vec<String> = m
        .envelope
        .recipients
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (status, reason, relay) = match m.outcomes.get(i).cloned().flatten() {
                Some(RecipientOutcome::Delivered { reply, .. }) => ("sent", Some(reply), None),
                Some(RecipientOutcome::Failed { diagnostic, .. }) => {
                    ("bounced", Some(diagnostic), None)
                }
                None => match pending_reason(view, i) {
                    Some((reason, relay)) => ("pending", Some(reason), relay),
                    None => ("pending", None, None),
                },
            };
            let mut o = format!(
                "{{\"address\": {}, \"next_hop\": {}, \"status\": \"{status}\"",
                json_str(&r.address),
                json_str(&r.next_hop.to_string())
            );
            if let Some(orig) = &r.original {
                let _ = write!(o, ", \"orig_to\": {}", json_str(orig));
            }
            match relay {
                Some(Relay::Host(h)) => {
                    let _ = write!(o, ", \"relay\": {}", json_str(&h));
                }
                Some(Relay::Nobody) => o.push_str(", \"relay\": null"),
                None => {}
            }
            if let Some(reason) = reason {
                let _ = write!(o, ", \"reason\": {}", json_str(&reason));
            }
            o.push('}');
            o
        })
        .collect();
    let mut out = format!(
        "{{\"queue_name\": \"{}\", \"queue_id\": \"{}\", \"arrival_time\": {}, \"message_size\": {}, \"sender\": {}, \"recipients\": [{}], \"records\": {}, \"headers\": {}",
        QueueName::of(&m.state).as_str(),
        m.qid,
        m.envelope.arrival,
        m.size,
        json_str(&m.envelope.sender),
        recipients.join(", "),
        records::json(timeline),
        json_str(headers)
    );
    if let Some(body) = body {
        let _ = write!(out, ", \"body\": {}", json_str(body));
    }
    out.push('}');
    out
}

/// The header section and the body, split at the first empty line.
fn split_headers(text: &str) -> (&str, &str) {
    match text.find("\n\n") {
        Some(i) => (&text[..=i], &text[i + 2..]),
        None => (text, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::split_headers;

    #[test]
    fn headers_end_at_the_first_empty_line() {
        assert_eq!(
            split_headers("Subject: x\nTo: y\n\nbody\n\nmore\n"),
            ("Subject: x\nTo: y\n", "body\n\nmore\n")
        );
        assert_eq!(split_headers("Subject: x\n"), ("Subject: x\n", ""));
    }
}
