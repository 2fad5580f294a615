//! `postern queue show` of a message that was deferred twice and then partly delivered, through
//! the real queue runner over a real spool on a RAM flash: every record with its time, in the
//! order it happened, and the same after the spool is closed and opened again (the times live on
//! flash, not in the queue's RAM). And `queue flush`, which must reach flash as well: a restart
//! finds the flushed message due, not deferred until its old next attempt, and its history says
//! `flushed`. A deferral names its relay as the mail log does (`relay=host[ip]:port` or `none`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hal::flash::{Flash, FlashGeometry, RamFlash};
use postern::admin::commands::{BulkArgs, FilterArgs};
use postern::admin::{AdminCommand, QueueCommand};
use postern::log::LogSink;
use postern::mail::{EnhancedStatus, QueueId, Reply, Transport};
use postern::queue::runner::{self, QueueHandle, RunnerConfig};
use postern::queue::{
    Attempt, AttemptReport, Deliverer, DeliveryRequest, QueueSettings, RcptResult,
};
use postern::spool::{RecoveredState, Spool, SpoolGeometry, SpoolSettings, service};

mod common;

use common::admin::{admin_of, queue_over};
use common::fixtures;

/// `flaky@` is refused twice (no server reached) and then taken; `full@` is always over quota
/// (the store answered).
#[derive(Default)]
struct Script {
    tries: Mutex<HashMap<String, u32>>,
}

impl Deliverer for Script {
    async fn deliver(&self, req: DeliveryRequest<'_>) -> Attempt {
        let results = req
            .recipients
            .iter()
            .map(|&i| {
                let addr = req.envelope.recipients[i].address.clone();
                let n = {
                    let mut tries = self.tries.lock().unwrap();
                    let n = tries.entry(addr.clone()).or_default();
                    *n += 1;
                    *n
                };
                let r = if addr.starts_with("flaky@") && n >= 3 {
                    RcptResult::Delivered {
                        relay: "mx.a.example[192.0.2.1]:25".into(),
                        reply: Reply::new(250, [2, 0, 0], "Ok: queued as 4XYZ"),
                    }
                } else if addr.starts_with("flaky@") {
                    RcptResult::Deferred {
                        status: EnhancedStatus::of(4, 4, 1),
                        reason: format!(
                            "connect to mx.a.example[192.0.2.1]:25: Connection refused (try {n})"
                        ),
                    }
                } else {
                    RcptResult::Deferred {
                        status: EnhancedStatus::of(4, 2, 2),
                        reason: "host store.b.example[192.0.2.2] said: 452 4.2.2 Mailbox is full"
                            .into(),
                    }
                };
                (i, r)
            })
            .collect::<Vec<_>>();
        // As the delivery client says it: the server of the connection, if one was made.
        let relay = if req.next_hop.to_string().contains("b.example") {
            Some("store.b.example[192.0.2.2]:25".to_string())
        } else {
            results.iter().find_map(|(_, r)| match r {
                RcptResult::Delivered { relay, .. } => Some(relay.clone()),
                _ => None,
            })
        };
        Attempt {
            report: AttemptReport {
                qid: req.qid,
                next_hop: req.next_hop.clone(),
                results,
                destination_failed: false,
            },
            relay,
            connection_time: Duration::ZERO,
            transmission_time: Duration::ZERO,
        }
    }
}

