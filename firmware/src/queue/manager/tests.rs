//! Scheduling behaviour an admin would notice, driven with an injected clock.

use super::*;
use crate::mail::{EnhancedStatus, Reply};

const T0: u64 = 1_795_000_000;

fn hop(s: &str) -> Transport {
    s.parse().unwrap()
}

fn msg(n: u32, arrival: u64, hops: &[&str]) -> QueuedMessage {
    QueuedMessage {
        qid: QueueId::new(arrival * 1000, n),
        arrival,
        null_sender: false,
        size: 1000,
        recipients: hops.iter().map(|h| (hop(h), false)).collect(),
        state: QueueState::Active,
    }
}

fn deferred(job: &Job, reason: &str) -> AttemptReport {
    AttemptReport {
        qid: job.qid,
        next_hop: job.next_hop.clone(),
        results: job
            .recipients
            .iter()
            .map(|&i| {
                (
                    i,
                    RcptResult::Deferred {
                        status: EnhancedStatus::of(4, 4, 1),
                        reason: reason.into(),
                    },
                )
            })
            .collect(),
        destination_failed: false,
    }
}

fn delivered(job: &Job) -> AttemptReport {
    AttemptReport {
        qid: job.qid,
        next_hop: job.next_hop.clone(),
        results: job
            .recipients
            .iter()
            .map(|&i| {
                (
                    i,
                    RcptResult::Delivered {
                        relay: "mx[192.0.2.1]:25".into(),
                        reply: Reply::new(250, [2, 0, 0], "Ok"),
                    },
                )
            })
            .collect(),
        destination_failed: false,
    }
}

#[test]
fn a_delivered_message_is_removed_after_its_final_dsn_decision() {
    let mut q = QueueManager::new(QueueSettings::default());
    let m = msg(1, T0, &["smtp:[192.0.2.1]:25", "smtp:[192.0.2.1]:25"]);
    let qid = m.qid;
    q.add(m, T0);
    let w = q.poll(T0);
    assert_eq!(w.actions, vec![Action::Activated { qid }]);
    assert_eq!(w.jobs.len(), 1, "two recipients, one next hop: one job");
    assert_eq!(w.jobs[0].recipients, vec![0, 1]);
    q.report(delivered(&w.jobs[0]), None, T0 + 1);
    let w = q.poll(T0 + 1);
    assert!(matches!(
        w.actions[0],
        Action::MarkRecipient { index: 0, .. }
    ));
    assert!(matches!(
        w.actions[1],
        Action::MarkRecipient { index: 1, .. }
    ));
    assert_eq!(
        w.actions[2..],
        [
            Action::Dsn {
                qid,
                kind: DsnKind::Final
            },
            Action::Remove { qid }
        ]
    );
    assert!(q.is_empty());
    assert_eq!(q.next_wakeup(), None);
}

#[test]
fn deferred_mail_backs_off_like_postfix_and_expires_after_five_days() {
    let mut q = QueueManager::new(QueueSettings::default());
    let m = msg(1, T0, &["smtp:down.example"]);
    let qid = m.qid;
    q.add(m, T0);
    let mut now = T0;
    let mut attempts = Vec::new();
    let mut expired_at = None;
    // Drive the queue the way the runner does: sleep until the next wakeup, poll, answer jobs.
    for _ in 0..10_000 {
        let w = q.poll(now);
        for a in &w.actions {
            match a {
                Action::SetState {
                    state: QueueState::Deferred { until, reason },
                    ..
                } => {
                    assert!(reason.contains("Connection refused"));
                    assert!(*until > now);
                }
                Action::Expired { .. } => expired_at = Some(now),
                _ => {}
            }
        }
        for j in &w.jobs {
            attempts.push(now);
            q.report(
                deferred(j, "connect to down.example: Connection refused"),
                None,
                now,
            );
        }
        if q.is_empty() {
            if q.poll(now).actions.contains(&Action::Expired { qid }) {
                expired_at = Some(now);
            }
            break;
        }
        if w.jobs.is_empty() {
            now = q
                .next_wakeup()
                .expect("a deferred message has a wakeup")
                .max(now + 1);
        }
    }
    let gaps: Vec<u64> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    // Backoff is the message's age, clamped to 300..4000 s, then a queue run picks it up.
    assert!(gaps[0] >= 300 && gaps[0] < 300 + 300, "{gaps:?}");
    assert!(
        gaps.iter().all(|&g| (300..=4000 + 300).contains(&g)),
        "{gaps:?}"
    );
    assert!(gaps[gaps.len() - 1] >= 4000);
    let expired_at = expired_at.expect("expired");
    assert!((T0 + 5 * 86_400..T0 + 5 * 86_400 + 4300).contains(&expired_at));
    assert!(
        attempts.len() > 100 && attempts.len() < 130,
        "{}",
        attempts.len()
    );
    assert!(q.get(qid).is_none());
}

