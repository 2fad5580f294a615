//! `postern queue`: what postqueue and postsuper do, against the running queue manager. Addresses
//! come from the spool (the queue manager keeps no addresses in RAM).

mod bulk;
mod records;
mod show;

use std::fmt::Write;

use super::Reply;
use super::commands::QueueCommand;
use super::output::Output;
use crate::mail::{Envelope, QueueState};
use crate::queue::runner::QueueHandle;
use crate::queue::{BUCKETS, BulkOp, Filter, MessageView, QueueName, Shape, ShapeBy, ShapeCounter};
use crate::smtp::received::rfc5322_date;
use crate::spool::SpoolHandle;

/// Carries out one queue command.
pub async fn run(spool: &SpoolHandle, queue: &QueueHandle, cmd: QueueCommand) -> Reply {
    match cmd {
        QueueCommand::List { json, filter } => {
            list(spool, queue, json, &filter.filter(), &mut Output::whole()).await
        }
        QueueCommand::Shape {
            names,
            by_sender,
            json,
            filter,
        } => {
            let mut filter = filter.filter();
            filter.queues.extend(names);
            let by = if by_sender {
                ShapeBy::Sender
            } else {
                ShapeBy::Recipient
            };
            shape(spool, queue, &filter, by, json).await
        }
        QueueCommand::Show { qid, body, json } => show::show(spool, queue, &qid, body, json).await,
        QueueCommand::Hold(args) => bulk::bulk(spool, queue, BulkOp::Hold, args).await,
        QueueCommand::Release(args) => bulk::bulk(spool, queue, BulkOp::Release, args).await,
        QueueCommand::Requeue(args) => bulk::bulk(spool, queue, BulkOp::Requeue, args).await,
        QueueCommand::Delete(args) => bulk::bulk(spool, queue, BulkOp::Delete, args).await,
        QueueCommand::Flush {
            destination,
            filter,
        } => bulk::flush(spool, queue, destination, filter.filter()).await,
    }
}

async fn shape(
    spool: &SpoolHandle,
    queue: &QueueHandle,
    filter: &Filter,
    by: ShapeBy,
    json: bool,
) -> Reply {
    // Counted a batch at a time: the queue's messages are never all held at once.
    let mut counter = ShapeCounter::new(by, crate::mail::unix_now());
    let mut selection = bulk::Selection::new(spool, queue, filter).await;
    while let Some(batch) = selection.next_batch().await {
        for (v, e) in &batch {
            counter.add(v, e);
        }
    }
    let table = counter.finish();
    if json {
        Reply::ok(shape_json(&table, by) + "\n")
    } else {
        Reply::ok(table.to_string())
    }
}

/// `{"by": "recipient", "buckets": [5, ...], "rows": [{"domain": "TOTAL", "total": 3, "counts": [..]}, ...]}`
fn shape_json(table: &Shape, by: ShapeBy) -> String {
    let by = match by {
        ShapeBy::Recipient => "recipient",
        ShapeBy::Sender => "sender",
    };
    let buckets: Vec<String> = BUCKETS.iter().map(u64::to_string).collect();
    let rows: Vec<String> = std::iter::once(&table.total)
        .chain(&table.rows)
        .map(|r| {
            let counts: Vec<String> = r.counts.iter().map(u64::to_string).collect();
            format!(
                "{{\"domain\": {}, \"total\": {}, \"counts\": [{}]}}",
                json_str(&r.domain),
                r.total,
                counts.join(", ")
            )
        })
        .collect();
    format!(
        "{{\"by\": \"{by}\", \"buckets\": [{}], \"rows\": [{}]}}",
        buckets.join(", "),
        rows.join(", ")
    )
}

fn queue_name(state: &QueueState) -> &'static str {
    QueueName::of(state).as_str()
}

/// `Sat, 21 Nov 2026 10:08:58`, as postqueue shows arrival (in UTC).
fn arrival(unix: u64) -> String {
    let d = rfc5322_date(unix);
    d.split(" +").next().unwrap_or(&d).to_string()
}

/// `postqueue -p` (or `-j`): written to `out` a batch at a time, so the daemon sends a long
/// listing as it is made and holds one batch of it, not the whole queue's text.
pub async fn list(
    spool: &SpoolHandle,
    queue: &QueueHandle,
    json: bool,
    filter: &Filter,
    out: &mut Output,
) -> Reply {
    let mut selection = bulk::Selection::new(spool, queue, filter).await;
    let (mut count, mut bytes) = (0usize, 0u64);
    while let Some(batch) = selection.next_batch().await {
        for (v, envelope) in &batch {
            if json {
                out.push_str(&json_line(v, envelope));
                out.push_str("\n");
            } else {
                if count == 0 {
                    out.push_str(HEADING);
                }
                entry(out, v, envelope);
            }
            count += 1;
            bytes += v.size;
            if !out.flush().await {
                // The reader went away: nobody to list the rest to.
                return Reply::failed("");
            }
        }
    }
    if json {
        return Reply::ok(out.rest());
    }
    if count == 0 {
        if filter.is_empty() {
            return Reply::ok("Mail queue is empty\n");
        }
        out.push_str(HEADING);
    }
    let _ = writeln!(
        out,
        "-- {} Kbytes in {} Request{}.",
        bytes.div_ceil(1024),
        count,
        if count == 1 { "" } else { "s" }
    );
    Reply::ok(out.rest())
}

const HEADING: &str =
    "-Queue ID-     --Size-- ----Arrival Time----------- -Sender/Recipient-------\n";

/// One message of the listing, as postqueue -p shows it.
fn entry(out: &mut Output, v: &MessageView, envelope: &Envelope) {
    let mark = match v.state {
        QueueState::Active => '*',
        QueueState::Hold => '!',
        QueueState::Deferred { .. } => ' ',
    };
    let sender = if envelope.sender.is_empty() {
        "MAILER-DAEMON"
    } else {
        &envelope.sender
    };
    let _ = writeln!(
        out,
        "{}{mark} {:>8} {:<27} {sender}",
        v.qid,
        v.size,
        arrival(v.arrival)
    );
    for r in &v.recipients {
        if r.state.is_final() {
            continue;
        }
        let Some(rcpt) = envelope.recipients.get(r.index) else {
            continue;
        };
        if let Some(reason) = &r.last_reason {
            let _ = writeln!(out, "{:52}({reason})", "");
        }
        let _ = writeln!(out, "{:52}{}", "", rcpt.address);
    }
    out.push_str("\n");
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
fn json_line(v: &MessageView, envelope: &Envelope) -> String {
    let sender = envelope.sender.as_str();
    let recipients: Vec<String> = v
        .recipients
        .iter()
        .filter(|r| !r.state.is_final())
        .map(|r| {
            let addr = (envelope.recipients.get(r.index))
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
