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
//! so that a reader takes what it knows from any revision at or above the first; the superblock's
//! format version stays 2, as a firmware that reads format 2 reads every record this one writes.
//!
//! Revision 2 appends to a state stamp which server gave each waiting group its answer and
//! whether each change was a `queue flush`: revision 1 firmware reads the revision 1 fields and
//! leaves the rest, and this firmware reads a revision 1 stamp with those unknown.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::mail::{QueueState, Relay, StateEvent, Waiting};

/// The stamp revision this firmware writes.
pub(crate) const REVISION: u8 = 2;

/// The first revision: every stamp since begins with its fields.
const FIRST_REVISION: u8 = 1;

/// A stamp as it is written after a base body and read back.
pub(crate) trait Stamp: Sized {
    /// Appends the stamp's bytes (without the revision byte) to `out`.
    fn write(&self, out: Vec<u8>) -> Result<Vec<u8>, postcard::Error>;
    /// The stamp from the bytes after a record's revision byte; None if they do not read.
    fn read(revision: u8, bytes: &[u8]) -> Option<Self>;
}

/// After a recipient record's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RecipientStamp {
    /// Unix seconds.
    pub at: u64,
    /// State changes the message had when the outcome was written: places the outcome among
    /// them exactly, where a clock of whole seconds cannot.
    pub after_changes: u32,
}

impl Stamp for RecipientStamp {
    fn write(&self, out: Vec<u8>) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_extend(self, out)
    }

    fn read(_revision: u8, bytes: &[u8]) -> Option<Self> {
        postcard::from_bytes(bytes).ok()
    }
}

/// After a state record's body. Only the newest state record of a message stays live, so it
/// carries the changes before it: the history survives compaction without a byte of RAM. The
/// record's version counts every change, so changes no longer carried are counted too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StateStamp {
    /// Unix seconds.
    pub at: u64,
    /// For a deferral: who waits, and why (the last groups are left out of a record that would
    /// grow too large).
    pub waiting: Vec<Waiting>,
    /// The changes just before this one, oldest first (at most [`MAX_EARLIER`]).
    pub earlier: Vec<StateEvent>,
    /// This change was a `queue flush`.
    pub flushed: bool,
}

/// Revision 1's state stamp, the layout every revision begins with.
#[derive(Serialize, Deserialize)]
struct StateV1 {
    at: u64,
    waiting: Vec<WaitingV1>,
    earlier: Vec<EventV1>,
}

#[derive(Serialize, Deserialize)]
struct WaitingV1 {
    recipients: Vec<u32>,
    reason: String,
}

#[derive(Serialize, Deserialize)]
struct EventV1 {
    at: Option<u64>,
    state: QueueState,
    waiting: Vec<WaitingV1>,
}

/// What revision 2 appends: one relay per waiting group and whether the change was a flush, for
/// this change and for each earlier one, in the order of revision 1's fields.
#[derive(Serialize, Deserialize, Default)]
struct StateV2 {
    relays: Vec<Option<Relay>>,
    flushed: bool,
    earlier: Vec<EventV2>,
}

#[derive(Serialize, Deserialize, Default)]
struct EventV2 {
    relays: Vec<Option<Relay>>,
    flushed: bool,
}

fn waiting_v1(waiting: &[Waiting]) -> Vec<WaitingV1> {
    waiting
        .iter()
        .map(|w| WaitingV1 {
            recipients: w.recipients.clone(),
            reason: w.reason.clone(),
        })
        .collect()
}

fn relays(waiting: &[Waiting]) -> Vec<Option<Relay>> {
    waiting.iter().map(|w| w.relay.clone()).collect()
}

/// Revision 1's groups with the relays revision 2 gave them (None where it gave none).
fn waiting_of(v1: Vec<WaitingV1>, relays: Vec<Option<Relay>>) -> Vec<Waiting> {
    let mut relays = relays.into_iter();
    v1.into_iter()
        .map(|w| Waiting {
            recipients: w.recipients,
            reason: w.reason,
            relay: relays.next().flatten(),
        })
        .collect()
}

