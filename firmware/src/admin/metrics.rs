//! The Prometheus endpoint: `GET /metrics` answered with the text exposition format, built by
//! `prometheus-client` from the process's counters ([`crate::metrics`]) and what the handles say
//! at scrape time: the queue as postfix_exporter's showq collector shows it, the flash, the
//! spool and the directory. Only clients in the allow-list get an answer.
//!
//! HTTP here is the least a scraper needs: one request per connection, the request line read
//! (bounded, with a timeout), the headers skipped, one answer, close.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::prometheus_text::{CONTENT_TYPE, encode};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Handles;
use crate::config::NetworkList;
use crate::metrics::{self, Labels};
use crate::queue::QueueName;

/// postfix_exporter's showq buckets.
const SIZE_BUCKETS: [f64; 7] = [1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
const AGE_BUCKETS: [f64; 8] = [1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8];
const QUEUES: [QueueName; 3] = [QueueName::Active, QueueName::Deferred, QueueName::Hold];

/// The longest request head read, and how long a client has to send it.
const MAX_REQUEST: usize = 8192;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

fn label(name: &str, value: &str) -> Labels {
    vec![(name.to_string(), value.to_string())]
}

fn gauge(v: impl TryInto<i64>) -> ConstGauge {
    ConstGauge::new(v.try_into().unwrap_or(i64::MAX))
}

/// The whole exposition, as a scrape gets it.
pub async fn scrape(h: &Handles) -> String {
    let mut registry = Registry::default();
    metrics::global().register(&mut registry);
    showq(h, &mut registry).await;
    flash(h, &mut registry).await;
    let dir = h.directory.snapshot();
    let (accounts, aliases) = dir.counts();
    let entries = Family::<Labels, Gauge>::default();
    for (kind, n) in [
        ("account", accounts),
        ("alias", aliases),
        ("domain", dir.domains().count()),
    ] {
        entries
            .get_or_create(&label("kind", kind))
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    registry.register(
        "postern_directory_entries",
        "Entries in the directory cache, by kind",
        entries,
    );
    directory_sync(h, &mut registry);
    registry.register_with_unit(
        "postern_uptime",
        "Time since the services started",
        Unit::Seconds,
        gauge(h.facts.started.elapsed().as_secs()),
    );
    let mut out = String::new();
    // Writing to a String cannot fail; an error here would be the crate's own bug.
    let _ = encode(&mut out, &registry);
    out
}

/// The LDAP sync's state: zero throughout when the box has no LDAP (its directory is `prov`'s).
fn directory_sync(h: &Handles, registry: &mut Registry) {
    let status = h
        .ldap
        .service
        .as_ref()
        .map(|s| s.status())
        .unwrap_or_default();
    let last = status.last.as_ref();
    registry.register_with_unit(
        "postern_directory_last_sync_success_timestamp",
        "When the last directory sync from LDAP that succeeded started (Unix time; 0: never)",
        Unit::Seconds,
        gauge(status.last_success.unwrap_or(0)),
    );
    let duration = Gauge::<f64, AtomicU64>::default();
    duration.set(last.map_or(0.0, |r| r.duration.as_secs_f64()));
    registry.register_with_unit(
        "postern_directory_last_sync_duration",
        "How long the last directory sync took, whether it succeeded or not",
        Unit::Seconds,
        duration,
    );
    registry.register(
        "postern_directory_last_sync_failed",
        "1 when the last directory sync failed (the cache serves the sync before it)",
        gauge(u8::from(last.is_some_and(|r| r.error.is_some()))),
    );
    registry.register(
        "postern_directory_skipped_entries",
        "LDAP entries left out of the cache for bad data (see `postern ldap status`)",
        gauge(status.skipped.len()),
    );
}

/// postfix_exporter's showq histograms: size and age of each queued message, per queue.
async fn showq(h: &Handles, registry: &mut Registry) {
    let sizes =
        Family::<Labels, Histogram, _>::new_with_constructor(|| Histogram::new(SIZE_BUCKETS));
    let ages = Family::<Labels, Histogram, _>::new_with_constructor(|| Histogram::new(AGE_BUCKETS));
    for q in QUEUES {
        drop(sizes.get_or_create(&label("queue", q.as_str())));
        drop(ages.get_or_create(&label("queue", q.as_str())));
    }
    let now = crate::mail::unix_now();
    if let Some(queue) = &h.queue {
        for b in queue.briefs().await {
            let q = label("queue", b.queue.as_str());
            sizes.get_or_create(&q).observe(f64::from(b.size));
            ages.get_or_create(&q)
                .observe(now.saturating_sub(u64::from(b.arrival)) as f64);
        }
    }
    registry.register_with_unit(
        "postfix_showq_message_size",
        "Size of messages in the queue, per queue",
        Unit::Bytes,
        sizes,
    );
    registry.register_with_unit(
        "postfix_showq_message_age",
        "Age of messages in the queue, per queue",
        Unit::Seconds,
        ages,
    );
}

/// The flash and the spool on it. Missing (not zero) when the spool does not answer: a zero
/// would say the flash is empty.
async fn flash(h: &Handles, registry: &mut Registry) {
    let Ok(info) = h.spool.info().await else {
        return;
    };
    let reg = registry;
    reg.register_with_unit(
        "postern_flash_size",
        "Size of the flash",
        Unit::Bytes,
        gauge(info.size),
    );
    reg.register_with_unit(
        "postern_flash_used",
        "Bytes of live data on the flash (config, directory, spool)",
        Unit::Bytes,
        gauge(info.regions.iter().map(|r| r.used).sum::<u64>()),
    );
    let segments = Family::<Labels, Gauge>::default();
    for (state, n) in [
        ("used", info.segments_used),
        ("free", info.segments_free),
        ("bad", info.segments_bad),
    ] {
        segments.get_or_create(&label("state", state)).set(n.into());
    }
    reg.register(
        "postern_spool_segments",
        "Spool segments by state",
        segments,
    );
    reg.register(
        "postern_spool_messages",
        "Messages on the spool (committed, not yet removed)",
        gauge(info.messages),
    );
    let wear = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    wear.get_or_create(&label("stat", "min"))
        .set(f64::from(info.erase_min));
    wear.get_or_create(&label("stat", "avg"))
        .set(info.erase_avg);
    wear.get_or_create(&label("stat", "max"))
        .set(f64::from(info.erase_max));
    reg.register(
        "postern_flash_segment_wear",
        "Erase counts of the spool's segments (wear): least, mean and most worn",
        wear,
    );
    reg.register(
        "postern_flash_erases",
        "Erases since the services started",
        ConstCounter::new(info.erases),
    );
    reg.register_with_unit(
        "postern_flash_written",
        "Bytes written to the flash since the services started",
        Unit::Bytes,
        ConstCounter::new(info.bytes_written),
    );
    reg.register(
        "postern_spool_syncs",
        "Flash syncs of the spool since the services started",
        ConstCounter::new(info.syncs),
    );
    reg.register(
        "postern_spool_compactions",
        "Segments compacted since the services started",
        ConstCounter::new(info.compactions),
    );
}

/// Answers scrapes on `listener` until the task is stopped.
pub async fn serve(
    listener: TcpListener,
    allow: std::sync::Arc<std::sync::RwLock<NetworkList>>,
    handles: Handles,
) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            // Out of descriptors and the like: wait rather than spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        // The allow-list may change while the endpoint runs (`postern metrics set`).
        let allowed = allow.read().map(|a| a.contains(peer.ip())).unwrap_or(false);
        if !allowed {
            // Not even a 403: the endpoint does not exist for everyone else.
            drop(stream);
            continue;
        }
        let handles = handles.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT * 2, answer(stream, peer, &handles)).await;
        });
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Metrics,
    NotFound,
    BadMethod,
    Bad,
}

