//! What the queue hands to delivery and what comes back: one job per message and next hop, one
//! result per recipient.

use crate::mail::QueueId;
use crate::mail::Transport;

/// Deliver these recipients (indexes into the envelope) of one message through one next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub qid: QueueId,
    pub next_hop: Transport,
    pub recipients: Vec<usize>,
    /// Unix seconds when the message entered the active queue this time (for `delays=`).
    pub activated: u64,
}

/// What happened to one recipient in one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptResult {
    /// Taken by the next hop.
    Delivered {
        /// `host[ip]:port`.
        relay: String,
        /// The reply, e.g. `250 2.0.0 Ok: queued as X`.
        reply: String,
    },
    /// Try again later (4xx, no connection, timeout).
    Deferred {
        /// Enhanced status, e.g. `4.4.1`.
        status: String,
        /// Why, as the log shows it in parentheses.
        reason: String,
    },
    /// Failed for good (5xx, or no such domain).
    Bounced {
        status: String,
        /// `smtp; 550 5.1.1 ...` for the DSN's Diagnostic-Code.
        diagnostic: String,
        remote_mta: Option<String>,
    },
}

/// The result of one [`Job`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptReport {
    pub qid: QueueId,
    pub next_hop: Transport,
    /// One result per recipient of the job, by envelope index.
    pub results: Vec<(usize, RcptResult)>,
    /// The next hop could not be reached at all (no connection, no greeting): Postfix marks the
    /// destination dead so that other messages to it wait without trying, and others go on.
    pub destination_failed: bool,
}
