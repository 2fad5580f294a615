//! `postern queue`: what postqueue and postsuper do, against the running queue manager. Addresses
//! come from the spool (the queue manager keeps no addresses in RAM).

use std::collections::HashMap;
use std::fmt::Write;

use super::Reply;
use super::commands::QueueCommand;
use crate::mail::{QueueId, QueueState, RecipientOutcome};
use crate::queue::runner::QueueHandle;
use crate::queue::{MessageView, RcptState};
use crate::smtp::received::rfc5322_date;
use crate::spool::{MessageSummary, SpoolHandle};

/// Carries out one queue command.
pub async fn run(spool: &SpoolHandle, queue: &QueueHandle, cmd: QueueCommand) -> Reply {
    match cmd {
        QueueCommand::List { json } => list(spool, queue, json).await,
        QueueCommand::Show { qid, body } => show(spool, queue, &qid, body).await,
        QueueCommand::Hold { target } => {
            each(
                queue,
                &target,
                "held",
                |q, id| async move { q.hold(id).await },
            )
            .await
        }
        QueueCommand::Release { target } => {
            each(queue, &target, "released", |q, id| async move {
                q.release(id).await
            })
            .await
        }
        QueueCommand::Requeue { target } => {
            each(queue, &target, "requeued", |q, id| async move {
                q.requeue(id).await
            })
            .await
        }
        QueueCommand::Delete { target, .. } => {
            each(queue, &target, "deleted", |q, id| async move {
                q.delete(id).await
            })
            .await
        }
        QueueCommand::Flush { destination } => {
            let n = queue.flush(destination.clone()).await;
            match destination {
                Some(d) => Reply::ok(format!(
                    "{n} deferred messages for {d} are being tried now\n"
                )),
                None => Reply::ok(format!("{n} deferred messages are being tried now\n")),
            }
        }
    }
}

/// Applies an operation to one queue id or to ALL.
async fn each<F, Fut>(queue: &QueueHandle, target: &str, done: &str, op: F) -> Reply
where
    F: Fn(QueueHandle, QueueId) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let ids: Vec<QueueId> = if target.eq_ignore_ascii_case("ALL") {
        queue.list().await.iter().map(|m| m.qid).collect()
    } else {
        match target.parse() {
            Ok(id) => vec![id],
            Err(e) => return Reply::failed(format!("{e}\n")),
        }
    };
    let mut n = 0;
    for id in &ids {
        if op(queue.clone(), *id).await {
            n += 1;
        }
    }
    match (target.eq_ignore_ascii_case("ALL"), n) {
        (false, 0) => Reply::failed(format!(
            "{target}: no such message in the queue (or nothing to do)\n"
        )),
        (false, _) => Reply::ok(format!("{target}: {done}\n")),
        (true, n) => Reply::ok(format!("{n} messages {done}\n")),
    }
}

fn queue_name(state: &QueueState) -> &'static str {
    match state {
        QueueState::Active => "active",
        QueueState::Deferred { .. } => "deferred",
        QueueState::Hold => "hold",
    }
}

/// `Sat, 21 Nov 2026 10:08:58`, as postqueue shows arrival (in UTC).
fn arrival(unix: u64) -> String {
    let d = rfc5322_date(unix);
    d.split(" +").next().unwrap_or(&d).to_string()
}

async fn envelopes(spool: &SpoolHandle) -> HashMap<QueueId, MessageSummary> {
    spool
        .list()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.qid, m))
        .collect()
}

