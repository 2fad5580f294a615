//! The daemon's side of the seams: the SMTP session asks the router (over the live directory),
//! stores into the spool and hands committed messages to the queue; the queue reads and writes
//! the spool; AUTH checks the directory's password hashes.

use std::sync::Arc;

use crate::directory::{Lookup, MailStatus, SharedDirectory, password};
use crate::inbound::{Authenticator, IncomingMessage, MessageStore, RecipientCheck};
use crate::mail::Reply;
use crate::mail::{Envelope, QueueId, QueueState, RecipientOutcome};
use crate::queue::QueuedMessage;
use crate::queue::runner::{QueueHandle, QueueStore, StoreError, StoredMessage};
use crate::route::{self, ClientFacts, Decision, NextHop};
use crate::smtp::{RcptQuery, RcptTarget};
use crate::spool::{self, SpoolError, SpoolHandle};

/// `"5.1.1"` as the three numbers of an enhanced status code.
fn esc(status: &str) -> [u8; 3] {
    let mut out = [0u8; 3];
    for (slot, part) in out.iter_mut().zip(status.split('.')) {
        *slot = part.parse().unwrap_or(0);
    }
    out
}

fn spool_reply(e: &SpoolError) -> Reply {
    let r = e.smtp_reply();
    Reply::new(r.code, esc(r.status), r.text)
}

/// RCPT TO: the router over the directory as it is now.
pub struct Router {
    pub directory: Arc<SharedDirectory>,
}

impl RecipientCheck for Router {
    async fn check(&self, q: &RcptQuery) -> Result<Vec<RcptTarget>, Reply> {
        let dir = self.directory.snapshot();
        let facts = ClientFacts::from(&q.client);
        let targets = match route::route(&q.address, &dir, dir.config(), &facts) {
            // Past ldap_cache_max_age the cache may not know a new account yet: ask the client
            // to come back (Postfix answers 451 4.3.0 when its LDAP lookup fails).
            Decision::Reject(route::Reject::UserUnknown)
                if self
                    .directory
                    .ldap_cache_stale(crate::directory::ldap::service::unix_now()) =>
            {
                return Err(Reply::new(
                    451,
                    [4, 3, 0],
                    format!(
                        "<{}>: Recipient address rejected: directory cache out of date, try again later",
                        q.address
                    ),
                ));
            }
            Decision::Reject(r) => {
                return Err(Reply::new(
                    r.code(),
                    esc(r.status()),
                    format!("<{}>: {}", q.address, r.text()),
                ));
            }
            Decision::Accept(targets) => targets,
        };
        let mut out = Vec::new();
        let mut held_back = None;
        for t in targets.iter() {
            match &t.next_hop {
                NextHop::Transport(tr) => out.push(RcptTarget {
                    address: t.address.to_string(),
                    next_hop: tr.as_ref().clone(),
                }),
                // Part of a forwarding list that cannot be delivered: the rest still goes.
                NextHop::Bounce(r) => {
                    eprintln!(
                        "postern/route: <{}> -> <{}>: dropped from expansion: {r}",
                        q.address, t.address
                    );
                    held_back.get_or_insert(Reply::new(
                        r.code(),
                        esc(r.status()),
                        format!("<{}>: {}", t.address, r.text()),
                    ));
                }
                // No next hop yet: the client keeps the message and tries again later (4xx),
                // so nothing is accepted that the box cannot route.
                NextHop::Defer(d) => {
                    let text = format!("<{}>: Recipient address rejected: {}", t.address, d.text());
                    held_back = Some(Reply::new(451, esc(d.status()), text));
                }
            }
        }
        match (out.is_empty(), held_back) {
            (true, Some(reply)) => Err(reply),
            _ => Ok(out),
        }
    }
}

/// AUTH: the account's password hash in the directory.
pub struct DirectoryAuth {
    pub directory: Arc<SharedDirectory>,
}

impl Authenticator for DirectoryAuth {
    async fn verify(&self, user: &str, pass: &str) -> bool {
        let dir = self.directory.snapshot();
        let hash = match dir.lookup(user) {
            Lookup::Account { account, .. } if account.status() == MailStatus::Enabled => {
                account.password().map(str::to_string)
            }
            _ => None,
        };
        let Some(hash) = hash else {
            return false;
        };
        let pass = pass.to_string();
        // argon2 takes tens of milliseconds: off the runtime's workers.
        tokio::task::spawn_blocking(move || password::verify(&pass, &hash).unwrap_or(false))
            .await
            .unwrap_or(false)
    }
}

/// DATA/BDAT: into the spool; after the commit, into the queue.
pub struct SpoolStore {
    pub spool: SpoolHandle,
    pub queue: QueueHandle,
    pub directory: Arc<SharedDirectory>,
}

