//! The types every stage of the mail flow shares, and nothing else: queue ids, the envelope,
//! transports (next hops), enhanced status codes and SMTP replies, and the clock they are
//! stamped with.
//!
//! This is the bottom of the firmware's import table: `mail` imports no other module of the crate,
//! so the protocol core, the spool and the directory can all speak of a `Transport` or a `Reply`
//! without knowing the router or the session that made it.

mod clock;
mod envelope;
mod queue_id;
mod reply;
mod status;
mod transport;

pub use clock::unix_now;
pub use envelope::{
    BodyType, ClientInfo, Envelope, Notify, QueueState, Recipient, RecipientOutcome, Relay, Ret,
    StateChange, StateEvent, Waiting,
};
pub use queue_id::{BadQueueId, QueueId};
pub use reply::Reply;
pub use status::{BadStatus, EnhancedStatus};
pub use transport::{Host, Protocol, Transport, TransportError};