fn parse_request(head: &[u8]) -> Request {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (words.next(), words.next(), words.next())
    else {
        return Request::Bad;
    };
    if !version.starts_with("HTTP/1.") {
        return Request::Bad;
    }
    if method != "GET" {
        return Request::BadMethod;
    }
    let path = target.split('?').next().unwrap_or(target);
    if path == "/metrics" {
        Request::Metrics
    } else {
        Request::NotFound
    }
}

async fn answer(mut stream: TcpStream, _peer: SocketAddr, h: &Handles) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(buf.get(..n).unwrap_or_default());
        }
        Ok::<(), std::io::Error>(())
    };
    if tokio::time::timeout(REQUEST_TIMEOUT, read).await.is_err() {
        return Ok(());
    }
    let (status, kind, body) = match parse_request(&head) {
        Request::Metrics => ("200 OK", CONTENT_TYPE, scrape(h).await),
        Request::NotFound => ("404 Not Found", "text/plain", "try /metrics\n".to_string()),
        Request::BadMethod => (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_string(),
        ),
        Request::Bad => ("400 Bad Request", "text/plain", String::new()),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_as_a_scraper_sends_them() {
        assert_eq!(
            parse_request(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Request::Metrics
        );
        assert_eq!(
            parse_request(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Request::Metrics
        );
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\n\r\n"), Request::NotFound);
        assert_eq!(
            parse_request(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Request::BadMethod
        );
        assert_eq!(parse_request(b"\xff\xfe"), Request::Bad);
        assert_eq!(parse_request(b"GET /metrics SMTP\r\n"), Request::Bad);
    }
}
