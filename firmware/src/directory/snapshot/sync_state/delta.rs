//! A journal record of the directory slot: what one poll changed in the sync's state, appended
//! after the snapshot instead of writing the whole snapshot again (13 MiB at 100 000 accounts,
//! most of a second, for a poll's handful of changes).
//!
//! It holds the entries the poll added or changed, in the snapshot's own entry records, the keys
//! of those it deleted, and the rest of the state whole (cookie, mark, unreadable entries, the
//! time of the sync). Read back, the snapshot's model with every record applied in order is the
//! model the poll left, and the directory is built from it as from any snapshot.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::{
    EntryRecord, Progress, Reader, Strings, TABLE_BYTES_EXTRA, TABLE_BYTES_PER_BYTE, entry,
};
use crate::directory::ldap::state::SyncState;
use crate::directory::snapshot::DecodeError;

/// The record's format; a record of another is refused.
const DELTA_VERSION: u8 = 1;

#[derive(Serialize, Deserialize)]
struct DeltaRecord<'a> {
    version: u8,
    /// Unix seconds of the sync, as the directory records it.
    synced: Option<u64>,
    progress: Progress,
    strings: Vec<String>,
    #[serde(borrow)]
    upserts: Vec<EntryRecord<'a>>,
    #[serde(borrow)]
    deletes: Vec<Cow<'a, str>>,
}

/// The record that takes `before` (as stored) to `after`, a poll's state; `None` when the two
/// were read with other settings or a changed entry has no stored form (then the whole
/// snapshot is written).
pub(in crate::directory::snapshot) fn encode(
    before: &SyncState,
    after: &SyncState,
    synced: Option<u64>,
) -> Option<Vec<u8>> {
    if before.origin != after.origin {
        return None;
    }
    let (changed, deletes) = after.model.changed_since(&before.model);
    let mut strings = Strings::default();
    let upserts = changed
        .iter()
        .map(|(k, m)| entry(&mut strings, k, m))
        .collect::<Option<Vec<_>>>()?;
    let record = DeltaRecord {
        version: DELTA_VERSION,
        synced,
        progress: Progress::of(after)?,
        strings: strings.list,
        upserts,
        deletes: deletes.into_iter().map(Cow::Owned).collect(),
    };
    postcard::to_allocvec(&record).ok()
}

/// Applies one record to the state read from the snapshot (and the records before it); returns
/// the sync time it records. On an error `state` is as it was.
pub(in crate::directory::snapshot) fn apply(
    state: &mut SyncState,
    bytes: &[u8],
) -> Result<Option<u64>, DecodeError> {
    let r: DeltaRecord = postcard::from_bytes(bytes).map_err(|_| DecodeError::Corrupt)?;
    if r.version != DELTA_VERSION {
        return Err(DecodeError::Corrupt);
    }
    let strings = r.strings;
    let reader = Reader {
        strings: &strings,
        budget: std::cell::Cell::new(
            bytes
                .len()
                .saturating_mul(TABLE_BYTES_PER_BYTE)
                .saturating_add(TABLE_BYTES_EXTRA),
        ),
    };
    let upserts = r
        .upserts
        .into_iter()
        .map(|e| reader.entry(e))
        .collect::<Result<Vec<_>, _>>()?;
    let deletes: Vec<String> = r.deletes.into_iter().map(Cow::into_owned).collect();
    // The last thing that can fail: after it, nothing does.
    r.progress.set_on(state)?;
    std::sync::Arc::make_mut(&mut state.model).apply_changes(upserts, &deletes);
    Ok(r.synced)
}
