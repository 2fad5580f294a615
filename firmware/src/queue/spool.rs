//! The queue over the spool: the [`QueueStore`] the runner reads and writes messages through, and
//! how messages on flash enter the queue (a new one after its commit, all of them after a restart).

use std::future::Future;
use std::sync::Arc;

use crate::mail::{Envelope, QueueId, QueueState};
use crate::spool::{SpoolError, SpoolHandle, Update};

use super::QueuedMessage;
use super::runner::{QueueHandle, QueueStore, StoredMessage};

impl QueueStore for SpoolHandle {
    type Error = SpoolError;

    async fn load(&self, qid: QueueId) -> Result<StoredMessage, SpoolError> {
        match self.get(qid).await? {
            Some(m) => Ok(StoredMessage {
                envelope: m.envelope,
                outcomes: m.outcomes,
                size: m.size,
                body: None,
            }),
            None => Err(SpoolError::NoSuchMessage(qid)),
        }
    }

    async fn read_body_part(
        &self,
        qid: QueueId,
        offset: u64,
        max: usize,
    ) -> Result<Vec<u8>, SpoolError> {
        SpoolHandle::read_body_part(self, qid, offset, max).await
    }

    fn apply(
        &self,
        updates: Vec<Update>,
    ) -> impl Future<Output = Vec<Result<(), SpoolError>>> + Send + 'static {
        self.apply_unhurried(updates)
    }

    fn write_now(&self) {
        // A writer gone answers every update with `Stopped`: the caller logs that.
        let _ = SpoolHandle::write_now(self);
    }

    async fn store(&self, envelope: Envelope, message: Vec<u8>) -> Result<QueueId, SpoolError> {
        let mut incoming = self.begin(&envelope).await?;
        incoming.write(&message).await?;
        incoming.commit().await
    }
}

impl QueueHandle {
    /// A message just committed to the spool: into the active queue, every recipient pending.
    /// The queue keeps its envelope for the first delivery attempt, which then reads only the
    /// body back from flash.
    pub async fn arrived(&self, qid: QueueId, envelope: Envelope, size: u64) {
        self.arrived_with_body(qid, envelope, size, None).await;
    }

    /// [`QueueHandle::arrived`] with the body as stored, when the session kept it (a small
    /// message, see [`crate::spool::Incoming::commit_keeping`]): its first delivery reads
    /// nothing back from flash.
    pub async fn arrived_with_body(
        &self,
        qid: QueueId,
        envelope: Envelope,
        size: u64,
        body: Option<Arc<[u8]>>,
    ) {
        let outcomes = vec![None; envelope.recipients.len()];
        let queued =
            QueuedMessage::from_envelope(qid, &envelope, &outcomes, QueueState::Active, size);
        let stored = StoredMessage {
            envelope,
            outcomes,
            size,
            body,
        };
        self.add_arrived(queued, stored).await;
    }

    /// Every message on the spool, in the state it was in: at start, what recovery found.
    pub async fn recover(&self, spool: &SpoolHandle) -> Result<usize, SpoolError> {
        let recovered = spool.take_recovered().await?;
        let n = recovered.len();
        self.add_recovered(recovered).await;
        Ok(n)
    }
}