impl Stamp for StateStamp {
    fn write(&self, out: Vec<u8>) -> Result<Vec<u8>, postcard::Error> {
        let v1 = StateV1 {
            at: self.at,
            waiting: waiting_v1(&self.waiting),
            earlier: self
                .earlier
                .iter()
                .map(|e| EventV1 {
                    at: e.at,
                    state: e.state.clone(),
                    waiting: waiting_v1(&e.waiting),
                })
                .collect(),
        };
        let v2 = StateV2 {
            relays: relays(&self.waiting),
            flushed: self.flushed,
            earlier: self
                .earlier
                .iter()
                .map(|e| EventV2 {
                    relays: relays(&e.waiting),
                    flushed: e.flushed,
                })
                .collect(),
        };
        postcard::to_extend(&v2, postcard::to_extend(&v1, out)?)
    }

    fn read(revision: u8, bytes: &[u8]) -> Option<Self> {
        let (v1, rest) = postcard::take_from_bytes::<StateV1>(bytes).ok()?;
        // Fields a revision 2 writer appended; a record that lacks them still has its time.
        let v2 = if revision >= 2 {
            postcard::from_bytes::<StateV2>(rest).unwrap_or_default()
        } else {
            StateV2::default()
        };
        let mut earlier_v2 = v2.earlier.into_iter();
        let earlier = v1
            .earlier
            .into_iter()
            .map(|e| {
                let more = earlier_v2.next().unwrap_or_default();
                StateEvent {
                    at: e.at,
                    state: e.state,
                    waiting: waiting_of(e.waiting, more.relays),
                    flushed: more.flushed,
                }
            })
            .collect();
        Some(StateStamp {
            at: v1.at,
            waiting: waiting_of(v1.waiting, v2.relays),
            earlier,
            flushed: v2.flushed,
        })
    }
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
pub(crate) fn encode<B: Serialize, S: Stamp>(
    base: &B,
    stamp: &S,
) -> Result<Vec<u8>, postcard::Error> {
    let mut out = postcard::to_allocvec(base)?;
    out.push(REVISION);
    stamp.write(out)
}

/// The base body, and the stamp if the record has one this firmware reads.
pub(crate) fn decode<B: DeserializeOwned, S: Stamp>(
    body: &[u8],
) -> Result<(B, Option<S>), postcard::Error> {
    let (base, rest) = postcard::take_from_bytes::<B>(body)?;
    let stamp = match rest.split_first() {
        Some((&rev, stamp)) if rev >= FIRST_REVISION => S::read(rev, stamp),
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
        flushed: bool,
        previous: Option<(StateEvent, Option<StateStamp>)>,
        budget: usize,
    ) -> StateStamp {
        let mut stamp = StateStamp {
            at,
            waiting,
            earlier: Vec::new(),
            flushed,
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
        let size = |s: &StateStamp| s.write(Vec::new()).map_or(usize::MAX, |b| b.len());
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
        let stamp = StateStamp::carry(1_000, Vec::new(), false, None, 4096);
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

    fn refused(relay: Option<Relay>) -> Vec<Waiting> {
        vec![Waiting {
            recipients: vec![0, 2],
            reason: "connect to mx[192.0.2.1]:25: Connection refused".into(),
            relay,
        }]
    }

    /// A deferral after a flush, with per-group relays: what revision 2 adds, on both.
    fn flushed_then_deferred() -> StateStamp {
        let flush = StateEvent {
            at: Some(900),
            state: QueueState::Active,
            waiting: Vec::new(),
            flushed: true,
        };
        let mut waiting = refused(Some(Relay::Nobody));
        waiting.push(Waiting {
            recipients: vec![1],
            reason: "host mx[192.0.2.2] said: 451 4.7.1 greylisted".into(),
            relay: Some(Relay::Host("mx[192.0.2.2]:25".into())),
        });
        StateStamp::carry(1_000, waiting, false, Some((flush, None)), 4096)
    }

    #[test]
    fn relays_and_flushes_read_back_as_written() {
        let base = StateBody {
            version: 2,
            state: deferred("connect to mx[192.0.2.1]:25: Connection refused"),
        };
        let stamp = flushed_then_deferred();
        let bytes = encode(&base, &stamp).unwrap();
        let (b, s) = decode::<StateBody, StateStamp>(&bytes).unwrap();
        assert_eq!((b, s.as_ref()), (base, Some(&stamp)));
        let s = s.unwrap();
        assert!(s.earlier[0].flushed && !s.flushed);
        assert_eq!(s.waiting[0].relay, Some(Relay::Nobody));
    }

    #[test]
    fn revision_1_firmware_reads_what_revision_2_writes() {
        let base = StateBody {
            version: 2,
            state: deferred("x"),
        };
        let bytes = encode(&base, &flushed_then_deferred()).unwrap();
        // What revision 1 firmware ran: its stamp struct read from the bytes after any revision
        // at or above 1, trailing bytes left alone.
        let (b, rest) = postcard::take_from_bytes::<StateBody>(&bytes).unwrap();
        assert_eq!(b, base);
        let (&rev, stamp) = rest.split_first().unwrap();
        assert!(rev >= 1);
        let old = postcard::from_bytes::<StateV1>(stamp).unwrap();
        assert_eq!(old.at, 1_000);
        assert_eq!(old.waiting.len(), 2);
        assert_eq!(old.waiting[1].recipients, vec![1]);
        assert_eq!(old.earlier.len(), 1);
        assert_eq!(old.earlier[0].at, Some(900));
        assert_eq!(old.earlier[0].state, QueueState::Active);
    }

    #[test]
    fn a_revision_1_record_reads_with_relay_and_flush_unknown() {
        let base = StateBody {
            version: 2,
            state: deferred("x"),
        };
        // As revision 1 firmware wrote it.
        let v1 = StateV1 {
            at: 1_000,
            waiting: waiting_v1(&refused(None)),
            earlier: vec![EventV1 {
                at: Some(900),
                state: QueueState::Active,
                waiting: Vec::new(),
            }],
        };
        let mut bytes = postcard::to_allocvec(&base).unwrap();
        bytes.push(1);
        let bytes = postcard::to_extend(&v1, bytes).unwrap();
        let (_, s) = decode::<StateBody, StateStamp>(&bytes).unwrap();
        let s = s.expect("a revision 1 stamp keeps its time");
        assert_eq!(s.at, 1_000);
        assert_eq!(s.waiting, refused(None));
        assert!(!s.flushed && !s.earlier[0].flushed);
        assert_eq!(s.earlier[0].at, Some(900));
    }

    #[test]
    fn a_later_revision_of_a_state_stamp_still_reads() {
        let base = StateBody {
            version: 2,
            state: deferred("x"),
        };
        let stamp = flushed_then_deferred();
        let mut bytes = encode(&base, &stamp).unwrap();
        let rev = postcard::to_allocvec(&base).unwrap().len();
        bytes[rev] = REVISION + 1;
        bytes.extend_from_slice(b"fields of a later revision");
        assert_eq!(
            decode::<StateBody, StateStamp>(&bytes).unwrap(),
            (base, Some(stamp))
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
                flushed: false,
            };
            stamp = Some(StateStamp::carry(
                100 + i,
                Vec::new(),
                false,
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
                relay: Some(Relay::Nobody),
            })
            .collect();
        let event = StateEvent {
            at: Some(5),
            state: deferred(&"y".repeat(200)),
            waiting: waiting.clone(),
            flushed: false,
        };
        let s = StateStamp::carry(9, waiting, false, Some((event, None)), 512);
        assert!(s.write(Vec::new()).unwrap().len() <= 512);
        assert_eq!(s.at, 9);
        assert!(
            s.earlier.is_empty(),
            "older changes go before waiting detail"
        );
        assert!(!s.waiting.is_empty() && s.waiting.len() < 50);
        assert_eq!(s.waiting[0].recipients, vec![0], "the first groups stay");
    }
}
