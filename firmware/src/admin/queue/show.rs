//! `postern queue show`: one message as postcat shows a queue file. The envelope records first
//! (with the times the spool keeps: arrival, and the next attempt of a deferred message), each
//! recipient's outcome or the reason it waits, then the headers, and the body when asked.

use std::fmt::Write;

use super::super::Reply;
use crate::mail::{QueueId, QueueState, RecipientOutcome};
use crate::queue::QueueName;
use crate::queue::runner::QueueHandle;
use crate::smtp::received::rfc5322_date;
use crate::spool::SpoolHandle;

pub async fn show(spool: &SpoolHandle, queue: &QueueHandle, qid: &str, body: bool) -> Reply {
    let id: QueueId = match qid.parse() {
        Ok(id) => id,
        Err(e) => return Reply::failed(format!("{e}\n")),
    };
    let view = queue.get(id).await;
    let stored = match spool.get(id).await {
        Ok(Some(m)) => m,
        Ok(None) => return Reply::failed(format!("{qid}: no such message in the queue\n")),
        Err(e) => return Reply::failed(format!("{qid}: {e}\n")),
    };
    let e = &stored.envelope;
    let queue_name = QueueName::of(&stored.state);
    let mut out = String::new();
    let _ = writeln!(out, "*** ENVELOPE RECORDS {queue_name}/{id} ***");
    let _ = writeln!(out, "queue_id: {id}");
    let _ = writeln!(out, "queue: {queue_name}");
    let _ = writeln!(out, "message_size: {}", stored.size);
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
    if let QueueState::Deferred { until, reason } = &stored.state {
        let _ = writeln!(out, "deferred_until: {} ({reason})", rfc5322_date(*until));
    }
    if let Some(v) = &view {
        let _ = writeln!(out, "attempts: {}", v.attempts);
        if let Some(reason) = &v.last_reason {
            let _ = writeln!(out, "last_reason: {reason}");
        }
    }
    for (i, r) in e.recipients.iter().enumerate() {
        let rstate = match stored.outcomes.get(i).cloned().flatten() {
            Some(RecipientOutcome::Delivered { relay, reply }) => {
                format!("delivered via {relay} ({reply})")
            }
            Some(RecipientOutcome::Failed {
                status, diagnostic, ..
            }) => format!("failed {status} ({diagnostic})"),
            None => {
                let rv = view
                    .as_ref()
                    .and_then(|v| v.recipients.iter().find(|x| x.index == i));
                match rv.and_then(|x| x.last_reason.clone()) {
                    Some(reason) => format!("pending ({reason})"),
                    None => "pending".to_string(),
                }
            }
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
    let message = match spool.read_body(id).await {
        Ok(b) => b,
        Err(e) => return Reply::failed(format!("{out}{qid}: message unreadable: {e}\n")),
    };
    let text = String::from_utf8_lossy(&message).replace("\r\n", "\n");
    let (headers, rest) = split_headers(&text);
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
