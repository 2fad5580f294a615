//! The queue runner wired to the real delivery client and real peers (Dovecot LMTP with quota,
//! Postfix's smtp-sink), over the in-memory store, in real time with second-scale backoff:
//! - over quota with quota_full_tempfail: deferred, retried, delivered once there is room;
//! - over quota without it: bounced, and the DSN (from <>) arrives at the sender's server.
//!
//! Skips (saying so) only when a peer binary is not installed, and fails then under CI=true.

use std::net::{IpAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postern::delivery::{Client, ClientSettings, Dns, DnsError, MxAnswer};
use postern::log::LogSink;
use postern::mail::Envelope;
use postern::mail::Transport;
use postern::queue::runner::{self, RunnerConfig};
use postern::queue::{MemoryStore, QueueSettings};

mod common;

use common::dovecot::Dovecot;
use common::fixtures;
use common::ports::free_port;

const SINK: &str = "/usr/sbin/smtp-sink";

fn wait_listen(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "peer did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn open_dir(tag: &str, port: u16) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("postern-{tag}-{port}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

struct Sink {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn sink() -> Option<Sink> {
    if !Path::new(SINK).exists() {
        common::peers::missing(SINK, "postfix");
        return None;
    }
    let port = free_port();
    let dir = open_dir("sink", port);
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    let mut cmd = Command::new(SINK);
    cmd.arg("-c");
    if root {
        cmd.args(["-u", "nobody"]);
    }
    cmd.args(["-d", &format!("{}/%H%M%S.", dir.display())])
        .arg(format!("127.0.0.1:{port}"))
        .arg("50")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd.spawn().unwrap();
    wait_listen(port);
    Some(Sink { child, port, dir })
}

struct NoDns;

impl Dns for NoDns {
    async fn mx(&self, _: &str) -> Result<MxAnswer, DnsError> {
        Err(DnsError::Temporary("no DNS in this test".into()))
    }
    async fn ips(&self, _: &str) -> Result<Vec<IpAddr>, DnsError> {
        Err(DnsError::Temporary("no DNS in this test".into()))
    }
}

fn fast_settings() -> QueueSettings {
    QueueSettings {
        queue_run_delay: 1,
        minimal_backoff_time: 1,
        maximal_backoff_time: 2,
        ..QueueSettings::default()
    }
}

fn envelope(sender: &str, rcpts: &[&str], hop: &Transport) -> Envelope {
    fixtures::envelope(sender, fixtures::recipients(rcpts, hop), now_unix())
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn body() -> Vec<u8> {
    let mut b = b"From: alice@postern.test\r\nSubject: quota test\r\n\r\n".to_vec();
    for i in 0..60 {
        b.extend_from_slice(
            format!("line {i:02} making the message bigger than one kilobyte\r\n").as_bytes(),
        );
    }
    b
}

async fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    f()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_quota_tempfail_is_deferred_retried_and_delivered_when_there_is_room() {
    let Some(dc) = Dovecot::start(true) else {
        return;
    };
    let hop: Transport = format!("lmtp:[127.0.0.1]:{}", dc.port).parse().unwrap();
    let store = Arc::new(MemoryStore::new(now_unix() * 1000));
    let log = LogSink::memory();
    let client = Arc::new(Client::new(ClientSettings::new("gw.postern.test"), NoDns));
    let (queue, _task) = runner::spawn(
        RunnerConfig {
            settings: fast_settings(),
            hostname: "gw.postern.test".into(),
            route: Arc::new(|_: &str| None),
            log: log.clone(),
            start_unix: None,
        },
        store.clone(),
        client,
    );
    let q = store.put(
        envelope("alice@postern.test", &["bob", "full"], &hop),
        &body(),
    );
    let qid = q.qid;
    queue.add(q).await;
    let deferred = wait_until(Duration::from_secs(10), || {
        log.lines().iter().any(|l| l.contains("to=<full>") && l.contains("dsn=4.2.2, status=deferred (host 127.0.0.1[127.0.0.1] said: 452 4.2.2 <full> Quota exceeded"))
    })
    .await;
    assert!(deferred, "{:#?}", log.lines());
    assert!(
        log.lines()
            .iter()
            .any(|l| l.contains("to=<bob>") && l.contains("status=sent (250 2.0.0 <bob>"))
    );
    // Retried while full: more deferrals, the message stays.
    let retried = wait_until(Duration::from_secs(10), || {
        log.lines()
            .iter()
            .filter(|l| l.contains("to=<full>") && l.contains("status=deferred"))
            .count()
            >= 2
    })
    .await;
    assert!(retried, "{:#?}", log.lines());
    assert_eq!(store.len(), 1);
    // Room in the mailbox: the next retry delivers and the message leaves the queue.
    dc.set_users("100M");
    // The removal is logged once the store has answered it, a moment after it is written.
    let removed = format!("{qid}: removed");
    let done = wait_until(Duration::from_secs(15), || {
        store.is_empty() && log.lines().iter().any(|l| l.ends_with(&removed))
    })
    .await;
    assert!(done, "{:#?}", log.lines());
    assert!(
        log.lines()
            .iter()
            .any(|l| l.contains("to=<full>") && l.contains("status=sent (250 2.0.0 <full>"))
    );
    assert!(
        store.notifications().is_empty(),
        "nobody is told of a delivery that worked"
    );
    queue.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_quota_permanent_bounces_and_the_dsn_reaches_the_sender() {
    let Some(dc) = Dovecot::start(false) else {
        return;
    };
    let Some(sink) = sink() else { return };
    let hop: Transport = format!("lmtp:[127.0.0.1]:{}", dc.port).parse().unwrap();
    let sender_hop: Transport = format!("smtp:[127.0.0.1]:{}", sink.port).parse().unwrap();
    let store = Arc::new(MemoryStore::new(now_unix() * 1000));
    let log = LogSink::memory();
    let client = Arc::new(Client::new(ClientSettings::new("gw.postern.test"), NoDns));
    let (queue, _task) = runner::spawn(
        RunnerConfig {
            settings: fast_settings(),
            hostname: "gw.postern.test".into(),
            route: Arc::new(move |_: &str| Some(sender_hop.clone())),
            log: log.clone(),
            start_unix: None,
        },
        store.clone(),
        client,
    );
    let q = store.put(envelope("alice@postern.test", &["full"], &hop), &body());
    queue.add(q).await;
    let done = wait_until(Duration::from_secs(15), || {
        store.is_empty() && !store.notifications().is_empty()
    })
    .await;
    assert!(done, "{:#?}", log.lines());
    assert!(log.lines().iter().any(|l| l.contains("to=<full>")
        && l.contains("dsn=5.2.2, status=bounced (552 5.2.2 <full> Quota exceeded")));
    assert!(
        log.lines()
            .iter()
            .any(|l| l.contains("sender non-delivery notification"))
    );
    // The DSN went out from the null sender to alice, through smtp-sink.
    let deadline = Instant::now() + Duration::from_secs(10);
    let dump = loop {
        let found = std::fs::read_dir(&sink.dir)
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .find(|d| d.contains("X-Mail-Args: <>"));
        if let Some(d) = found {
            break d;
        }
        assert!(Instant::now() < deadline, "no DSN at the sink");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(dump.contains("X-Rcpt-Args: <alice@postern.test>"));
    for field in [
        "Content-Type: multipart/report",
        "report-type=\"delivery-status\"",
        "Reporting-MTA: dns; gw.postern.test",
        "Final-Recipient: rfc822; full",
        "Action: failed",
        "Status: 5.2.2",
        "Remote-MTA: dns; 127.0.0.1",
        "Diagnostic-Code: smtp; 552 5.2.2 <full> Quota exceeded",
        "Subject: quota test",
    ] {
        assert!(dump.contains(field), "DSN lacks {field:?}:\n{dump}");
    }
    queue.shutdown().await;
}
