//! Recovery step 3: rebuild the index from what was gathered. A message is queued again only if
//! its begin, every body chunk and its commit are sound and no end record exists; damage costs
//! only the message it hits, and is reported.

use crate::mail::QueueId;

use super::super::entry::Message;
use super::super::index::{Index, Loc};
use super::super::recovered::{
    RecoveredMessage, RecoveredQueue, RecoveredRecipient, RecoveredState,
};
use super::super::{LostMessage, RecoveryReport};
use super::gather::{Interned, Seen, SeenTable};

/// The index of the messages the log holds, and what the queue needs of them; what could not
/// be brought back goes to `report`.
pub(super) fn rebuild_index(
    seen: SeenTable,
    interned: Interned,
    report: &mut RecoveryReport,
) -> (Index, RecoveredQueue) {
    let count = seen.len();
    let mut entries = Vec::with_capacity(count);
    // Sized once: a vector grown by doubling leaves its old copies behind in the heap.
    let mut queue = RecoveredQueue {
        messages: Vec::with_capacity(count),
        recipients: Vec::with_capacity(count),
        ..RecoveredQueue::default()
    };
    for (qid, s) in seen.into_values() {
        let qid = QueueId(qid);
        if s.end() {
            continue;
        }
        let begin = s.begin().map(|(_, b)| b);
        let state = s.state().map_or(RecoveredState::Active, |(_, _, st)| st);
        match build_entry(s) {
            Built::Entry(e) => {
                if let Some(b) = begin {
                    let first = queue.recipients.len() as u32;
                    let hops = interned
                        .hop_ids
                        .get(b.first_hop as usize..(b.first_hop + b.recipients) as usize)
                        .unwrap_or(&[]);
                    for (i, &hop) in hops.iter().enumerate() {
                        queue.recipients.push(RecoveredRecipient {
                            next_hop: hop,
                            done: e.as_ref().outcome(i).is_some(),
                        });
                    }
                    queue.messages.push(RecoveredMessage {
                        qid,
                        arrival: b.arrival,
                        null_sender: b.bounce,
                        size: e.as_ref().size(),
                        state,
                        first,
                        count: hops.len() as u32,
                    });
                }
                entries.push((qid, e));
            }
            Built::Uncommitted => report.dropped_uncommitted += 1,
            Built::Nothing => {}
            Built::Lost(reason) => report.lost.push(LostMessage { qid, reason }),
        }
    }
    report.lost.sort_by_key(|l| l.qid);
    queue.messages.sort_unstable_by_key(|m| m.qid);
    queue.next_hops = interned.hops.values;
    queue.reasons = interned.reasons.values;
    (Index::from_messages(entries), queue)
}

enum Built {
    Entry(Message),
    Uncommitted,
    Nothing,
    Lost(String),
}

fn build_entry(s: Seen) -> Built {
    let Some((commit_loc, commit)) = s.commit() else {
        if s.commit_damaged() {
            return Built::Lost("commit record damaged".into());
        }
        return if s.begin().is_some() || s.first_chunk().is_some() {
            Built::Uncommitted
        } else {
            Built::Nothing
        };
    };
    let Some((begin_loc, begin)) = s.begin() else {
        return Built::Lost("begin record (envelope) missing or damaged".into());
    };
    let mut m = Message::with(begin_loc, begin.recipients, begin.bounce);
    let mut e = m.as_mut();
    let (count, size) = if s.more_chunks().is_empty() {
        // The common message: one chunk, one copy; no allocation.
        match s.first_chunk() {
            Some((0, loc)) if commit.chunks >= 1 => {
                e.push_chunk(loc);
                (1, chunk_size(loc))
            }
            _ => (0, 0),
        }
    } else {
        let chunks = in_order(&s, commit.chunks);
        for &loc in &chunks {
            e.push_chunk(loc);
        }
        (chunks.len(), chunks.iter().map(|&l| chunk_size(l)).sum())
    };
    if count < commit.chunks as usize {
        return Built::Lost(format!("body chunk {count} missing or damaged"));
    }
    if size != commit.size {
        return Built::Lost(format!(
            "body is {size} bytes, its commit record says {}",
            commit.size
        ));
    }
    e.set_commit(commit_loc);
    e.set_durable();
    let recipients = e.as_ref().recipients();
    for &(i, loc) in s.outcomes() {
        if (i as usize) < recipients {
            e.set_outcome(i as usize, loc);
        }
    }
    if let Some((version, loc, _)) = s.state() {
        e.set_state_version(version);
        e.set_state_loc(loc);
    }
    Built::Entry(m)
}

/// Body bytes in a chunk record (its body is the chunk's index, then the bytes).
fn chunk_size(loc: Loc) -> u64 {
    u64::from(loc.len.saturating_sub(4))
}

/// The chunks `0..wanted` in order, as far as they run without a gap; of two copies of one
/// chunk (compaction copies records forward), the later in the log.
fn in_order(s: &Seen, wanted: u32) -> Vec<Loc> {
    let mut found: Vec<(u32, Loc)> = s.chunks().collect();
    // Stable: copies of one chunk stay in log order, and the later one wins.
    found.sort_by_key(|(i, _)| *i);
    let mut chunks: Vec<Loc> = Vec::with_capacity(wanted as usize);
    for (i, loc) in found {
        let i = i as usize;
        if i >= wanted as usize || i + 1 < chunks.len() {
            continue;
        }
        if i + 1 == chunks.len() {
            if let Some(last) = chunks.last_mut() {
                *last = loc;
            }
        } else if i == chunks.len() {
            chunks.push(loc);
        } else {
            break;
        }
    }
    chunks
}