impl MessageStore for SpoolStore {
    type Incoming = Receiving;

    async fn begin(&self, envelope: Envelope) -> Result<Receiving, Reply> {
        let hop_limit = self.directory.snapshot().config().hopcount_limit;
        let incoming = self
            .spool
            .begin(envelope.clone())
            .await
            .map_err(|e| spool_reply(&e))?;
        Ok(Receiving {
            incoming,
            envelope,
            size: 0,
            headers: Vec::new(),
            headers_done: false,
            hop_limit,
            queue: self.queue.clone(),
        })
    }
}

/// The most header bytes kept to count Received lines (Postfix's header_size_limit).
const HEADER_SCAN_LIMIT: usize = 102_400;

/// A message on its way to flash.
pub struct Receiving {
    incoming: spool::Incoming,
    envelope: Envelope,
    size: u64,
    /// The header section, up to the first empty line, for the hop count.
    headers: Vec<u8>,
    /// The empty line that ends the headers was seen: `headers` is complete.
    headers_done: bool,
    hop_limit: u32,
    queue: QueueHandle,
}

impl Receiving {
    /// Keeps the header section as it streams by. Only the newly appended bytes (and the three
    /// before them, for a CRLF CRLF split across chunks) are searched for its end.
    fn scan_headers(&mut self, chunk: &[u8]) {
        if self.headers_done || self.headers.len() >= HEADER_SCAN_LIMIT {
            return;
        }
        let from = self.headers.len().saturating_sub(3);
        let room = HEADER_SCAN_LIMIT - self.headers.len();
        self.headers
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
        if let Some(p) = self.headers[from..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
        {
            // Keep the last header's CRLF, drop the empty line and the body.
            self.headers.truncate(from + p + 2);
            self.headers_done = true;
        }
    }
}

impl IncomingMessage for Receiving {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), Reply> {
        self.scan_headers(chunk);
        self.size += chunk.len() as u64;
        self.incoming
            .write(chunk)
            .await
            .map_err(|e| spool_reply(&e))
    }

    async fn commit(self) -> Result<QueueId, Reply> {
        // As Postfix's cleanup does: too many Received headers is a loop; refuse it now (the
        // sender bounces it) rather than queue it. Dropping `incoming` abandons the message.
        if route::hop_limit_exceeded(&self.headers, self.hop_limit) {
            return Err(Reply::new(
                554,
                [5, 4, 6],
                "Error: too many hops (mail forwarding loop)",
            ));
        }
        let Receiving {
            incoming,
            envelope,
            size,
            queue,
            ..
        } = self;
        let qid = incoming.commit().await.map_err(|e| spool_reply(&e))?;
        let outcomes = vec![None; envelope.recipients.len()];
        queue
            .add(QueuedMessage::from_envelope(
                qid,
                &envelope,
                &outcomes,
                QueueState::Active,
                size,
            ))
            .await;
        Ok(qid)
    }
}

/// The queue's view of the spool.
pub struct SpoolQueue {
    pub spool: SpoolHandle,
}

fn store_err(e: SpoolError) -> StoreError {
    StoreError(e.to_string())
}

impl QueueStore for SpoolQueue {
    async fn load(&self, qid: QueueId) -> Result<StoredMessage, StoreError> {
        match self.spool.get(qid).await.map_err(store_err)? {
            Some(m) => Ok(StoredMessage {
                envelope: m.envelope,
                outcomes: m.outcomes,
                size: m.size,
            }),
            None => Err(store_err(SpoolError::NoSuchMessage(qid))),
        }
    }

    async fn read_body(&self, qid: QueueId) -> Result<Vec<u8>, StoreError> {
        self.spool.read_body(qid).await.map_err(store_err)
    }

    async fn mark_recipient(
        &self,
        qid: QueueId,
        index: usize,
        outcome: RecipientOutcome,
    ) -> Result<(), StoreError> {
        self.spool
            .mark_recipient(qid, index, outcome)
            .await
            .map_err(store_err)
    }

    async fn set_state(&self, qid: QueueId, state: QueueState) -> Result<(), StoreError> {
        self.spool.set_state(qid, state).await.map_err(store_err)
    }

    async fn remove(&self, qid: QueueId) -> Result<(), StoreError> {
        self.spool.remove(qid).await.map_err(store_err)
    }

    async fn store(&self, envelope: Envelope, message: Vec<u8>) -> Result<QueueId, StoreError> {
        let mut incoming = self.spool.begin(envelope).await.map_err(store_err)?;
        incoming.write(&message).await.map_err(store_err)?;
        incoming.commit().await.map_err(store_err)
    }
}
