//! Record times and state history (`postern queue show`), and firmware from before them.

use super::format::SEG_HEADER;
use super::record::{self, Kind, StateBody};
use super::store::Purpose;
use super::tests::{body, fresh, put, reopen};
use super::*;
use crate::mail::{QueueState, RecipientOutcome, Relay, StateChange, StateEvent, Waiting};

fn deferred(until: u64, reason: &str) -> QueueState {
    QueueState::Deferred {
        until,
        reason: reason.into(),
    }
}

fn refused() -> Vec<Waiting> {
    vec![Waiting {
        recipients: vec![0],
        reason: "connect to mx.example.org[192.0.2.1]:25: Connection refused".into(),
        relay: Some(Relay::Nobody),
    }]
}

#[test]
fn each_change_keeps_its_time_through_reopen_and_compaction() {
    let mut spool = fresh();
    let q = put(&mut spool, b"hello", 1_000);
    let done = RecipientOutcome::Delivered {
        relay: "mx.example.org[192.0.2.1]:25".into(),
        reply: "250 2.0.0 Ok".into(),
    };
    spool
        .mark_recipient(q, 1, done.clone(), 1_795_000_010)
        .unwrap();
    let first = StateChange {
        state: deferred(1_795_000_310, "Connection refused"),
        at: 1_795_000_010,
        waiting: refused(),
        flushed: false,
    };
    spool.set_state(q, first).unwrap();
    spool
        .set_state(q, StateChange::new(QueueState::Hold, 1_795_000_100))
        .unwrap();
    let gone = RecipientOutcome::Failed {
        status: "5.1.1".into(),
        diagnostic: "smtp; 550 5.1.1 unknown".into(),
        remote_mta: None,
    };
    spool
        .mark_recipient(q, 0, gone.clone(), 1_795_000_150)
        .unwrap();
    let flush = StateChange {
        flushed: true,
        ..StateChange::new(QueueState::Active, 1_795_000_200)
    };
    spool.set_state(q, flush).unwrap();
    spool.sync().unwrap();
    // Enough traffic that every segment the message's records were in is compacted.
    for i in 0..200u64 {
        let other = put(&mut spool, &body(300, i as u8), 2_000 + i);
        spool.remove(other).unwrap();
        spool.sync().unwrap();
    }
    assert!(spool.info().compactions > 10);
    let (mut spool, _) = reopen(spool);
    let h = spool.history(q).unwrap();
    assert_eq!(h.summary.outcomes, vec![Some(gone), Some(done)]);
    let first = OutcomeTime {
        at: 1_795_000_010,
        after_changes: 0,
    };
    let after_hold = OutcomeTime {
        at: 1_795_000_150,
        after_changes: 2,
    };
    assert_eq!(h.outcome_times, vec![Some(after_hold), Some(first)]);
    let changes: Vec<(Option<u64>, QueueState)> =
        h.changes.iter().map(|c| (c.at, c.state.clone())).collect();
    assert_eq!(
        changes,
        vec![
            (
                Some(1_795_000_010),
                deferred(1_795_000_310, "Connection refused")
            ),
            (Some(1_795_000_100), QueueState::Hold),
            (Some(1_795_000_200), QueueState::Active),
        ]
    );
    assert_eq!(h.changes[0].waiting, refused());
    let flushed: Vec<bool> = h.changes.iter().map(|c| c.flushed).collect();
    assert_eq!(flushed, [false, false, true]);
    assert_eq!(h.summary.state, QueueState::Active);
    assert_eq!(h.changes_before, 0);
}

#[test]
fn a_reason_stored_once_reads_back_for_its_recipients() {
    let mut spool = fresh();
    let q = put(&mut spool, b"hello", 1_000);
    let why = "connect to mx.example.org[192.0.2.1]:25: Connection refused";
    for at in [10, 20] {
        let change = StateChange {
            state: deferred(at + 300, why),
            at,
            waiting: refused(),
            flushed: false,
        };
        spool.set_state(q, change).unwrap();
    }
    let loc = spool.index.get(&q).unwrap().state_loc();
    let mut buf = Vec::new();
    spool.read_record(q, Kind::State, loc, &mut buf).unwrap();
    assert_eq!(
        buf.windows(why.len())
            .filter(|w| *w == why.as_bytes())
            .count(),
        2,
        "once per change, not once more per waiting group"
    );
    let h = spool.history(q).unwrap();
    assert!(h.changes.iter().all(|c| c.waiting == refused()), "{h:?}");
}

/// A state record exactly as format 2 firmware before stamps wrote it.
fn legacy_state(
    spool: &mut Spool<hal::flash::RamFlash>,
    qid: QueueId,
    version: u32,
    state: QueueState,
) {
    let body = postcard::to_allocvec(&StateBody { version, state }).unwrap();
    let bytes = record::encode(spool.layout.nonce, Kind::State, qid.0, &[&body]);
    spool
        .put(&bytes, body.len() as u32, Purpose::Delivery)
        .unwrap();
    spool.sync().unwrap();
}

