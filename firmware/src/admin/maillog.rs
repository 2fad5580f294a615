//! `postern log` and `postern track`: the mail log kept on flash, read back as an admin greps
//! /var/log/mail.log on a Postfix box, and one message's way through the box pieced together
//! from it (arrival in the queue, each delivery attempt with relay and reason, notifications,
//! removal), following the bounce a message caused.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::Reply;
use super::commands::LogArgs;
use crate::mail::QueueId;
use crate::queue::QueueName;
use crate::queue::runner::QueueHandle;
use crate::smtp::received::rfc5322_date;
use crate::spool::{LogLines, SpoolHandle};

const NO_LOG: &str = "this flash keeps no mail log: it was formatted before the log ring existed (format version 1); `postern flash format` makes one, and loses what is on the flash\n";

async fn all_lines(spool: &SpoolHandle, after: u64) -> Result<LogLines, Reply> {
    match spool.read_log(after, usize::MAX).await {
        Ok(Some(lines)) => Ok(lines),
        Ok(None) => Err(Reply::failed(NO_LOG)),
        Err(e) => Err(Reply::failed(format!("mail log: {e}\n"))),
    }
}

/// The queue id a line is about (`... postern/qmgr[7]: 4XYZ...: to=<...>`), if any.
pub fn qid_of(line: &str) -> Option<QueueId> {
    let (_, rest) = line.split_once("]: ")?;
    rest.split_once(": ")?.0.parse().ok()
}

/// A `--follow` answer's lines without their numbers, and the number to go on from.
pub fn unnumbered(text: &str, after: u64) -> (String, u64) {
    let mut after = after;
    let mut lines = String::new();
    for line in text.lines() {
        let Some((n, l)) = line.split_once(' ') else {
            continue;
        };
        after = n.parse().unwrap_or(after).max(after);
        lines.push_str(l);
        lines.push('\n');
    }
    (lines, after)
}

/// `postern log`: the newest lines, narrowed by queue id and words. With `after` (the command
/// line's --follow) each line comes with its number first, so the next ask can go on from it.
pub async fn log(spool: &SpoolHandle, args: LogArgs) -> Reply {
    let qid = match args.qid.as_deref().map(str::parse::<QueueId>) {
        None => None,
        Some(Ok(q)) => Some(q),
        Some(Err(e)) => return Reply::failed(format!("{e}\n")),
    };
    let lines = match all_lines(spool, args.after.unwrap_or(0)).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let chosen: Vec<&(u64, String)> = lines
        .iter()
        .filter(|(_, l)| qid.is_none_or(|q| qid_of(l) == Some(q)))
        .filter(|(_, l)| args.grep.as_deref().is_none_or(|g| l.contains(g)))
        .collect();
    let skip = chosen.len().saturating_sub(args.lines);
    let mut out = String::new();
    for (n, l) in chosen.into_iter().skip(skip) {
        if args.after.is_some() {
            let _ = write!(out, "{n} ");
        }
        out.push_str(l);
        out.push('\n');
    }
    Reply::ok(out)
}

/// The queue ids of messages from or to `address`, and of the notifications they caused.
fn messages_of(lines: &LogLines, target: &str) -> BTreeSet<QueueId> {
    let mut qids: BTreeSet<QueueId> = match target.parse::<QueueId>() {
        Ok(q) => [q].into(),
        Err(_) => {
            let needle = format!("<{}>", target.trim_matches(['<', '>']).to_ascii_lowercase());
            lines
                .iter()
                .filter(|(_, l)| l.to_ascii_lowercase().contains(&needle))
                .filter_map(|(_, l)| qid_of(l))
                .collect()
        }
    };
    // A bounce of a tracked message is part of its way: `QID: sender non-delivery notification: NEW`.
    loop {
        let more: Vec<QueueId> = lines
            .iter()
            .filter(|(_, l)| qid_of(l).is_some_and(|q| qids.contains(&q)))
            .filter_map(|(_, l)| l.split_once(" notification: ")?.1.trim().parse().ok())
            .filter(|q| !qids.contains(q))
            .collect();
        if more.is_empty() {
            return qids;
        }
        qids.extend(more);
    }
}

/// `postern track QID|ADDRESS`.
pub async fn track(spool: &SpoolHandle, queue: Option<&QueueHandle>, target: &str) -> Reply {
    let lines = match all_lines(spool, 0).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let qids = messages_of(&lines, target);
    if qids.is_empty() {
        return Reply::failed(format!(
            "{target}: not in the kept mail log (it holds lines {} to {})\n",
            lines.first().map_or(0, |l| l.0),
            lines.last().map_or(0, |l| l.0)
        ));
    }
    let mut out = String::new();
    for q in &qids {
        let _ = writeln!(out, "{q}:");
        for (_, l) in lines.iter().filter(|(_, l)| qid_of(l) == Some(*q)) {
            let _ = writeln!(out, "  {l}");
        }
        let now = match queue {
            Some(queue) => queue.get(*q).await,
            None => None,
        };
        match now {
            Some(v) => {
                let _ = write!(out, "  now: in the {} queue", QueueName::of(&v.state));
                if let Some(t) = v.next_attempt {
                    let _ = write!(out, ", next attempt {}", rfc5322_date(t));
                }
                out.push('\n');
            }
            None if lines
                .iter()
                .any(|(_, l)| qid_of(l) == Some(*q) && l.ends_with(": removed")) =>
            {
                let _ = writeln!(out, "  now: gone from the queue");
            }
            None => {}
        }
    }
    Reply::ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracking_follows_an_address_and_its_bounce() {
        let lines: LogLines = [
            "Dec  1 10:00:00 mx postern/qmgr[7]: 0DK3H2R0000A0: from=<a@x.example>, size=10, nrcpt=1 (queue active)",
            "Dec  1 10:00:01 mx postern/smtp[7]: 0DK3H2R0000A0: to=<b@y.example>, relay=none, delay=1, delays=0/0/1/0, dsn=5.1.1, status=bounced (user unknown)",
            "Dec  1 10:00:01 mx postern/bounce[7]: 0DK3H2R0000A0: sender non-delivery notification: 0DK3H2R0000B0",
            "Dec  1 10:00:02 mx postern/qmgr[7]: 0DK3H2R0000A0: removed",
            "Dec  1 10:00:02 mx postern/qmgr[7]: 0DK3H2R0000B0: from=<>, size=900, nrcpt=1 (queue active)",
            "Dec  1 10:00:03 mx postern/qmgr[7]: 0DK3H2R0000C0: from=<other@x.example>, size=10, nrcpt=1 (queue active)",
            "Dec  1 10:00:03 mx postern: metrics at http://127.0.0.1:9/metrics for 127.0.0.1/32",
        ]
        .iter()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.to_string()))
        .collect();
        let a: QueueId = "0DK3H2R0000A0".parse().unwrap();
        let b: QueueId = "0DK3H2R0000B0".parse().unwrap();
        assert_eq!(qid_of(&lines[0].1), Some(a));
        assert_eq!(qid_of(&lines[6].1), None);
        assert_eq!(messages_of(&lines, "B@Y.example"), [a, b].into());
        assert_eq!(messages_of(&lines, "0DK3H2R0000A0"), [a, b].into());
        assert_eq!(messages_of(&lines, "nobody@y.example"), BTreeSet::new());
    }
}
