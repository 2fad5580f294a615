//! How the queue manager's index scales: RAM per queued message and the time to schedule a
//! whole queue through one round of deferrals. Prints figures; never fails.
//!
//! Run: `cargo bench -p postern --bench queue_scale`

use std::time::Instant;

use postern::mail::{EnhancedStatus, Transport};
use postern::mail::{QueueId, QueueState};
use postern::queue::{AttemptReport, QueueManager, QueueSettings, QueuedMessage, RcptResult};

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

fn main() {
    const N: u32 = 100_000;
    const DESTS: u32 = 100;
    const T0: u64 = 1_795_000_000;
    let hops: Vec<Transport> = (0..DESTS)
        .map(|d| {
            format!("smtp:[10.0.{}.{}]:25", d / 250, d % 250 + 1)
                .parse()
                .unwrap()
        })
        .collect();
    let mut q = QueueManager::new(QueueSettings::default());
    let before = rss_bytes();
    let t = Instant::now();
    for n in 0..N {
        let a = hops[(n % DESTS) as usize].clone();
        let b = hops[((n * 7 + 3) % DESTS) as usize].clone();
        q.add(
            QueuedMessage {
                qid: QueueId::new(T0 * 1000 + u64::from(n / 1000), n % 1000),
                arrival: T0,
                null_sender: false,
                size: 5000,
                recipients: vec![(a, false), (b, false)],
                state: QueueState::Active,
            },
            T0,
        );
    }
    let add = t.elapsed();
    let after = rss_bytes();
    println!(
        "queue_scale: {N} messages x 2 recipients over {DESTS} next hops: add {:.0} ms, \
         index ≈ {} bytes/message (RSS delta {:.1} MB)",
        add.as_secs_f64() * 1e3,
        after.saturating_sub(before) / u64::from(N),
        after.saturating_sub(before) as f64 / 1e6
    );

    // One round: every job is answered with a deferral as soon as it is handed out.
    let t = Instant::now();
    let mut jobs = 0usize;
    let mut polls = 0usize;
    loop {
        let w = q.poll(T0);
        polls += 1;
        if w.jobs.is_empty() {
            break;
        }
        for j in w.jobs {
            jobs += 1;
            let results = j
                .recipients
                .iter()
                .map(|&i| {
                    (
                        i,
                        RcptResult::Deferred {
                            status: EnhancedStatus::of(4, 4, 1),
                            reason: "connect to 10.0.0.1[10.0.0.1]:25: Connection refused".into(),
                        },
                    )
                })
                .collect();
            q.report(
                AttemptReport {
                    qid: j.qid,
                    next_hop: j.next_hop,
                    results,
                    destination_failed: false,
                },
                None,
                T0,
            );
        }
    }
    let round = t.elapsed();
    println!(
        "queue_scale: one round of {jobs} jobs in {polls} polls: {:.0} ms ({:.1} µs per job), \
         {} messages deferred",
        round.as_secs_f64() * 1e3,
        round.as_secs_f64() * 1e6 / jobs.max(1) as f64,
        q.list()
            .iter()
            .filter(|m| matches!(m.state, QueueState::Deferred { .. }))
            .count()
    );
}
