//! The queue runner end to end over an in-memory spool and a scripted deliverer, with tokio's
//! clock paused: days of retries run in milliseconds through the real runner code. DSNs are
//! checked field by field with mail-parser.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mail_parser::{MessageParser, PartType};
use postern::log::LogSink;
use postern::mail::{EnhancedStatus, Reply, Transport};
use postern::mail::{Envelope, Notify, QueueId, QueueState, Recipient};
use postern::queue::runner::{self, QueueHandle, QueueStore, RunnerConfig, StoredMessage};
use postern::queue::{
    Attempt, AttemptReport, BodyReader, Deliverer, DeliveryRequest, MemoryStore, MemoryStoreError,
    QueueSettings, RcptResult,
};
use postern::spool::Update;

mod common;

use common::fixtures;

const T0: u64 = 1_795_000_000;
const DAY: u64 = 86_400;

/// Answers by the recipient's local part: ok, gone (5.1.1), full (452 4.2.2), dead (no
/// connection at all).
#[derive(Default)]
struct Script {
    attempts: Mutex<HashMap<String, u32>>,
    /// The body of each attempt, as delivery read it.
    bodies: Mutex<Vec<Vec<u8>>>,
}

impl Script {
    fn attempts(&self, addr: &str) -> u32 {
        self.attempts
            .lock()
            .unwrap()
            .get(addr)
            .copied()
            .unwrap_or(0)
    }
}

impl Deliverer for Script {
    async fn deliver(&self, req: DeliveryRequest<'_>) -> Attempt {
        // Read as a transaction sends it, in pieces that do not fall on the store's.
        let mut reader = BodyReader::new(req.body, 7);
        let mut body = Vec::new();
        while let Some(piece) = reader.next_piece().await.unwrap() {
            body.extend_from_slice(&piece);
        }
        self.bodies.lock().unwrap().push(body);
        let mut dead = false;
        let results = req
            .recipients
            .iter()
            .map(|&i| {
                let addr = req.envelope.recipients[i].address.clone();
                *self.attempts.lock().unwrap().entry(addr.clone()).or_default() += 1;
                let r = match addr.split('@').next().unwrap() {
                    "gone" => RcptResult::Bounced {
                        status: EnhancedStatus::of(5, 1, 1),
                        diagnostic: format!("smtp; 550 5.1.1 <{addr}>: Recipient address rejected: User unknown"),
                        remote_mta: Some("mx.example.com".into()),
                    },
                    "full" => RcptResult::Deferred {
                        status: EnhancedStatus::of(4, 2, 2),
                        reason: format!("host store[192.0.2.5] said: 452 4.2.2 <{addr}> Mailbox is full (in reply to end of DATA command)"),
                    },
                    l if l.starts_with("dead") => {
                        dead = true;
                        RcptResult::Deferred {
                            status: EnhancedStatus::of(4, 4, 1),
                            reason: "connect to dead.example[192.0.2.66]:25: Connection refused".into(),
                        }
                    }
                    _ => RcptResult::Delivered {
                        relay: "mx.example.com[192.0.2.1]:25".into(),
                        reply: Reply::new(250, [2, 0, 0], "Ok: queued as 4XYZ"),
                    },
                };
                (i, r)
            })
            .collect();
        // A slow peer takes 3 s to accept; a stuck one never answers within a stop's grace.
        for &i in req.recipients {
            match req.envelope.recipients[i].address.split('@').next() {
                Some("slow") => tokio::time::sleep(Duration::from_secs(3)).await,
                Some("stuck") => tokio::time::sleep(Duration::from_secs(3600)).await,
                _ => {}
            }
        }
        Attempt {
            report: AttemptReport {
                qid: req.qid,
                next_hop: req.next_hop.clone(),
                results,
                destination_failed: dead,
            },
            relay: (!dead).then(|| "mx.example.com[192.0.2.1]:25".to_string()),
            connection_time: Duration::from_millis(30),
            transmission_time: Duration::from_millis(70),
        }
    }
}

fn hop_for(addr: &str) -> Transport {
    let domain = addr.rsplit('@').next().unwrap_or("example.com");
    format!("smtp:{domain}").parse().unwrap()
}