async fn list(spool: &SpoolHandle, queue: &QueueHandle, json: bool) -> Reply {
    let mut views = queue.list().await;
    views.sort_by_key(|v| v.qid);
    let stored = envelopes(spool).await;
    let mut out = String::new();
    if json {
        for v in &views {
            out.push_str(&json_line(v, stored.get(&v.qid)));
            out.push('\n');
        }
        return Reply::ok(out);
    }
    if views.is_empty() {
        return Reply::ok("Mail queue is empty\n");
    }
    let _ = writeln!(
        out,
        "-Queue ID-     --Size-- ----Arrival Time----------- -Sender/Recipient-------"
    );
    let mut bytes = 0;
    for v in &views {
        bytes += v.size;
        let mark = match v.state {
            QueueState::Active => '*',
            QueueState::Hold => '!',
            QueueState::Deferred { .. } => ' ',
        };
        let Some(m) = stored.get(&v.qid) else {
            continue;
        };
        let sender = if m.envelope.sender.is_empty() {
            "MAILER-DAEMON"
        } else {
            &m.envelope.sender
        };
        let _ = writeln!(
            out,
            "{}{mark} {:>8} {:<27} {sender}",
            v.qid,
            v.size,
            arrival(v.arrival)
        );
        for r in &v.recipients {
            if matches!(r.state, RcptState::Delivered | RcptState::Failed) {
                continue;
            }
            let Some(rcpt) = m.envelope.recipients.get(r.index) else {
                continue;
            };
            if let Some(reason) = &r.last_reason {
                let _ = writeln!(out, "{:52}({reason})", "");
            }
            let _ = writeln!(out, "{:52}{}", "", rcpt.address);
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "-- {} Kbytes in {} Request{}.",
        bytes.div_ceil(1024),
        views.len(),
        if views.len() == 1 { "" } else { "s" }
    );
    Reply::ok(out)
}

async fn show(spool: &SpoolHandle, queue: &QueueHandle, qid: &str, body: bool) -> Reply {
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
    let mut out = String::new();
    let _ = writeln!(out, "queue_id: {id}");
    let _ = writeln!(out, "queue: {}", queue_name(&stored.state));
    let _ = writeln!(out, "arrival: {}", rfc5322_date(e.arrival));
    let _ = writeln!(out, "size: {}", stored.size);
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
    if let Some(v) = &view {
        if let Some(next) = v.next_attempt {
            let _ = writeln!(out, "next_attempt: {}", rfc5322_date(next));
        }
        let _ = writeln!(out, "attempts: {}", v.attempts);
        if let Some(reason) = &v.last_reason {
            let _ = writeln!(out, "last_reason: {reason}");
        }
    }
    for (i, r) in e.recipients.iter().enumerate() {
        let rstate = match stored.outcomes.get(i).cloned().flatten() {
            Some(RecipientOutcome::Delivered { relay, .. }) => format!("delivered via {relay}"),
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
    if body {
        match spool.read_body(id).await {
            Ok(b) => {
                out.push_str("*** MESSAGE CONTENTS ***\n");
                out.push_str(&String::from_utf8_lossy(&b).replace("\r\n", "\n"));
            }
            Err(e) => return Reply::failed(format!("{qid}: body unreadable: {e}\n")),
        }
    }
    Reply::ok(out)
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One message as `postqueue -j` writes it.
fn json_line(v: &MessageView, stored: Option<&MessageSummary>) -> String {
    let sender = stored.map(|m| m.envelope.sender.as_str()).unwrap_or("");
    let recipients: Vec<String> = v
        .recipients
        .iter()
        .filter(|r| !matches!(r.state, RcptState::Delivered | RcptState::Failed))
        .map(|r| {
            let addr = stored
                .and_then(|m| m.envelope.recipients.get(r.index))
                .map(|x| x.address.as_str())
                .unwrap_or("");
            match &r.last_reason {
                Some(reason) => format!(
                    "{{\"address\": {}, \"delay_reason\": {}}}",
                    json_str(addr),
                    json_str(reason)
                ),
                None => format!("{{\"address\": {}}}", json_str(addr)),
            }
        })
        .collect();
    format!(
        "{{\"queue_name\": \"{}\", \"queue_id\": \"{}\", \"arrival_time\": {}, \"message_size\": {}, \"sender\": {}, \"recipients\": [{}]}}",
        queue_name(&v.state),
        v.qid,
        v.arrival,
        v.size,
        json_str(sender),
        recipients.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::json_str;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\nd"), "\"a\\\"b\\\\c\\u000ad\"");
    }
}
