//! The promise, tested exhaustively: a power cut at any program or erase never loses a message the
//! spool acknowledged, never brings back one it did not, and leaves a store that takes new mail.
//!
//! A scripted workload (several interleaved writers, mixed sizes, group commits, deliveries,
//! state changes, removals, compaction) runs once on a journalling `RamFlash`. Then, for every
//! operation index N of that run, the flash is rebuilt as it was when operation N started, N is
//! torn (part of it lands, one byte half-done), and recovery is checked against the model.

use std::time::Instant;

use hal::flash::{FlashGeometry, FlashOp, RamFlash};
use postern::mail::Transport;
use postern::mail::{Envelope, QueueId, QueueState, RecipientOutcome, StateChange};
use postern::spool::{Spool, SpoolError, SpoolGeometry, SpoolSettings};

mod common;

use common::fixtures::{self, ARRIVAL};

fn geometry() -> FlashGeometry {
    FlashGeometry::new(512, 512 * 40).unwrap()
}

fn settings() -> SpoolSettings {
    SpoolSettings {
        chunk_size: 200,
        ..SpoolSettings::default()
    }
}

fn envelope(n: usize, rcpts: usize) -> Envelope {
    let hop = Transport::mx("example.org").unwrap();
    let to = (0..rcpts)
        .map(|i| fixtures::recipient(&format!("rcpt{i}@example.org"), &hop))
        .collect();
    fixtures::envelope(&format!("sender{n}@example.com"), to, ARRIVAL + n as u64)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A write the workload made, and the index of the flash operation that carried it.
#[derive(Clone)]
struct Event<T> {
    value: T,
    op: u64,
}

struct Msg {
    qid: QueueId,
    body: Vec<u8>,
    /// Operation index of the commit record.
    commit_op: u64,
    outcomes: Vec<Vec<Event<RecipientOutcome>>>,
    states: Vec<Event<QueueState>>,
    end_op: Option<u64>,
}

struct Model {
    msgs: Vec<Msg>,
    /// Flash operation counts at which an explicit sync returned: everything before is durable.
    syncs: Vec<u64>,
}

impl Model {
    /// Operations before this index were durable when operation `cut` started.
    fn durable_before(&self, cut: u64) -> u64 {
        self.syncs
            .iter()
            .copied()
            .filter(|&s| s <= cut)
            .max()
            .unwrap_or(0)
    }
}

struct Session {
    qid: QueueId,
    body: Vec<u8>,
    sent: usize,
    rcpts: usize,
}

fn ops(spool: &Spool<RamFlash>) -> u64 {
    spool.flash().ops()
}

/// Runs the workload; returns the formatted image it started from, the journal and the model.
fn run_workload(seed: u64, steps: usize) -> (Vec<u8>, Vec<FlashOp>, Model) {
    let mut flash = RamFlash::new(geometry());
    Spool::format(
        &mut flash,
        SpoolGeometry {
            config_slot_blocks: 1,
            directory_slot_blocks: 1,
            segment_blocks: 2,
            log_blocks: 0,
        },
    )
    .unwrap();
    let base = flash.image().to_vec();
    let mut flash = RamFlash::from_image(geometry(), base.clone()).unwrap();
    flash.record_journal();
    let (mut spool, _) = Spool::open(flash, settings()).unwrap();

    let mut rng = Rng(seed);
    let mut model = Model {
        msgs: Vec::new(),
        syncs: Vec::new(),
    };
    // Messages committed but not yet synced; they may be delivered only once acknowledged.
    let mut unacked: Vec<usize> = Vec::new();
    let mut acked: Vec<usize> = Vec::new();
    let mut sessions: Vec<Option<Session>> = (0..4).map(|_| None).collect();
    let sizes = [1usize, 40, 150, 420, 900, 1500];
    let mut n = 0usize;
    let mut full = 0;

    for step in 0..steps {
        let r = rng.below(100);
        if r < 55 {
            let s = rng.below(sessions.len() as u64) as usize;
            match sessions[s].take() {
                None => {
                    n += 1;
                    let rcpts = 1 + rng.below(3) as usize;
                    match spool.begin(&envelope(n, rcpts), 1_795_000_000_000 + step as u64) {
                        Ok(qid) => {
                            let size = sizes[rng.below(sizes.len() as u64) as usize]
                                + rng.below(60) as usize;
                            let seed = rng.next() as u8;
                            let body = (0..size).map(|i| (i as u8) ^ seed).collect();
                            sessions[s] = Some(Session {
                                qid,
                                body,
                                sent: 0,
                                rcpts,
                            });
                        }
                        Err(SpoolError::Full) => full += 1,
                        Err(e) => panic!("begin: {e}"),
                    }
                }
                Some(mut sess) => {
                    let piece = (1 + rng.below(300) as usize).min(sess.body.len() - sess.sent);
                    let res = spool.append_body(sess.qid, &sess.body[sess.sent..sess.sent + piece]);
                    sess.sent += piece;
                    match res {
                        Err(SpoolError::Full) => {
                            full += 1;
                            spool.abandon(sess.qid);
                        }
                        Err(e) => panic!("append: {e}"),
                        Ok(()) if sess.sent == sess.body.len() => match spool.commit(sess.qid) {
                            Ok(()) => {
                                model.msgs.push(Msg {
                                    qid: sess.qid,
                                    body: sess.body,
                                    commit_op: ops(&spool) - 1,
                                    outcomes: vec![Vec::new(); sess.rcpts],
                                    states: Vec::new(),
                                    end_op: None,
                                });
                                unacked.push(model.msgs.len() - 1);
                            }
                            Err(SpoolError::Full) => {
                                full += 1;
                                spool.abandon(sess.qid);
                            }
                            Err(e) => panic!("commit: {e}"),
                        },
                        Ok(()) => sessions[s] = Some(sess),
                    }
                }
            }
        } else if r < 57 {
            // A client goes away mid-message.
            let s = rng.below(sessions.len() as u64) as usize;
            if let Some(sess) = sessions[s].take() {
                spool.abandon(sess.qid);
            }
        } else if r < 92 && !acked.is_empty() {
            let pick = rng.below(acked.len() as u64) as usize;
            let i = acked[pick];
            let m = &mut model.msgs[i];
            let undelivered: Vec<usize> = (0..m.outcomes.len())
                .filter(|&k| m.outcomes[k].is_empty())
                .collect();
            let crowded = acked.len() > 4;
            if r < 75 && !undelivered.is_empty() {
                let k = undelivered[rng.below(undelivered.len() as u64) as usize];
                let outcome = if rng.below(2) == 0 {
                    RecipientOutcome::Delivered {
                        relay: "mx.example.org[192.0.2.25]:25".into(),
                        reply: format!("250 2.0.0 Ok: queued as {step}"),
                    }
                } else {
                    RecipientOutcome::Failed {
                        status: "5.1.1".into(),
                        diagnostic: "smtp; 550 5.1.1 User unknown".into(),
                        remote_mta: Some("mx.example.org".into()),
                    }
                };
                spool
                    .mark_recipient(m.qid, k, outcome.clone(), 1_795_000_000 + step as u64)
                    .unwrap();
                m.outcomes[k].push(Event {
                    value: outcome,
                    op: ops(&spool) - 1,
                });
            } else if r < 82 && !crowded {
                let state = match rng.below(3) {
                    0 => QueueState::Hold,
                    1 => QueueState::Active,
                    _ => QueueState::Deferred {
                        until: 1_795_000_000 + step as u64,
                        reason: "4.4.1 connection refused".into(),
                    },
                };
                spool
                    .set_state(
                        m.qid,
                        StateChange::new(state.clone(), 1_795_000_000 + step as u64),
                    )
                    .unwrap();
                m.states.push(Event {
                    value: state,
                    op: ops(&spool) - 1,
                });
            } else if undelivered.is_empty() || crowded {
                spool.remove(m.qid).unwrap();
                m.end_op = Some(ops(&spool) - 1);
                acked.swap_remove(pick);
            }
        } else {
            spool.sync().unwrap();
            model.syncs.push(ops(&spool));
            acked.append(&mut unacked);
        }
    }
    spool.sync().unwrap();
    model.syncs.push(ops(&spool));
    let info = spool.info();
    println!(
        "workload: {} messages committed, {} refused as full, {} compactions, erase counts {:?}",
        model.msgs.len(),
        full,
        info.compactions,
        info.erase_counts
    );
    assert!(
        info.compactions > 10,
        "the workload must exercise compaction"
    );
    let mut flash = spool.into_flash();
    let journal = flash.take_journal();
    (base, journal, model)
}

/// Checks a recovered spool against the model for a cut during operation `cut`.
fn verify(spool: &mut Spool<RamFlash>, model: &Model, cut: u64) -> Result<(), String> {
    let durable = model.durable_before(cut);
    let found = spool.list();
    for m in &model.msgs {
        let acked = m.commit_op < durable;
        let removed_for_sure = m.end_op.is_some_and(|e| e < durable);
        let removal_may_have_landed = m.end_op.is_some_and(|e| e <= cut);
        let commit_may_have_landed = m.commit_op <= cut;
        let got = found.iter().find(|s| s.qid == m.qid);
        match got {
            None => {
                if acked && !removal_may_have_landed {
                    return Err(format!("acknowledged message {} lost", m.qid));
                }
            }
            Some(s) => {
                if removed_for_sure {
                    return Err(format!("{} came back after a synced removal", m.qid));
                }
                if !commit_may_have_landed {
                    return Err(format!("{} appeared before its commit was written", m.qid));
                }
                let body = spool.read_body(m.qid).map_err(|e| e.to_string())?;
                if body != m.body {
                    return Err(format!("{} body differs", m.qid));
                }
                for (k, events) in m.outcomes.iter().enumerate() {
                    let got = &s.outcomes[k];
                    let ok = match events.first() {
                        None => got.is_none(),
                        Some(e) if e.op < durable => got.as_ref() == Some(&e.value),
                        Some(e) if e.op <= cut => got.is_none() || got.as_ref() == Some(&e.value),
                        Some(_) => got.is_none(),
                    };
                    if !ok {
                        return Err(format!("{} recipient {k} is {got:?}", m.qid));
                    }
                }
                let last_synced = m
                    .states
                    .iter()
                    .rev()
                    .find(|e| e.op < durable)
                    .map_or(QueueState::Active, |e| e.value.clone());
                let allowed = std::iter::once(&last_synced).chain(
                    m.states
                        .iter()
                        .filter(|e| e.op >= durable && e.op <= cut)
                        .map(|e| &e.value),
                );
                if !allowed.clone().any(|st| *st == s.state) {
                    return Err(format!("{} state is {:?}", m.qid, s.state));
                }
            }
        }
    }
    if let Some(stranger) = found
        .iter()
        .find(|s| !model.msgs.iter().any(|m| m.qid == s.qid))
    {
        return Err(format!("{} was never committed", stranger.qid));
    }
    Ok(())
}

/// The store must take a new message after recovery and keep it across another restart. If it is
/// full of acknowledged mail, delivering (removing) that mail must make room.
fn takes_new_mail(spool: Spool<RamFlash>) -> Result<(), String> {
    let mut spool = spool;
    let body = vec![0x5Au8; 700];
    let attempt = |spool: &mut Spool<RamFlash>| -> Result<QueueId, SpoolError> {
        let qid = spool.begin(&envelope(0, 1), 1_900_000_000_000)?;
        let res = spool
            .append_body(qid, &body)
            .and_then(|()| spool.commit(qid))
            .and_then(|()| spool.sync());
        if res.is_err() {
            spool.abandon(qid);
        }
        res.map(|()| qid)
    };
    let qid = match attempt(&mut spool) {
        Ok(qid) => qid,
        Err(SpoolError::Full) => {
            for m in spool.list() {
                spool
                    .remove(m.qid)
                    .and_then(|()| spool.sync())
                    .map_err(|e| format!("delivery when full: {e}"))?;
            }
            attempt(&mut spool).map_err(|e| format!("new message after emptying: {e}"))?
        }
        Err(e) => return Err(format!("new message after recovery: {e}")),
    };
    let before = spool.list().len();
    let (mut spool, _) = Spool::open(spool.into_flash(), settings()).map_err(|e| e.to_string())?;
    if spool.list().len() != before || spool.read_body(qid).ok() != Some(vec![0x5Au8; 700]) {
        return Err("new message did not survive a restart".into());
    }
    Ok(())
}

fn seed_for(n: u64) -> u64 {
    Rng(n ^ 0xD1B5_4A32_D192_ED03).next()
}

#[test]
fn power_cut_at_every_operation_loses_nothing_acknowledged() {
    exhaustive(7, 5000);
}

#[test]
fn power_cut_at_every_operation_of_another_interleaving() {
    exhaustive(1234, 3000);
}

fn exhaustive(seed: u64, steps: usize) {
    let started = Instant::now();
    let (base, journal, model) = run_workload(seed, steps);
    let mut flash = RamFlash::from_image(geometry(), base).unwrap();
    let mut tried = 0u64;
    let mut torn_erases = 0u64;
    for (n, op) in journal.iter().enumerate() {
        let n = n as u64;
        let mut cut = flash.clone();
        cut.apply_torn(op, seed_for(n));
        if matches!(op, FlashOp::Erase { .. }) {
            torn_erases += 1;
        }
        let (mut spool, report) = Spool::open(cut, settings())
            .unwrap_or_else(|e| panic!("cut at op {n}: open failed: {e}"));
        if let Err(why) = verify(&mut spool, &model, n) {
            panic!(
                "cut at op {n} of {}: {why}\nreport: {report:?}",
                journal.len()
            );
        }
        assert!(
            report.lost.is_empty(),
            "cut at op {n}: a power cut is not damage: {:?}",
            report.lost
        );
        if let Err(why) = takes_new_mail(spool) {
            panic!("cut at op {n}: {why}");
        }
        flash.apply(op).unwrap();
        tried += 1;
    }
    println!(
        "power-cut test (seed {seed}): {tried} cut points tried ({torn_erases} during erases), {} messages, {} syncs, {:.1} s",
        model.msgs.len(),
        model.syncs.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(tried > 4000, "only {tried} cut points");
}
