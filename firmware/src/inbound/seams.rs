//! The seams between the SMTP front door and the rest of the box. The session asks and answers
//! the client only after the answer comes back:
//!
//! - [`RecipientCheck`]: may this recipient be accepted, and where does it go? (the router)
//! - [`MessageStore`] / [`IncomingMessage`]: store this message durably (the spool). A 250 is
//!   sent only after [`IncomingMessage::commit`] returned a queue id.
//! - [`Authenticator`]: is this the user's password? (the directory)
//!
//! The methods return `impl Future + Send`, so implementations may be written as `async fn` and
//! sessions can run on tokio's multi-threaded runtime. Over the spool it is a few lines (an error
//! maps to its reply, e.g. a full spool to `452 4.3.1 Insufficient system storage`):
//!
//! ```ignore
//! impl MessageStore for SpoolHandle {
//!     type Incoming = spool::Incoming;
//!     async fn begin(&self, envelope: Envelope) -> Result<spool::Incoming, Reply> {
//!         SpoolHandle::begin(self, envelope).map_err(|e| e.reply())
//!     }
//! }
//! impl IncomingMessage for spool::Incoming {
//!     async fn write(&mut self, chunk: &[u8]) -> Result<(), Reply> {
//!         spool::Incoming::write(self, chunk).await.map_err(|e| e.reply())
//!     }
//!     async fn commit(self) -> Result<QueueId, Reply> {
//!         spool::Incoming::commit(self).await.map_err(|e| e.reply())
//!     }
//! }
//! ```

use std::future::Future;

use crate::mail::Reply;
use crate::mail::{Envelope, QueueId};
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
