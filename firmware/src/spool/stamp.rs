//! When a recipient reached its outcome and when a message changed state: a *stamp* after the
//! body of recipient and state records, for `postern queue show`.
//!
//! ```text
//! | base body (postcard, as format 2 always wrote it) | revision u8 | stamp (postcard) |
//! ```
//!
//! Firmware from before stamps reads a stamped record exactly as it reads its own: postcard takes
//! the base body and leaves the bytes after it alone. The record CRC covers the stamp, so recovery,
//! repair and compaction carry it unchanged. A record without bytes after its base body was
//! written before stamps: its time is unknown. A later revision may only append fields to a stamp,
//! so that this reader takes what it knows from any revision at or above its own; the superblock's
//! format version stays 2, as a firmware that reads format 2 reads every record this one writes.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::mail::{QueueState, StateEvent, Waiting};

/// The stamp revision this firmware writes.
pub(crate) const REVISION: u8 = 1;

/// After a recipient record's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RecipientStamp {
    /// Unix seconds.
    pub at: u64,
    /// State changes the message had when the outcome was written: places the outcome among
    /// them exactly, where a clock of whole seconds cannot.
    pub after_changes: u32,
}

/// After a state record's body. Only the newest state record of a message stays live, so it
/// carries the changes before it: the history survives compaction without a byte of RAM. The
/// record's version counts every change, so changes no longer carried are counted too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StateStamp {
    /// Unix seconds.
    pub at: u64,
    /// For a deferral: who waits, and why (the last groups are left out of a record that would
    /// grow too large).
    pub waiting: Vec<Waiting>,
    /// The changes just before this one, oldest first (at most [`MAX_EARLIER`]).
    pub earlier: Vec<StateEvent>,
}

/// State changes a state record carries besides its own: a few days of retries at the longest
/// backoff, and the holds and releases among them.
pub(crate) const MAX_EARLIER: usize = 32;

/// The most bytes a state stamp may take: a record must fit in a segment however small, and a
/// backup MX retrying a million messages should not write kilobytes for each retry (the mail log
/// on flash keeps every attempt of every message anyway).
pub(crate) fn max_state_stamp(segment_size: u32) -> usize {
    (segment_size as usize / 16).clamp(256, 1024)
}

/// A waiting group whose reason is the deferral's own is stored with an empty reason: for the
/// common one-recipient message the reason would otherwise be on flash twice per change.
pub(crate) fn shrink(state: &QueueState, waiting: &mut [Waiting]) {
    if let QueueState::Deferred { reason, .. } = state {
        for w in waiting.iter_mut().filter(|w| w.reason == *reason) {
            w.reason.clear();
        }
    }
}

/// Undoes [`shrink`].
pub(crate) fn expand(state: &QueueState, waiting: &mut [Waiting]) {
    if let QueueState::Deferred { reason, .. } = state {
        for w in waiting.iter_mut().filter(|w| w.reason.is_empty()) {
            w.reason.clone_from(reason);
        }
    }
}

/// A base body followed by its stamp.
pub(crate) fn encode<B: Serialize, S: Serialize>(
    base: &B,
    stamp: &S,
) -> Result<Vec<u8>, postcard::Error> {
    let mut out = postcard::to_allocvec(base)?;
    out.push(REVISION);
    postcard::to_extend(stamp, out)
}

/// The base body, and the stamp if the record has one this firmware reads.
pub(crate) fn decode<B: DeserializeOwned, S: DeserializeOwned>(
    body: &[u8],
) -> Result<(B, Option<S>), postcard::Error> {
    let (base, rest) = postcard::take_from_bytes::<B>(body)?;
    let stamp = match rest.split_first() {
        Some((&rev, stamp)) if rev >= REVISION => postcard::from_bytes(stamp).ok(),
        _ => None,
    };
    Ok((base, stamp))
}

impl StateStamp {
    /// The stamp of a new state change at `at`, carrying `previous` (the change it replaces,
    /// with its own stamp if it had one) and what that one carried, within `budget` bytes.
    pub fn carry(
        at: u64,
        waiting: Vec<Waiting>,
        previous: Option<(StateEvent, Option<StateStamp>)>,
        budget: usize,
    ) -> StateStamp {
        let mut stamp = StateStamp {
            at,
            waiting,
            earlier: Vec::new(),
        };
        if let Some((event, old)) = previous {
            if let Some(old) = old {
                stamp.earlier = old.earlier;
            }
            stamp.earlier.push(event);
        }
        if stamp.earlier.len() > MAX_EARLIER {
            stamp.earlier.drain(..stamp.earlier.len() - MAX_EARLIER);
        }
        stamp.fit(budget);
        stamp
    }

