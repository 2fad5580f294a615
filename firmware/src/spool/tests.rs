//! Behaviour of the sync core as the rest of the firmware sees it.

use hal::flash::{FlashGeometry, RamFlash};

use super::*;
use crate::mail::Transport;
use crate::mail::{
    BodyType, ClientInfo, Envelope, Notify, QueueState, Recipient, RecipientOutcome, StateChange,
};

pub(crate) fn envelope(sender: &str, rcpts: usize) -> Envelope {
    Envelope {
        sender: sender.into(),
        recipients: (0..rcpts)
            .map(|i| Recipient {
                address: format!("user{i}@example.org"),
                original: None,
                orcpt: None,
                notify: Notify::DEFAULT,
                next_hop: Transport::mx("example.org").unwrap(),
            })
            .collect(),
        ret: None,
        envid: None,
        body_type: BodyType::EightBitMime,
        smtputf8: false,
        arrival: 1_795_000_000,
        client: ClientInfo::default(),
    }
}

fn small() -> (RamFlash, SpoolGeometry) {
    let flash = RamFlash::new(FlashGeometry::new(512, 512 * 40).unwrap());
    let g = SpoolGeometry {
        config_slot_blocks: 1,
        directory_slot_blocks: 1,
        segment_blocks: 2,
        log_blocks: 0,
    };
    (flash, g)
}

fn settings() -> SpoolSettings {
    SpoolSettings {
        chunk_size: 200,
        ..SpoolSettings::default()
    }
}

pub(super) fn fresh() -> Spool<RamFlash> {
    let (mut flash, g) = small();
    Spool::format(&mut flash, g).unwrap();
    Spool::open(flash, settings()).unwrap().0
}

pub(super) fn reopen(spool: Spool<RamFlash>) -> (Spool<RamFlash>, RecoveryReport) {
    Spool::open(spool.into_flash(), settings()).unwrap()
}

pub(super) fn put(spool: &mut Spool<RamFlash>, body: &[u8], now: u64) -> crate::mail::QueueId {
    let qid = spool.begin(&envelope("a@example.com", 2), now).unwrap();
    spool.append_body(qid, body).unwrap();
    spool.commit(qid).unwrap();
    spool.sync().unwrap();
    qid
}

