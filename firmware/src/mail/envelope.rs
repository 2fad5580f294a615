//! The envelope of one message as it travels from `inbound` through `spool` and `queue` to
//! `delivery` and `bounce`: who sent it, to whom and how it goes, and what the client said of it.
//!
//! Every type here is stored on flash (postcard) and so must stay backward-compatible: add fields at
//! the end of a struct only together with a spool format version bump.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::Transport;

/// When the sender wants to hear about a recipient (RFC 3461 NOTIFY).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Notify {
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
    /// NOTIFY was given by the client. Without it the MTA's default applies (failure and delay).
    pub explicit: bool,
}

impl Notify {
    /// RFC 3461 §4.1: absent NOTIFY means FAILURE and possibly DELAY.
    pub const DEFAULT: Notify = Notify {
        success: false,
        failure: true,
        delay: true,
        explicit: false,
    };
    /// NOTIFY=NEVER.
    pub const NEVER: Notify = Notify {
        success: false,
        failure: false,
        delay: false,
        explicit: true,
    };
}

/// What a bounce should carry of the original message (RFC 3461 RET).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ret {
    Full,
    Headers,
}

/// The body type the client declared (RFC 6152 8BITMIME, RFC 3030 BINARYMIME).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum BodyType {
    #[default]
    SevenBit,
    EightBitMime,
    BinaryMime,
}

/// One recipient of the envelope, with where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// The address delivery uses (after alias and forwarding expansion).
    pub address: String,
    /// The address the client gave in RCPT TO, when routing rewrote it.
    pub original: Option<String>,
    /// RFC 3461 ORCPT as given by the client: address type and decoded address.
    pub orcpt: Option<(String, String)>,
    pub notify: Notify,
    /// The next hop the router chose at RCPT time.
    pub next_hop: Transport,
}

/// What the box knows of the client that handed the message over.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClientInfo {
    pub addr: Option<IpAddr>,
    /// The name given in HELO/EHLO/LHLO, as claimed.
    pub helo: String,
    /// The SASL login name, when the client authenticated.
    pub auth: Option<String>,
    /// ESMTP, ESMTPS, ESMTPSA, SMTP, LMTP, ... as in the Received header (RFC 3848).
    pub protocol: String,
    /// TLS version and cipher, when the session was encrypted.
    pub tls: Option<String>,
}

/// The envelope of one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The reverse path; empty for the null sender (bounces).
    pub sender: String,
    pub recipients: Vec<Recipient>,
    pub ret: Option<Ret>,
    /// RFC 3461 ENVID, decoded from xtext.
    pub envid: Option<String>,
    pub body_type: BodyType,
    /// RFC 6531: the message needs an SMTPUTF8-capable path.
    pub smtputf8: bool,
    /// Seconds since the Unix epoch when the message arrived.
    pub arrival: u64,
    pub client: ClientInfo,
}

impl Envelope {
    /// A bounce (or other notification) from the null sender: it never gets a bounce of its own.
    pub fn is_bounce(&self) -> bool {
        self.sender.is_empty()
    }
}

/// How a recipient ended. Written to the spool once, when it is final; a recipient with no outcome
/// is still to be delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecipientOutcome {
    /// The next hop took it (`status=sent`).
    Delivered {
        /// `host[ip]:port` as in the mail log.
        relay: String,
        /// The next hop's reply, e.g. `250 2.0.0 Ok: queued as 4Xyz`.
        reply: String,
    },
    /// It failed for good (`status=bounced`, or expired in the queue).
    Failed {
        /// Enhanced status code, e.g. `5.1.1`.
        status: String,
        /// `smtp; 550 5.1.1 <x@example.com>: User unknown`, as a DSN's Diagnostic-Code shows it.
        diagnostic: String,
        /// The host that gave the answer, when one did.
        remote_mta: Option<String>,
    },
}

/// Where a message stands in the queue (the *incoming* state is the time before its commit record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueueState {
    /// Ready for delivery now.
    Active,
    /// Tried and deferred: not before `until` (Unix seconds), for `reason`.
    Deferred { until: u64, reason: String },
    /// Held by the admin: never tried until released.
    Hold,
}

/// The server that gave an answer, as the mail log's `relay=` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Relay {
    /// No server answered (`relay=none`): no connection was made, or the next hop is marked down.
    Nobody,
    /// `host[ip]:port`.
    Host(String),
}

impl Relay {
    /// From a delivery attempt's relay, if it reached a server.
    pub fn of(relay: Option<&str>) -> Relay {
        relay.map_or(Relay::Nobody, |r| Relay::Host(r.to_string()))
    }

    /// As the mail log shows it: `host[ip]:port` or `none`.
    pub fn as_str(&self) -> &str {
        match self {
            Relay::Nobody => "none",
            Relay::Host(h) => h,
        }
    }
}

/// Recipients that wait after a delivery round, with why: the per-recipient detail of a deferral
/// (the message's own reason is only the last one heard). The spool keeps it after the state
/// record's body (see `spool/stamp.rs`), not with this type's own layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// Envelope indexes of the recipients that got this answer.
    pub recipients: Vec<u32>,
    /// As the mail log shows it in parentheses (it names the host that answered, if one did).
    pub reason: String,
    /// Who gave the answer; None on records of firmware that did not keep it.
    pub relay: Option<Relay>,
}

/// A queue state change as the queue hands it to the spool: the new state, when (Unix seconds),
/// and for a deferral why each waiting recipient waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    pub state: QueueState,
    pub at: u64,
    pub waiting: Vec<Waiting>,
    /// An admin's `queue flush` made the message active (`postqueue -f`, not `postsuper -r`).
    pub flushed: bool,
}

impl StateChange {
    /// A change with no per-recipient detail (hold, release, requeue).
    pub fn new(state: QueueState, at: u64) -> StateChange {
        StateChange {
            state,
            at,
            waiting: Vec::new(),
            flushed: false,
        }
    }
}

/// One state change of a message as the spool keeps it for `postern queue show` (in its own
/// layout, see `spool/stamp.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEvent {
    /// Unix seconds; None for a record written by firmware that kept no times.
    pub at: Option<u64>,
    pub state: QueueState,
    pub waiting: Vec<Waiting>,
    /// A `queue flush` made it (false where the record does not say).
    pub flushed: bool,
}