    /// Drops the oldest changes, then waiting detail, until the stamp takes at most `budget`
    /// bytes. The time itself always stays.
    fn fit(&mut self, budget: usize) {
        let size = |s: &StateStamp| postcard::to_allocvec(s).map_or(usize::MAX, |b| b.len());
        while size(self) > budget {
            if !self.earlier.is_empty() {
                self.earlier.remove(0);
            } else if self.waiting.pop().is_none() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::record::{RecipientBody, StateBody};

    fn deferred(reason: &str) -> QueueState {
        QueueState::Deferred {
            until: 2_000,
            reason: reason.into(),
        }
    }

    #[test]
    fn a_reader_without_stamps_reads_a_stamped_record_as_its_own() {
        let base = StateBody {
            version: 3,
            state: deferred("connect to mx[192.0.2.1]:25: Connection refused"),
        };
        let stamp = StateStamp::carry(1_000, Vec::new(), None, 4096);
        let bytes = encode(&base, &stamp).unwrap();
        // What format 2 firmware runs at recovery and for `queue show`.
        assert_eq!(postcard::from_bytes::<StateBody>(&bytes).unwrap(), base);
        assert_eq!(decode(&bytes).unwrap(), (base.clone(), Some(stamp)));
        let old = postcard::to_allocvec(&base).unwrap();
        assert_eq!(
            decode::<StateBody, StateStamp>(&old).unwrap(),
            (base, None),
            "a record from before stamps has no time"
        );
    }

    #[test]
    fn a_later_revision_that_appends_fields_still_reads() {
        let base = RecipientBody {
            index: 1,
            outcome: crate::mail::RecipientOutcome::Delivered {
                relay: "mx[192.0.2.1]:25".into(),
                reply: "250 ok".into(),
            },
        };
        let mut bytes = postcard::to_allocvec(&base).unwrap();
        bytes.push(REVISION + 1);
        let stamp = RecipientStamp {
            at: 77,
            after_changes: 2,
        };
        bytes.extend(postcard::to_allocvec(&stamp).unwrap());
        bytes.extend_from_slice(b"fields of a later revision");
        let (b, s) = decode::<RecipientBody, RecipientStamp>(&bytes).unwrap();
        assert_eq!((b, s), (base, Some(stamp)));
    }

    #[test]
    fn history_is_carried_oldest_first_and_bounded() {
        let mut stamp: Option<StateStamp> = None;
        let mut state = QueueState::Active;
        for i in 0..(MAX_EARLIER as u64 + 5) {
            let event = StateEvent {
                at: stamp.as_ref().map(|s| s.at),
                state: state.clone(),
                waiting: Vec::new(),
            };
            stamp = Some(StateStamp::carry(
                100 + i,
                Vec::new(),
                Some((event, stamp)),
                4096,
            ));
            state = deferred(&format!("try {i}"));
        }
        let s = stamp.unwrap();
        assert_eq!(s.earlier.len(), MAX_EARLIER);
        let times: Vec<_> = s.earlier.iter().map(|e| e.at).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
        assert_eq!(
            s.earlier.last().unwrap().at,
            Some(100 + MAX_EARLIER as u64 + 3)
        );
    }

    #[test]
    fn a_stamp_keeps_to_its_budget_and_its_time() {
        let waiting: Vec<Waiting> = (0..50)
            .map(|i| Waiting {
                recipients: vec![i],
                reason: "x".repeat(100),
            })
            .collect();
        let event = StateEvent {
            at: Some(5),
            state: deferred(&"y".repeat(200)),
            waiting: waiting.clone(),
        };
        let s = StateStamp::carry(9, waiting, Some((event, None)), 512);
        assert!(postcard::to_allocvec(&s).unwrap().len() <= 512);
        assert_eq!(s.at, 9);
        assert!(
            s.earlier.is_empty(),
            "older changes go before waiting detail"
        );
        assert!(!s.waiting.is_empty() && s.waiting.len() < 50);
        assert_eq!(s.waiting[0].recipients, vec![0], "the first groups stay");
    }
}
