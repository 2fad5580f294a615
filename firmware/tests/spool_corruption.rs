//! Decay, not power cuts: random bit flips in committed data are caught by the CRCs, cost only
//! the message they hit, and that message is named in the recovery report.

use std::collections::BTreeMap;

use hal::flash::{FlashGeometry, RamFlash};
use postern::envelope::{
    BodyType, ClientInfo, Envelope, Notify, QueueId, QueueState, Recipient, RecipientOutcome,
};
use postern::route::Transport;
use postern::spool::{Spool, SpoolGeometry, SpoolSettings};

const ERASE: u32 = 512;
const BLOCKS: u32 = 96;
const SPOOL_START_BLOCK: u32 = 5;

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
    Envelope {
        sender: format!("s{n}@example.com"),
        recipients: vec![Recipient {
            address: "r@example.org".into(),
            original: None,
            orcpt: None,
            notify: Notify::DEFAULT,
            next_hop: Transport::mx("example.org").unwrap(),
        }],
        ret: None,
        envid: None,
        body_type: BodyType::SevenBit,
        smtputf8: false,
        arrival: n,
        client: ClientInfo::default(),
    }
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

/// A spool with 30 messages, some with delivery records and state changes, some removed.
fn populated() -> (Vec<u8>, BTreeMap<QueueId, Vec<u8>>) {
    let mut flash = RamFlash::new(geometry());
    Spool::format(
        &mut flash,
        SpoolGeometry {
            config_slot_blocks: 1,
            directory_slot_blocks: 1,
            segment_blocks: 4,
        },
    )
    .unwrap();
    let (mut spool, _) = Spool::open(flash, settings()).unwrap();
    let mut expect = BTreeMap::new();
    for n in 0..30u64 {
        let q = spool.begin(&envelope(n), 1_795_000_000_000 + n).unwrap();
        spool.append_body(q, &body(n)).unwrap();
        spool.commit(q).unwrap();
        if n % 3 == 0 {
            spool.set_state(q, QueueState::Hold).unwrap();
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
    (spool.into_flash().image().to_vec(), expect)
}

#[test]
fn bit_flips_are_detected_and_cost_only_their_message() {
    let (image, expect) = populated();
    let spool_start = (SPOOL_START_BLOCK * ERASE) as usize;
    // Bytes that hold records: programmed, inside a segment, past the segment header.
    let seg_size = 4 * ERASE as usize;
    let candidates: Vec<usize> = (spool_start..image.len())
        .filter(|&o| (o - spool_start) % seg_size >= 40 && image[o] != 0xFF)
        .collect();
    assert!(candidates.len() > 10_000);
    let mut rng = Rng(0x1234_5678);
    let (mut detected, mut lost_total, mut trials) = (0, 0, 0);
    for _ in 0..300 {
        let at = candidates[(rng.next() % candidates.len() as u64) as usize];
        let bit = (rng.next() % 8) as u8;
        let mut flash = RamFlash::from_image(geometry(), image.clone()).unwrap();
        flash.flip_bit(at as u32, bit);
        let (mut spool, report) = Spool::open(flash, settings()).unwrap();
        trials += 1;
        assert!(
            !report.damaged.is_empty(),
            "flip at {at} bit {bit} went unnoticed"
        );
        detected += 1;
        let named: Vec<QueueId> = report
            .lost
            .iter()
            .map(|l| l.qid)
            .chain(report.damaged.iter().filter_map(|d| d.qid))
            .collect();
        let mut missing = 0;
        for (q, b) in &expect {
            match spool.get(*q) {
                Some(_) => assert_eq!(&spool.read_body(*q).unwrap(), b, "{q} body changed"),
                None => {
                    missing += 1;
                    assert!(
                        report.lost.iter().any(|l| l.qid == *q),
                        "{q} vanished without being reported (flip at {at})"
                    );
                }
            }
        }
        assert!(missing <= 1, "one flip cost {missing} messages");
        lost_total += missing;
        for m in spool.list() {
            assert!(
                expect.contains_key(&m.qid) || named.contains(&m.qid),
                "{} came back without its damage being reported",
                m.qid
            );
        }
    }
    println!(
        "corruption test: {trials} single-bit flips, {detected} detected, {lost_total} messages lost (each reported), others intact"
    );
}