pub(super) fn body(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn unformatted_flash_is_reported_not_formatted() {
    let (flash, _) = small();
    assert!(matches!(
        Spool::open(flash, settings()),
        Err(SpoolError::NotFormatted)
    ));
}

#[test]
fn damaged_superblock_is_reported_and_left_alone() {
    let (mut flash, g) = small();
    Spool::format(&mut flash, g).unwrap();
    for off in [12u32, 256 + 12] {
        flash.flip_bit(off, 0);
    }
    let image = flash.image().to_vec();
    match Spool::open(flash, settings()) {
        Err(SpoolError::BadSuperblock(why)) => assert!(why.contains("damaged"), "{why}"),
        other => panic!("expected BadSuperblock, got {other:?}"),
    }
    // One sound copy is enough.
    let mut flash =
        RamFlash::from_image(FlashGeometry::new(512, 512 * 40).unwrap(), image).unwrap();
    flash.flip_bit(12, 0);
    assert!(Spool::open(flash, settings()).is_ok());
}

#[test]
fn flash_of_another_size_is_a_geometry_mismatch() {
    let (mut flash, g) = small();
    Spool::format(&mut flash, g).unwrap();
    let mut image = flash.image().to_vec();
    image.extend(std::iter::repeat_n(0xFF, 512 * 8));
    let bigger = RamFlash::from_image(FlashGeometry::new(512, 512 * 48).unwrap(), image).unwrap();
    assert!(matches!(
        Spool::open(bigger, settings()),
        Err(SpoolError::GeometryMismatch(_))
    ));
}

#[test]
fn committed_message_survives_reopen_byte_identical() {
    let mut spool = fresh();
    let b = body(1000, 1);
    let qid = put(&mut spool, &b, 1_795_000_000_000);
    assert_eq!(spool.list().len(), 1);
    let (mut spool, report) = reopen(spool);
    assert_eq!(report.messages, 1);
    assert!(report.lost.is_empty() && report.damaged.is_empty());
    let m = spool.get(qid).unwrap();
    assert_eq!(m.size, 1000);
    assert_eq!(m.envelope, envelope("a@example.com", 2));
    assert_eq!(spool.read_body(qid).unwrap(), b);
}

/// Delivery reads a body in pieces: any offset and length give the same bytes as the whole,
/// across chunk records and the held head (of another length than the chunks).
#[test]
fn a_body_reads_back_in_pieces_at_any_offset() {
    let mut spool = fresh();
    let qid = spool
        .begin(&envelope("a@example.com", 1), 1_795_000_000_000)
        .unwrap();
    spool.hold_head(qid).unwrap();
    spool.append_body(qid, &body(650, 5)).unwrap();
    spool.write_head(qid, &body(77, 9)).unwrap();
    spool.commit(qid).unwrap();
    spool.sync().unwrap();
    let whole = spool.read_body(qid).unwrap();
    assert_eq!(whole, [body(77, 9), body(650, 5)].concat());
    let n = whole.len();
    for offset in (0..=n + 3).step_by(7) {
        for max in [0, 1, 76, 77, 78, 199, 200, 201, 1000] {
            let end = (offset + max).min(n);
            let want = whole.get(offset..end).unwrap_or_default();
            assert_eq!(
                spool.read_body_part(qid, offset as u64, max).unwrap(),
                want,
                "offset {offset}, max {max}"
            );
        }
    }
    let not_there = crate::mail::QueueId(qid.0 + 1);
    assert_eq!(
        spool.read_body_part(not_there, 0, 10),
        Err(SpoolError::NoSuchMessage(not_there))
    );
}

/// The content checks read a message back before its commit: the body written so far, without
/// the held head; a committed message is not read this way, nor an incoming one as committed.
#[test]
fn an_incoming_body_reads_back_before_the_commit() {
    let mut spool = fresh();
    let qid = spool
        .begin(&envelope("a@example.com", 1), 1_795_000_000_000)
        .unwrap();
    spool.hold_head(qid).unwrap();
    let b = body(650, 5);
    spool.append_body(qid, &b).unwrap();
    assert_eq!(
        spool.read_body_part(qid, 0, 10),
        Err(SpoolError::NoSuchMessage(qid))
    );
    let pieces: Vec<Vec<u8>> = (0..650)
        .step_by(99)
        .map(|at| spool.read_incoming_part(qid, at, 99).unwrap())
        .collect();
    assert_eq!(pieces.concat(), b);
    assert!(spool.read_incoming_part(qid, 650, 99).unwrap().is_empty());
    spool.write_head(qid, &body(77, 9)).unwrap();
    spool.commit(qid).unwrap();
    assert_eq!(
        spool.read_incoming_part(qid, 0, 10),
        Err(SpoolError::NoSuchMessage(qid))
    );
}

/// A flipped bit in one chunk is found by the piece that holds it: the pieces before it still
/// read, so a delivery can stop before its final dot.
#[test]
fn a_damaged_chunk_fails_the_piece_that_holds_it() {
    let mut spool = fresh();
    let b = body(1000, 2);
    let qid = put(&mut spool, &b, 1_795_000_000_000);
    let third = spool.index.get(&qid).unwrap().chunks().nth(2).unwrap();
    // Into the message bytes of chunk 2 (body bytes 400..600).
    spool
        .flash
        .flip_bit(third.addr + record::HEADER + 4 + 50, 3);
    assert_eq!(spool.read_body_part(qid, 0, 400).unwrap(), &b[..400]);
    assert_eq!(spool.read_body_part(qid, 600, 400).unwrap(), &b[600..]);
    assert_eq!(
        spool.read_body_part(qid, 350, 100),
        Err(SpoolError::Damaged(qid))
    );
    assert_eq!(spool.read_body(qid), Err(SpoolError::Damaged(qid)));
}

/// Compaction may move a body's chunks between two pieces of one delivery: each read looks
/// them up afresh.
#[test]
fn pieces_read_across_a_compaction_still_make_the_body() {
    let mut spool = fresh();
    let b = body(1500, 4);
    let qid = put(&mut spool, &b, 1_795_000_000_000);
    let first = spool.read_body_part(qid, 0, 300).unwrap();
    let before: Vec<u32> = spool
        .index
        .get(&qid)
        .unwrap()
        .chunks()
        .map(|l| l.addr)
        .collect();
    assert!(spool.compact_oldest().unwrap());
    let after: Vec<u32> = spool
        .index
        .get(&qid)
        .unwrap()
        .chunks()
        .map(|l| l.addr)
        .collect();
    assert_ne!(before, after, "some chunk moved");
    let rest = spool.read_body_part(qid, 300, usize::MAX).unwrap();
    assert_eq!([first, rest].concat(), b);
}

/// The content stage writes the (edited) header section after the body behind it: the message
/// reads back head first, before and after recovery, and compaction keeps it whole.
#[test]
fn a_held_head_written_last_reads_back_first() {
    let mut spool = fresh();
    let qid = spool
        .begin(&envelope("a@example.com", 1), 1_795_000_000_000)
        .unwrap();
    spool.hold_head(qid).unwrap();
    let rest = body(700, 3);
    spool.append_body(qid, &rest).unwrap();
    assert!(spool.hold_head(qid).is_err(), "only before the first write");
    let head = b"X-Spam-Flag: YES\r\nSubject: [SPAM] hi\r\n\r\n".repeat(10);
    spool.write_head(qid, &head).unwrap();
    spool.commit(qid).unwrap();
    spool.sync().unwrap();
    let whole = [head.clone(), rest.clone()].concat();
    assert_eq!(spool.read_body(qid).unwrap(), whole);
    assert_eq!(spool.get(qid).unwrap().size, whole.len() as u64);
    let (mut spool, report) = reopen(spool);
    assert_eq!((report.messages, report.lost.len()), (1, 0));
    assert_eq!(spool.read_body(qid).unwrap(), whole);

    // A head never written is an empty one: the commit still makes a whole message.
    let q2 = spool
        .begin(&envelope("b@example.com", 1), 1_795_000_000_001)
        .unwrap();
    spool.hold_head(q2).unwrap();
    spool.append_body(q2, b"just a body").unwrap();
    spool.commit(q2).unwrap();
    spool.sync().unwrap();
    let (mut spool, _) = reopen(spool);
    assert_eq!(spool.read_body(q2).unwrap(), b"just a body");
}

#[test]
fn uncommitted_message_is_dropped_and_unsynced_commit_is_not_listed() {
    let mut spool = fresh();
    let q1 = spool.begin(&envelope("a@b.c", 1), 1).unwrap();
    spool.append_body(q1, b"half a message").unwrap();
    let q2 = spool.begin(&envelope("a@b.c", 1), 2).unwrap();
    spool.append_body(q2, b"whole").unwrap();
    spool.commit(q2).unwrap();
    assert!(spool.get(q2).is_none(), "not durable before sync");
    spool.sync().unwrap();
    assert!(spool.get(q2).is_some());
    let (mut spool, report) = reopen(spool);
    assert_eq!(report.dropped_uncommitted, 1);
    assert!(spool.get(q1).is_none());
    assert!(spool.get(q2).is_some());
}

#[test]
fn queue_ids_increase_across_restarts_even_if_the_clock_goes_back() {
    let mut spool = fresh();
    let a = put(&mut spool, b"x", 2_000_000_000_000);
    let b = spool.begin(&envelope("a@b.c", 1), 1_000).unwrap();
    assert!(b > a);
    spool.remove(a).unwrap();
    spool.sync().unwrap();
    let (mut spool, report) = reopen(spool);
    assert_eq!(report.max_qid, Some(b));
    let c = spool.begin(&envelope("a@b.c", 1), 1_000).unwrap();
    assert!(c > b);
}

#[test]
fn recipients_state_and_removal_persist() {
    let mut spool = fresh();
    let q = put(&mut spool, b"hello", 1);
    let done = RecipientOutcome::Delivered {
        relay: "mx.example.org[192.0.2.1]:25".into(),
        reply: "250 2.0.0 Ok".into(),
    };
    spool.mark_recipient(q, 1, done.clone(), 10).unwrap();
    assert!(matches!(
        spool.mark_recipient(q, 2, done.clone(), 10),
        Err(SpoolError::NoSuchRecipient { index: 2, .. })
    ));
    spool
        .set_state(q, StateChange::new(QueueState::Hold, 11))
        .unwrap();
    let until = QueueState::Deferred {
        until: 99,
        reason: "connection refused".into(),
    };
    spool
        .set_state(q, StateChange::new(until.clone(), 12))
        .unwrap();
    let q2 = put(&mut spool, b"second", 2);
    spool.remove(q2).unwrap();
    spool.sync().unwrap();
    let (mut spool, _) = reopen(spool);
    let m = spool.get(q).unwrap();
    assert_eq!(m.outcomes, vec![None, Some(done)]);
    assert_eq!(m.state, until);
    assert!(spool.get(q2).is_none());
}

#[test]
fn compaction_keeps_live_messages_and_spreads_wear() {
    let mut spool = fresh();
    let keep = put(&mut spool, &body(700, 9), 1);
    spool
        .set_state(keep, StateChange::new(QueueState::Hold, 2))
        .unwrap();
    for i in 0..300u64 {
        let q = put(
            &mut spool,
            &body(300 + (i as usize % 5) * 50, i as u8),
            10 + i,
        );
        spool.remove(q).unwrap();
        spool.sync().unwrap();
    }
    let info = spool.info();
    assert!(info.compactions > 20, "{info:?}");
    assert!(
        info.erase_min >= 1,
        "every segment was used: {:?}",
        info.erase_counts
    );
    assert!(
        info.erase_max - info.erase_min <= 2,
        "wear is even: {:?}",
        info.erase_counts
    );
    let shown = info.to_string();
    assert!(shown.contains("wear: erase count min"), "{shown}");
    assert!(
        shown.contains("spool: 17 segments of 1024 bytes"),
        "{shown}"
    );
    let (mut spool, report) = reopen(spool);
    assert_eq!(report.messages, 1);
    assert_eq!(spool.read_body(keep).unwrap(), body(700, 9));
    assert_eq!(spool.get(keep).unwrap().state, QueueState::Hold);
}

#[test]
fn full_spool_refuses_new_mail_with_452_but_keeps_delivery_working() {
    let mut spool = fresh();
    let mut kept = Vec::new();
    let err = loop {
        let q = match spool.begin(&envelope("a@b.c", 1), kept.len() as u64) {
            Ok(q) => q,
            Err(e) => break e,
        };
        let r = spool
            .append_body(q, &body(600, 3))
            .and_then(|()| spool.commit(q));
        match r {
            Ok(()) => {
                spool.sync().unwrap();
                kept.push(q);
            }
            Err(e) => {
                spool.abandon(q);
                break e;
            }
        }
        assert!(kept.len() < 1000, "the spool never filled up");
    };
    assert_eq!(err, SpoolError::Full);
    assert!(kept.len() > 10);
    // The queue's own bounces still get in: they come out of the reserve.
    let bounce = spool.begin(&envelope("", 1), 5_000).unwrap();
    spool.append_body(bounce, &body(600, 5)).unwrap();
    spool.commit(bounce).unwrap();
    spool.sync().unwrap();
    kept.push(bounce);
    // Delivery still records outcomes and removes messages from the reserve.
    for q in &kept {
        spool
            .mark_recipient(
                *q,
                0,
                RecipientOutcome::Failed {
                    status: "5.1.1".into(),
                    diagnostic: "smtp; 550 5.1.1 unknown".into(),
                    remote_mta: None,
                },
                6_000,
            )
            .unwrap();
        spool.remove(*q).unwrap();
        spool.sync().unwrap();
    }
    // And the space comes back.
    put(&mut spool, &body(600, 4), 10_000);
    let (mut spool, report) = reopen(spool);
    assert_eq!(report.messages, 1);
    assert_eq!(spool.list().len(), 1);
}

#[test]
fn nothing_acknowledged_is_lost_when_full() {
    let mut spool = fresh();
    let mut kept = Vec::new();
    for i in 0..1000u64 {
        match spool.begin(&envelope("a@b.c", 1), i) {
            Ok(q) => {
                if spool.append_body(q, &body(300, i as u8)).is_ok() && spool.commit(q).is_ok() {
                    spool.sync().unwrap();
                    kept.push((q, i as u8));
                } else {
                    spool.abandon(q);
                }
            }
            Err(e) => assert_eq!(e, SpoolError::Full),
        }
    }
    let (mut spool, _) = reopen(spool);
    assert_eq!(spool.list().len(), kept.len());
    for (q, seed) in kept {
        assert_eq!(spool.read_body(q).unwrap(), body(300, seed));
    }
}

#[test]
fn a_slot_written_in_parts_is_in_force_only_once_finished_whole() {
    let mut spool = fresh();
    spool.write_slot(Region::Directory, b"old").unwrap();
    let dir = |s: &mut Spool<RamFlash>| s.read_slot(Region::Directory).unwrap();
    let mut w = spool.begin_slot(Region::Directory, 11).unwrap();
    spool.write_slot_part(&mut w, b"new ").unwrap();
    // Until its header is written the slot is not sound: what a reader or a power cut finds
    // is the old data.
    assert_eq!(dir(&mut spool).as_deref(), Some(&b"old"[..]));
    spool.write_slot_part(&mut w, b"snapsho").unwrap();
    spool.finish_slot(w).unwrap();
    assert_eq!(dir(&mut spool).as_deref(), Some(&b"new snapsho"[..]));
    let (mut spool, _) = reopen(spool);
    assert_eq!(dir(&mut spool).as_deref(), Some(&b"new snapsho"[..]));

    // Left unfinished (the power went, or the writer gave up): the data before stays.
    let mut w = spool.begin_slot(Region::Directory, 5).unwrap();
    spool.write_slot_part(&mut w, b"lost!").unwrap();
    let (mut spool, _) = reopen(spool);
    assert_eq!(dir(&mut spool).as_deref(), Some(&b"new snapsho"[..]));

    // More or fewer bytes than announced: refused, nothing in force changes.
    let mut w = spool.begin_slot(Region::Directory, 3).unwrap();
    assert!(matches!(
        spool.write_slot_part(&mut w, b"four"),
        Err(SpoolError::SlotWriteBroken(Region::Directory))
    ));
    spool.write_slot_part(&mut w, b"ab").unwrap();
    assert!(matches!(
        spool.finish_slot(w),
        Err(SpoolError::SlotWriteBroken(Region::Directory))
    ));
    assert_eq!(dir(&mut spool).as_deref(), Some(&b"new snapsho"[..]));

    // A whole write finished meanwhile, into the slot the parts were going to: refused.
    let mut w = spool.begin_slot(Region::Directory, 2).unwrap();
    spool.write_slot(Region::Directory, b"whole").unwrap();
    assert!(matches!(
        spool.write_slot_part(&mut w, b"xy"),
        Err(SpoolError::SlotWriteBroken(Region::Directory))
    ));
    assert!(spool.finish_slot(w).is_err());
    let (mut spool, _) = reopen(spool);
    assert_eq!(dir(&mut spool).as_deref(), Some(&b"whole"[..]));
    assert!(matches!(
        spool.begin_slot(Region::Directory, 600),
        Err(SpoolError::SlotTooLarge { .. })
    ));
}

#[test]
fn slots_keep_the_newest_sound_write() {
    let mut spool = fresh();
    assert_eq!(spool.read_slot(Region::Config).unwrap(), None);
    spool.write_slot(Region::Config, b"one").unwrap();
    spool.write_slot(Region::Config, b"two").unwrap();
    spool.write_slot(Region::Directory, b"dir").unwrap();
    assert_eq!(
        spool.read_slot(Region::Config).unwrap().as_deref(),
        Some(&b"two"[..])
    );
    // A torn third write leaves "two" in force.
    let mut flash = spool.into_flash();
    let ops = flash.ops();
    flash.cut_power_at(ops + 1, 10);
    let (mut spool, _) = Spool::open(flash, settings()).unwrap();
    assert!(spool.write_slot(Region::Config, b"three, torn").is_err());
    let mut flash = spool.into_flash();
    flash.power_cycle();
    let (mut spool, _) = Spool::open(flash, settings()).unwrap();
    assert_eq!(
        spool.read_slot(Region::Config).unwrap().as_deref(),
        Some(&b"two"[..])
    );
    assert_eq!(
        spool.read_slot(Region::Directory).unwrap().as_deref(),
        Some(&b"dir"[..])
    );
    spool.write_slot(Region::Config, b"four").unwrap();
    let (mut spool, _) = reopen(spool);
    assert_eq!(
        spool.read_slot(Region::Config).unwrap().as_deref(),
        Some(&b"four"[..])
    );
    assert!(matches!(
        spool.write_slot(Region::Config, &[0u8; 600]),
        Err(SpoolError::SlotTooLarge { .. })
    ));
    assert!(
        spool
            .info()
            .regions
            .iter()
            .any(|r| r.name == "config" && r.used == 4)
    );
}

#[test]
fn worn_out_segment_is_taken_out_of_service() {
    let (mut flash, g) = small();
    Spool::format(&mut flash, g).unwrap();
    // Segments start at block 5; wear out the one the spool would pick second.
    flash.wear_out(5 + 2);
    let (mut spool, _) = Spool::open(flash, settings()).unwrap();
    let mut qs = Vec::new();
    for i in 0..12u64 {
        qs.push(put(&mut spool, &body(400, i as u8), i));
    }
    assert_eq!(spool.info().segments_bad, 1);
    let (mut spool, _) = reopen(spool);
    for (i, q) in qs.iter().enumerate() {
        assert_eq!(spool.read_body(*q).unwrap(), body(400, i as u8));
    }
}

#[test]
fn failed_sync_stops_writes_until_reopen() {
    let mut spool = fresh();
    let keep = put(&mut spool, b"kept", 1);
    let q = spool.begin(&envelope("a@b.c", 1), 2).unwrap();
    spool.append_body(q, b"in flight").unwrap();
    spool.commit(q).unwrap();
    let mut flash = spool.into_flash();
    let next = flash.ops();
    flash.cut_power_at(next, 0);
    let (mut spool, _) = Spool::open(flash, settings()).unwrap();
    // The flash dies under the next write; then the sync cannot succeed either.
    assert!(spool.begin(&envelope("a@b.c", 1), 3).is_err());
    assert!(spool.sync().is_err());
    assert_eq!(
        spool.begin(&envelope("a@b.c", 1), 4),
        Err(SpoolError::Failed)
    );
    let mut flash = spool.into_flash();
    flash.power_cycle();
    let (mut spool, _) = Spool::open(flash, settings()).unwrap();
    assert_eq!(spool.read_body(keep).unwrap(), b"kept");
    put(&mut spool, b"after", 5);
}

/// The envelopes of a batch come back in the order asked, read a run at a time: an unknown
/// id is left out, and so is a message whose begin record went bad, not its neighbours in the
/// same read.
#[test]
fn envelopes_come_in_the_order_asked_and_a_bad_one_costs_only_itself() {
    let mut spool = fresh();
    let mut qids = Vec::new();
    for i in 0..6 {
        let mut e = envelope(&format!("s{i}@example.com"), 1 + i % 3);
        e.arrival += i as u64;
        let q = spool.begin(&e, 10 + i as u64).unwrap();
        spool.append_body(q, &body(100, i as u8)).unwrap();
        spool.commit(q).unwrap();
        qids.push(q);
    }
    spool.sync().unwrap();
    let mut asked: Vec<_> = qids.iter().rev().copied().collect();
    asked.insert(2, crate::mail::QueueId(u64::MAX));
    let got = spool.envelopes(&asked);
    let want: Vec<_> = (qids.iter().rev())
        .map(|&q| (q, spool.get(q).unwrap().envelope))
        .collect();
    assert_eq!(got, want);
    let begin = spool.index.get(&qids[3]).unwrap().begin();
    spool.flash.flip_bit(begin.addr + record::HEADER + 2, 1);
    let got: Vec<_> = spool.envelopes(&qids).into_iter().map(|(q, _)| q).collect();
    let mut want = qids.clone();
    want.remove(3);
    assert_eq!(got, want);
}

#[test]
fn bit_flip_in_a_body_costs_that_message_only() {
    let mut spool = fresh();
    let a = put(&mut spool, &body(150, 1), 1);
    let b = put(&mut spool, &body(150, 2), 2);
    let c = put(&mut spool, &body(150, 3), 3);
    let target = spool.index.get(&b).unwrap().chunks().next().unwrap().addr + 40;
    let mut flash = spool.into_flash();
    flash.flip_bit(target, 5);
    let (mut spool, report) = Spool::open(flash, settings()).unwrap();
    assert_eq!(report.lost.len(), 1);
    assert_eq!(report.lost[0].qid, b);
    assert_eq!(report.damaged.len(), 1);
    assert_eq!(report.damaged[0].qid, Some(b));
    assert!(!report.damaged[0].at_tail);
    assert_eq!(spool.read_body(a).unwrap(), body(150, 1));
    assert_eq!(spool.read_body(c).unwrap(), body(150, 3));
    assert!(spool.get(b).is_none());
}

mod model {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::mail::QueueId;

    #[derive(Debug, Clone)]
    enum Op {
        Put { size: usize, rcpts: usize },
        Abandon { size: usize },
        Mark { pick: usize, rcpt: usize, ok: bool },
        State { pick: usize, kind: u8 },
        Remove { pick: usize },
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0usize..1200, 1usize..4).prop_map(|(size, rcpts)| Op::Put { size, rcpts }),
            1 => (1usize..600).prop_map(|size| Op::Abandon { size }),
            3 => (any::<usize>(), 0usize..3, any::<bool>())
                .prop_map(|(pick, rcpt, ok)| Op::Mark { pick, rcpt, ok }),
            2 => (any::<usize>(), 0u8..3).prop_map(|(pick, kind)| Op::State { pick, kind }),
            3 => any::<usize>().prop_map(|pick| Op::Remove { pick }),
            1 => Just(Op::Reopen),
        ]
    }

    struct Want {
        body: Vec<u8>,
        outcomes: Vec<Option<RecipientOutcome>>,
        state: QueueState,
    }

    fn check(spool: &mut Spool<RamFlash>, want: &BTreeMap<QueueId, Want>) {
        let list = spool.list();
        assert_eq!(list.len(), want.len());
        for m in list {
            let w = &want[&m.qid];
            assert_eq!(m.outcomes, w.outcomes);
            assert_eq!(m.state, w.state);
            assert_eq!(spool.read_body(m.qid).unwrap(), w.body);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Whatever the sequence of operations, the spool (reopened at random points) holds
        /// exactly what a plain map would, and a full spool only ever refuses new mail.
        #[test]
        fn spool_matches_a_map(ops in proptest::collection::vec(op(), 1..120)) {
            let mut spool = fresh();
            let mut want: BTreeMap<QueueId, Want> = BTreeMap::new();
            let mut now = 1_795_000_000_000u64;
            for op in ops {
                now += 1;
                let keys: Vec<QueueId> = want.keys().copied().collect();
                let pick = |p: usize| keys.get(p % keys.len().max(1)).copied();
                match op {
                    Op::Put { size, rcpts } => {
                        let b = body(size, now as u8);
                        let res = spool.begin(&envelope("p@example.com", rcpts), now).and_then(|q| {
                            let r = spool.append_body(q, &b).and_then(|()| spool.commit(q));
                            if r.is_err() {
                                spool.abandon(q);
                            }
                            r.map(|()| q)
                        });
                        match res {
                            Ok(q) => {
                                spool.sync().unwrap();
                                want.insert(q, Want { body: b, outcomes: vec![None; rcpts], state: QueueState::Active });
                            }
                            Err(e) => prop_assert_eq!(e, SpoolError::Full),
                        }
                    }
                    Op::Abandon { size } => {
                        if let Ok(q) = spool.begin(&envelope("x@example.com", 1), now) {
                            let _ = spool.append_body(q, &body(size, 1));
                            spool.abandon(q);
                        }
                    }
                    Op::Mark { pick: p, rcpt, ok } => {
                        if let Some(q) = pick(p) {
                            let n = want[&q].outcomes.len();
                            let outcome = if ok {
                                RecipientOutcome::Delivered { relay: "r".into(), reply: "250".into() }
                            } else {
                                RecipientOutcome::Failed { status: "5.0.0".into(), diagnostic: "x".into(), remote_mta: None }
                            };
                            let res = spool.mark_recipient(q, rcpt % n, outcome.clone(), now);
                            prop_assert!(res.is_ok(), "{:?}", res);
                            spool.sync().unwrap();
                            if let Some(w) = want.get_mut(&q) {
                                w.outcomes[rcpt % n] = Some(outcome);
                            }
                        }
                    }
                    Op::State { pick: p, kind } => {
                        if let Some(q) = pick(p) {
                            let st = match kind {
                                0 => QueueState::Active,
                                1 => QueueState::Hold,
                                _ => QueueState::Deferred { until: now, reason: "later".into() },
                            };
                            spool.set_state(q, StateChange::new(st.clone(), now)).unwrap();
                            spool.sync().unwrap();
                            if let Some(w) = want.get_mut(&q) {
                                w.state = st;
                            }
                        }
                    }
                    Op::Remove { pick: p } => {
                        if let Some(q) = pick(p) {
                            spool.remove(q).unwrap();
                            spool.sync().unwrap();
                            want.remove(&q);
                        }
                    }
                    Op::Reopen => {
                        let (s, report) = reopen(spool);
                        prop_assert!(report.lost.is_empty() && report.damaged.is_empty());
                        spool = s;
                    }
                }
                check(&mut spool, &want);
            }
            let (mut spool, _) = reopen(spool);
            check(&mut spool, &want);
        }
    }
}