/// Waits until the queue has finished `attempts` delivery rounds of `qid`.
async fn rounds(queue: &QueueHandle, qid: QueueId, attempts: u32) {
    let t = Instant::now();
    while queue.get(qid).await.map(|v| v.attempts) != Some(attempts) {
        assert!(t.elapsed() < Duration::from_secs(20), "round {attempts}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The history section of `queue show`, each line without its time.
fn history(shown: &str) -> Vec<String> {
    let h = shown
        .split_once(" ***\n")
        .and_then(|(_, rest)| rest.split_once("*** HISTORY "))
        .and_then(|(_, rest)| rest.split_once(" ***\n"))
        .and_then(|(_, rest)| rest.split_once("*** MESSAGE CONTENTS"))
        .map(|(h, _)| h)
        .unwrap_or_else(|| panic!("no history: {shown}"));
    h.lines()
        .map(|l| {
            let (at, what) = l.split_at(25);
            assert!(at.ends_with("+00:00"), "every record has its time: {l}");
            what.trim_start().to_string()
        })
        .collect()
}

fn show(qid: QueueId, json: bool) -> AdminCommand {
    AdminCommand::Queue(QueueCommand::Show {
        qid: qid.to_string(),
        body: false,
        json,
    })
}

fn requeue(qid: QueueId) -> AdminCommand {
    AdminCommand::Queue(QueueCommand::Requeue(BulkArgs {
        targets: vec![qid.to_string()],
        ..BulkArgs::default()
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_twice_then_delivered_shows_every_record_in_order() {
    let mut flash = RamFlash::new(FlashGeometry::new(4096, 16 << 20).unwrap());
    let geometry = SpoolGeometry::for_flash(flash.geometry());
    Spool::format(&mut flash, geometry).unwrap();
    let (spool, _) = Spool::open(flash, SpoolSettings::default()).unwrap();
    let (spool, writer) = service::spawn(spool).unwrap();
    let log = LogSink::memory();
    let (queue, task) = runner::spawn(
        RunnerConfig {
            settings: QueueSettings::default(),
            hostname: "gw.example".into(),
            route: Arc::new(|_| None),
            log: log.clone(),
            start_unix: None,
        },
        Arc::new(spool.clone()),
        Arc::new(Script::default()),
    );
    let a: Transport = "smtp:a.example".parse().unwrap();
    let b: Transport = "smtp:b.example".parse().unwrap();
    let to = vec![
        fixtures::recipient("flaky@a.example", &a),
        fixtures::recipient("full@b.example", &b),
    ];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let env = fixtures::envelope("s@example.org", to, now);
    let mut inc = spool.begin(&env).await.unwrap();
    inc.write(b"Subject: tries\r\n\r\nbody\r\n").await.unwrap();
    let qid = inc.commit().await.unwrap();
    queue.arrived(qid, env, 24).await;
    let admin = admin_of(&spool, &queue, 16 << 20);
    rounds(&queue, qid, 1).await;
    assert_eq!(admin.execute(requeue(qid)).await.exit, 0);
    rounds(&queue, qid, 2).await;
    assert_eq!(admin.execute(requeue(qid)).await.exit, 0);
    rounds(&queue, qid, 3).await;

    let shown = admin.execute(show(qid, false)).await;
    assert_eq!(shown.exit, 0, "{}", shown.text);
    let full = "to=<full@b.example>, relay=store.b.example[192.0.2.2]:25, status=deferred (host store.b.example[192.0.2.2] said: 452 4.2.2 Mailbox is full)";
    let refused = |n| {
        format!(
            "to=<flaky@a.example>, relay=none, status=deferred (connect to mx.a.example[192.0.2.1]:25: Connection refused (try {n}))"
        )
    };
    // The mail log names the same relays for the same attempts.
    let logged = log.lines();
    for (to, relay) in [
        ("full@b.example", "store.b.example[192.0.2.2]:25"),
        ("flaky@a.example", "none"),
    ] {
        let head = format!("to=<{to}>, relay={relay}, ");
        assert!(
            logged
                .iter()
                .any(|l| l.contains(&head) && l.contains("status=deferred")),
            "{head} {logged:#?}"
        );
    }
    assert!(
        shown.text.contains(
            "recipient: <full@b.example> next_hop=smtp:b.example pending relay=store.b.example[192.0.2.2]:25 (host store.b.example"
        ),
        "{}",
        shown.text
    );
    let lines = history(&shown.text);
    let deferred = |l: &String| l.starts_with("deferred until ");
    assert_eq!(lines.len(), 12, "{}", shown.text);
    assert_eq!(
        lines[0], "from=<s@example.org>, size=24, nrcpt=2 (queued)",
        "{}",
        shown.text
    );
    assert_eq!(
        lines[1..3],
        [refused(1), full.to_string()],
        "{}",
        shown.text
    );
    assert!(deferred(&lines[3]), "{}", shown.text);
    assert_eq!(lines[4], "requeued");
    assert_eq!(
        lines[5..7],
        [refused(2), full.to_string()],
        "{}",
        shown.text
    );
    assert!(deferred(&lines[7]), "{}", shown.text);
    assert_eq!(lines[8], "requeued");
    assert_eq!(
        lines[9],
        "to=<flaky@a.example>, relay=mx.a.example[192.0.2.1]:25, status=sent (250 2.0.0 Ok: queued as 4XYZ)",
        "{}",
        shown.text
    );
    assert_eq!(lines[10], full, "{}", shown.text);
    assert!(deferred(&lines[11]), "{}", shown.text);
    let json = admin.execute(show(qid, true)).await.text;
    assert_eq!(json.matches("\"type\": \"deferred\"").count(), 3, "{json}");
    assert!(
        json.contains("\"recipient\": \"flaky@a.example\", \"status\": \"sent\", \"relay\": \"mx.a.example[192.0.2.1]:25\""),
        "{json}"
    );
    assert_eq!(
        json.matches("\"recipient\": \"full@b.example\", \"status\": \"deferred\", \"relay\": \"store.b.example[192.0.2.2]:25\"").count(),
        3,
        "{json}"
    );
    assert!(
        json.contains("\"address\": \"full@b.example\", \"next_hop\": \"smtp:b.example\", \"status\": \"pending\", \"relay\": \"store.b.example[192.0.2.2]:25\", \"reason\""),
        "{json}"
    );
    assert_eq!(
        json.matches(
            "\"recipient\": \"flaky@a.example\", \"status\": \"deferred\", \"relay\": null"
        )
        .count(),
        2,
        "{json}"
    );

    // Closed and opened again: the same records with the same times, read from flash alone.
    queue.shutdown().await;
    let _ = task.await;
    drop(admin);
    drop(queue);
    drop(spool);
    let spool = tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
    let (spool, _) = Spool::open(spool.into_flash(), SpoolSettings::default()).unwrap();
    let (spool, _writer) = service::spawn(spool).unwrap();
    let (queue, _task) = queue_over(&spool, Arc::new(Script::default()));
    queue.recover(&spool).await.unwrap();
    let again = admin_of(&spool, &queue, 16 << 20)
        .execute(show(qid, false))
        .await;
    let times = |t: &str| -> Vec<String> {
        t.split_once("*** HISTORY")
            .map(|(_, h)| {
                h.lines()
                    .skip(1)
                    .take(12)
                    .map(|l| l[..25].to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(history(&again.text), lines);
    assert_eq!(times(&again.text), times(&shown.text));
}

/// Defers the first `defer` attempts; every later one waits until the gate closes (a delivery
/// still in flight when the queue stops), so the state a flush wrote is the last on flash.
struct DeferThenWait {
    defer: u32,
    calls: std::sync::atomic::AtomicU32,
    gate: Arc<tokio::sync::Semaphore>,
}

impl DeferThenWait {
    fn new(defer: u32, gate: &Arc<tokio::sync::Semaphore>) -> Arc<DeferThenWait> {
        Arc::new(DeferThenWait {
            defer,
            calls: Default::default(),
            gate: gate.clone(),
        })
    }

    fn calls(&self) -> u32 {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Deliverer for DeferThenWait {
    async fn deliver(&self, req: DeliveryRequest<'_>) -> Attempt {
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n >= self.defer {
            let _ = self.gate.acquire().await;
        }
        let results = req
            .recipients
            .iter()
            .map(|&i| {
                let r = RcptResult::Deferred {
                    status: EnhancedStatus::of(4, 4, 1),
                    reason: "connect to mx[192.0.2.1]:25: Connection refused".into(),
                };
                (i, r)
            })
            .collect();
        Attempt {
            report: AttemptReport {
                qid: req.qid,
                next_hop: req.next_hop.clone(),
                results,
                destination_failed: false,
            },
            relay: None,
            connection_time: Duration::ZERO,
            transmission_time: Duration::ZERO,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_message_is_due_after_a_restart_and_its_history_shows_the_flush() {
    let mut flash = RamFlash::new(FlashGeometry::new(4096, 16 << 20).unwrap());
    let geometry = SpoolGeometry::for_flash(flash.geometry());
    Spool::format(&mut flash, geometry).unwrap();
    let (spool, _) = Spool::open(flash, SpoolSettings::default()).unwrap();
    let (spool, writer) = service::spawn(spool).unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (queue, task) = queue_over(&spool, DeferThenWait::new(2, &gate));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut qids = Vec::new();
    for domain in ["a.example", "b.example"] {
        let hop: Transport = format!("smtp:{domain}").parse().unwrap();
        let env = fixtures::envelope(
            "s@example.org",
            vec![fixtures::recipient(&format!("u@{domain}"), &hop)],
            now,
        );
        let mut inc = spool.begin(&env).await.unwrap();
        inc.write(b"Subject: flush\r\n\r\nbody\r\n").await.unwrap();
        let qid = inc.commit().await.unwrap();
        queue.arrived(qid, env, 24).await;
        rounds(&queue, qid, 1).await;
        qids.push(qid);
    }
    let (flushed, kept) = (qids[0], qids[1]);
    let admin = admin_of(&spool, &queue, 16 << 20);
    // `postqueue -s a.example`: the answer comes once the change is on flash.
    let reply = admin
        .execute(AdminCommand::Queue(QueueCommand::Flush {
            destination: Some("a.example".into()),
            filter: FilterArgs::default(),
        }))
        .await;
    assert_eq!(reply.exit, 0, "{}", reply.text);
    assert!(reply.text.starts_with("1 deferred"), "{}", reply.text);
    let shown = admin.execute(show(flushed, false)).await.text;
    let lines = history(&shown);
    assert_eq!(lines.len(), 4, "{shown}");
    assert!(lines[2].starts_with("deferred until "), "{shown}");
    assert_eq!(lines[3], "flushed", "{shown}");
    let flush_line = |shown: &str| {
        shown
            .lines()
            .find(|l| l.ends_with(" flushed"))
            .map(str::to_string)
    };
    let flushed_at = flush_line(&shown);
    let untouched = history(&admin.execute(show(kept, false)).await.text);
    assert!(untouched.last().unwrap().starts_with("deferred until "));

    // Stopped while the flushed message's new attempt is still in flight, then opened again.
    queue.shutdown().await;
    let _ = task.await;
    gate.close();
    drop(admin);
    drop(queue);
    drop(spool);
    let spool = tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
    let (spool, _) = Spool::open(spool.into_flash(), SpoolSettings::default()).unwrap();
    let (spool, _writer) = service::spawn(spool).unwrap();
    let recovered = spool.take_recovered().await.unwrap();
    let state = |qid| {
        recovered
            .messages
            .iter()
            .find(|m| m.qid == qid)
            .map(|m| m.state)
    };
    assert_eq!(state(flushed), Some(RecoveredState::Active));
    assert!(
        matches!(state(kept), Some(RecoveredState::Deferred { until, .. }) if until > now),
        "{:?}",
        state(kept)
    );
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let deliverer = DeferThenWait::new(0, &gate);
    let (queue, _task) = queue_over(&spool, deliverer.clone());
    queue.add_recovered(recovered).await;
    // Due now: tried at once, while the other still waits for its retry time.
    let t = Instant::now();
    while deliverer.calls() == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the flushed message is tried"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(deliverer.calls(), 1);
    let v = queue.get(kept).await.unwrap();
    assert!(v.next_attempt.is_some_and(|t| t > now), "{v:?}");
    let again = admin_of(&spool, &queue, 16 << 20)
        .execute(show(flushed, false))
        .await
        .text;
    assert_eq!(history(&again), lines, "{again}");
    assert_eq!(
        flush_line(&again),
        flushed_at,
        "the flush's time is on flash"
    );
    // `queue flush` with a filter (postqueue -i on what it selects) says so as well.
    let admin = admin_of(&spool, &queue, 16 << 20);
    let reply = admin
        .execute(AdminCommand::Queue(QueueCommand::Flush {
            destination: None,
            filter: FilterArgs {
                recipient: Some("u@b.example".into()),
                ..FilterArgs::default()
            },
        }))
        .await;
    assert!(reply.text.starts_with("1 deferred"), "{}", reply.text);
    let kept_now = history(&admin.execute(show(kept, false)).await.text);
    assert_eq!(kept_now.last().map(String::as_str), Some("flushed"));
    gate.close();
}
