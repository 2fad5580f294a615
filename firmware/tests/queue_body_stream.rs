//! The queue runner reads a queued body a piece at a time, for delivery and for a bounce: a 5 MB
//! message is never asked of the store whole, yet the deliverer sees every byte and the DSN
//! returns its headers (Postfix's bounce_size_limit).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mail_parser::{MessageParser, PartType};
use postern::bounce::RETURNED_HEADERS_LIMIT;
use postern::log::LogSink;
use postern::mail::Transport;
use postern::mail::{EnhancedStatus, Envelope, QueueId, Reply};
use postern::queue::runner::{self, QueueStore, RunnerConfig, StoredMessage};
use postern::queue::{
    Attempt, AttemptReport, BODY_PIECE, BodyReader, Deliverer, DeliveryRequest, MemoryStore,
    MemoryStoreError, QueueSettings, RcptResult,
};
use postern::spool::Update;

mod common;

use common::fixtures;

const T0: u64 = 1_795_000_000;

/// The memory store, remembering the most body bytes any one read asked for.
struct Metered {
    inner: MemoryStore,
    largest_read: AtomicUsize,
}

impl QueueStore for Metered {
    type Error = MemoryStoreError;

    async fn load(&self, qid: QueueId) -> Result<StoredMessage, MemoryStoreError> {
        self.inner.load(qid).await
    }

    async fn read_body_part(
        &self,
        qid: QueueId,
        offset: u64,
        max: usize,
    ) -> Result<Vec<u8>, MemoryStoreError> {
        self.largest_read.fetch_max(max, Ordering::Relaxed);
        self.inner.read_body_part(qid, offset, max).await
    }

    fn apply(
        &self,
        updates: Vec<Update>,
    ) -> impl Future<Output = Vec<Result<(), MemoryStoreError>>> + Send + 'static {
        self.inner.apply(updates)
    }

    async fn store(
        &self,
        envelope: Envelope,
        message: Vec<u8>,
    ) -> Result<QueueId, MemoryStoreError> {
        self.inner.store(envelope, message).await
    }
}

/// Reads each body to its end as a client would send it; `gone@` bounces, others are taken.
#[derive(Default)]
struct Reader {
    bodies: Mutex<Vec<Vec<u8>>>,
    largest_piece: AtomicUsize,
}

impl Deliverer for Reader {
    async fn deliver(&self, req: DeliveryRequest<'_>) -> Attempt {
        let mut pieces = BodyReader::new(req.body, BODY_PIECE);
        let mut seen = Vec::new();
        while let Some(piece) = pieces.next_piece().await.expect("body reads") {
            self.largest_piece.fetch_max(piece.len(), Ordering::Relaxed);
            seen.extend_from_slice(&piece);
        }
        assert_eq!(seen.len() as u64, req.body.size());
        self.bodies.lock().unwrap().push(seen);
        let results = req
            .recipients
            .iter()
            .map(|&i| {
                let addr = &req.envelope.recipients[i].address;
                let r = if addr.starts_with("gone@") {
                    RcptResult::Bounced {
                        status: EnhancedStatus::of(5, 1, 1),
                        diagnostic: "smtp; 550 5.1.1 User unknown".into(),
                        remote_mta: Some("mx.example.com".into()),
                    }
                } else {
                    RcptResult::Delivered {
                        relay: "mx.example.com[192.0.2.1]:25".into(),
                        reply: Reply::new(250, [2, 0, 0], "Ok"),
                    }
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
            relay: Some("mx.example.com[192.0.2.1]:25".into()),
            connection_time: Duration::from_millis(1),
            transmission_time: Duration::from_millis(1),
        }
    }
}

fn five_megabytes() -> Vec<u8> {
    let mut b = b"From: alice@example.org\r\nSubject: big\r\n\r\n".to_vec();
    let mut i = 0u32;
    while b.len() < 5 * 1024 * 1024 {
        b.extend_from_slice(format!("line {i:07} of a big body\r\n").as_bytes());
        i += 1;
    }
    b
}

#[tokio::test(start_paused = true)]
async fn a_big_message_is_delivered_and_bounced_without_being_read_whole() {
    let store = Arc::new(Metered {
        inner: MemoryStore::new(T0 * 1000),
        largest_read: AtomicUsize::new(0),
    });
    let reader = Arc::new(Reader::default());
    let hop: Transport = "smtp:example.com".parse().unwrap();
    let (queue, _task) = runner::spawn(
        RunnerConfig {
            settings: QueueSettings::default(),
            hostname: "gw.example.net".into(),
            route: Arc::new(move |_: &str| Some("smtp:example.org".parse().unwrap())),
            log: LogSink::memory(),
            start_unix: Some(T0),
        },
        store.clone(),
        reader.clone(),
    );
    let body = five_megabytes();
    let env = fixtures::envelope(
        "alice@example.org",
        fixtures::recipients(&["bob@example.com", "gone@example.com"], &hop),
        T0,
    );
    queue.add(store.inner.put(env, &body)).await;
    let start = tokio::time::Instant::now();
    while store.inner.notifications().is_empty() && start.elapsed() < Duration::from_secs(3600) {
        tokio::time::sleep(Duration::from_secs(10)).await;
    }

    assert!(
        reader.bodies.lock().unwrap().contains(&body),
        "the deliverer saw every byte"
    );
    assert!(reader.largest_piece.load(Ordering::Relaxed) <= BODY_PIECE);
    let largest = store.largest_read.load(Ordering::Relaxed);
    assert!(
        largest <= BODY_PIECE.max(RETURNED_HEADERS_LIMIT),
        "a read of {largest} bytes"
    );

    let dsns = store.inner.notifications();
    let (_, _, dsn) = dsns.first().expect("a bounce");
    assert!(dsn.len() < 20_000, "the bounce returns headers only");
    let m = MessageParser::default().parse(dsn.as_slice()).unwrap();
    let PartType::Multipart(ids) = &m.root_part().body else {
        panic!("not multipart")
    };
    let returned = m.part(ids[2]).unwrap();
    let text = String::from_utf8_lossy(returned.contents());
    assert!(text.contains("Subject: big"), "{text}");
    assert!(!text.contains("of a big body"), "{text}");
}
