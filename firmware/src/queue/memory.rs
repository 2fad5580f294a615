//! A [`QueueStore`] in RAM: for tests of the queue and for a daemon started without flash.
//! It keeps every notification it was asked to store, even after removal, so tests can read
//! them.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use super::manager::QueuedMessage;
use super::runner::{QueueStore, StoredMessage};
use crate::mail::{Envelope, QueueId, QueueState, RecipientOutcome, StateChange};
use crate::spool::Update;

struct Entry {
    message: StoredMessage,
    body: Vec<u8>,
    state: QueueState,
}

#[derive(Default)]
struct Inner {
    msgs: HashMap<QueueId, Entry>,
    stored: Vec<(QueueId, Envelope, Vec<u8>)>,
    counter: u32,
}

/// Messages in a `Mutex<HashMap>`; queue ids from `base_millis` and a counter.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    base_millis: u64,
}

impl MemoryStore {
    pub fn new(base_millis: u64) -> MemoryStore {
        MemoryStore {
            inner: Mutex::default(),
            base_millis,
        }
    }

    /// Store a message as `inbound` would, returning what to hand to the queue.
    pub fn put(&self, envelope: Envelope, body: &[u8]) -> QueuedMessage {
        let Ok(mut g) = self.inner.lock() else {
            // A poisoned lock only happens after a panic elsewhere in a test.
            return QueuedMessage::from_envelope(QueueId(0), &envelope, &[], QueueState::Hold, 0);
        };
        g.counter += 1;
        let qid = QueueId::new(self.base_millis, g.counter);
        let n = envelope.recipients.len();
        let q = QueuedMessage::from_envelope(
            qid,
            &envelope,
            &vec![None; n],
            QueueState::Active,
            body.len() as u64,
        );
        g.msgs.insert(
            qid,
            Entry {
                message: StoredMessage {
                    envelope,
                    outcomes: vec![None; n],
                    size: body.len() as u64,
                    body: None,
                },
                body: body.to_vec(),
                state: QueueState::Active,
            },
        );
        q
    }

    /// Messages held now.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|g| g.msgs.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A stored message with its state, if still there.
    pub fn get(&self, qid: QueueId) -> Option<(StoredMessage, QueueState)> {
        let g = self.inner.lock().ok()?;
        g.msgs
            .get(&qid)
            .map(|e| (e.message.clone(), e.state.clone()))
    }

    /// Every message stored through [`QueueStore::store`] (the DSNs), oldest first.
    pub fn notifications(&self) -> Vec<(QueueId, Envelope, Vec<u8>)> {
        self.inner
            .lock()
            .map(|g| g.stored.clone())
            .unwrap_or_default()
    }
}

/// Why the memory store refused an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryStoreError {
    NoSuchMessage(QueueId),
    NoSuchRecipient {
        qid: QueueId,
        index: usize,
    },
    /// Outcomes are written once, as on flash.
    AlreadyMarked {
        qid: QueueId,
        index: usize,
    },
    /// A thread panicked while holding the lock.
    Poisoned,
}

impl std::fmt::Display for MemoryStoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemoryStoreError::NoSuchMessage(qid) => write!(f, "{qid}: no such message"),
            MemoryStoreError::NoSuchRecipient { qid, index } => {
                write!(f, "{qid}: no recipient {index}")
            }
            MemoryStoreError::AlreadyMarked { qid, index } => {
                write!(f, "{qid}: recipient {index} already has an outcome")
            }
            MemoryStoreError::Poisoned => f.write_str("memory store lock poisoned"),
        }
    }
}

impl std::error::Error for MemoryStoreError {}

fn gone(qid: QueueId) -> MemoryStoreError {
    MemoryStoreError::NoSuchMessage(qid)
}

fn poisoned<T>(_: T) -> MemoryStoreError {
    MemoryStoreError::Poisoned
}

impl MemoryStore {
    fn mark(
        &self,
        qid: QueueId,
        index: usize,
        outcome: RecipientOutcome,
        _at: u64,
    ) -> Result<(), MemoryStoreError> {
        let mut g = self.inner.lock().map_err(poisoned)?;
        let e = g.msgs.get_mut(&qid).ok_or_else(|| gone(qid))?;
        let slot = e
            .message
            .outcomes
            .get_mut(index)
            .ok_or(MemoryStoreError::NoSuchRecipient { qid, index })?;
        if slot.is_some() {
            return Err(MemoryStoreError::AlreadyMarked { qid, index });
        }
        *slot = Some(outcome);
        Ok(())
    }

    fn set_state(&self, qid: QueueId, change: StateChange) -> Result<(), MemoryStoreError> {
        let mut g = self.inner.lock().map_err(poisoned)?;
        g.msgs.get_mut(&qid).ok_or_else(|| gone(qid))?.state = change.state;
        Ok(())
    }

    fn remove(&self, qid: QueueId) -> Result<(), MemoryStoreError> {
        let mut g = self.inner.lock().map_err(poisoned)?;
        g.msgs.remove(&qid).map(|_| ()).ok_or_else(|| gone(qid))
    }
}

impl QueueStore for MemoryStore {
    type Error = MemoryStoreError;

    async fn load(&self, qid: QueueId) -> Result<StoredMessage, MemoryStoreError> {
        let g = self.inner.lock().map_err(poisoned)?;
        g.msgs
            .get(&qid)
            .map(|e| e.message.clone())
            .ok_or_else(|| gone(qid))
    }

    async fn read_body_part(
        &self,
        qid: QueueId,
        offset: u64,
        max: usize,
    ) -> Result<Vec<u8>, MemoryStoreError> {
        let g = self.inner.lock().map_err(poisoned)?;
        let body = &g.msgs.get(&qid).ok_or_else(|| gone(qid))?.body;
        let from = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(body.len());
        let to = from.saturating_add(max).min(body.len());
        Ok(body.get(from..to).unwrap_or_default().to_vec())
    }

    fn apply(
        &self,
        updates: Vec<Update>,
    ) -> impl Future<Output = Vec<Result<(), MemoryStoreError>>> + Send + 'static {
        // Written now, as the trait asks: RAM has no sync to wait for.
        let results = updates
            .into_iter()
            .map(|u| match u {
                Update::Mark {
                    qid,
                    index,
                    outcome,
                    at,
                } => self.mark(qid, index, outcome, at),
                Update::State(qid, change) => self.set_state(qid, change),
                Update::Remove(qid) => self.remove(qid),
            })
            .collect();
        std::future::ready(results)
    }

    async fn store(
        &self,
        envelope: Envelope,
        message: Vec<u8>,
    ) -> Result<QueueId, MemoryStoreError> {
        let q = self.put(envelope.clone(), &message);
        let mut g = self.inner.lock().map_err(poisoned)?;
        g.stored.push((q.qid, envelope, message));
        Ok(q.qid)
    }
}
