//! Selecting messages (ids, ALL, a filter) and acting on all of them at once, as postsuper does
//! with `-h ALL deferred` or a `postqueue -j | jq | postsuper -d -` pipeline, in one command.

use super::super::Reply;
use super::super::commands::BulkArgs;
use crate::mail::{Envelope, Host, QueueId, Transport, unix_now};
use crate::queue::runner::QueueHandle;
use crate::queue::{BulkOp, Filter, MessageView, QueueName};
use crate::spool::SpoolHandle;

/// The exit code of a command refused as asked (a count instead of the action).
const REFUSED: i32 = 2;

/// Messages asked of the queue manager and the spool at a time: each trip is a short turn, so
/// mail keeps flowing while a big queue is searched, and only what matches is held.
const BATCH: usize = 4096;

/// The ids of the messages the filter selects whose view passes `and`, oldest first, without
/// holding the views and envelopes of all of them at once.
async fn select_ids(
    spool: &SpoolHandle,
    queue: &QueueHandle,
    filter: &Filter,
    and: impl Fn(&MessageView) -> bool,
) -> Vec<QueueId> {
    let mut selection = Selection::new(spool, queue, filter).await;
    let mut ids = Vec::new();
    while let Some(batch) = selection.next_batch().await {
        ids.extend(batch.iter().filter(|(v, _)| and(v)).map(|(v, _)| v.qid));
    }
    ids
}

/// The queue's view and the envelope of each message the filter selects, oldest first, a batch
/// at a time. The queue manager judges queue, age and reason first; only its candidates are
/// read from flash, and only their envelopes.
pub struct Selection<'a> {
    spool: &'a SpoolHandle,
    queue: &'a QueueHandle,
    filter: &'a Filter,
    candidates: std::vec::IntoIter<QueueId>,
}

impl<'a> Selection<'a> {
    pub async fn new(
        spool: &'a SpoolHandle,
        queue: &'a QueueHandle,
        filter: &'a Filter,
    ) -> Selection<'a> {
        let candidates = queue.candidates(filter, unix_now()).await;
        Selection {
            spool,
            queue,
            filter,
            candidates: candidates.into_iter(),
        }
    }

    /// The matches among the next [`BATCH`] candidates (perhaps none), or `None` at the end.
    pub async fn next_batch(&mut self) -> Option<Vec<(MessageView, Envelope)>> {
        let batch: Vec<QueueId> = self.candidates.by_ref().take(BATCH).collect();
        if batch.is_empty() {
            return None;
        }
        let filter = self.filter;
        let mut stored = self.spool.envelopes(batch).await.unwrap_or_default();
        // Views only of those the envelope does not rule out.
        stored.retain(|(_, e)| filter.may_match_envelope(e));
        let views = self
            .queue
            .views(stored.iter().map(|(q, _)| *q).collect())
            .await;
        let mut envelopes = stored.into_iter().peekable();
        let mut selected = Vec::new();
        for v in views {
            // Both in the order asked; a message gone meanwhile is missing from the views.
            while envelopes.next_if(|(q, _)| *q != v.qid).is_some() {}
            if let Some((_, envelope)) = envelopes.next_if(|(q, _)| *q == v.qid)
                && filter.matches_envelope(&v, &envelope)
            {
                selected.push((v, envelope));
            }
        }
        Some(selected)
    }
}

/// hold, release, requeue, delete on ids, ALL or a filter. More than one message needs --yes;
/// without it the admin gets the count.
pub async fn bulk(spool: &SpoolHandle, queue: &QueueHandle, op: BulkOp, args: BulkArgs) -> Reply {
    let filter = args.filter.filter();
    let all = args.targets.iter().any(|t| t.eq_ignore_ascii_case("ALL"));
    if args.targets.is_empty() && filter.is_empty() {
        return Reply::failed(
            "name the messages: queue ids, ALL, or a filter (--queue, --sender, --recipient, --domain, --older-than, --younger-than, --reason)\n",
        );
    }
    let mut ids = Vec::new();
    if !all {
        for t in &args.targets {
            match t.parse::<QueueId>() {
                Ok(id) => ids.push(id),
                Err(e) => return Reply::failed(format!("{e}\n")),
            }
        }
    }
    let one_id = ids.len() == 1 && filter.is_empty();
    let chosen: Vec<QueueId> = if !all && filter.is_empty() {
        ids.clone()
    } else {
        select_ids(spool, queue, &filter, |_| true)
            .await
            .into_iter()
            .filter(|q| all || ids.is_empty() || ids.contains(q))
            .collect()
    };
    if chosen.len() > 1 && !args.yes {
        return Reply {
            exit: REFUSED,
            text: format!(
                "{} messages match; add --yes to have them {} (`postern queue list` with the same filter shows them)\n",
                chosen.len(),
                op.done()
            ),
        };
    }
    let asked = chosen.len();
    let done = queue.apply(op, chosen).await;
    match (one_id, done.first()) {
        (true, Some(q)) => Reply::ok(format!("{q}: {}\n", op.done())),
        (true, None) => Reply::failed(format!(
            "{}: no such message in the queue (or nothing to do)\n",
            args.targets.first().map_or("", String::as_str)
        )),
        (false, _) if asked == 0 => Reply::failed("no queued message matches\n"),
        (false, _) => Reply::ok(format!(
            "{} message{} {}{}\n",
            done.len(),
            if done.len() == 1 { "" } else { "s" },
            op.done(),
            skipped(asked - done.len(), op)
        )),
    }
}

fn skipped(n: usize, op: BulkOp) -> String {
    let why = match op {
        BulkOp::Release => "not on hold",
        BulkOp::Requeue | BulkOp::Flush => "not deferred",
        BulkOp::Hold | BulkOp::Delete => "gone meanwhile",
    };
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} skipped: {why})")
    }
}

/// `postqueue -f` / `-s site`, or the deferred mail a filter selects: tried now. Harmless
/// (the queue would try them anyway), so like postqueue it needs no --yes.
pub async fn flush(
    spool: &SpoolHandle,
    queue: &QueueHandle,
    destination: Option<String>,
    filter: Filter,
) -> Reply {
    let n = if filter.is_empty() {
        queue.flush(destination.clone()).await
    } else {
        let ids = select_ids(spool, queue, &filter, |v| {
            QueueName::of(&v.state) == QueueName::Deferred
                && match &destination {
                    None => true,
                    Some(site) => v
                        .recipients
                        .iter()
                        .any(|r| !r.state.is_final() && goes_to(&r.next_hop, site)),
                }
        })
        .await;
        queue.apply(BulkOp::Flush, ids).await.len()
    };
    let (messages, are) = match n {
        1 => ("message", "is"),
        _ => ("messages", "are"),
    };
    match destination {
        Some(d) => Reply::ok(format!(
            "{n} deferred {messages} for {d} {are} being tried now\n"
        )),
        None => Reply::ok(format!("{n} deferred {messages} {are} being tried now\n")),
    }
}

/// The same test `postqueue -s site` makes in the queue manager.
fn goes_to(t: &Transport, site: &str) -> bool {
    match &t.host {
        Host::Name(n) => n.eq_ignore_ascii_case(site.trim_end_matches('.')),
        Host::Ip(ip) => site.trim_matches(['[', ']']) == ip.to_string(),
    }
}
