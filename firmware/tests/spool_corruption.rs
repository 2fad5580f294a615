//! Decay, not power cuts: random bit flips in committed data are caught by the CRCs, cost only
//! the message they hit, and that message is named in the recovery report.
//!
//! Every CRC on flash is keyed with the nonce `format` draws, so which bytes a flip can hit, and
//! what it does, changes with the nonce. The spool is therefore built under a fixed set of nonces,
//! and besides random flips (from a fixed seed) each gets flips aimed where damage is hardest to
//! tell from a torn write or from garbage: every bit of the last record written (the last commit,
//! synced and answered 250) and a bit of every byte of the last records and of every segment
//! header. A failure names the nonce, the byte and the bit, and replays.

use std::collections::BTreeMap;

use hal::flash::{FlashGeometry, FlashOp, RamFlash};
use postern::mail::Transport;
use postern::mail::{Envelope, QueueId, QueueState, RecipientOutcome, StateChange};
use postern::spool::{Spool, SpoolGeometry, SpoolSettings};

mod common;

use common::fixtures;

const ERASE: u32 = 512;
const BLOCKS: u32 = 96;
const SPOOL_START_BLOCK: u32 = 5;
const SEG_SIZE: usize = 4 * ERASE as usize;
/// Segment header bytes (parts A and B) before the first record.
const SEG_HEADER: usize = 40;
/// Nonces the spool is formatted with. 195 and 198 lost the last commit before it was repaired.
const NONCES: [u64; 20] = [
    0,
    1,
    2,
    3,
    7,
    42,
    195,
    198,
    0x1234_5678,
    0xDEAD_BEEF,
    0x9E37_79B9_7F4A_7C15,
    0xFFFF_FFFF_FFFF_FFFF,
    0x0123_4567_89AB_CDEF,
    0x8000_0000_0000_0001,
    1_795_000_000_000,
    31_337,
    65_521,
    0xA5A5_A5A5_5A5A_5A5A,
    0x5EED_0000_0000_0017,
    0xC0FF_EE00_BAD0_F00D,
];

fn geometry() -> FlashGeometry {
    FlashGeometry::new(ERASE, ERASE * BLOCKS).unwrap()
}

fn settings() -> SpoolSettings {
    SpoolSettings {
        chunk_size: 256,
        ..SpoolSettings::default()
    }
}

fn envelope(n: u64) -> Envelope {
    let hop = Transport::mx("example.org").unwrap();
    let to = vec![fixtures::recipient("r@example.org", &hop)];
    fixtures::envelope(&format!("s{n}@example.com"), to, n)
}

