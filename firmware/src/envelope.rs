//! The envelope of one message as it travels from `inbound` through `spool` and `queue` to
//! `delivery` and `bounce`: who sent it, to whom and how it goes, and what the client said of it.
//!
//! Every type here is stored on flash (postcard) and so must stay backward-compatible: add fields at
//! the end of a struct only together with a spool format version bump.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::route::Transport;

/// A queue id: the time of arrival in milliseconds and a counter, so ids sort by arrival and stay
/// unique within a box. Shown as 13 characters of Crockford base 32, like Postfix's long queue ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QueueId(pub u64);

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const QID_LEN: usize = 13;

impl QueueId {
    /// Bits given to the per-millisecond counter.
    pub const COUNTER_BITS: u32 = 20;

    /// The id for the `counter`th message of millisecond `unix_millis`.
    pub fn new(unix_millis: u64, counter: u32) -> QueueId {
        let counter = u64::from(counter) & ((1 << Self::COUNTER_BITS) - 1);
        QueueId((unix_millis << Self::COUNTER_BITS) | counter)
    }

    /// Milliseconds since the Unix epoch at which the id was made.
    pub fn unix_millis(self) -> u64 {
        self.0 >> Self::COUNTER_BITS
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; QID_LEN];
        let mut v = self.0;
        for slot in out.iter_mut().rev() {
            *slot = CROCKFORD[(v & 31) as usize];
            v >>= 5;
        }
        // Only ASCII from the alphabet above was written.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

/// A string that is not a queue id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadQueueId(pub String);

impl fmt::Display for BadQueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a queue id (13 characters of 0-9 A-Z)",
            self.0
        )
    }
}

impl std::error::Error for BadQueueId {}

impl FromStr for QueueId {
    type Err = BadQueueId;

    fn from_str(s: &str) -> Result<QueueId, BadQueueId> {
        let bad = || BadQueueId(s.to_string());
        if s.len() != QID_LEN {
            return Err(bad());
        }
        let mut v: u64 = 0;
        for (i, c) in s.bytes().enumerate() {
            let c = c.to_ascii_uppercase();
            let digit = CROCKFORD.iter().position(|&d| d == c).ok_or_else(bad)? as u64;
            // 13 digits of 5 bits is 65 bits: the first digit may only carry 4.
            if i == 0 && digit > 15 {
                return Err(bad());
            }
            v = (v << 5) | digit;
        }
        Ok(QueueId(v))
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_ids_round_trip_and_sort_as_text() {
        let a = QueueId::new(1_795_000_000_000, 1);
        let b = QueueId::new(1_795_000_000_000, 2);
        let c = QueueId::new(1_795_000_000_001, 0);
        for id in [a, b, c, QueueId(0), QueueId(u64::MAX)] {
            assert_eq!(id.to_string().parse::<QueueId>(), Ok(id));
            assert_eq!(id.to_string().len(), 13);
        }
        assert!(a.to_string() < b.to_string() && b.to_string() < c.to_string());
        assert_eq!(c.unix_millis(), 1_795_000_000_001);
    }

    #[test]
    fn bad_queue_ids_are_refused() {
        for s in [
            "",
            "ABC",
            "GZZZZZZZZZZZZ",
            "0000000000-00",
            "00000000000000",
        ] {
            assert!(s.parse::<QueueId>().is_err(), "{s}");
        }
    }
}
