//! A backup MX whose secondary is down for days: N messages (100 000; `--million` for a million,
//! or POSTERN_BENCH_QUEUED=N) deferred for an unreachable next hop on a flash file. Prints, after
//! a restart: recovery time (spool open and the queue taking every message), RSS per queued
//! message (spool and queue indexes together), `queue list --recipient X` through the admin
//! command, and what one scheduling tick and one queue run cost. Prints figures; never fails.
//!
//! Run: `cargo bench -p postern --bench queued_mail [-- --million]`. The flash file goes to
//! $TMPDIR (about 1000 bytes per message); with POSTERN_BENCH_KEEP=FILE it is written there and
//! kept, for the appliance to boot on (`tests/bench/boot.sh`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hal::flash::{FileFlash, FlashGeometry};
use postern::admin::commands::FilterArgs;
use postern::admin::{Admin, AdminCommand, BoxFacts, Handles, QueueCommand};
use postern::directory::SharedDirectory;
use postern::log::LogSink;
use postern::mail::{
    BodyType, ClientInfo, EnhancedStatus, Envelope, Notify, QueueId, QueueState, Recipient,
    StateChange, Transport,
};
use postern::queue::runner::{self, RunnerConfig};
use postern::queue::{
    Action, Attempt, AttemptReport, Deliverer, DeliveryRequest, QueueManager, QueueSettings,
    QueuedMessage, RcptResult,
};
use postern::spool::{Spool, SpoolGeometry, SpoolSettings, service};

const BODY: usize = 512;
const REASON: &str = "connect to backup.example[192.0.2.25]:25: Connection refused";
/// Deferred messages fall due over this many minutes: one queue run takes a 1/SPREAD share.
const SPREAD: u64 = 60;

/// The next hop is down: every attempt is refused (never reached: every message waits).
struct Refused;

impl Deliverer for Refused {
    async fn deliver(&self, req: DeliveryRequest<'_>) -> Attempt {
        let results = req
            .recipients
            .iter()
            .map(|&i| {
                let status = EnhancedStatus::of(4, 4, 1);
                let reason = REASON.to_string();
                (i, RcptResult::Deferred { status, reason })
            })
            .collect();
        Attempt {
            report: AttemptReport {
                qid: req.qid,
                next_hop: req.next_hop.clone(),
                results,
                destination_failed: true,
            },
            relay: None,
            connection_time: Duration::ZERO,
            transmission_time: Duration::ZERO,
        }
    }
}

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds the process has used (user and system): on a shared machine the wall time of a
/// restart varies by a third from run to run, its CPU time much less.
fn cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields 14 and 15 (utime, stime), counted after the command name's closing paren.
            let rest = &s[s.rfind(')')? + 1..];
            let f: Vec<u64> = rest
                .split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|v| v.parse().ok())
                .collect();
            (f.len() == 2).then(|| (f[0] + f[1]) as f64 / 100.0)
        })
        .unwrap_or(0.0)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn envelope(i: usize, hop: &Transport, arrival: u64) -> Envelope {
    Envelope {
        sender: format!("sender{}@s{}.example", i % 1000, i % 7),
        recipients: vec![Recipient {
            address: format!("r{i}@d{}.example", i % 10),
            original: None,
            orcpt: None,
            notify: Notify::DEFAULT,
            next_hop: hop.clone(),
        }],
        ret: None,
        envid: None,
        body_type: BodyType::SevenBit,
        smtputf8: false,
        arrival,
        client: ClientInfo {
            addr: Some([198, 51, 100, (i % 250) as u8].into()),
            helo: "client.example".into(),
            auth: None,
            protocol: "ESMTP".into(),
            tls: None,
        },
    }
}

/// A flash for `n` messages: ~830 bytes of records each, and the directory slots (1/8) and mail
/// log (1/64) that `SpoolGeometry::for_flash` sets aside.
fn geometry(n: usize) -> FlashGeometry {
    let bytes = (n as u64 * 1000 + (32 << 20)).min(u64::from(u32::MAX) & !0xFFFF);
    let bytes = (bytes + 0xFFFF) & !0xFFFF;
    FlashGeometry::new(64 << 10, bytes as u32).expect("a flash geometry")
}

