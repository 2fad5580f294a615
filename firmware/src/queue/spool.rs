//! The queue over the spool: the [`QueueStore`] the runner reads and writes messages through, and
//! how messages on flash enter the queue (a new one after its commit, all of them after a restart).

use crate::mail::{Envelope, QueueId, QueueState, RecipientOutcome};
use crate::spool::{SpoolError, SpoolHandle};

use super::QueuedMessage;
use super::runner::{QueueHandle, QueueStore, StoreError, StoredMessage};

fn store_err(e: SpoolError) -> StoreError {
    StoreError(e.to_string())
}

impl QueueStore for SpoolHandle {
    async fn load(&self, qid: QueueId) -> Result<StoredMessage, StoreError> {
        match self.get(qid).await.map_err(store_err)? {
            Some(m) => Ok(StoredMessage {
                envelope: m.envelope,
                outcomes: m.outcomes,
                size: m.size,
            }),
            None => Err(store_err(SpoolError::NoSuchMessage(qid))),
        }
    }

    async fn read_body(&self, qid: QueueId) -> Result<Vec<u8>, StoreError> {
        SpoolHandle::read_body(self, qid).await.map_err(store_err)
    }

    async fn mark_recipient(
        &self,
        qid: QueueId,
        index: usize,
        outcome: RecipientOutcome,
    ) -> Result<(), StoreError> {
        SpoolHandle::mark_recipient(self, qid, index, outcome)
            .await
            .map_err(store_err)
    }

    async fn set_state(&self, qid: QueueId, state: QueueState) -> Result<(), StoreError> {
        SpoolHandle::set_state(self, qid, state)
            .await
            .map_err(store_err)
    }

    async fn remove(&self, qid: QueueId) -> Result<(), StoreError> {
        SpoolHandle::remove(self, qid).await.map_err(store_err)
    }

    async fn store(&self, envelope: Envelope, message: Vec<u8>) -> Result<QueueId, StoreError> {
        let mut incoming = self.begin(envelope).await.map_err(store_err)?;
        incoming.write(&message).await.map_err(store_err)?;
        incoming.commit().await.map_err(store_err)
    }
}

impl QueueHandle {
    /// A message just committed to the spool: into the active queue, every recipient pending.
    pub async fn arrived(&self, qid: QueueId, envelope: &Envelope, size: u64) {
        let outcomes = vec![None; envelope.recipients.len()];
        self.add(QueuedMessage::from_envelope(
            qid,
            envelope,
            &outcomes,
            QueueState::Active,
            size,
        ))
        .await;
    }

    /// Every message the spool recovered at start, in the state it was in.
    pub async fn recover(&self, spool: &SpoolHandle) -> Result<usize, SpoolError> {
        let recovered = spool.list().await?;
        let n = recovered.len();
        for m in recovered {
            self.add(QueuedMessage::from_envelope(
                m.qid,
                &m.envelope,
                &m.outcomes,
                m.state,
                m.size,
            ))
            .await;
        }
        Ok(n)
    }
}