#[test]
fn expiry_fails_the_rest_with_4_4_7_and_returns_the_message() {
    let settings = QueueSettings {
        maximal_queue_lifetime: 1000,
        ..QueueSettings::default()
    };
    let mut q = QueueManager::new(settings);
    let m = msg(1, T0, &["smtp:[192.0.2.1]:25", "smtp:[192.0.2.2]:25"]);
    let qid = m.qid;
    q.add(m, T0);
    let w = q.poll(T0);
    q.report(delivered(&w.jobs[0]), None, T0);
    q.report(deferred(&w.jobs[1], "451 4.3.0 try later"), None, T0 + 1000);
    let w = q.poll(T0 + 1000);
    let kinds: Vec<&Action> = w.actions.iter().collect();
    assert!(matches!(kinds[0], Action::MarkRecipient { index: 0, .. }));
    assert_eq!(kinds[1], &Action::Expired { qid });
    match kinds[2] {
        Action::MarkRecipient {
            index: 1,
            outcome: RecipientOutcome::Failed {
                status, diagnostic, ..
            },
            ..
        } => {
            assert_eq!(status, "4.4.7");
            assert!(diagnostic.contains("451 4.3.0 try later"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        kinds[3],
        &Action::Dsn {
            qid,
            kind: DsnKind::Final
        }
    );
    assert_eq!(kinds[4], &Action::Remove { qid });
}

#[test]
fn an_undeliverable_bounce_is_kept_for_bounce_queue_lifetime_then_dropped_never_rebounced() {
    let settings = QueueSettings {
        bounce_queue_lifetime: 86_400,
        ..QueueSettings::default()
    };
    let mut q = QueueManager::new(settings);
    let mut m = msg(1, T0, &["smtp:dead-sender.example"]);
    m.null_sender = true;
    let qid = m.qid;
    q.add(m, T0);
    let mut now = T0;
    let mut all = Vec::new();
    while !q.is_empty() && now < T0 + 3 * 86_400 {
        let w = q.poll(now);
        all.extend(w.actions);
        for j in &w.jobs {
            q.report(deferred(j, "Host not found, try again"), None, now);
        }
        now = q.next_wakeup().unwrap_or(now + 1).max(now + 1);
    }
    all.extend(q.poll(now).actions);
    assert!(q.is_empty(), "dropped after bounce_queue_lifetime");
    assert!(all.contains(&Action::Expired { qid }));
    assert!(all.contains(&Action::Remove { qid }));
    assert!(
        !all.iter().any(|a| matches!(a, Action::Dsn { .. })),
        "a bounce never causes a bounce"
    );
}

#[test]
fn concurrency_per_destination_and_a_busy_one_does_not_starve_others() {
    let mut q = QueueManager::new(QueueSettings::default());
    for n in 0..30 {
        q.add(msg(n, T0, &["smtp:[192.0.2.1]:25"]), T0);
    }
    q.add(msg(99, T0 + 1, &["lmtp:store.example:7025"]), T0 + 1);
    let w = q.poll(T0 + 1);
    let busy = w
        .jobs
        .iter()
        .filter(|j| j.next_hop == hop("smtp:[192.0.2.1]:25"));
    assert_eq!(busy.count(), 20, "default_destination_concurrency_limit");
    assert!(
        w.jobs
            .iter()
            .any(|j| j.next_hop == hop("lmtp:store.example:7025")),
        "the other destination gets its job at once"
    );
    // Freeing one slot starts one more job for the busy destination.
    let first = w.jobs[0].clone();
    q.report(delivered(&first), None, T0 + 2);
    let w2 = q.poll(T0 + 2);
    assert_eq!(w2.jobs.len(), 1);
    assert_eq!(w2.jobs[0].next_hop, hop("smtp:[192.0.2.1]:25"));
}

#[test]
fn a_dead_next_hop_defers_its_mail_without_trying_and_others_flow() {
    let mut q = QueueManager::new(QueueSettings::default());
    q.add(msg(1, T0, &["smtp:[192.0.2.9]:25"]), T0);
    let w = q.poll(T0);
    let mut r = deferred(
        &w.jobs[0],
        "connect to 192.0.2.9[192.0.2.9]:25: Connection refused",
    );
    r.destination_failed = true;
    q.report(r, None, T0 + 1);
    q.poll(T0 + 1);
    // New mail to the dead hop: deferred at once, no job; mail elsewhere still goes.
    let dead = msg(2, T0 + 2, &["smtp:[192.0.2.9]:25"]);
    let dead_qid = dead.qid;
    q.add(dead, T0 + 2);
    q.add(msg(3, T0 + 2, &["smtp:[192.0.2.1]:25"]), T0 + 2);
    let w = q.poll(T0 + 2);
    assert_eq!(w.jobs.len(), 1);
    assert_eq!(w.jobs[0].next_hop, hop("smtp:[192.0.2.1]:25"));
    assert!(w.actions.iter().any(|a| matches!(
        a,
        Action::Suspended { qid, recipients, reason }
            if *qid == dead_qid && recipients == &vec![0] && reason.contains("Connection refused")
    )));
    let v = q.get(dead_qid).unwrap();
    assert!(matches!(v.state, QueueState::Deferred { .. }));
    assert!(
        v.recipients[0]
            .last_reason
            .as_deref()
            .unwrap()
            .starts_with("delivery temporarily suspended: connect to 192.0.2.9")
    );
    // flush -s brings the destination back to life at once.
    assert_eq!(q.flush(Some("192.0.2.9"), T0 + 3).len(), 2);
    let w = q.poll(T0 + 3);
    assert_eq!(w.jobs.len(), 2);
}

#[test]
fn flush_writes_the_move_to_the_active_queue_for_each_message_it_wakes() {
    let mut q = QueueManager::new(QueueSettings::default());
    let a = msg(1, T0, &["smtp:[192.0.2.1]:25"]);
    let b = msg(2, T0, &["smtp:[192.0.2.2]:25"]);
    let (qa, qb) = (a.qid, b.qid);
    q.add(a, T0);
    q.add(b, T0);
    for j in q.poll(T0).jobs {
        q.report(deferred(&j, "451 later"), None, T0);
    }
    q.poll(T0);
    let active = |qid| Action::SetState {
        qid,
        state: QueueState::Active,
        waiting: Vec::new(),
        flushed: true,
    };
    // By site: only the message for that next hop moves, and the spool is told.
    assert_eq!(q.flush(Some("[192.0.2.2]"), T0 + 5), vec![qb]);
    let w = q.poll(T0 + 5);
    assert!(w.actions.contains(&active(qb)), "{:?}", w.actions);
    assert!(!w.actions.contains(&active(qa)), "{:?}", w.actions);
    assert_eq!(w.jobs.len(), 1);
    // All: the rest; a message already active is not flushed (nor written) again.
    assert_eq!(q.flush(None, T0 + 6), vec![qa]);
    let w = q.poll(T0 + 6);
    assert_eq!(
        w.actions
            .iter()
            .filter(|a| matches!(a, Action::SetState { .. }))
            .collect::<Vec<_>>(),
        vec![&active(qa)]
    );
}

#[test]
fn a_requeue_and_a_flush_by_id_are_written_as_what_they_were() {
    let mut q = QueueManager::new(QueueSettings::default());
    let m = msg(1, T0, &["smtp:[192.0.2.1]:25"]);
    let qid = m.qid;
    q.add(m, T0);
    // One round: what became active (flushed or not), then every job deferred.
    let round = |q: &mut QueueManager, now| -> Vec<bool> {
        let w = q.poll(now);
        for j in &w.jobs {
            q.report(deferred(j, "451 later"), None, now);
        }
        q.poll(now);
        w.actions
            .iter()
            .filter_map(|a| match a {
                Action::SetState {
                    state: QueueState::Active,
                    flushed,
                    ..
                } => Some(*flushed),
                _ => None,
            })
            .collect()
    };
    assert!(round(&mut q, T0).is_empty(), "arrival writes no state");
    assert!(q.apply(BulkOp::Requeue, qid, T0 + 1));
    assert!(
        !q.apply(BulkOp::Flush, qid, T0 + 1),
        "an active message is not flushed"
    );
    assert_eq!(round(&mut q, T0 + 1), [false]);
    assert!(q.apply(BulkOp::Flush, qid, T0 + 2));
    assert_eq!(round(&mut q, T0 + 2), [true]);
}

#[test]
fn delay_warning_once_when_enabled_never_when_off() {
    for (dwt, expect) in [(0u64, 0usize), (4 * 3600, 1)] {
        let settings = QueueSettings {
            delay_warning_time: dwt,
            ..QueueSettings::default()
        };
        let mut q = QueueManager::new(settings);
        q.add(msg(1, T0, &["smtp:[192.0.2.1]:25"]), T0);
        let mut now = T0;
        let mut warnings = 0;
        while now < T0 + 86_400 {
            let w = q.poll(now);
            for a in &w.actions {
                if let Action::Dsn {
                    kind: DsnKind::Delay { recipients },
                    ..
                } = a
                {
                    assert_eq!(recipients, &vec![0]);
                    assert!(now >= T0 + dwt);
                    warnings += 1;
                }
            }
            for j in &w.jobs {
                q.report(deferred(j, "451 later"), None, now);
            }
            now = q.next_wakeup().unwrap_or(now + 1).max(now + 1);
        }
        assert_eq!(warnings, expect, "delay_warning_time={dwt}");
    }
}

#[test]
fn hold_release_requeue_delete() {
    let mut q = QueueManager::new(QueueSettings::default());
    let m = msg(1, T0, &["smtp:[192.0.2.1]:25"]);
    let qid = m.qid;
    q.add(m, T0);
    assert!(q.hold(qid));
    let w = q.poll(T0);
    assert!(w.jobs.is_empty(), "held mail is never tried");
    assert!(w.actions.contains(&Action::SetState {
        qid,
        state: QueueState::Hold,
        waiting: Vec::new(),
        flushed: false,
    }));
    assert_eq!(
        q.poll(T0 + 10 * 86_400).jobs.len(),
        0,
        "nor expired while held"
    );
    assert!(q.release(qid, T0 + 20));
    let w = q.poll(T0 + 20);
    assert_eq!(w.jobs.len(), 1);
    q.report(deferred(&w.jobs[0], "451 later"), None, T0 + 21);
    q.poll(T0 + 21);
    let v = q.get(qid).unwrap();
    assert_eq!(v.next_attempt, Some(T0 + 21 + 300));
    assert_eq!(v.attempts, 1);
    assert_eq!(v.last_reason.as_deref(), Some("451 later"));
    assert_eq!(v.recipients[0].state, RcptState::Deferred);
    assert!(q.requeue(qid, T0 + 22));
    assert_eq!(q.poll(T0 + 22).jobs.len(), 1);
    assert!(q.delete(qid));
    assert_eq!(q.poll(T0 + 23).actions, vec![Action::Remove { qid }]);
    assert!(!q.delete(qid));
}

#[test]
fn recovered_deferred_message_waits_for_its_time_and_finished_one_is_cleaned_up() {
    let mut q = QueueManager::new(QueueSettings::default());
    let mut a = msg(1, T0, &["smtp:[192.0.2.1]:25"]);
    a.state = QueueState::Deferred {
        until: T0 + 1000,
        reason: "451 later".into(),
    };
    let mut b = msg(2, T0, &["smtp:[192.0.2.1]:25"]);
    b.recipients[0].1 = true;
    let bq = b.qid;
    q.add(a, T0 + 10);
    q.add(b, T0 + 10);
    let w = q.poll(T0 + 10);
    assert!(w.jobs.is_empty());
    assert!(w.actions.contains(&Action::Remove { qid: bq }));
    let mut now = T0 + 10;
    let mut jobs = 0;
    while now <= T0 + 1400 {
        jobs += q.poll(now).jobs.len();
        if jobs > 0 {
            assert!(now >= T0 + 1000);
            break;
        }
        now = q.next_wakeup().unwrap().max(now + 1);
    }
    assert_eq!(jobs, 1);
}

#[test]
fn per_recipient_results_mixed() {
    let mut q = QueueManager::new(QueueSettings::default());
    let m = msg(
        1,
        T0,
        &["lmtp:store.example:7025", "lmtp:store.example:7025"],
    );
    let qid = m.qid;
    q.add(m, T0);
    let w = q.poll(T0);
    let job = &w.jobs[0];
    q.report(
        AttemptReport {
            qid,
            next_hop: job.next_hop.clone(),
            results: vec![
                (
                    0,
                    RcptResult::Deferred {
                        status: EnhancedStatus::of(4, 2, 2),
                        reason: "452 4.2.2 Mailbox is full".into(),
                    },
                ),
                (
                    1,
                    RcptResult::Bounced {
                        status: EnhancedStatus::of(5, 2, 2),
                        diagnostic: "lmtp; 552 5.2.2 Quota exceeded".into(),
                        remote_mta: Some("store.example".into()),
                    },
                ),
            ],
            destination_failed: false,
        },
        Some("store.example[192.0.2.9]:7025"),
        T0 + 1,
    );
    let w = q.poll(T0 + 1);
    assert!(matches!(
        &w.actions[0],
        Action::MarkRecipient { index: 1, outcome: RecipientOutcome::Failed { status, .. }, .. } if status == "5.2.2"
    ));
    assert!(matches!(
        &w.actions[1],
        Action::SetState { state: QueueState::Deferred { reason, .. }, .. } if reason.contains("4.2.2")
    ));
    // The deferral names who waits and why; the bounced recipient does not wait.
    let Action::SetState { waiting, .. } = &w.actions[1] else {
        unreachable!()
    };
    assert_eq!(
        waiting,
        &vec![Waiting {
            recipients: vec![0],
            reason: "452 4.2.2 Mailbox is full".into(),
            relay: Some(Relay::Host("store.example[192.0.2.9]:7025".into())),
        }]
    );
    // The quota-full recipient is retried later; the bounced one is not.
    let w = q.poll(T0 + 301);
    assert_eq!(w.jobs.len(), 1);
    assert_eq!(w.jobs[0].recipients, vec![0]);
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const HOPS: [&str; 3] = [
        "smtp:[192.0.2.1]:25",
        "smtp:[192.0.2.2]:25",
        "lmtp:store.example:7025",
    ];

    /// 0 delivered, 1 deferred, 2 bounced, 3 destination dead.
    fn result(kind: u8) -> RcptResult {
        match kind % 4 {
            0 => RcptResult::Delivered {
                relay: "r".into(),
                reply: Reply::bare(250, "ok"),
            },
            2 => RcptResult::Bounced {
                status: EnhancedStatus::of(5, 0, 0),
                diagnostic: "smtp; 550 no".into(),
                remote_mta: None,
            },
            _ => RcptResult::Deferred {
                status: EnhancedStatus::of(4, 0, 0),
                reason: "451 later".into(),
            },
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Whatever the next hops answer, every message leaves the queue exactly once, each
        /// recipient's outcome is written at most once, no job is lost, and the per-destination
        /// slots all come back.
        #[test]
        fn every_message_ends_and_slots_come_back(
            msgs in proptest::collection::vec(proptest::collection::vec(0usize..3, 1..4), 1..25),
            answers in proptest::collection::vec(0u8..4, 1..64),
        ) {
            let settings = QueueSettings {
                maximal_queue_lifetime: 20_000,
                destination_concurrency_limit: 2,
                ..QueueSettings::default()
            };
            let mut q = QueueManager::new(settings);
            let mut qids = Vec::new();
            for (n, hops) in msgs.iter().enumerate() {
                let hs: Vec<&str> = hops.iter().map(|&h| HOPS[h]).collect();
                let m = msg(n as u32, T0, &hs);
                qids.push(m.qid);
                q.add(m, T0);
            }
            let mut now = T0;
            let mut k = 0usize;
            let mut removed: HashMap<QueueId, u32> = HashMap::new();
            let mut marked: HashMap<(QueueId, usize), u32> = HashMap::new();
            let mut in_flight: Vec<Job> = Vec::new();
            for _ in 0..100_000 {
                let w = q.poll(now);
                for a in &w.actions {
                    match a {
                        Action::Remove { qid } => *removed.entry(*qid).or_default() += 1,
                        Action::MarkRecipient { qid, index, .. } => {
                            *marked.entry((*qid, *index)).or_default() += 1
                        }
                        _ => {}
                    }
                }
                in_flight.extend(w.jobs);
                if let Some(job) = in_flight.pop() {
                    let kind = answers[k % answers.len()];
                    k += 1;
                    let results = job.recipients.iter().map(|&i| (i, result(kind))).collect();
                    q.report(
                        AttemptReport {
                            qid: job.qid,
                            next_hop: job.next_hop.clone(),
                            results,
                            destination_failed: kind % 4 == 3,
                        },
                        None,
                        now,
                    );
                    continue;
                }
                if q.is_empty() {
                    break;
                }
                now = q.next_wakeup().unwrap_or(now + 1).max(now + 1);
            }
            let last = q.poll(now);
            for a in &last.actions {
                if let Action::Remove { qid } = a {
                    *removed.entry(*qid).or_default() += 1;
                }
            }
            prop_assert!(q.is_empty(), "queue drained");
            for qid in &qids {
                prop_assert_eq!(removed.get(qid).copied(), Some(1));
            }
            prop_assert!(marked.values().all(|&n| n == 1));
            // All slots are free again: once any dead mark has run out, new mail to each next
            // hop gets its full concurrency at once.
            let later = now + 301;
            for (n, h) in HOPS.iter().enumerate() {
                for c in 0..2 {
                    q.add(msg(1000 + (n * 2 + c) as u32, later, &[h]), later);
                }
            }
            prop_assert_eq!(q.poll(later).jobs.len(), 6);
        }
    }
}

#[test]
fn a_restart_does_not_repeat_an_old_delay_warning() {
    let settings = QueueSettings {
        delay_warning_time: 4 * 3600,
        ..QueueSettings::default()
    };
    // Recovered ten hours after arrival: its warning went out long ago.
    let mut q = QueueManager::new(settings.clone());
    let mut m = msg(1, T0, &["smtp:[192.0.2.1]:25"]);
    m.state = QueueState::Deferred {
        until: T0 + 10 * 3600,
        reason: "451 later".into(),
    };
    q.add(m.clone(), T0 + 10 * 3600);
    let w = q.poll(T0 + 10 * 3600);
    assert!(!w.actions.iter().any(|a| matches!(a, Action::Dsn { .. })));
    // Recovered just after the warning time: it may not have been warned yet, so it is.
    let mut q = QueueManager::new(settings);
    q.add(m, T0 + 4 * 3600 + 60);
    let mut warned = false;
    let mut now = T0 + 4 * 3600 + 60;
    for _ in 0..5 {
        let w = q.poll(now);
        warned |= w.actions.iter().any(|a| {
            matches!(
                a,
                Action::Dsn {
                    kind: DsnKind::Delay { .. },
                    ..
                }
            )
        });
        for j in &w.jobs {
            q.report(deferred(j, "451 later"), None, now);
        }
        now = q.next_wakeup().unwrap_or(now + 1).max(now + 1);
    }
    assert!(warned);
}

#[test]
fn a_queued_message_with_one_recipient_takes_40_bytes() {
    assert!(std::mem::size_of::<Msg>() <= 40);
    assert_eq!(
        std::mem::size_of::<Option<Msg>>(),
        std::mem::size_of::<Msg>()
    );
}

#[test]
fn new_settings_apply_to_a_running_queue() {
    let mut q = QueueManager::new(QueueSettings {
        queue_run_delay: 3600,
        minimal_backoff_time: 60,
        ..QueueSettings::default()
    });
    let m = msg(1, T0, &["smtp:[192.0.2.1]:25"]);
    let qid = m.qid;
    q.add(m, T0);
    let w = q.poll(T0);
    q.report(deferred(&w.jobs[0], "451 later"), None, T0 + 1);
    q.poll(T0 + 1);
    // Due in 60 s, but the deferred queue is looked at hourly.
    assert_eq!(q.next_wakeup(), Some(T0 + 3600));
    // An admin shortens the queue run delay and the lifetime: no restart.
    q.set_settings(QueueSettings {
        queue_run_delay: 300,
        minimal_backoff_time: 60,
        maximal_queue_lifetime: 200,
        ..QueueSettings::default()
    });
    assert_eq!(q.next_wakeup(), Some(T0 + 300));
    let w = q.poll(T0 + 300);
    assert_eq!(w.jobs.len(), 1);
    q.report(deferred(&w.jobs[0], "451 later"), None, T0 + 301);
    let w = q.poll(T0 + 301);
    assert!(w.actions.contains(&Action::Expired { qid }), "{w:?}");
}

/// The manager's candidates for a filter are exactly the messages whose views pass the
/// filter's own test (and have a recipient still to deliver when an address is asked for),
/// oldest first: judging without views changes nothing but the cost.
#[test]
fn candidates_are_the_views_the_filter_admits() {
    let mut q = QueueManager::new(QueueSettings::default());
    let hops = ["smtp:[192.0.2.1]:25", "smtp:[192.0.2.2]:25"];
    for n in 0..40u32 {
        q.add(
            msg(n, T0 + u64::from(n) * 60, &hops[..1 + n as usize % 2]),
            T0,
        );
    }
    let now = T0 + 3600;
    let w = q.poll(now);
    for (i, job) in w.jobs.iter().enumerate() {
        match i % 4 {
            0 => q.report(deferred(job, "451 4.7.1 greylisted"), None, now),
            1 => q.report(
                deferred(job, "connect to mx: Connection refused"),
                None,
                now,
            ),
            2 => q.report(delivered(job), None, now),
            _ => {}
        }
    }
    q.poll(now);
    let held: Vec<QueueId> = q.list().iter().step_by(5).map(|v| v.qid).collect();
    for qid in held {
        q.hold(qid);
    }
    let filters = [
        Filter::default(),
        Filter {
            queues: vec![QueueName::Hold],
            ..Filter::default()
        },
        Filter {
            queues: vec![QueueName::Deferred, QueueName::Active],
            older_than: Some(1800),
            ..Filter::default()
        },
        Filter {
            younger_than: Some(1200),
            ..Filter::default()
        },
        Filter {
            reason: Some("GREYLISTED".into()),
            ..Filter::default()
        },
        Filter {
            domain: Some("example".into()),
            ..Filter::default()
        },
    ];
    for f in &filters {
        let want: Vec<QueueId> = (q.list().iter())
            .filter(|v| f.matches_view(v, now))
            .filter(|v| !f.needs_pending() || (v.recipients.iter()).any(|r| !r.state.is_final()))
            .map(|v| v.qid)
            .collect();
        assert_eq!(q.candidates(f, now), want, "{f:?}");
    }
    let some = q.candidates(&filters[1], now);
    assert!(!some.is_empty());
    assert_eq!(
        q.views(&some).iter().map(|v| v.qid).collect::<Vec<_>>(),
        some
    );
    let briefs = q.briefs();
    assert_eq!(briefs.len(), q.list().len());
    assert_eq!(
        briefs.iter().filter(|b| b.queue == QueueName::Hold).count(),
        some.len()
    );
}