/// A directory snapshot spans many erase blocks; power lost anywhere in its erase or its
/// program leaves the previous one whole, and the next write goes through.
#[test]
fn a_large_directory_snapshot_torn_anywhere_leaves_the_previous_one() {
    let flash = RamFlash::new(FlashGeometry::new(512, 512 * 64).unwrap());
    let g = SpoolGeometry {
        config_slot_blocks: 1,
        directory_slot_blocks: 16,
        segment_blocks: 2,
        log_blocks: 0,
    };
    let old: Vec<u8> = (0..7000u32).map(|i| (i * 7) as u8).collect();
    let new: Vec<u8> = (0..7900u32).map(|i| (i * 13) as u8).collect();
    for (seed, op_after) in [(0, 0), (3, 0), (1, 1), (5, 1), (9, 1)] {
        let mut flash = flash.clone();
        Spool::format(&mut flash, g).unwrap();
        let (mut spool, _) = Spool::open(flash, settings()).unwrap();
        spool.write_slot(Region::Directory, &old).unwrap();
        let mut flash = spool.into_flash();
        // The write is one erase (op 0) then one program (op 1) of the whole slot.
        let (probe, _) = Spool::open(flash.clone(), settings()).unwrap();
        let open_ops = probe.flash().ops() - flash.ops();
        flash.cut_power_at(flash.ops() + open_ops + op_after, seed);
        let (mut spool, _) = Spool::open(flash, settings()).unwrap();
        assert!(spool.write_slot(Region::Directory, &new).is_err());
        let mut flash = spool.into_flash();
        flash.power_cycle();
        let (mut spool, _) = Spool::open(flash, settings()).unwrap();
        let read = spool.read_slot(Region::Directory).unwrap();
        assert_eq!(
            read.as_deref(),
            Some(&old[..]),
            "seed {seed}, op {op_after}"
        );
        spool.write_slot(Region::Directory, &new).unwrap();
        let (mut spool, _) = reopen(spool);
        let read = spool.read_slot(Region::Directory).unwrap();
        assert_eq!(read.as_deref(), Some(&new[..]));
    }
}

