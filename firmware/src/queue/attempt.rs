//! What the queue hands to delivery and what comes back: one job per message and next hop, one
//! result per recipient. The queue defines these and [`Deliverer`]; `delivery` implements it, so
//! the queue never imports the client that serves it.

use std::future::Future;
use std::time::Duration;

use super::body::BodySource;
use crate::mail::{EnhancedStatus, Envelope, QueueId, Reply, Transport};

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
        reply: Reply,
    },
    /// Try again later (4xx, no connection, timeout).
    Deferred {
        /// Enhanced status, e.g. `4.4.1`.
        status: EnhancedStatus,
        /// Why, as the log shows it in parentheses.
        reason: String,
    },
    /// Failed for good (5xx, or no such domain).
    Bounced {
        status: EnhancedStatus,
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

impl RcptResult {
    /// The enhanced status code for the log's `dsn=`: a delivery's own 2.x.x, else `2.0.0`.
    pub fn status(&self) -> EnhancedStatus {
        match self {
            RcptResult::Delivered { reply, .. } => reply
                .esc
                .filter(|e| e.is_success())
                .unwrap_or(EnhancedStatus::of(2, 0, 0)),
            RcptResult::Deferred { status, .. } | RcptResult::Bounced { status, .. } => *status,
        }
    }
}

/// One job to deliver: these recipients of this message through this next hop.
#[derive(Clone, Copy)]
pub struct DeliveryRequest<'a> {
    pub qid: QueueId,
    pub envelope: &'a Envelope,
    /// Envelope indexes.
    pub recipients: &'a [usize],
    pub next_hop: &'a Transport,
    /// The message as stored (CRLF lines), not yet dot-stuffed, read a piece at a time.
    pub body: &'a dyn BodySource,
}

impl std::fmt::Debug for DeliveryRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryRequest")
            .field("qid", &self.qid)
            .field("envelope", &self.envelope)
            .field("recipients", &self.recipients)
            .field("next_hop", &self.next_hop)
            .field("body_size", &self.body.size())
            .finish()
    }
}

/// The result of one delivery attempt, with what the log needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub report: AttemptReport,
    /// `host[ip]:port` of the server that answered, if any did.
    pub relay: Option<String>,
    /// DNS, connect, greeting, EHLO, TLS (`delays=` c).
    pub connection_time: Duration,
    /// The transaction (`delays=` d).
    pub transmission_time: Duration,
}

/// The delivery side as the queue sees it: `delivery::Client` over sockets, a fake in tests.
pub trait Deliverer: Send + Sync + 'static {
    fn deliver(&self, req: DeliveryRequest<'_>) -> impl Future<Output = Attempt> + Send;

    /// Housekeeping when the queue is quiet (closing idle connections).
    fn idle(&self) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }
}