fn envelope(sender: &str, rcpts: &[&str], notify: Notify) -> Envelope {
    let to = rcpts
        .iter()
        .map(|a| Recipient {
            notify,
            ..fixtures::recipient(a, &hop_for(a))
        })
        .collect();
    fixtures::envelope(sender, to, T0)
}

const BODY: &[u8] = b"From: alice@example.org\r\nSubject: runner test\r\n\r\nHello.\r\n";

/// The memory store, counting how often a message's envelope is read back. Its updates are
/// written at once (what is read afterwards sees them) and answered while `released` holds
/// true: false, it is a spool whose writer is asleep until `write_now` (counted in `asked`).
struct Counted {
    inner: Arc<MemoryStore>,
    loads: AtomicUsize,
    body_reads: AtomicUsize,
    released: tokio::sync::watch::Sender<bool>,
    asked: AtomicUsize,
}

impl QueueStore for Counted {
    type Error = MemoryStoreError;

    async fn load(&self, qid: QueueId) -> Result<StoredMessage, MemoryStoreError> {
        self.loads.fetch_add(1, Ordering::Relaxed);
        self.inner.load(qid).await
    }

    async fn read_body_part(
        &self,
        qid: QueueId,
        offset: u64,
        max: usize,
    ) -> Result<Vec<u8>, MemoryStoreError> {
        self.body_reads.fetch_add(1, Ordering::Relaxed);
        self.inner.read_body_part(qid, offset, max).await
    }

    fn apply(
        &self,
        updates: Vec<Update>,
    ) -> impl Future<Output = Vec<Result<(), MemoryStoreError>>> + Send + 'static {
        let answer = self.inner.apply(updates);
        let mut released = self.released.subscribe();
        async move {
            let _ = released.wait_for(|r| *r).await;
            answer.await
        }
    }

    fn write_now(&self) {
        self.asked.fetch_add(1, Ordering::Relaxed);
        self.released.send_replace(true);
    }

    async fn store(
        &self,
        envelope: Envelope,
        message: Vec<u8>,
    ) -> Result<QueueId, MemoryStoreError> {
        self.inner.store(envelope, message).await
    }
}

/// How a new message reaches the queue: as recovery and admin add it, or as a session hands
/// it over after its commit (the queue keeps its envelope for the first round), with the body
/// of a small message too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handover {
    Add,
    Arrived,
    ArrivedWithBody,
}

const HANDOVERS: [Handover; 3] = [Handover::Add, Handover::Arrived, Handover::ArrivedWithBody];

struct World {
    store: Arc<MemoryStore>,
    counted: Arc<Counted>,
    handover: Handover,
    script: Arc<Script>,
    log: LogSink,
    queue: QueueHandle,
}

fn start(settings: QueueSettings) -> World {
    start_with(settings, Handover::Add)
}

fn start_with(settings: QueueSettings, handover: Handover) -> World {
    let store = Arc::new(MemoryStore::new(T0 * 1000));
    let counted = Arc::new(Counted {
        inner: store.clone(),
        loads: AtomicUsize::new(0),
        body_reads: AtomicUsize::new(0),
        released: tokio::sync::watch::Sender::new(true),
        asked: AtomicUsize::new(0),
    });
    let script = Arc::new(Script::default());
    let log = LogSink::memory();
    let (queue, _task) = runner::spawn(
        RunnerConfig {
            settings,
            hostname: "gw.example.net".into(),
            route: Arc::new(|a: &str| Some(hop_for(a))),
            log: log.clone(),
            start_unix: Some(T0),
        },
        counted.clone(),
        script.clone(),
    );
    World {
        store,
        counted,
        handover,
        script,
        log,
        queue,
    }
}

impl World {
    async fn submit(&self, env: Envelope) -> QueueId {
        let q = self.store.put(env, BODY);
        let qid = q.qid;
        match self.handover {
            Handover::Add => self.queue.add(q).await,
            Handover::Arrived => {
                let stored = self.store.load(qid).await.unwrap();
                self.queue.add_arrived(q, stored).await;
            }
            Handover::ArrivedWithBody => {
                let mut stored = self.store.load(qid).await.unwrap();
                stored.body = Some(Arc::from(BODY));
                self.queue.add_arrived(q, stored).await;
            }
        }
        qid
    }