#[test]
fn records_from_firmware_without_times_read_with_the_time_unknown() {
    let mut spool = fresh();
    let q = put(&mut spool, b"hello", 1_000);
    legacy_state(&mut spool, q, 1, QueueState::Hold);
    let (mut spool, report) = reopen(spool);
    assert_eq!(report.messages, 1);
    let h = spool.history(q).unwrap();
    assert_eq!(
        h.changes,
        vec![StateEvent {
            at: None,
            state: QueueState::Hold,
            waiting: Vec::new(),
            flushed: false,
        }]
    );
    // The next change carries the old one forward, still without a time.
    spool
        .set_state(q, StateChange::new(QueueState::Active, 1_795_000_000))
        .unwrap();
    spool.sync().unwrap();
    let (mut spool, _) = reopen(spool);
    let at: Vec<Option<u64>> = spool
        .history(q)
        .unwrap()
        .changes
        .iter()
        .map(|c| c.at)
        .collect();
    assert_eq!(at, vec![None, Some(1_795_000_000)]);
}

#[test]
fn the_state_format_2_firmware_recovers_from_a_stamped_record_is_the_same() {
    let mut spool = fresh();
    let q = put(&mut spool, b"hello", 1_000);
    let change = StateChange {
        state: deferred(1_795_000_310, "Connection refused"),
        at: 1_795_000_010,
        waiting: refused(),
        flushed: false,
    };
    spool.set_state(q, change).unwrap();
    spool.sync().unwrap();
    // Read the record back as that firmware's recovery does: postcard, the base body only.
    let loc = spool.index.get(&q).unwrap().state_loc();
    let mut buf = Vec::new();
    spool.read_record(q, Kind::State, loc, &mut buf).unwrap();
    let old: StateBody = postcard::from_bytes(&buf).unwrap();
    assert_eq!(old.state, deferred(1_795_000_310, "Connection refused"));
    assert_eq!(old.version, 1);
    assert!(
        buf.len() > postcard::to_allocvec(&old).unwrap().len(),
        "the stamp follows"
    );
}

#[test]
fn a_long_history_stays_within_a_small_segment() {
    let mut spool = fresh();
    let q = put(&mut spool, b"hello", 1_000);
    let long = "x".repeat(300);
    for i in 0..100u64 {
        let change = StateChange {
            state: deferred(2_000 + i, &long),
            at: 1_000 + i,
            waiting: vec![Waiting {
                recipients: vec![0, 1],
                reason: long.clone(),
                relay: Some(Relay::Host(format!("{long}[192.0.2.1]:25"))),
            }],
            flushed: false,
        };
        spool.set_state(q, change).unwrap();
        spool.sync().unwrap();
    }
    let segment = spool.layout.segment_size() - SEG_HEADER;
    let loc = spool.index.get(&q).unwrap().state_loc();
    assert!(loc.len < segment, "{} of {segment}", loc.len);
    let h = spool.history(q).unwrap();
    assert_eq!(h.changes.last().unwrap().at, Some(1_099));
    assert_eq!(h.changes_before as usize + h.changes.len(), 100);
    assert!(h.changes_before > 0);
    let at: Vec<u64> = h.changes.iter().filter_map(|c| c.at).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "oldest first: {at:?}");
}

/// What the `spool_record` fuzz target asks of any bytes, over the bodies the spool writes and
/// bytes derived from them: firmware with and without stamps read the same base, and a body
/// written back reads back the same.
#[test]
fn both_readers_agree_on_every_body_the_fuzz_target_would_try() {
    use super::fuzz::{read_both_ways, reencode_record_body};
    let mut spool = fresh();
    let q = put(&mut spool, b"hello", 1_000);
    let change = StateChange {
        state: deferred(1_795_000_310, "Connection refused"),
        at: 1_795_000_010,
        waiting: refused(),
        flushed: false,
    };
    spool.set_state(q, change).unwrap();
    let loc = spool.index.get(&q).unwrap().state_loc();
    let mut state = Vec::new();
    spool.read_record(q, Kind::State, loc, &mut state).unwrap();
    let (old, new, at) = read_both_ways(Kind::State as u8, &state).unwrap();
    assert_eq!((old.clone(), at), (new, Some(1_795_000_010)));
    assert!(
        state.starts_with(&old),
        "the base comes first, as format 2 wrote it"
    );
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for n in 0..20_000usize {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut body = state.clone();
        match n % 3 {
            0 => body.truncate(seed as usize % (body.len() + 1)),
            1 => {
                let i = seed as usize % body.len();
                body[i] ^= (seed >> 32) as u8 | 1;
            }
            _ => body.extend_from_slice(&seed.to_le_bytes()[..(seed % 9) as usize]),
        }
        for kind in [Kind::Recipient as u8, Kind::State as u8] {
            if let Some((old, new, _)) = read_both_ways(kind, &body) {
                assert_eq!(old, new, "{body:?}");
            }
            if let Some(again) = reencode_record_body(kind, &body) {
                assert_eq!(reencode_record_body(kind, &again), Some(again));
            }
        }
    }
}
