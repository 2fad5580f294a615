//! DATA and BDAT: the body streams through the content checks into the spool; at the end of data
//! the content verdict, then the commit (the 250 waits for its sync), then the queue takes it.

use std::sync::Arc;

use super::stages::{IncomingMessage, MessageStore};
use crate::content::Scan;
use crate::directory::SharedDirectory;
use crate::mail::{Envelope, QueueId, Reply};
use crate::queue::runner::QueueHandle;
use crate::spool::{self, SpoolError, SpoolHandle};

/// What the client is told when the spool cannot take its message: a full spool is
/// `452 4.3.1 Insufficient system storage` (try later, RFC 3463 "mail system full"); anything
/// else is a local error the client also retries (`451 4.3.0`).
pub fn spool_reply(e: &SpoolError) -> Reply {
    match e {
        SpoolError::Full => Reply::new(452, [4, 3, 1], "Insufficient system storage"),
        _ => Reply::new(
            451,
            [4, 3, 0],
            "Local error in processing: queue file write error",
        ),
    }
}

/// New messages: content checks as set in the directory, the spool, then the queue.
pub struct SpoolStore {
    pub spool: SpoolHandle,
    pub queue: QueueHandle,
    pub directory: Arc<SharedDirectory>,
}

impl MessageStore for SpoolStore {
    type Incoming = Receiving;

    async fn begin(&self, envelope: Envelope) -> Result<Receiving, Reply> {
        let scan = Scan::new(self.directory.snapshot().config());
        let incoming = self
            .spool
            .begin(envelope.clone())
            .await
            .map_err(|e| spool_reply(&e))?;
        Ok(Receiving {
            incoming,
            envelope,
            size: 0,
            scan,
            queue: self.queue.clone(),
        })
    }
}

/// A message on its way to flash.
pub struct Receiving {
    incoming: spool::Incoming,
    envelope: Envelope,
    size: u64,
    scan: Scan,
    queue: QueueHandle,
}

impl IncomingMessage for Receiving {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), Reply> {
        self.scan.feed(chunk);
        self.size += chunk.len() as u64;
        self.incoming
            .write(chunk)
            .await
            .map_err(|e| spool_reply(&e))
    }

    async fn commit(self) -> Result<QueueId, Reply> {
        // Refused now, the sender's side bounces it; dropping `incoming` abandons the message.
        if let Err(refused) = self.scan.finish() {
            return Err(refused.reply());
        }
        let Receiving {
            incoming,
            envelope,
            size,
            queue,
            ..
        } = self;
        let qid = incoming.commit().await.map_err(|e| spool_reply(&e))?;
        queue.arrived(qid, &envelope, size).await;
        Ok(qid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hal::flash::FlashError;

    #[test]
    fn full_is_452_and_flash_trouble_is_451() {
        assert_eq!(
            spool_reply(&SpoolError::Full).to_string(),
            "452 4.3.1 Insufficient system storage"
        );
        for e in [SpoolError::Flash(FlashError::PowerLost), SpoolError::Failed] {
            assert_eq!(
                spool_reply(&e).to_string(),
                "451 4.3.0 Local error in processing: queue file write error"
            );
        }
    }
}
