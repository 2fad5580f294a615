//! Recovery step 3: rebuild the index from what was gathered. A message is queued again only if
//! its begin, every body chunk and its commit are sound and no end record exists; damage costs
//! only the message it hits, and is reported.

use std::collections::{BTreeMap, HashMap};

use crate::mail::QueueId;

use super::super::index::{Entry, Loc};
use super::super::{LostMessage, RecoveryReport};
use super::gather::Seen;

/// The index of the messages the log holds; what could not be brought back goes to `report`.
pub(super) fn rebuild_index(
    seen: HashMap<u64, Seen>,
    report: &mut RecoveryReport,
) -> BTreeMap<QueueId, Entry> {
    let mut index = BTreeMap::new();
    for (qid, s) in seen {
        let qid = QueueId(qid);
        if s.end {
            continue;
        }
        match build_entry(s) {
            Built::Entry(e) => {
                index.insert(qid, *e);
            }
            Built::Uncommitted => report.dropped_uncommitted += 1,
            Built::Nothing => {}
            Built::Lost(reason) => report.lost.push(LostMessage { qid, reason }),
        }
    }
    report.lost.sort_by_key(|l| l.qid);
    index
}

enum Built {
    Entry(Box<Entry>),
    Uncommitted,
    Nothing,
    Lost(String),
}

fn build_entry(s: Seen) -> Built {
    let Some((commit_loc, commit)) = s.commit else {
        if s.commit_damaged {
            return Built::Lost("commit record damaged".into());
        }
        return if s.begin.is_some() || !s.chunks.is_empty() {
            Built::Uncommitted
        } else {
            Built::Nothing
        };
    };
    let Some((begin_loc, envelope)) = s.begin else {
        return Built::Lost("begin record (envelope) missing or damaged".into());
    };
    let mut found = s.chunks;
    // Stable: copies of one chunk stay in log order, and the later one wins.
    found.sort_by_key(|(i, _)| *i);
    let mut chunks: Vec<Loc> = Vec::with_capacity(commit.chunks as usize);
    for (i, loc) in found {
        let i = i as usize;
        if i >= commit.chunks as usize || i + 1 < chunks.len() {
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
    if chunks.len() < commit.chunks as usize {
        return Built::Lost(format!("body chunk {} missing or damaged", chunks.len()));
    }
    let size: u64 = chunks
        .iter()
        .map(|l| u64::from(l.len.saturating_sub(4)))
        .sum();
    if size != commit.size {
        return Built::Lost(format!(
            "body is {size} bytes, its commit record says {}",
            commit.size
        ));
    }
    let mut e = Entry::new(envelope, begin_loc);
    e.chunks = chunks;
    e.size = size;
    e.commit = Some(commit_loc);
    e.durable = true;
    for (i, loc, outcome) in s.outcomes {
        if let Some(slot) = e.outcomes.get_mut(i as usize) {
            *slot = Some((outcome, loc));
        }
    }
    if let Some((version, loc, state)) = s.state {
        e.state = state;
        e.state_version = version;
        e.state_loc = Some(loc);
    }
    Built::Entry(Box::new(e))
}
