//! DATA and BDAT: the body streams through the content checks into the spool; at the end of data
//! the content verdict, then the header section (held back for the content stage's edits, see
//! [`crate::content::headers`]), the commit (the 250 waits for its sync), then the queue takes it.

use std::sync::Arc;

use super::content_notice::{NoticePlan, Outbox};
use super::stages::{IncomingMessage, MessageStore};
use crate::content::headers::{self, HeadSplit, Split};
use crate::content::stored::Received;
use crate::content::{self, Scan, dkim::KeyRing};
use crate::directory::SharedDirectory;
use crate::log::content::{VerdictLine, verdict_line};
use crate::log::format::{Delays, DeliveryLine, Status, delivery_line};
use crate::log::{LogSink, Program};
use crate::mail::{Envelope, QueueId, QueueState, RecipientOutcome, Reply};
use crate::policy::{Policy, Relay};
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
    /// Where the content verdicts are logged.
    pub log: LogSink,
    /// Sender authentication (SPF, DKIM, DMARC) and who may relay.
    pub policy: Arc<Policy>,
    /// The DKIM signing keys of mail that may relay.
    pub dkim: KeyRing,
}

impl MessageStore for SpoolStore {
    type Incoming = Receiving;

    async fn begin(&self, envelope: Envelope) -> Result<Receiving, Reply> {
        let dir = self.directory.snapshot();
        let config = dir.config();
        // $mynetworks and authenticated clients: their mail is the box's to sign, not to judge.
        let own = self.policy.rcpt(&envelope.client, config) == Relay::Permitted;
        let mut scan = Scan::new(config, &envelope).with_sender_checks(
            self.policy.sender_auth().clone(),
            config,
            &envelope,
            own,
        );
        if own {
            scan = scan.with_signing(self.dkim.clone(), dir.clone());
        }
        let notices = NoticePlan::new(&envelope, &dir, config, own);
        let incoming = self
            .spool
            .begin_holding_head(&envelope)
            .await
            .map_err(|e| spool_reply(&e))?;
        Ok(Receiving {
            incoming,
            envelope,
            size: 0,
            scan,
            head: HeadSplit::default(),
            notices,
            spool: self.spool.clone(),
            queue: self.queue.clone(),
            log: self.log.clone(),
        })
    }
}

/// A message on its way to flash.
pub struct Receiving {
    incoming: spool::Incoming,
    envelope: Envelope,
    size: u64,
    scan: Scan,
    head: HeadSplit,
    /// Who is told when it is refused for a virus or a blocked attachment.
    notices: NoticePlan,
    spool: SpoolHandle,
    queue: QueueHandle,
    log: LogSink,
}