/// Too large for the slot: refused before anything is erased, with both sizes named.
#[test]
fn a_directory_larger_than_its_slot_is_refused_naming_both_sizes() {
    let mut spool = fresh();
    spool.write_slot(Region::Directory, b"previous").unwrap();
    let err = spool
        .write_slot(Region::Directory, &[1u8; 2000])
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("2000 bytes") && text.contains("492 bytes") && text.contains("directory"),
        "{text}"
    );
    let (mut spool, _) = reopen(spool);
    assert_eq!(
        spool.read_slot(Region::Directory).unwrap().as_deref(),
        Some(&b"previous"[..])
    );
}

#[test]
fn journal_records_follow_their_slot_in_order_and_a_whole_write_starts_afresh() {
    let mut spool = fresh();
    assert_eq!(
        spool.append_slot(Region::Directory, b"early").unwrap(),
        Err(AppendRefused::Empty)
    );
    spool.write_slot(Region::Directory, b"base").unwrap();
    spool
        .append_slot(Region::Directory, b"one")
        .unwrap()
        .unwrap();
    spool
        .append_slot(Region::Directory, b"two")
        .unwrap()
        .unwrap();
    let want = Journaled {
        data: b"base".to_vec(),
        journal: vec![b"one".to_vec(), b"two".to_vec()],
    };
    assert_eq!(
        spool.read_slot_journaled(Region::Directory).unwrap(),
        Some(want.clone())
    );
    // Its data alone is not what was last written.
    assert_eq!(
        spool.read_slot(Region::Directory),
        Err(SpoolError::SlotJournaled(Region::Directory))
    );
    // Reopened, the records are found again and the next one goes after them.
    let (mut spool, _) = reopen(spool);
    assert_eq!(
        spool.read_slot_journaled(Region::Directory).unwrap(),
        Some(want)
    );
    spool
        .append_slot(Region::Directory, b"three")
        .unwrap()
        .unwrap();
    let (mut spool, _) = reopen(spool);
    let read = spool
        .read_slot_journaled(Region::Directory)
        .unwrap()
        .unwrap();
    assert_eq!(read.journal.len(), 3);
    assert!(
        spool
            .info()
            .regions
            .iter()
            .any(|r| r.name == "directory" && r.used == 4 + 3 * 24 + 11)
    );
    // A whole write goes to the other slot with no records.
    spool.write_slot(Region::Directory, b"again").unwrap();
    let (mut spool, _) = reopen(spool);
    assert_eq!(
        spool.read_slot(Region::Directory).unwrap().as_deref(),
        Some(&b"again"[..])
    );
}

