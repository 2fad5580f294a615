//! What can go wrong in the spool. The SMTP side decides what a client is told of each (a full
//! spool is `452 4.3.1` there); the flash store does not speak SMTP.

use std::fmt;

use hal::flash::FlashError;

use crate::mail::QueueId;

/// A spool failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpoolError {
    /// No room for new messages (the rest is kept for delivery records and compaction).
    Full,
    /// The flash device failed.
    Flash(FlashError),
    /// A sync failed earlier: what reached flash is unknown, so the spool takes no more writes
    /// until it is opened again (and recovery decides).
    Failed,
    /// The flash has never been formatted.
    NotFormatted,
    /// The superblock is damaged or not Postern's. The flash is never reformatted on its own.
    BadSuperblock(String),
    /// A superblock of a format version this firmware does not know.
    UnsupportedVersion(u32),
    /// The flash device does not match what the superblock says.
    GeometryMismatch(String),
    /// A geometry `format` cannot use.
    BadGeometry(String),
    /// No message with this queue id (or it is not committed yet).
    NoSuchMessage(QueueId),
    /// The message has no recipient with this index.
    NoSuchRecipient { qid: QueueId, index: usize },
    /// Data too large for its slot; nothing was written, the slot's previous data stays.
    SlotTooLarge {
        region: super::Region,
        len: usize,
        capacity: usize,
    },
    /// The slot holds journal records after its data: its data alone is not what was last
    /// written, so it is only read with its journal.
    SlotJournaled(super::Region),
    /// A region's data given in parts did not come whole, or another write of the region
    /// finished first; nothing of it is in force, the previous data stays.
    SlotWriteBroken(super::Region),
    /// A stored body failed its CRC when read back.
    Damaged(QueueId),
    /// A record could not be encoded.
    Encode(String),
    /// The spool writer thread is gone.
    Stopped,
}

impl From<FlashError> for SpoolError {
    fn from(e: FlashError) -> SpoolError {
        SpoolError::Flash(e)
    }
}

impl fmt::Display for SpoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpoolError::Full => f.write_str("spool full"),
            SpoolError::Flash(e) => write!(f, "spool flash error: {e}"),
            SpoolError::Failed => {
                f.write_str("spool stopped after a failed sync; restart to recover")
            }
            SpoolError::NotFormatted => f.write_str("flash is not formatted (no superblock)"),
            SpoolError::BadSuperblock(why) => write!(f, "{why}"),
            SpoolError::UnsupportedVersion(v) => write!(
                f,
                "flash format version {v} is not supported by this firmware (it knows {})",
                super::format::FORMAT_VERSION
            ),
            SpoolError::GeometryMismatch(why) => write!(f, "flash geometry mismatch: {why}"),
            SpoolError::BadGeometry(why) => write!(f, "bad spool geometry: {why}"),
            SpoolError::NoSuchMessage(q) => write!(f, "{q}: no such message"),
            SpoolError::NoSuchRecipient { qid, index } => {
                write!(f, "{qid}: no recipient #{index}")
            }
            SpoolError::SlotTooLarge {
                region,
                len,
                capacity,
            } => {
                let mib = |n: &usize| *n as f64 / (1 << 20) as f64;
                let name = match region {
                    super::Region::Config => "config",
                    super::Region::Directory => "directory",
                };
                write!(
                    f,
                    "the {name} data is {len} bytes ({:.1} MiB), more than the {name} slot's \
                     {capacity} bytes ({:.1} MiB); the previous {name} data stays in force",
                    mib(len),
                    mib(capacity)
                )
            }
            SpoolError::Damaged(q) => write!(f, "{q}: stored body is damaged (CRC mismatch)"),
            SpoolError::SlotWriteBroken(region) => write!(
                f,
                "the {} data was not written whole; the previous data stays in force",
                match region {
                    super::Region::Config => "config",
                    super::Region::Directory => "directory",
                }
            ),
            SpoolError::SlotJournaled(region) => write!(
                f,
                "the {} slot holds journal records and is read with them",
                match region {
                    super::Region::Config => "config",
                    super::Region::Directory => "directory",
                }
            ),
            SpoolError::Encode(why) => write!(f, "cannot encode a spool record: {why}"),
            SpoolError::Stopped => f.write_str("spool writer is not running"),
        }
    }
}

impl std::error::Error for SpoolError {}