impl IncomingMessage for Receiving {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), Reply> {
        self.scan.feed(chunk);
        self.size += chunk.len() as u64;
        let body = match self.head.feed(chunk) {
            Split::Body(body) => body,
            Split::Release { head, rest } => {
                self.incoming
                    .write_head(head)
                    .await
                    .map_err(|e| spool_reply(&e))?;
                rest
            }
        };
        self.incoming.write(body).await.map_err(|e| spool_reply(&e))
    }

    async fn commit(self) -> Result<QueueId, Reply> {
        let Receiving {
            mut incoming,
            envelope,
            mut size,
            scan,
            mut head,
            notices,
            spool,
            queue,
            log,
        } = self;
        let started = std::time::Instant::now();
        let held = head.take_head();
        let head_len = held.as_ref().map_or(0, Vec::len);
        if scan.reads_stored() {
            // The scanners read the body back from flash: all of it must be there.
            incoming.write_out().await.map_err(|e| spool_reply(&e))?;
        }
        let stored = Received {
            head: held.as_deref().unwrap_or_default(),
            body: &incoming,
            body_size: size - head_len as u64,
        };
        let verdict = scan.finish(&stored).await;
        let told = match &verdict {
            Ok(accepted) => accepted.verdict(),
            Err(refused) => refused.verdict(),
        };
        log_verdict(&log, incoming.queue_id(), &envelope, size, started, &told);
        crate::metrics::global().content_verdict(told.action, told.category);
        if let Err(refused) = &verdict
            && let Some(finding) = notices.finding(refused)
        {
            let qid = incoming.queue_id();
            notices
                .send(
                    Outbox {
                        spool: &spool,
                        queue: &queue,
                        log: &log,
                    },
                    qid,
                    &envelope,
                    held.as_deref(),
                    finding,
                )
                .await;
        }
        // Refused now, the sender's side bounces it; dropping `incoming` abandons the message.
        let accepted = verdict.map_err(|refused| refused.reply())?;
        // The edited head, the rest of the body and the commit go to the spool in one request.
        let edited = held.map(|held| {
            let edited = headers::edit(&held, &accepted);
            size = size - held.len() as u64 + edited.len() as u64;
            edited
        });
        let committed = incoming
            .commit_keeping(edited, crate::queue::KEEP_BODY)
            .await
            .map_err(|e| spool_reply(&e))?;
        let qid = committed.qid;
        // What the queue is given must be the body on flash, byte for byte.
        let kept = committed.body.filter(|b| b.len() as u64 == size);
        for note in &accepted.notes {
            log.line(Program::Content, &format!("{qid}: {note}"));
        }
        let trained = training_done(&spool, &log, qid, &envelope, &accepted, started).await;
        if accepted.hold {
            // Never active: held before the queue manager could start a delivery, and the hold
            // is written to flash so it survives a restart (Postfix's HOLD action).
            let outcomes = vec![None; envelope.recipients.len()];
            queue
                .add(crate::queue::QueuedMessage::from_envelope(
                    qid,
                    &envelope,
                    &outcomes,
                    QueueState::Hold,
                    size,
                ))
                .await;
            queue.hold(qid).await;
        } else if trained.iter().any(Option::is_some) {
            // The queue manager finishes a message with nobody left to deliver to at once.
            queue
                .add(crate::queue::QueuedMessage::from_envelope(
                    qid,
                    &envelope,
                    &trained,
                    QueueState::Active,
                    size,
                ))
                .await;
        } else {
            queue.arrived_with_body(qid, envelope, size, kept).await;
        }
        Ok(qid)
    }
}

/// Marks the training accounts whose lesson was learned as done on flash (so a restart does not
/// deliver to them) and logs each as Postfix's discard agent would; their outcomes, by recipient.
async fn training_done(
    spool: &SpoolHandle,
    log: &LogSink,
    qid: QueueId,
    envelope: &Envelope,
    accepted: &content::Accepted,
    started: std::time::Instant,
) -> Vec<Option<RecipientOutcome>> {
    const DONE: &str = "delivered to spam training";
    let mut outcomes = vec![None; envelope.recipients.len()];
    for &i in &accepted.trained {
        let Some(rcpt) = envelope.recipients.get(i) else {
            continue;
        };
        let outcome = RecipientOutcome::Delivered {
            relay: "none".into(),
            reply: DONE.into(),
        };
        let now = crate::mail::unix_now();
        if let Err(e) = spool.mark_recipient(qid, i, outcome.clone(), now).await {
            // Still pending on flash: delivered to the account after all, never lost.
            log.line(
                Program::Content,
                &format!(
                    "{qid}: to=<{}>: training account kept for delivery: {e}",
                    rcpt.address
                ),
            );
            continue;
        }
        let line = delivery_line(&DeliveryLine {
            qid,
            to: &rcpt.address,
            orig_to: rcpt.original.as_deref(),
            relay: None,
            delays: Delays {
                before_queue: started.elapsed(),
                ..Delays::default()
            },
            dsn: "2.0.0",
            status: Status::Sent,
            detail: DONE,
        });
        log.line(Program::Content, &line);
        outcomes[i] = Some(outcome);
    }
    outcomes
}

/// One amavis-shaped line per message: what the content stage decided and how long it took.
fn log_verdict(
    log: &LogSink,
    qid: QueueId,
    envelope: &Envelope,
    size: u64,
    started: std::time::Instant,
    v: &content::Verdict,
) {
    let rcpts: Vec<&str> = envelope
        .recipients
        .iter()
        .map(|r| r.address.as_str())
        .collect();
    let line = verdict_line(&VerdictLine {
        qid,
        action: v.action,
        category: v.category,
        detail: v.detail.as_deref(),
        disposition: v.disposition,
        client: envelope.client.addr,
        sender: &envelope.sender,
        recipients: &rcpts,
        hits: v.hits.as_deref(),
        size,
        elapsed: started.elapsed(),
    });
    log.line(Program::Content, &line);
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
