//! What recovery found, in the shape the queue manager needs, handed over once at start: per
//! message its arrival, size, state and each recipient's next hop, with next hops and deferral
//! reasons interned. Recovery has every envelope in hand while it scans; keeping this and not the
//! envelopes lets the queue start without reading a million begin records a second time.

use std::collections::HashMap;

use crate::mail::{QueueId, QueueState, Transport};

/// The queue state of a recovered message; a deferral's reason is an index into
/// [`RecoveredQueue::reasons`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveredState {
    Active,
    Deferred { until: u64, reason: u32 },
    Hold,
}

/// One recipient: its next hop (an index into [`RecoveredQueue::next_hops`]) and whether it has
/// its final outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveredRecipient {
    pub next_hop: u32,
    pub done: bool,
}

/// One recovered message; its recipients are `RecoveredQueue::recipients[first..first + count]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveredMessage {
    pub qid: QueueId,
    /// Unix seconds.
    pub arrival: u64,
    pub null_sender: bool,
    pub size: u64,
    pub state: RecoveredState,
    pub first: u32,
    pub count: u32,
}

/// Every message recovery brought back, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveredQueue {
    pub messages: Vec<RecoveredMessage>,
    pub recipients: Vec<RecoveredRecipient>,
    pub next_hops: Vec<Transport>,
    pub reasons: Vec<String>,
}

impl RecoveredQueue {
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The recipients of `m`.
    pub fn recipients_of(&self, m: &RecoveredMessage) -> &[RecoveredRecipient] {
        let from = m.first as usize;
        self.recipients
            .get(from..from + m.count as usize)
            .unwrap_or(&[])
    }

    /// The queue state of `m`, its reason spelled out.
    pub fn state_of(&self, m: &RecoveredMessage) -> QueueState {
        match m.state {
            RecoveredState::Active => QueueState::Active,
            RecoveredState::Hold => QueueState::Hold,
            RecoveredState::Deferred { until, reason } => QueueState::Deferred {
                until,
                reason: self
                    .reasons
                    .get(reason as usize)
                    .cloned()
                    .unwrap_or_default(),
            },
        }
    }

    /// Keeps the messages `keep` says yes to (the spool drops those removed since recovery).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(QueueId) -> bool) {
        self.messages.retain(|m| keep(m.qid));
    }
}

/// Hands out one small number per distinct value (next hops, reasons) while recovery scans.
#[derive(Debug)]
pub(crate) struct Interner<T: std::hash::Hash + Eq + Clone> {
    ids: HashMap<T, u32>,
    pub values: Vec<T>,
}

impl<T: std::hash::Hash + Eq + Clone> Default for Interner<T> {
    fn default() -> Self {
        Interner {
            ids: HashMap::new(),
            values: Vec::new(),
        }
    }
}

impl<T: std::hash::Hash + Eq + Clone> Interner<T> {
    pub fn id(&mut self, value: T) -> u32 {
        if let Some(&id) = self.ids.get(&value) {
            return id;
        }
        let id = self.values.len() as u32;
        self.values.push(value.clone());
        self.ids.insert(value, id);
        id
    }
}