#[test]
fn a_torn_record_ends_the_journal_and_the_slot_takes_no_more() {
    let mut spool = fresh();
    spool.write_slot(Region::Directory, b"base").unwrap();
    spool
        .append_slot(Region::Directory, b"kept")
        .unwrap()
        .unwrap();
    for seed in [0, 3, 7, 11, 19] {
        let mut s = Spool::open(spool.flash().clone(), settings()).unwrap().0;
        let mut flash = s.into_flash();
        // The append is one program: tear it.
        flash.cut_power_at(flash.ops(), seed);
        let (mut torn, _) = Spool::open(flash, settings()).unwrap();
        assert!(torn.append_slot(Region::Directory, &[0x55; 40]).is_err());
        let mut flash = torn.into_flash();
        flash.power_cycle();
        (s, _) = Spool::open(flash, settings()).unwrap();
        let read = s.read_slot_journaled(Region::Directory).unwrap().unwrap();
        assert_eq!(read.data, b"base");
        assert_eq!(read.journal, vec![b"kept".to_vec()], "seed {seed}");
        // Nothing goes after a torn record's bytes; a whole write takes over.
        if s.append_slot(Region::Directory, b"next").unwrap().is_ok() {
            // Only when the cut left every byte erased.
            let read = s.read_slot_journaled(Region::Directory).unwrap().unwrap();
            assert_eq!(read.journal.len(), 2, "seed {seed}");
            continue;
        }
        s.write_slot(Region::Directory, b"whole").unwrap();
        let (mut s, _) = reopen(s);
        assert_eq!(
            s.read_slot(Region::Directory).unwrap().as_deref(),
            Some(&b"whole"[..])
        );
    }
}

#[test]
fn a_journal_past_its_share_of_the_slot_asks_for_a_whole_write() {
    let mut spool = fresh();
    spool.write_slot(Region::Directory, &[7u8; 100]).unwrap();
    // The small test slot (512 bytes) has 392 bytes after the data.
    let mut appended = 0;
    loop {
        match spool.append_slot(Region::Directory, &[1u8; 50]).unwrap() {
            Ok(()) => appended += 1,
            Err(why) => {
                assert_eq!(why, AppendRefused::Full);
                break;
            }
        }
    }
    assert_eq!(appended, 392 / (24 + 50));
    let (mut spool, _) = reopen(spool);
    let read = spool
        .read_slot_journaled(Region::Directory)
        .unwrap()
        .unwrap();
    assert_eq!(read.journal.len(), appended);
    assert_eq!(
        spool.append_slot(Region::Directory, &[1u8; 50]).unwrap(),
        Err(AppendRefused::Full)
    );
}
