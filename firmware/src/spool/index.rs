//! The in-RAM index: for every message, its envelope, state and where each of its records sits on
//! flash. Bodies stay on flash; only their locations are here.

use crate::mail::{Envelope, QueueId, QueueState, RecipientOutcome};

use super::record::record_size;

/// Where a record is: flash address of its header and its body length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pub addr: u32,
    pub len: u32,
}

impl Loc {
    /// Bytes the record takes on flash.
    pub fn size(&self) -> u64 {
        record_size(self.len).into()
    }
}

/// One message the spool holds (committed, or still receiving its body).
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub envelope: Envelope,
    pub begin: Loc,
    pub chunks: Vec<Loc>,
    pub size: u64,
    pub commit: Option<Loc>,
    /// Chunk 0 is kept for the header section, written last (see [`Spool::hold_head`]).
    ///
    /// [`Spool::hold_head`]: super::Spool::hold_head
    pub head_held: bool,
    /// The commit record has been synced: the client may have been told 250.
    pub durable: bool,
    pub outcomes: Vec<Option<(RecipientOutcome, Loc)>>,
    pub state: QueueState,
    pub state_version: u32,
    pub state_loc: Option<Loc>,
}

impl Entry {
    pub fn new(envelope: Envelope, begin: Loc) -> Entry {
        let n = envelope.recipients.len();
        Entry {
            envelope,
            begin,
            chunks: Vec::new(),
            size: 0,
            commit: None,
            head_held: false,
            durable: false,
            outcomes: vec![None; n],
            state: QueueState::Active,
            state_version: 0,
            state_loc: None,
        }
    }

    /// Every record location of the message.
    pub fn locs(&self) -> impl Iterator<Item = Loc> + '_ {
        std::iter::once(self.begin)
            .chain(self.chunks.iter().copied())
            .chain(self.commit)
            .chain(self.outcomes.iter().flatten().map(|(_, l)| *l))
            .chain(self.state_loc)
    }

    /// Points the record at `old` to `new` (compaction moved it). False if no record is at `old`.
    pub fn relocate(&mut self, old: u32, new: Loc) -> bool {
        let slots = std::iter::once(&mut self.begin)
            .chain(self.chunks.iter_mut())
            .chain(self.commit.iter_mut())
            .chain(self.outcomes.iter_mut().flatten().map(|(_, l)| l))
            .chain(self.state_loc.iter_mut());
        for l in slots {
            if l.addr == old {
                *l = new;
                return true;
            }
        }
        false
    }

    pub fn summary(&self, qid: QueueId) -> MessageSummary {
        MessageSummary {
            qid,
            envelope: self.envelope.clone(),
            outcomes: self
                .outcomes
                .iter()
                .map(|o| o.as_ref().map(|(o, _)| o.clone()))
                .collect(),
            state: self.state.clone(),
            size: self.size,
        }
    }
}

/// What the queue manager and the admin see of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSummary {
    pub qid: QueueId,
    pub envelope: Envelope,
    /// Final outcome per recipient (same order as `envelope.recipients`); `None`: still to do.
    pub outcomes: Vec<Option<RecipientOutcome>>,
    pub state: QueueState,
    /// Body size in bytes.
    pub size: u64,
}
