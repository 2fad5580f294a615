//! What a session asks the rest of the box, and waits for before it answers the client:
//!
//! - [`RecipientCheck`]: may this recipient be accepted, and where does it go? (policy and router,
//!   [`super::recipients`])
//! - [`MessageStore`] / [`IncomingMessage`]: store this message durably (content checks, spool,
//!   queue, [`super::store`]). A 250 is sent only after [`IncomingMessage::commit`] returned a
//!   queue id.
//! - [`Authenticator`]: is this the user's password? (the directory)
//!
//! The methods return `impl Future + Send`, so implementations may be written as `async fn` and
//! sessions can run on tokio's multi-threaded runtime. Tests put their own behind them to drive the
//! listeners without flash.

use std::future::Future;
use std::sync::Arc;

use crate::directory::SharedDirectory;
use crate::mail::{Envelope, QueueId, Reply};
use crate::smtp::{RcptQuery, RcptTarget};

/// Decides each RCPT TO.
pub trait RecipientCheck: Send + Sync + 'static {
    /// Where an accepted recipient goes (one target, or several when an alias or forwarding
    /// expands it), or the reply that rejects it (e.g.
    /// `550 5.1.1 <x@example.com>: Recipient address rejected: User unknown`).
    fn check(
        &self,
        query: &RcptQuery,
    ) -> impl Future<Output = Result<Vec<RcptTarget>, Reply>> + Send;
}

/// Opens messages in the queue.
pub trait MessageStore: Send + Sync + 'static {
    type Incoming: IncomingMessage;

    /// Starts a message; an error (e.g. `452 4.3.1 Insufficient system storage`) is the reply
    /// to DATA or BDAT.
    fn begin(
        &self,
        envelope: Envelope,
    ) -> impl Future<Output = Result<Self::Incoming, Reply>> + Send;
}

/// A message being received. Dropping it without `commit` discards it.
pub trait IncomingMessage: Send + 'static {
    /// Appends body bytes. After an error the body is still read to its end, then the error is
    /// the reply and nothing is committed.
    fn write(&mut self, chunk: &[u8]) -> impl Future<Output = Result<(), Reply>> + Send;

    /// Makes the message durable; the queue id goes into `250 2.0.0 Ok: queued as QID`.
    fn commit(self) -> impl Future<Output = Result<QueueId, Reply>> + Send;
}

/// Checks AUTH PLAIN and LOGIN credentials.
pub trait Authenticator: Send + Sync + 'static {
    /// Whether `password` is right for `user`.
    fn verify(&self, user: &str, password: &str) -> impl Future<Output = bool> + Send;
}

/// For listeners without AUTH: nobody authenticates.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAuth;

impl Authenticator for NoAuth {
    async fn verify(&self, _user: &str, _password: &str) -> bool {
        false
    }
}

/// The accounts' password hashes in the directory.
impl Authenticator for Arc<SharedDirectory> {
    fn verify(&self, user: &str, password: &str) -> impl Future<Output = bool> + Send {
        SharedDirectory::verify_password(self, user, password)
    }
}