/// Fills a new flash file with `n` deferred messages, as the spool would after their first
/// attempt failed.
fn fill(path: &Path, n: usize, now: u64) -> Duration {
    let geom = geometry(n);
    let mut flash = FileFlash::create(path, geom).expect("flash file");
    Spool::format(&mut flash, SpoolGeometry::for_flash(geom)).expect("format");
    let (mut spool, _) = Spool::open(flash, SpoolSettings::default()).expect("open");
    let hop: Transport = "smtp:[192.0.2.25]:25".parse().expect("transport");
    let mut body = b"Subject: queued\r\nMessage-ID: <m@client.example>\r\n\r\n".to_vec();
    body.resize(BODY, b'x');
    let t = Instant::now();
    for i in 0..n {
        let arrival = now - (i as u64 % (3 * 86_400));
        let qid = spool
            .begin(&envelope(i, &hop, arrival), now * 1000)
            .expect("begin");
        spool.append_body(qid, &body).expect("body");
        spool.commit(qid).expect("commit");
        let until = now + 300 + (i as u64 % SPREAD) * 60;
        let state = QueueState::Deferred {
            until,
            reason: REASON.into(),
        };
        spool
            .set_state(qid, StateChange::new(state, 1_795_000_000))
            .expect("state");
        if i % 1000 == 999 {
            spool.sync().expect("sync");
        }
    }
    spool.sync().expect("sync");
    drop(spool.into_flash());
    t.elapsed()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = if args.iter().any(|a| a == "--million") {
        1_000_000
    } else {
        std::env::var("POSTERN_BENCH_QUEUED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000)
    };
    let dir = std::env::var_os("TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let keep = std::env::var_os("POSTERN_BENCH_KEEP").map(PathBuf::from);
    let path = keep
        .clone()
        .unwrap_or_else(|| dir.join(format!("postern-queued-{}.flash", std::process::id())));
    let now = unix_now();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "queued_mail: {n} messages of {BODY} bytes, load {}, CRC-32C by {}",
        load.trim(),
        if hal::crc32c::hardware() {
            "the CPU's instruction"
        } else {
            "the table"
        }
    );
    let filled = fill(&path, n, now);
    println!(
        "queued_mail: filled {} MB of flash in {:.1} s",
        geometry(n).size >> 20,
        filled.as_secs_f64()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(restart(&path, n, now));
    if keep.is_none() {
        let _ = std::fs::remove_file(&path);
    }
    tick(n, now);
}

/// Opens the flash as after a restart, hands every message to the queue, and asks the admin
/// command for one recipient's mail.
async fn restart(path: &Path, n: usize, now: u64) {
    let rss_before = status_kb("VmRSS:");
    let cpu_before = cpu_secs();
    let t = Instant::now();
    let flash = FileFlash::open(path, geometry(n)).expect("open flash file");
    let (spool, report) = Spool::open(flash, SpoolSettings::default()).expect("recovery");
    let opened = t.elapsed();
    let opened_cpu = cpu_secs() - cpu_before;
    let rss_spool = status_kb("VmRSS:").saturating_sub(rss_before) * 1024;
    let (spool, _writer) = service::spawn(spool).expect("spool writer");
    let (queue, _task) = runner::spawn(
        RunnerConfig {
            settings: QueueSettings::default(),
            hostname: "gw.example".into(),
            route: Arc::new(|_| None),
            log: LogSink::memory(),
            start_unix: Some(now),
        },
        Arc::new(spool.clone()),
        Arc::new(Refused),
    );
    let recovered = queue.recover(&spool).await.expect("queue recovery");
    // The runner answers in order: once this is answered, it holds every message.
    let _ = queue.get(QueueId(0)).await;
    let elapsed = t.elapsed();
    let cpu = cpu_secs() - cpu_before;
    let rss = status_kb("VmRSS:").saturating_sub(rss_before) * 1024;
    println!(
        "queued_mail: recovery after restart: {:.2} s ({:.2} s spool scan, {} messages, {} \
         queued); CPU {:.2} s ({:.2} s spool scan)",
        elapsed.as_secs_f64(),
        opened.as_secs_f64(),
        report.messages,
        recovered,
        cpu,
        opened_cpu
    );
    println!(
        "queued_mail: RSS {:.1} MB for the spool and queue indexes: {} bytes per queued message \
         ({} after the spool's recovery alone; peak RSS of the process {:.1} MB)",
        rss as f64 / 1e6,
        rss / n.max(1) as u64,
        rss_spool / n.max(1) as u64,
        status_kb("VmHWM:") as f64 / 1e3
    );
    let admin = Admin::new(Handles {
        spool: spool.clone(),
        directory: Arc::new(SharedDirectory::default()),
        queue: Some(queue.clone()),
        ldap: postern::admin::ldap::LdapContext::offline(&spool),
        metrics: None,
        dkim: postern::content::dkim::KeyRing::default(),
        tls: None,
        facts: Arc::new(BoxFacts {
            started: Instant::now(),
            hostname: "gw.example".into(),
            flash_path: path.to_path_buf(),
            flash_size: u64::from(geometry(n).size),
            listeners: Vec::new(),
            control: None,
            dns_servers: Vec::new(),
        }),
    });
    let wanted = format!("r{}@d{}.example", n / 2, (n / 2) % 10);
    // The peak is measured from here (clear_refs 5 resets VmHWM), and a probe asks the spool
    // writer for its figures every 10 ms meanwhile: the longest answer is how long a commit
    // would have waited behind the search.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = status_kb("VmRSS:");
    let probing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let probe = tokio::spawn({
        let (spool, probing) = (spool.clone(), Arc::clone(&probing));
        async move {
            let mut longest = Duration::ZERO;
            while probing.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                let _ = spool.info().await;
                longest = longest.max(t.elapsed());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            longest
        }
    });
    let t = Instant::now();
    let reply = admin
        .execute(AdminCommand::Queue(QueueCommand::List {
            json: true,
            filter: FilterArgs {
                recipient: Some(wanted.clone()),
                ..FilterArgs::default()
            },
        }))
        .await;
    let listed = t.elapsed();
    probing.store(false, std::sync::atomic::Ordering::Relaxed);
    let longest = probe.await.unwrap_or_default();
    println!(
        "queued_mail: queue list --recipient {wanted}: {:.0} ms, {} message(s); RSS peak +{:.1} \
         MB over before; the spool writer's longest answer meanwhile {:.0} ms",
        listed.as_secs_f64() * 1e3,
        reply.text.lines().count(),
        status_kb("VmHWM:").saturating_sub(rss_before) as f64 / 1e3,
        longest.as_secs_f64() * 1e3
    );
    // The whole queue as `postern queue list` gets it over the control socket: in parts.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = status_kb("VmRSS:");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(2);
    let reader = tokio::spawn(async move {
        let (mut parts, mut bytes) = (0usize, 0usize);
        while let Some(p) = rx.recv().await {
            parts += 1;
            bytes += p.len();
        }
        (parts, bytes)
    });
    let t = Instant::now();
    let last = admin
        .execute_to(
            AdminCommand::Queue(QueueCommand::List {
                json: false,
                filter: FilterArgs::default(),
            }),
            tx,
        )
        .await;
    let (parts, bytes) = reader.await.unwrap_or_default();
    println!(
        "queued_mail: queue list (all, as the control socket sends it): {:.2} s, {:.0} MB of text \
         in {parts} parts; RSS peak +{:.1} MB over before",
        t.elapsed().as_secs_f64(),
        (bytes + last.text.len()) as f64 / 1e6,
        status_kb("VmHWM:").saturating_sub(rss_before) as f64 / 1e3,
    );
    // qshape of the whole queue: counted as it is read.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = status_kb("VmRSS:");
    let t = Instant::now();
    let shape = admin
        .execute(AdminCommand::Queue(QueueCommand::Shape {
            names: Vec::new(),
            by_sender: false,
            json: false,
            filter: FilterArgs::default(),
        }))
        .await;
    println!(
        "queued_mail: queue shape (all): {:.2} s, {} rows; RSS peak +{:.1} MB over before",
        t.elapsed().as_secs_f64(),
        shape.text.lines().count(),
        status_kb("VmHWM:").saturating_sub(rss_before) as f64 / 1e3,
    );
    queue.shutdown().await;
}

/// The queue manager alone with `n` deferred messages: a scheduling tick with nothing due, and
/// a queue run that moves the 1/SPREAD share that fell due.
fn tick(n: usize, now: u64) {
    let hop: Transport = "smtp:[192.0.2.25]:25".parse().expect("transport");
    let mut q = QueueManager::new(QueueSettings::default());
    for i in 0..n {
        q.add(
            QueuedMessage {
                qid: QueueId::new(now * 1000, i as u32),
                arrival: now - (i as u64 % (3 * 86_400)),
                null_sender: false,
                size: BODY as u64,
                recipients: vec![(hop.clone(), false)],
                state: QueueState::Deferred {
                    until: now + 300 + (i as u64 % SPREAD) * 60,
                    reason: REASON.into(),
                },
            },
            now,
        );
    }
    let _ = q.poll(now);
    let t = Instant::now();
    let idle = q.poll(now + 1);
    let tick = t.elapsed();
    let t = Instant::now();
    let run = q.poll(now + 300);
    let queue_run = t.elapsed();
    let woken = run
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Activated { .. }))
        .count();
    println!(
        "queued_mail: scheduling tick with nothing due: {:.1} µs ({} jobs); queue run that \
         activates {woken} of {n} (and starts {} jobs): {:.1} ms",
        tick.as_secs_f64() * 1e6,
        idle.jobs.len(),
        run.jobs.len(),
        queue_run.as_secs_f64() * 1e3
    );
}
