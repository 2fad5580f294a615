//! The flash store: an append-only log of records with group commit, recovery and compaction.
//!
//! This is where the product keeps its one promise: when Postern answers 250, the message is on
//! flash. A message is a run of records in the log (see [`record`]): *begin* (queue id and
//! envelope), *chunks* of its body as they arrive, and *commit*. It exists only once its commit
//! record is synced; later records mark recipients done, change its queue state, and *end* it.
//!
//! - [`Spool`] is the sync core (no tokio, no SMTP): format, open with recovery, append, sync,
//!   compaction, the config and directory slots, and [`FlashInfo`] for `postern flash info`.
//! - [`service`] is the thin async front: one writer thread owns the `Spool` and commits the
//!   records of every session with one sync (group commit); sessions hold a [`SpoolHandle`].
//!
//! The log is a ring of segments (runs of erase blocks). When free segments run low, the oldest
//! segment's live records are copied to the head, synced, and the segment is erased: its erase
//! count goes up, and the ring spreads wear evenly. Some segments are held back so that delivery
//! records and compaction can always proceed: new messages get [`SpoolError::Full`] first
//! (inbound answers it with `452 4.3.1`), and nothing acknowledged is ever dropped to make room.
//!
//! Recovery does not depend on record order: chunks are numbered, state changes carry a version,
//! recipient outcomes are final, and an end record outlives every other record of its message
//! because segments are erased oldest first.
//!
//! Recipient and state records carry their time in a stamp after the body (`stamp.rs`), and the
//! live state record carries the changes before it, so `postern queue show` lists every record
//! with its time though the index in RAM keeps no time at all. Firmware without stamps reads
//! these records as its own.

mod body;
mod entry;
mod error;
mod format;
#[doc(hidden)]
pub mod fuzz;
#[cfg(test)]
mod history_tests;
mod index;
mod logring;
pub(crate) mod qid_map;
mod record;
mod recovered;
mod recovery;
pub mod service;
mod slots;
mod stamp;
mod store;
mod summary;
#[cfg(test)]
pub(crate) mod tests;

use std::time::Duration;

pub use error::SpoolError;
pub use format::{FORMAT_VERSION, SpoolGeometry};
pub use index::{MessageHistory, MessageSummary, OutcomeTime};
pub use logring::LogLines;
pub use recovered::{RecoveredMessage, RecoveredQueue, RecoveredRecipient, RecoveredState};
pub use service::{Committed, Incoming, SpoolHandle, Update};
pub use slots::{AppendRefused, Journaled, SlotWriting};
pub use store::{Admission, Spool, next_qid};

use crate::mail::QueueId;

/// The two small regions beside the spool log, each two slots written alternately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// Stored settings.
    Config,
    /// The directory cache snapshot.
    Directory,
}

/// How the spool behaves (not stored on flash; the layout is in the superblock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolSettings {
    /// Free segments kept back from new messages, for delivery records and compaction (≥ 2).
    pub reserve_segments: u32,
    /// Largest body chunk record; also the most body bytes a session holds in RAM.
    pub chunk_size: u32,
    /// Longest a commit waits for others to share its sync (group commit).
    pub group_commit_delay: Duration,
    /// A batch this large is synced at once.
    pub group_commit_bytes: usize,
}

impl Default for SpoolSettings {
    fn default() -> SpoolSettings {
        SpoolSettings {
            reserve_segments: 2,
            chunk_size: 16 * 1024,
            group_commit_delay: Duration::from_millis(2),
            group_commit_bytes: 1 << 20,
        }
    }
}

/// A record that failed its checksum during recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedRecord {
    pub segment: u32,
    pub offset: u32,
    /// The message it belonged to, when its header was still sound.
    pub qid: Option<QueueId>,
    /// Nothing sound follows it in the newest segment: taken for a write the power cut tore, not
    /// decay (unless `repaired`).
    pub at_tail: bool,
    /// It was one bit off a sound record (or segment header), so it was taken back as written: at
    /// the log's end, where decay and a torn write look alike, a sound copy is written if its
    /// message still needs it. Nothing was lost to it.
    pub repaired: bool,
}

/// A committed message recovery could not bring back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostMessage {
    pub qid: QueueId,
    pub reason: String,
}

/// What `Spool::open` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Messages in the queue after recovery.
    pub messages: usize,
    /// Messages begun but never committed (the client never got a 250): dropped.
    pub dropped_uncommitted: usize,
    /// Committed messages whose records were damaged: reported, not queued.
    pub lost: Vec<LostMessage>,
    /// Every record that failed its checksum.
    pub damaged: Vec<DamagedRecord>,
    pub segments_used: u32,
    pub segments_free: u32,
    /// Segments whose erase count was unreadable (estimated as the highest known).
    pub erase_counts_estimated: u32,
    /// Bytes of flash scanned.
    pub scanned_bytes: u64,
    /// The highest queue id seen; new ids are above it.
    pub max_qid: Option<QueueId>,
}

/// Usage of one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionInfo {
    pub name: &'static str,
    /// Flash address and length.
    pub start: u32,
    pub len: u32,
    /// Bytes of live data.
    pub used: u64,
}

/// What `postern flash info` shows.
#[derive(Debug, Clone, PartialEq)]
pub struct FlashInfo {
    pub format_version: u32,
    pub size: u32,
    pub erase_size: u32,
    pub regions: Vec<RegionInfo>,
    pub segment_size: u32,
    pub segments: u32,
    pub segments_used: u32,
    pub segments_free: u32,
    /// Segments taken out of service after program or erase failures.
    pub segments_bad: u32,
    pub messages: usize,
    /// Erase counts per segment, and their spread.
    pub erase_counts: Vec<u32>,
    pub erase_min: u32,
    pub erase_avg: f64,
    pub erase_max: u32,
    /// Since open.
    pub bytes_written: u64,
    pub erases: u64,
    pub syncs: u64,
    pub compactions: u64,
}

impl std::fmt::Display for FlashInfo {
    /// The `postern flash info` table.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "flash: {} bytes, erase block {} bytes, format version {}",
            self.size, self.erase_size, self.format_version
        )?;
        writeln!(
            f,
            "{:<11} {:>12} {:>12} {:>12}",
            "region", "start", "size", "used"
        )?;
        for r in &self.regions {
            writeln!(
                f,
                "{:<11} {:>#12x} {:>12} {:>12}",
                r.name, r.start, r.len, r.used
            )?;
        }
        writeln!(
            f,
            "spool: {} segments of {} bytes: {} used, {} free, {} bad; {} messages",
            self.segments,
            self.segment_size,
            self.segments_used,
            self.segments_free,
            self.segments_bad,
            self.messages
        )?;
        writeln!(
            f,
            "wear: erase count min {} avg {:.1} max {}",
            self.erase_min, self.erase_avg, self.erase_max
        )?;
        write!(
            f,
            "since open: {} bytes written, {} erases, {} syncs, {} compactions",
            self.bytes_written, self.erases, self.syncs, self.compactions
        )
    }
}
