//! What recovery found, in the shape the queue manager needs, handed over once at start: per
//! message its arrival, size, state and each recipient's next hop, with next hops and deferral
//! reasons interned. Recovery has every envelope in hand while it scans; keeping this and not the
//! envelopes lets the queue start without reading a million begin records a second time.

use std::collections::HashMap;

use hal::flash::Flash;

use crate::mail::{QueueId, QueueState, Transport};

use super::Spool;
use super::entry::Message;

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

    /// Adds a message read back from flash.
    fn push(
        &mut self,
        qid: QueueId,
        m: &super::MessageSummary,
        hops: &mut Interner<Transport>,
        reasons: &mut Interner<String>,
    ) {
        let first = self.recipients.len() as u32;
        for (i, r) in m.envelope.recipients.iter().enumerate() {
            self.recipients.push(RecoveredRecipient {
                next_hop: hops.id(&r.next_hop),
                done: matches!(m.outcomes.get(i), Some(Some(_))),
            });
        }
        let state = match &m.state {
            QueueState::Active => RecoveredState::Active,
            QueueState::Hold => RecoveredState::Hold,
            QueueState::Deferred { until, reason } => RecoveredState::Deferred {
                until: *until,
                reason: reasons.id(reason),
            },
        };
        self.messages.push(RecoveredMessage {
            qid,
            arrival: m.envelope.arrival,
            null_sender: m.envelope.is_bounce(),
            size: m.size,
            state,
            first,
            count: m.envelope.recipients.len() as u32,
        });
    }
}

impl<F: Flash> Spool<F> {
    /// Every committed message, oldest first, with what the queue manager needs of each. What
    /// recovery found at open is handed over as it was gathered (the first call only); messages
    /// committed since, or every message on a later call, are read back from flash. A message
    /// whose records no longer read back sound is left out.
    pub fn take_recovered(&mut self) -> RecoveredQueue {
        let mut out = self.recovered.take().unwrap_or_default();
        out.messages
            .retain(|m| self.index.get(&m.qid).is_some_and(|e| e.durable()));
        let mut hops = Interner::from_values(std::mem::take(&mut out.next_hops));
        let mut reasons = Interner::from_values(std::mem::take(&mut out.reasons));
        // The index and the messages recovery gathered are both in queue id order (a sort of
        // sorted messages is one pass): one walk finds the index's messages not among them,
        // without a set of a million ids.
        out.messages.sort_unstable_by_key(|m| m.qid);
        let mut gathered = out.messages.iter().map(|m| m.qid).peekable();
        let others: Vec<(QueueId, Message)> = self
            .index
            .iter()
            .filter(|(q, e)| {
                while gathered.next_if(|g| g < q).is_some() {}
                e.durable() && gathered.peek() != Some(q)
            })
            .map(|(q, e)| (q, e.to_message()))
            .collect();
        for (qid, e) in others {
            if let Ok(m) = self.summarize(qid, e.as_ref()) {
                out.push(qid, &m, &mut hops, &mut reasons);
            }
        }
        out.messages.sort_unstable_by_key(|m| m.qid);
        out.next_hops = hops.values;
        out.reasons = reasons.values;
        out
    }
}

/// Hands out one small number per distinct value (next hops, reasons) while recovery scans.
#[derive(Debug)]
pub(crate) struct Interner<T: std::hash::Hash + Eq + Clone> {
    ids: HashMap<T, u32>,
    pub values: Vec<T>,
    /// The id handed out last: a backup MX's queue is mostly one next hop and one reason, so
    /// most values are the one before, found by an equality test instead of a hash.
    last: Option<u32>,
}

impl<T: std::hash::Hash + Eq + Clone> Default for Interner<T> {
    fn default() -> Self {
        Interner {
            ids: HashMap::new(),
            values: Vec::new(),
            last: None,
        }
    }
}

impl<T: std::hash::Hash + Eq + Clone> Interner<T> {
    /// Numbers `values` in order, as an earlier interner did.
    pub fn from_values(values: Vec<T>) -> Interner<T> {
        let ids = values
            .iter()
            .enumerate()
            .map(|(i, v)| (v.clone(), i as u32))
            .collect();
        Interner {
            ids,
            values,
            last: None,
        }
    }

    /// The id of `value`; a value not seen before is copied in.
    pub fn id(&mut self, value: &T) -> u32 {
        match self.last_if(|t| t == value) {
            Some(id) => id,
            None => self.hashed(value),
        }
    }

    /// The id of the value `matches` finds, made by `make` only when it is not the value handed
    /// out last (recovery's next hops are read borrowed, and mostly one hop).
    pub fn id_with(&mut self, matches: impl Fn(&T) -> bool, make: impl FnOnce() -> T) -> u32 {
        match self.last_if(matches) {
            Some(id) => id,
            None => self.hashed(&make()),
        }
    }

    /// The id handed out last, if its value `matches`.
    fn last_if(&self, matches: impl Fn(&T) -> bool) -> Option<u32> {
        self.last
            .filter(|&id| self.values.get(id as usize).is_some_and(matches))
    }

    /// The id of `value` by its hash; a value not seen before is copied in.
    fn hashed(&mut self, value: &T) -> u32 {
        let id = match self.ids.get(value) {
            Some(&id) => id,
            None => {
                let id = self.values.len() as u32;
                self.values.push(value.clone());
                self.ids.insert(value.clone(), id);
                id
            }
        };
        self.last = Some(id);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{body, fresh, put, reopen};
    use super::Interner;

    #[test]
    fn the_queue_gets_what_recovery_gathered_and_what_came_after() {
        let mut spool = fresh();
        let a = put(&mut spool, &body(100, 1), 1000);
        let b = put(&mut spool, &body(200, 2), 1001);
        let c = put(&mut spool, &body(300, 3), 1002);
        let (mut spool, _) = reopen(spool);
        // Gone since recovery: not handed over. Committed since: read back from flash.
        spool.remove(b).unwrap();
        let d = put(&mut spool, &body(400, 4), 1003);
        let seen = |q: &super::RecoveredQueue| {
            q.messages
                .iter()
                .map(|m| (m.qid, m.size, q.recipients_of(m).len()))
                .collect::<Vec<_>>()
        };
        let first = spool.take_recovered();
        assert_eq!(seen(&first), [(a, 100, 2), (c, 300, 2), (d, 400, 2)]);
        // A later call reads every message back from flash.
        assert_eq!(seen(&spool.take_recovered()), seen(&first));
    }

    #[test]
    fn interner_numbers_each_value_once_whatever_came_before() {
        let mut i = Interner::default();
        let ids: Vec<u32> = ["a", "a", "b", "a", "c", "b", "b"]
            .iter()
            .map(|v| i.id(&v.to_string()))
            .collect();
        assert_eq!(ids, [0, 0, 1, 0, 2, 1, 1]);
        assert_eq!(i.values, ["a", "b", "c"]);
        // Made only when it is not the last value.
        assert_eq!(i.id_with(|v| v == "b", || unreachable!()), 1);
        assert_eq!(i.id_with(|v| v == "a", || "a".to_string()), 0);
        assert_eq!(i.id_with(|v| v == "d", || "d".to_string()), 3);
        assert_eq!(i.values, ["a", "b", "c", "d"]);
        i.values.pop();
        let mut again = Interner::from_values(i.values.clone());
        assert_eq!(again.id(&"c".to_string()), 2);
        assert_eq!(again.id(&"d".to_string()), 3);
    }
}
