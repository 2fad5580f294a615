//! The directory synced from LDAP.
//!
//! Reading LDAP ([`client`]) is kept apart from what entries mean ([`zimbra`], the schema
//! mapping, into [`object`]s), from the sync's picture of LDAP ([`model`]) and from building a
//! directory out of it ([`build`]). [`sync`] runs one sync: read, map, build a new directory off
//! to the side, store it on flash, then swap it in; a failure anywhere leaves the directory that
//! was being served. Bad entries are skipped with a reason, never a panic and never the whole
//! sync.

pub mod build;
pub mod client;
mod diff;
pub mod entries;
pub mod entry;
mod entry_map;
pub mod fetch;
mod key;
pub mod locate;
pub mod model;
pub mod object;
pub(crate) mod packed;
mod patch;
pub mod plain;
pub mod probe;
pub mod service;
mod stamp;
pub mod state;
pub mod status;
pub mod sync;
pub mod syncrepl;
pub mod zimbra;

pub use build::{Built, Counts, build};
pub use entry::{MalformedEntry, RawEntry};
pub use model::{Changes, Model, Schema};
pub use object::{SkipReason, Skipped};
pub use packed::SyncedHash;
pub use service::{LdapHandle, NotRun};
pub use status::{LdapStatus, SyncKind, SyncReport};
pub use sync::{
    AppendRefused, Gathered, Resumed, SaveError, SnapshotParts, SnapshotStore, SyncError, Syncer,
    set_phase_probe,
};