    /// Let virtual time pass until the spool is empty (or `limit` runs out); the time it took.
    async fn drain(&self, limit: Duration) -> Duration {
        let start = tokio::time::Instant::now();
        while !self.store.is_empty() && start.elapsed() < limit {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        start.elapsed()
    }

    fn log_has(&self, needle: &str) -> bool {
        self.log.lines().iter().any(|l| l.contains(needle))
    }
}

/// (status part text, subject) of a DSN.
fn dsn_fields(msg: &[u8]) -> (String, String) {
    let m = MessageParser::default().parse(msg).expect("DSN parses");
    let PartType::Multipart(ids) = &m.root_part().body else {
        panic!("not multipart")
    };
    let status = String::from_utf8_lossy(m.part(ids[1]).unwrap().contents()).into_owned();
    (status, m.subject().unwrap_or_default().to_string())
}

#[tokio::test(start_paused = true)]
async fn mixed_outcomes_one_bounce_then_everything_is_removed() {
    for handover in HANDOVERS {
        mixed_outcomes(handover).await;
    }
}

async fn mixed_outcomes(handover: Handover) {
    let w = start_with(QueueSettings::default(), handover);
    let qid = w
        .submit(envelope(
            "alice@example.org",
            &["ok@example.com", "gone@example.com"],
            Notify::DEFAULT,
        ))
        .await;
    let took = w.drain(Duration::from_secs(3600)).await;
    assert_eq!(w.store.len(), 0, "original and bounce both gone");
    assert!(took < Duration::from_secs(120));
    let dsns = w.store.notifications();
    assert_eq!(dsns.len(), 1);
    let (_, env, msg) = &dsns[0];
    assert_eq!(env.sender, "", "from the null sender");
    assert_eq!(env.recipients[0].address, "alice@example.org");
    let (status, subject) = dsn_fields(msg);
    assert_eq!(subject, "Undelivered Mail Returned to Sender");
    assert!(status.contains("Final-Recipient: rfc822; gone@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx.example.com\r\nDiagnostic-Code: smtp; 550 5.1.1"));
    assert!(!status.contains("ok@example.com"));
    for l in [
        format!(
            "postern/qmgr: {qid}: from=<alice@example.org>, size={}, nrcpt=2 (queue active)",
            BODY.len()
        ),
        format!(
            "postern/smtp: {qid}: to=<ok@example.com>, relay=mx.example.com[192.0.2.1]:25, delay=0.1, delays=0/0/0.03/0.07, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4XYZ)"
        ),
        format!("{qid}: sender non-delivery notification: "),
        format!("postern/qmgr: {qid}: removed"),
    ] {
        assert!(w.log_has(&l), "no log line {l:?} in {:#?}", w.log.lines());
    }
    assert!(w.log_has("dsn=5.1.1, status=bounced (550 5.1.1 <gone@example.com>"));
}

#[tokio::test(start_paused = true)]
async fn quota_full_is_retried_for_five_days_then_returned_with_4_4_7() {
    for handover in HANDOVERS {
        quota_full(handover).await;
    }
}

async fn quota_full(handover: Handover) {
    let w = start_with(QueueSettings::default(), handover);
    w.submit(envelope(
        "alice@example.org",
        &["full@example.com"],
        Notify::DEFAULT,
    ))
    .await;
    let took = w.drain(Duration::from_secs(7 * DAY)).await;
    assert_eq!(w.store.len(), 0);
    assert!(
        took >= Duration::from_secs(5 * DAY) && took < Duration::from_secs(5 * DAY + 5000),
        "{took:?}"
    );
    let tries = w.script.attempts("full@example.com");
    assert!((100..130).contains(&tries), "{tries} attempts in five days");
    assert!(w.log_has("status=deferred (host store[192.0.2.5] said: 452 4.2.2"));
    assert!(w.log_has("from=<alice@example.org>, status=expired, returned to sender"));
    let dsns = w.store.notifications();
    assert_eq!(dsns.len(), 1, "no delay warning by default, one bounce");
    let (status, _) = dsn_fields(&dsns[0].2);
    assert!(
        status.contains("Action: failed\r\nStatus: 4.4.7"),
        "{status}"
    );
    assert!(status.contains("452 4.2.2 <full@example.com> Mailbox is full"));
}

#[tokio::test(start_paused = true)]
async fn a_bounce_to_a_dead_sender_is_kept_then_dropped_never_rebounced() {
    let settings = QueueSettings {
        bounce_queue_lifetime: DAY,
        ..QueueSettings::default()
    };
    let w = start(settings);
    w.submit(envelope(
        "dead-sender@dead.example",
        &["gone@example.com"],
        Notify::DEFAULT,
    ))
    .await;
    // After an hour the bounce still waits in the queue.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(w.store.len(), 1, "the undeliverable bounce is kept");
    let list = w.queue.list().await;
    assert_eq!(list.len(), 1);
    assert!(list[0].null_sender);
    assert!(matches!(list[0].state, QueueState::Deferred { .. }));
    assert!(
        list[0].recipients[0]
            .last_reason
            .as_deref()
            .unwrap()
            .contains("Connection refused")
    );
    let took = w.drain(Duration::from_secs(3 * DAY)).await;
    assert_eq!(w.store.len(), 0, "dropped after bounce_queue_lifetime");
    assert!(took < Duration::from_secs(DAY + 5000));
    assert_eq!(
        w.store.notifications().len(),
        1,
        "never a bounce of the bounce"
    );
    assert!(w.log_has("from=<>, status=expired, dropped"));
}

#[tokio::test(start_paused = true)]
async fn notify_never_sends_nothing_and_success_is_reported() {
    for handover in HANDOVERS {
        notify_never_and_success(handover).await;
    }
}

async fn notify_never_and_success(handover: Handover) {
    let w = start_with(QueueSettings::default(), handover);
    w.submit(envelope(
        "alice@example.org",
        &["gone@example.com"],
        Notify::NEVER,
    ))
    .await;
    let success = Notify {
        success: true,
        failure: true,
        delay: false,
        explicit: true,
    };
    w.submit(envelope("alice@example.org", &["ok@example.com"], success))
        .await;
    w.drain(Duration::from_secs(3600)).await;
    let dsns = w.store.notifications();
    assert_eq!(
        dsns.len(),
        1,
        "NOTIFY=NEVER: no bounce; NOTIFY=SUCCESS: one report"
    );
    let (status, subject) = dsn_fields(&dsns[0].2);
    assert_eq!(subject, "Successful Mail Delivery Report");
    assert!(
        status.contains(
            "Final-Recipient: rfc822; ok@example.com\r\nAction: relayed\r\nStatus: 2.0.0"
        )
    );
}

#[tokio::test(start_paused = true)]
async fn delay_warning_when_enabled() {
    let settings = QueueSettings {
        delay_warning_time: 4 * 3600,
        maximal_queue_lifetime: DAY,
        ..QueueSettings::default()
    };
    let w = start(settings);
    w.submit(envelope(
        "alice@example.org",
        &["full@example.com"],
        Notify::DEFAULT,
    ))
    .await;
    tokio::time::sleep(Duration::from_secs(5 * 3600)).await;
    let dsns = w.store.notifications();
    assert_eq!(dsns.len(), 1, "one warning after four hours");
    let (status, subject) = dsn_fields(&dsns[0].2);
    assert_eq!(subject, "Delayed Mail (still being retried)");
    assert!(status.contains("Action: delayed\r\nStatus: 4.2.2"));
    assert!(status.contains("Will-Retry-Until: "));
    w.drain(Duration::from_secs(2 * DAY)).await;
    assert_eq!(
        w.store.notifications().len(),
        2,
        "then the final bounce, no second warning"
    );
}

#[tokio::test(start_paused = true)]
async fn admin_hold_list_release_delete() {
    let w = start(QueueSettings::default());
    let qid = w
        .submit(envelope(
            "alice@example.org",
            &["dead1@dead.example"],
            Notify::DEFAULT,
        ))
        .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let v = w.queue.list().await;
    assert!(matches!(v[0].state, QueueState::Deferred { .. }));
    assert_eq!(v[0].attempts, 1);
    assert!(w.queue.hold(qid).await);
    tokio::time::sleep(Duration::from_secs(2 * 3600)).await;
    assert_eq!(
        w.script.attempts("dead1@dead.example"),
        1,
        "held mail is not tried"
    );
    assert_eq!(w.queue.list().await[0].state, QueueState::Hold);
    assert!(w.queue.release(qid).await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(w.script.attempts("dead1@dead.example"), 2);
    // Other mail to the dead next hop waits without a connection attempt, and says why.
    let other = w
        .submit(envelope(
            "alice@example.org",
            &["dead2@dead.example"],
            Notify::DEFAULT,
        ))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(w.script.attempts("dead2@dead.example"), 0);
    let suspended = w.log.lines().into_iter().find(|l| {
        l.starts_with(&format!(
            "postern/qmgr: {other}: to=<dead2@dead.example>, relay=none, delay="
        ))
    });
    assert!(
        suspended.as_deref().is_some_and(|l| l.ends_with(
            "dsn=4.4.1, status=deferred (delivery temporarily suspended: connect to dead.example[192.0.2.66]:25: Connection refused)"
        )),
        "{:#?}",
        w.log.lines()
    );
    assert!(w.queue.delete(other).await);
    assert!(w.queue.delete(qid).await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(w.store.len(), 0);
    assert!(
        w.store.notifications().is_empty(),
        "delete sends no notification"
    );
    assert!(w.queue.list().await.is_empty());
}

/// A message handed over by its session is delivered, logged and removed without its envelope
/// being read back; once deferred, each retry reads what is on flash (which has the outcomes of
/// the first round).
#[tokio::test(start_paused = true)]
async fn a_message_handed_over_is_not_read_back_in_its_first_round() {
    let w = start_with(QueueSettings::default(), Handover::Arrived);
    let qid = w
        .submit(envelope(
            "alice@example.org",
            &["ok@example.com", "ok2@example.com"],
            Notify::DEFAULT,
        ))
        .await;
    w.drain(Duration::from_secs(3600)).await;
    assert_eq!(w.store.len(), 0);
    assert_eq!(w.counted.loads.load(Ordering::Relaxed), 0);
    assert!(w.log_has(&format!(
        "{qid}: from=<alice@example.org>, size={}, nrcpt=2 (queue active)",
        BODY.len()
    )));
    assert!(w.log_has(&format!("postern/qmgr: {qid}: removed")));

    // One delivered, one deferred: the retry reads the message back, delivered recipient marked.
    let qid = w
        .submit(envelope(
            "alice@example.org",
            &["ok@example.com", "full@example.com"],
            Notify::DEFAULT,
        ))
        .await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(w.counted.loads.load(Ordering::Relaxed), 0, "first round");
    let stored = w.store.load(qid).await.unwrap();
    assert!(stored.outcomes[0].is_some() && stored.outcomes[1].is_none());
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(
        w.counted.loads.load(Ordering::Relaxed) > 0,
        "retries read it"
    );
    assert_eq!(
        w.script.attempts("ok@example.com"),
        2,
        "never delivered twice"
    );
}

/// A small message handed over with its body is delivered from it: no read from the store in
/// its first round, the same bytes as the store holds; a retry reads the body back.
#[tokio::test(start_paused = true)]
async fn a_small_message_handed_over_with_its_body_is_sent_from_it() {
    let w = start_with(QueueSettings::default(), Handover::ArrivedWithBody);
    w.submit(envelope(
        "alice@example.org",
        &["ok@example.com", "full@example.com"],
        Notify::DEFAULT,
    ))
    .await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        w.counted.body_reads.load(Ordering::Relaxed),
        0,
        "first round"
    );
    assert_eq!(w.counted.loads.load(Ordering::Relaxed), 0, "first round");
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(
        w.counted.body_reads.load(Ordering::Relaxed) > 0,
        "a retry reads the body back"
    );
    let bodies = w.script.bodies.lock().unwrap().clone();
    assert!(bodies.len() >= 2, "{}", bodies.len());
    assert!(bodies.iter().all(|b| b == BODY));
}

/// A stop waits for the delivery in flight and writes its outcome: the message is not on the
/// spool to be sent again after the start. One still going after the grace stays queued.
#[tokio::test(start_paused = true)]
async fn a_stop_settles_deliveries_in_flight_before_it_returns() {
    let w = start(QueueSettings::default());
    let qid = w
        .submit(envelope(
            "alice@example.org",
            &["slow@example.com"],
            Notify::DEFAULT,
        ))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(w.script.attempts("slow@example.com"), 1, "in flight");
    w.queue.shutdown().await;
    assert_eq!(
        w.store.len(),
        0,
        "delivered, so removed before the stop returned"
    );
    assert!(w.log_has(&format!("postern/qmgr: {qid}: removed")));

    let w = start(QueueSettings::default());
    let qid = w
        .submit(envelope(
            "alice@example.org",
            &["stuck@example.com"],
            Notify::DEFAULT,
        ))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = tokio::time::Instant::now();
    w.queue.shutdown().await;
    assert_eq!(started.elapsed(), runner::SHUTDOWN_GRACE);
    assert!(w.store.load(qid).await.is_ok(), "still queued");
    assert!(w.log_has("warning: stopping with deliveries in flight (1)"));
}

/// A queue turn does not wait for its writes: mail keeps moving while they are unanswered, the
/// store is asked for them only when no commit took them within 20 ms (once for all the turns
/// in those 20 ms), and a removal is logged once written. A bulk operation, answered once its changes are written, asks for them now.
#[tokio::test(start_paused = true)]
async fn turns_do_not_wait_for_their_writes_and_bulk_operations_do() {
    let w = start(QueueSettings::default());
    let (store, lagging, script, log, queue) = (&w.store, &w.counted, &w.script, &w.log, &w.queue);
    lagging.released.send_replace(false);
    let removed = |qid: QueueId| {
        let line = format!("{qid}: removed");
        log.lines().iter().any(|l| l.ends_with(&line))
    };
    let asked = || lagging.asked.load(Ordering::Relaxed);
    let one = |to: &str| {
        let q = store.put(envelope("alice@example.org", &[to], Notify::DEFAULT), BODY);
        let qid = q.qid;
        async move {
            queue.add(q).await;
            qid
        }
    };
    let mut sent = Vec::new();
    for to in ["ok@example.com", "ok2@example.com"] {
        sent.push(one(to).await);
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(script.attempts(to), 1, "delivered while writes wait");
    }
    assert!(store.is_empty(), "the removals are the store's at once");
    assert!(!sent.iter().any(|q| removed(*q)), "logged once answered");
    assert_eq!(asked(), 0, "a commit may still take them");
    // A commit takes them: answered without being asked for.
    lagging.released.send_replace(true);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(sent.iter().all(|q| removed(*q)));
    assert_eq!(asked(), 0);

    // No commit comes: asked for after the wait, once for every turn's writes in it.
    lagging.released.send_replace(false);
    let third = one("ok3@example.com").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(!removed(third));
    let fourth = one("ok4@example.com").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(script.attempts("ok4@example.com"), 1);
    assert!(!removed(fourth));
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(asked(), 1, "one deadline for both turns");
    assert!(removed(third) && removed(fourth));

    // A bulk operation's turn asks at once, and is answered once its writes are.
    let deferred = one("dead@example.com").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(script.attempts("dead@example.com"), 1);
    lagging.released.send_replace(false);
    let before = asked();
    let hold = queue.apply(postern::queue::BulkOp::Hold, vec![deferred]);
    let held = tokio::time::timeout(Duration::from_secs(10), hold).await;
    assert_eq!(held.ok(), Some(vec![deferred]));
    assert_eq!(asked(), before + 1, "the bulk turn asked");
}

/// A stop waits for the earlier turns' writes: every removal written is logged before it ends.
#[tokio::test(start_paused = true)]
async fn a_stop_logs_every_removal_its_turns_wrote() {
    let w = start(QueueSettings::default());
    w.counted.released.send_replace(false);
    let qid = w
        .submit(envelope(
            "alice@example.org",
            &["ok@example.com"],
            Notify::DEFAULT,
        ))
        .await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(w.script.attempts("ok@example.com"), 1);
    assert!(!w.log_has(&format!("{qid}: removed")), "not answered yet");
    w.queue.shutdown().await;
    assert!(w.log_has(&format!("{qid}: removed")));
}
