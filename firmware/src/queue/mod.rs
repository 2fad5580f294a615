//! The queue manager (Postfix's qmgr): which message is tried when, through which next hop, and
//! what becomes of it.
//!
//! - [`QueueManager`] is sans-IO: messages, attempt results, admin operations and the current time
//!   go in; delivery [`Job`]s and [`Action`]s to persist come out. It keeps a small index per
//!   message (no addresses, no body); everything else stays on flash. Tests drive days of retries
//!   in milliseconds because `now` is always an argument.
//! - [`runner`] drives it from tokio over a [`runner::QueueStore`] (the spool) and a
//!   [`Deliverer`] (the SMTP/LMTP client, which `delivery` implements), making bounces and
//!   writing the mail log.
//!
//! States as in Postfix: *incoming* is the spool's business (a message without its commit record
//! does not exist); *active* messages are being tried; *deferred* ones wait for their next
//! attempt; *hold* ones wait for the admin.
//!
//! # Wiring it into the daemon
//!
//! ```text
//! let dns = HickoryDns::with_servers(&cfg.dns_servers)?;      // or HickoryDns::from_system()
//! let client = Arc::new(delivery::Client::new(ClientSettings::new(&cfg.myhostname), dns)); // a Deliverer
//! let (queue, task) = runner::spawn(RunnerConfig {
//!     settings: QueueSettings { .. from zimbraMta* .. },
//!     hostname: cfg.myhostname.clone(),
//!     route: Arc::new(move |addr| router.next_hop(addr)),   // where a DSN to `addr` goes
//!     log: LogSink::stderr(),
//!     start_unix: None,
//! }, Arc::new(spool_handle), client);         // the spool is the QueueStore (spool.rs)
//! queue.recover(&spool_handle).await?;      // what the spool recovered at start
//! // after each commit of a new message: queue.arrived(qid, envelope, size).await
//! // admin: queue.list() / hold / release / requeue / delete / flush(Some(site)) / apply(op, ids)
//! ```

mod attempt;
mod body;
mod filter;
mod manager;
mod memory;
pub mod runner;
mod settings;
mod settled;
mod shape;
mod spool;

pub use attempt::{Attempt, AttemptReport, Deliverer, DeliveryRequest, Job, RcptResult};
pub use body::{BODY_PIECE, BodyBytes, BodyError, BodyRead, BodyReader, BodySource};
pub use filter::{Filter, QueueName, UnknownQueue, domain_of, pending_addresses};
pub use manager::{
    Action, Brief, BulkOp, DsnKind, MessageView, QueueManager, QueuedMessage, RcptState, RcptView,
    Work,
};
pub use memory::{MemoryStore, MemoryStoreError};
pub use runner::{KEEP_BODY, KEPT_BYTES};
pub use settings::QueueSettings;
pub use shape::{BUCKETS, Shape, ShapeBy, ShapeCounter, ShapeRow, shape};