fn body(n: u64) -> Vec<u8> {
    (0..(50 + (n * 137) % 900))
        .map(|i| (i * 7 + n) as u8)
        .collect()
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// What a spool holds after the workload.
struct Populated {
    image: Vec<u8>,
    /// The bodies of the messages it must still hold.
    expect: BTreeMap<QueueId, Vec<u8>>,
    /// Flash ranges of the records written, in order (the last one is the last commit), without
    /// their pads.
    writes: Vec<(usize, usize)>,
}

/// How much of a write its CRCs cover: a record is written with its pad to 4 bytes (0xFF, as
/// erased), which no check covers and no reader looks at.
fn unpadded(data: &[u8]) -> usize {
    let record = data
        .get(4..8)
        .filter(|_| data[1..4] == [0xFF; 3])
        .map(|len| 24 + u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize);
    match record {
        Some(n)
            if n < data.len() && n + 3 >= data.len() && data[n..].iter().all(|&b| b == 0xFF) =>
        {
            n
        }
        _ => data.len(),
    }
}

/// A spool with 30 messages, some with delivery records and state changes, some removed.
fn populated(nonce: u64) -> Populated {
    let mut flash = RamFlash::new(geometry());
    Spool::format_with_nonce(
        &mut flash,
        SpoolGeometry {
            config_slot_blocks: 1,
            directory_slot_blocks: 1,
            segment_blocks: 4,
            log_blocks: 0,
        },
        nonce,
    )
    .unwrap();
    flash.record_journal();
    let (mut spool, _) = Spool::open(flash, settings()).unwrap();
    let mut expect = BTreeMap::new();
    for n in 0..30u64 {
        let q = spool.begin(&envelope(n), 1_795_000_000_000 + n).unwrap();
        spool.append_body(q, &body(n)).unwrap();
        spool.commit(q).unwrap();
        if n % 3 == 0 {
            spool
                .set_state(q, StateChange::new(QueueState::Hold, 1_795_000_000))
                .unwrap();
        }
        if n % 4 == 0 {
            spool
                .mark_recipient(
                    q,
                    0,
                    RecipientOutcome::Delivered {
                        relay: "x[192.0.2.1]:25".into(),
                        reply: "250 ok".into(),
                    },
                    1_795_000_000,
                )
                .unwrap();
        }
        if n % 5 == 0 {
            spool.remove(q).unwrap();
        } else {
            expect.insert(q, body(n));
        }
        spool.sync().unwrap();
    }
    let mut flash = spool.into_flash();
    let writes = flash
        .take_journal()
        .into_iter()
        .filter_map(|op| match op {
            FlashOp::Write { offset, data } => Some((offset as usize, unpadded(&data))),
            FlashOp::Erase { .. } => None,
        })
        .collect();
    Populated {
        image: flash.image().to_vec(),
        expect,
        writes,
    }
}

/// Tally of one nonce's flips.
#[derive(Default)]
struct Tally {
    trials: usize,
    detected: usize,
    lost: usize,
    repaired: usize,
}

#[test]
fn bit_flips_are_detected_and_cost_only_their_message() {
    let mut total = Tally::default();
    for nonce in NONCES {
        let t = flips_under(nonce);
        total.trials += t.trials;
        total.detected += t.detected;
        total.lost += t.lost;
        total.repaired += t.repaired;
    }
    println!(
        "corruption test: {} nonces, {} single-bit flips, {} detected, {} messages lost (each reported), {} flips repaired, others intact",
        NONCES.len(),
        total.trials,
        total.detected,
        total.lost,
        total.repaired
    );
}

/// The flips tried on the spool formatted with `nonce`: (byte, bit).
fn flips_for(nonce: u64, p: &Populated) -> Vec<(usize, u8)> {
    let image = &p.image;
    let spool_start = (SPOOL_START_BLOCK * ERASE) as usize;
    // Bytes that hold records: programmed, inside a segment, past the segment header.
    let candidates: Vec<usize> = (spool_start..image.len())
        .filter(|&o| (o - spool_start) % SEG_SIZE >= SEG_HEADER && image[o] != 0xFF)
        .collect();
    assert!(candidates.len() > 10_000);
    let mut rng = Rng(0x1234_5678 ^ nonce.rotate_left(17) | 1);
    let mut flips: Vec<(usize, u8)> = (0..300)
        .map(|_| {
            let at = candidates[(rng.next() % candidates.len() as u64) as usize];
            (at, (rng.next() % 8) as u8)
        })
        .collect();
    // The last record written is the last commit: the client was told 250 after its sync, yet
    // nothing follows it on flash, as nothing follows a write the power cut tore.
    let &(last, len) = p.writes.last().expect("the workload writes records");
    for at in last..last + len {
        flips.extend((0..8).map(|bit| (at, bit)));
    }
    // The records before it, and every segment header (parts A and B, used or free).
    let recent = p
        .writes
        .iter()
        .rev()
        .skip(1)
        .take(6)
        .flat_map(|&(from, len)| from..from + len);
    let headers = (spool_start..image.len())
        .filter(|&o| (o - spool_start) % SEG_SIZE < SEG_HEADER && image[o] != 0xFF);
    for (i, at) in recent.chain(headers).enumerate() {
        flips.push((at, (i % 8) as u8));
    }
    flips
}

fn flips_under(nonce: u64) -> Tally {
    let p = populated(nonce);
    let (image, expect) = (&p.image, &p.expect);
    let mut tally = Tally::default();
    for (at, bit) in flips_for(nonce, &p) {
        let mut flash = RamFlash::from_image(geometry(), image.clone()).unwrap();
        flash.flip_bit(at as u32, bit);
        let (mut spool, report) = Spool::open(flash, settings()).unwrap();
        tally.trials += 1;
        assert!(
            !report.damaged.is_empty(),
            "nonce {nonce:#x}: flip at {at} bit {bit} went unnoticed"
        );
        tally.detected += 1;
        tally.repaired += usize::from(report.damaged.iter().any(|d| d.repaired));
        let named: Vec<QueueId> = report
            .lost
            .iter()
            .map(|l| l.qid)
            .chain(report.damaged.iter().filter_map(|d| d.qid))
            .collect();
        let mut missing = 0;
        for (q, b) in expect {
            match spool.get(*q) {
                Some(_) => assert_eq!(
                    &spool.read_body(*q).unwrap(),
                    b,
                    "nonce {nonce:#x}: {q} body changed (flip at {at} bit {bit})"
                ),
                None => {
                    missing += 1;
                    assert!(
                        report.lost.iter().any(|l| l.qid == *q),
                        "{q} vanished without being reported (nonce {nonce:#x}, flip at {at} bit {bit})"
                    );
                }
            }
        }
        assert!(
            missing <= 1,
            "nonce {nonce:#x}: one flip at {at} bit {bit} cost {missing} messages"
        );
        tally.lost += missing;
        for m in spool.list() {
            assert!(
                expect.contains_key(&m.qid) || named.contains(&m.qid),
                "nonce {nonce:#x}: {} came back without its damage being reported (flip at {at} bit {bit})",
                m.qid
            );
        }
        // A repaired record must be made good on flash, not only in RAM (compaction and body
        // reads trust only sound records): the next open finds a sound copy, repairs nothing, and
        // has the same messages and bodies.
        if report.damaged.iter().any(|d| d.repaired && d.qid.is_some()) {
            let before: Vec<QueueId> = spool.list().iter().map(|m| m.qid).collect();
            let (mut again, second) = Spool::open(spool.into_flash(), settings()).unwrap();
            assert!(
                !second.damaged.iter().any(|d| d.repaired && d.qid.is_some()),
                "nonce {nonce:#x}: flip at {at} bit {bit} was repaired in RAM only: {second:?}"
            );
            let after: Vec<QueueId> = again.list().iter().map(|m| m.qid).collect();
            assert_eq!(before, after, "nonce {nonce:#x}: flip at {at} bit {bit}");
            for q in &after {
                if let Some(b) = expect.get(q) {
                    assert_eq!(&again.read_body(*q).unwrap(), b);
                }
            }
        }
    }
    tally
}
