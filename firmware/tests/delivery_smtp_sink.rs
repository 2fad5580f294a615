//! The delivery client against Postfix's `smtp-sink` on 127.0.0.1: what arrives, and how
//! refusals at each stage turn into per-recipient results. Skips (saying so) only when
//! /usr/sbin/smtp-sink is not installed, and fails then under CI=true.

use std::collections::HashMap;
use std::net::{IpAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postern::delivery::{Client, ClientSettings, Dns, DnsError, MxAnswer, Timeouts, TlsPolicy};
use postern::mail::Transport;
use postern::mail::{BodyType, Envelope, Notify, QueueId};
use postern::queue::{BodyBytes, BodyError, BodyRead, BodySource, DeliveryRequest, RcptResult};

mod common;

use common::fixtures::{self, ARRIVAL};
use common::ports::free_port;

const SINK: &str = "/usr/sbin/smtp-sink";

struct Sink {
    child: Child,
    port: u16,
    dir: PathBuf,
    /// What `-c` printed so far, read as it comes.
    out: Arc<Mutex<String>>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

/// Start smtp-sink with extra flags, or None (and a message) when it is not installed.
fn sink(flags: &[&str]) -> Option<Sink> {
    sink_on(free_port(), flags)
}

/// [`sink`] on a given port (a sink started again where one was).
fn sink_on(port: u16, flags: &[&str]) -> Option<Sink> {
    if !Path::new(SINK).exists() {
        common::peers::missing(SINK, "postfix");
        return None;
    }
    let dir = std::env::temp_dir().join(format!("postern-sink-{port}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new(SINK);
    cmd.arg("-c");
    if is_root() {
        // smtp-sink refuses to run as root; the dump directory must be writable by nobody.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        cmd.args(["-u", "nobody"]);
    }
    cmd.args(["-d", &format!("{}/%H%M%S.", dir.display())]);
    cmd.args(flags);
    cmd.arg(format!("127.0.0.1:{port}")).arg("50");
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd.spawn().expect("start smtp-sink");
    let out = Arc::new(Mutex::new(String::new()));
    if let Some(mut stdout) = child.stdout.take() {
        let out = out.clone();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                if let Ok(mut o) = out.lock() {
                    o.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "smtp-sink did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(Sink {
        child,
        port,
        dir,
        out,
    })
}

impl Sink {
    /// The dumps smtp-sink wrote, waiting a little for the last one to be closed.
    fn dumps(&self, want: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut out = Vec::new();
            for e in std::fs::read_dir(&self.dir).unwrap().flatten() {
                if let Ok(s) = std::fs::read(e.path()) {
                    out.push(String::from_utf8_lossy(&s).into_owned());
                }
            }
            if out.len() >= want || Instant::now() > deadline {
                return out;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sessions and messages counted by `smtp-sink -c` (`sess=N quit=Q mesg=M`) once it has
    /// counted `sessions` ended sessions (or after 10 s: a busy machine may take a moment to
    /// end the last), then stopped.
    fn stop_and_count(self, sessions: u32) -> (u32, u32) {
        let (s, _, m) = self.stop_and_count_all(sessions);
        (s, m)
    }

    fn stop_and_count_all(mut self, sessions: u32) -> (u32, u32, u32) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.counts().0 < sessions && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.counts()
    }

    /// The last counters `-c` printed.
    fn counts(&self) -> (u32, u32, u32) {
        let text = self.out.lock().map(|t| t.clone()).unwrap_or_default();
        let last = text
            .rsplit('\r')
            .find(|s| s.contains("sess="))
            .unwrap_or("");
        let field = |k: &str| {
            last.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        (field("sess="), field("quit="), field("mesg="))
    }
}

/// DNS that knows only what the test says.
#[derive(Default)]
struct FakeDns {
    mx: HashMap<String, Vec<(u16, String)>>,
    a: HashMap<String, Vec<IpAddr>>,
}

impl Dns for FakeDns {
    async fn mx(&self, d: &str) -> Result<MxAnswer, DnsError> {
        self.mx
            .get(d)
            .map(|r| MxAnswer::Records(r.clone()))
            .ok_or(DnsError::NotFound)
    }
    async fn ips(&self, h: &str) -> Result<Vec<IpAddr>, DnsError> {
        self.a.get(h).cloned().ok_or(DnsError::NotFound)
    }
}

fn settings() -> ClientSettings {
    let mut s = ClientSettings::new("gw.postern.test");
    s.timeouts = Timeouts {
        connect: Duration::from_secs(5),
        ..Timeouts::default()
    };
    s.tls_policy = TlsPolicy::May;
    s.reuse_time_limit = Duration::from_secs(30);
    s
}

fn envelope(hop: &Transport, rcpts: &[&str]) -> Envelope {
    Envelope {
        body_type: BodyType::EightBitMime,
        ..fixtures::envelope(
            "alice@postern.test",
            fixtures::recipients(rcpts, hop),
            ARRIVAL,
        )
    }
}

fn body(subject: &str) -> Vec<u8> {
    let mut b = format!(
        "From: alice@postern.test\r\nTo: bob@example.test\r\nSubject: {subject}\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n\
         Grüße aus Köln\r\n.leading dot survives\r\n..two dots\r\n.\r\nend of the dot test\r\n"
    )
    .into_bytes();
    for i in 0..3000 {
        b.extend_from_slice(
            format!("line {i:05} of a long body to cross chunk boundaries ---------------\r\n")
                .as_bytes(),
        );
    }
    b
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn deliver(
    client: &Client<FakeDns>,
    env: &Envelope,
    hop: &Transport,
    body: &[u8],
) -> postern::queue::Attempt {
    deliver_from(client, env, hop, &BodyBytes(body))
}

fn deliver_from(
    client: &Client<FakeDns>,
    env: &Envelope,
    hop: &Transport,
    body: &dyn BodySource,
) -> postern::queue::Attempt {
    let idx: Vec<usize> = (0..env.recipients.len()).collect();
    rt().block_on(client.deliver(DeliveryRequest {
        qid: QueueId::new(1_795_000_000_000, 1),
        envelope: env,
        recipients: &idx,
        next_hop: hop,
        body,
    }))
}

/// A body as the spool hands it out, in pieces that end where the test says (and never longer
/// than asked), failing from byte `fail_at` on as a chunk damaged on flash does.
struct Pieces {
    body: Vec<u8>,
    /// Offsets where a piece ends, ascending.
    cuts: Vec<usize>,
    fail_at: Option<u64>,
}

impl BodySource for Pieces {
    fn size(&self) -> u64 {
        self.body.len() as u64
    }

    fn read_at(&self, offset: u64, max: usize) -> BodyRead<'_> {
        if self.fail_at.is_some_and(|f| offset >= f) {
            let e = BodyError::Unreadable("spool: stored body damaged".into());
            return Box::pin(std::future::ready(Err(e)));
        }
        let from = offset as usize;
        let cut = self.cuts.iter().copied().find(|&c| c > from);
        let to = cut
            .unwrap_or(self.body.len())
            .min(from + max)
            .min(self.body.len());
        Box::pin(std::future::ready(Ok(self.body[from..to].to_vec())))
    }
}

fn hop(port: u16) -> Transport {
    format!("smtp:[127.0.0.1]:{port}").parse().unwrap()
}

#[test]
fn message_arrives_intact_with_pipelining_and_the_connection_is_reused() {
    let Some(s) = sink(&[]) else { return };
    let hop = hop(s.port);
    let client = Client::new(settings(), FakeDns::default());
    let env = envelope(
        &hop,
        &[
            "bob@example.test",
            "carol@example.test",
            "dave@example.test",
        ],
    );
    let msg = body("intact-1");
    // One runtime for both deliveries, so the cached connection stays usable.
    let rt = rt();
    let idx = [0usize, 1, 2];
    let run = |m: &[u8]| {
        rt.block_on(client.deliver(DeliveryRequest {
            qid: QueueId::new(1_795_000_000_000, 1),
            envelope: &env,
            recipients: &idx,
            next_hop: &hop,
            body: &BodyBytes(m),
        }))
    };
    let a = run(&msg);
    assert_eq!(a.report.results.len(), 3);
    for (_, r) in &a.report.results {
        match r {
            RcptResult::Delivered { relay, reply } => {
                assert_eq!(relay, &format!("127.0.0.1[127.0.0.1]:{}", s.port));
                assert!(reply.to_string().starts_with("250 2.0.0"), "{reply}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(client.idle_connections(), 1, "kept for reuse");
    let b = run(&body("intact-2"));
    assert!(matches!(
        b.report.results[0].1,
        RcptResult::Delivered { .. }
    ));

    let dumps = s.dumps(2);
    let first = dumps
        .iter()
        .find(|d| d.contains("Subject: intact-1"))
        .expect("dumped");
    // smtp-sink stores LF line ends and removes the dot-stuffing: compare in that form.
    let expect = String::from_utf8(msg).unwrap().replace("\r\n", "\n");
    assert!(first.contains(&expect), "body changed on the way");
    assert!(first.contains("X-Helo-Args: gw.postern.test"));
    assert!(first.contains("X-Mail-Args: <alice@postern.test> BODY=8BITMIME"));
    for r in ["bob", "carol", "dave"] {
        assert!(first.contains(&format!("X-Rcpt-Args: <{r}@example.test>")));
    }
    // Close the cached connection so smtp-sink counts its session as ended.
    drop(client);
    let (sessions, messages) = s.stop_and_count(2);
    // smtp-sink counts ended sessions; one is the test's readiness probe.
    assert_eq!(
        (sessions, messages),
        (2, 2),
        "two messages over one connection"
    );
}

#[test]
fn without_pipelining_one_command_at_a_time() {
    let Some(s) = sink(&["-p"]) else { return };
    let hop = hop(s.port);
    let client = Client::new(settings(), FakeDns::default());
    let env = envelope(&hop, &["bob@example.test", "carol@example.test"]);
    let a = deliver(&client, &env, &hop, &body("nopipe"));
    assert!(
        a.report
            .results
            .iter()
            .all(|(_, r)| matches!(r, RcptResult::Delivered { .. }))
    );
    assert!(s.dumps(1)[0].contains("Subject: nopipe"));
}

#[test]
fn hard_rcpt_refusal_bounces_soft_one_defers() {
    for (flag, permanent) in [("-f", true), ("-r", false)] {
        let Some(s) = sink(&[flag, "RCPT"]) else {
            return;
        };
        let hop = hop(s.port);
        let client = Client::new(settings(), FakeDns::default());
        let env = envelope(&hop, &["bob@example.test"]);
        let a = deliver(&client, &env, &hop, &body("refused"));
        assert!(!a.report.destination_failed);
        match (&a.report.results[0].1, permanent) {
            (
                RcptResult::Bounced {
                    status,
                    diagnostic,
                    remote_mta,
                },
                true,
            ) => {
                assert_eq!(status.to_string(), "5.3.0");
                assert_eq!(diagnostic, "smtp; 500 5.3.0 Error: command failed");
                assert_eq!(remote_mta.as_deref(), Some("127.0.0.1"));
            }
            (RcptResult::Deferred { status, reason }, false) => {
                assert_eq!(status.to_string(), "4.3.0");
                assert!(
                    reason.ends_with(
                        "said: 450 4.3.0 Error: command failed (in reply to RCPT TO command)"
                    ),
                    "{reason}"
                );
            }
            other => panic!("{flag}: {other:?}"),
        }
    }
}

#[test]
fn refusal_at_end_of_data_defers_every_recipient() {
    let Some(s) = sink(&["-r", "."]) else { return };
    let hop = hop(s.port);
    let client = Client::new(settings(), FakeDns::default());
    let env = envelope(&hop, &["bob@example.test", "carol@example.test"]);
    let a = deliver(&client, &env, &hop, &body("eod"));
    assert_eq!(a.report.results.len(), 2);
    for (_, r) in &a.report.results {
        assert!(
            matches!(r, RcptResult::Deferred { reason, .. } if reason.contains("end of DATA")),
            "{r:?}"
        );
    }
}

#[test]
fn smtputf8_message_to_a_server_without_it_bounces_5_6_7() {
    let Some(s) = sink(&[]) else { return };
    let hop = hop(s.port);
    let client = Client::new(settings(), FakeDns::default());
    let mut env = envelope(&hop, &["jörg@example.test"]);
    env.smtputf8 = true;
    let a = deliver(&client, &env, &hop, &body("utf8"));
    match &a.report.results[0].1 {
        RcptResult::Bounced {
            status, diagnostic, ..
        } => {
            assert_eq!(status.to_string(), "5.6.7");
            assert!(diagnostic.contains(
                "SMTPUTF8 is required, but was not offered by host 127.0.0.1[127.0.0.1]"
            ));
        }
        other => panic!("{other:?}"),
    }
    let (_, messages) = s.stop_and_count(0);
    assert_eq!(messages, 0, "nothing was sent");
}

#[test]
fn dead_next_hop_defers_and_marks_the_destination_failed() {
    if !Path::new(SINK).exists() {
        common::peers::missing(SINK, "postfix");
        return;
    }
    let port = free_port();
    let hop = hop(port);
    let client = Client::new(settings(), FakeDns::default());
    let env = envelope(&hop, &["bob@example.test"]);
    let a = deliver(&client, &env, &hop, &body("dead"));
    assert!(a.report.destination_failed);
    assert!(a.relay.is_none());
    match &a.report.results[0].1 {
        RcptResult::Deferred { reason, .. } => {
            assert_eq!(
                reason,
                &format!("connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn mx_hosts_are_tried_in_preference_order_with_fallback() {
    let Some(s) = sink(&[]) else { return };
    let mut dns = FakeDns::default();
    dns.mx.insert(
        "example.test".into(),
        vec![
            (20, "second.example.test.".into()),
            (10, "first.example.test.".into()),
        ],
    );
    // Nothing listens on 127.0.0.2: the preferred MX refuses, the next one takes the mail.
    dns.a.insert(
        "first.example.test.".into(),
        vec!["127.0.0.2".parse().unwrap()],
    );
    dns.a.insert(
        "second.example.test.".into(),
        vec!["127.0.0.1".parse().unwrap()],
    );
    let hop: Transport = format!("smtp:example.test:{}", s.port).parse().unwrap();
    assert!(hop.mx);
    let client = Client::new(settings(), dns);
    let env = envelope(&hop, &["bob@example.test"]);
    let a = deliver(&client, &env, &hop, &body("mx"));
    match &a.report.results[0].1 {
        RcptResult::Delivered { relay, .. } => {
            assert_eq!(relay, &format!("second.example.test[127.0.0.1]:{}", s.port));
        }
        other => panic!("{other:?}"),
    }
}

/// A cached connection the server closed meanwhile is found out by its RSET (sent in one write
/// with MAIL, RCPT and DATA) and the message goes over a fresh connection, once.
#[test]
fn a_cached_connection_the_server_closed_is_replaced_by_a_fresh_one() {
    let Some(first) = sink(&[]) else { return };
    let port = first.port;
    let hop = hop(port);
    let client = Client::new(settings(), FakeDns::default());
    let env = envelope(&hop, &["bob@example.test"]);
    let rt = rt();
    let run = |m: &[u8]| {
        rt.block_on(client.deliver(DeliveryRequest {
            qid: QueueId::new(1_795_000_000_000, 1),
            envelope: &env,
            recipients: &[0],
            next_hop: &hop,
            body: &BodyBytes(m),
        }))
    };
    let a = run(&body("before"));
    assert!(matches!(
        a.report.results[0].1,
        RcptResult::Delivered { .. }
    ));
    assert_eq!(client.idle_connections(), 1);
    // smtp-sink killed: the cached connection is closed under the client.
    drop(first);
    let Some(second) = sink_on(port, &[]) else {
        return;
    };
    let b = run(&body("after"));
    assert!(
        matches!(b.report.results[0].1, RcptResult::Delivered { .. }),
        "{:?}",
        b.report.results
    );
    let dumps = second.dumps(1);
    assert_eq!(dumps.len(), 1);
    assert!(dumps[0].contains("Subject: after"));
    assert_eq!(client.idle_connections(), 1, "the fresh one is kept");
}

#[test]
fn idle_connections_are_closed_with_quit() {
    let Some(s) = sink(&[]) else { return };
    let hop = hop(s.port);
    let mut settings = settings();
    settings.reuse_time_limit = Duration::from_millis(200);
    let client = Client::new(settings, FakeDns::default());
    let env = envelope(&hop, &["bob@example.test"]);
    let rt = rt();
    let a = rt.block_on(client.deliver(DeliveryRequest {
        qid: QueueId::new(1_795_000_000_000, 1),
        envelope: &env,
        recipients: &[0],
        next_hop: &hop,
        body: &BodyBytes(&body("idle")),
    }));
    assert!(matches!(
        a.report.results[0].1,
        RcptResult::Delivered { .. }
    ));
    assert_eq!(client.idle_connections(), 1);
    rt.block_on(client.close_idle());
    assert_eq!(client.idle_connections(), 1, "not yet idle long enough");
    std::thread::sleep(Duration::from_millis(300));
    rt.block_on(client.close_idle());
    assert_eq!(client.idle_connections(), 0);
    let (sessions, quits, messages) = s.stop_and_count_all(2);
    // smtp-sink counts ended sessions; one is the test's readiness probe.
    assert_eq!((sessions, quits, messages), (2, 1, 1));
}

#[test]
fn dsn_parameters_are_passed_on_to_a_server_that_offers_dsn() {
    let Some(s) = sink(&[]) else { return };
    let hop = hop(s.port);
    let client = Client::new(settings(), FakeDns::default());
    let mut env = envelope(&hop, &["bob@example.test", "carol@example.test"]);
    env.ret = Some(postern::mail::Ret::Headers);
    env.envid = Some("ENV 42+x".into());
    env.recipients[0].notify = Notify {
        success: true,
        failure: true,
        delay: false,
        explicit: true,
    };
    env.recipients[0].orcpt = Some(("rfc822".into(), "Bob@Example.TEST".into()));
    env.recipients[1].notify = Notify::NEVER;
    let a = deliver(&client, &env, &hop, &body("dsn-params"));
    assert!(matches!(
        a.report.results[0].1,
        RcptResult::Delivered { .. }
    ));
    let dump = s.dumps(1).pop().unwrap();
    assert!(
        dump.contains(
            "X-Mail-Args: <alice@postern.test> BODY=8BITMIME RET=HDRS ENVID=ENV+2042+2Bx"
        ),
        "{dump}"
    );
    // SUCCESS stays with us (we report the hand-off); FAILURE goes on with ORCPT.
    assert!(
        dump.contains(
            "X-Rcpt-Args: <bob@example.test> NOTIFY=FAILURE ORCPT=rfc822;Bob@Example.TEST"
        ),
        "{dump}"
    );
    assert!(
        dump.contains("X-Rcpt-Args: <carol@example.test> NOTIFY=NEVER"),
        "{dump}"
    );
}

/// Pieces that end just before a line's leading dot, between CR and LF, and a last line without
/// CRLF: the next hop gets exactly the stored message.
#[test]
fn a_body_cut_at_awkward_seams_arrives_intact() {
    let Some(s) = sink(&[]) else { return };
    let hop = hop(s.port);
    let client = Client::new(settings(), FakeDns::default());
    let env = envelope(&hop, &["bob@example.test"]);
    let mut b = body("seams");
    b.extend_from_slice(b".one\r\n..two\r\n.\r\nthree\r\n.\r\nthe last line has no end");
    let cuts: Vec<usize> = (1..b.len())
        .filter(|&i| b[i] == b'.' && b[i - 1] == b'\n' || b[i - 1] == b'\r')
        .collect();
    let pieces = Pieces {
        body: b.clone(),
        cuts,
        fail_at: None,
    };
    let a = deliver_from(&client, &env, &hop, &pieces);
    assert!(
        matches!(a.report.results[0].1, RcptResult::Delivered { .. }),
        "{:?}",
        a.report.results
    );
    let dump = s.dumps(1).pop().unwrap();
    let expect = String::from_utf8(b).unwrap().replace("\r\n", "\n") + "\n";
    // smtp-sink stores LF line ends, without the dot-stuffing, and a blank line after.
    assert!(dump.contains(&expect), "body changed on the way: {dump}");
}

/// A piece that fails its check in the middle of DATA: no final dot, the connection is dropped
/// (not reused), the next hop counts no message, and every recipient waits (4.3.0) as when
/// the message cannot be read at all.
#[test]
fn a_body_that_cannot_be_read_to_its_end_is_never_accepted() {
    let Some(s) = sink(&[]) else { return };
    let hop = hop(s.port);
    let client = Client::new(settings(), FakeDns::default());
    let env = envelope(&hop, &["bob@example.test", "carol@example.test"]);
    let b = body("damaged");
    let pieces = Pieces {
        fail_at: Some(b.len() as u64 / 2),
        cuts: vec![b.len() / 4, b.len() / 2],
        body: b,
    };
    let a = deliver_from(&client, &env, &hop, &pieces);
    assert_eq!(a.report.results.len(), 2);
    for (_, r) in &a.report.results {
        match r {
            RcptResult::Deferred { status, reason } => {
                assert_eq!(status.to_string(), "4.3.0");
                assert_eq!(
                    reason,
                    "cannot read the queued message: spool: stored body damaged"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        client.idle_connections(),
        0,
        "an abandoned connection is not reused"
    );
    let (sessions, messages) = s.stop_and_count(2);
    // smtp-sink counts ended sessions; one is the test's readiness probe.
    assert_eq!(
        (sessions, messages),
        (2, 0),
        "the half-sent message was not taken"
    );
}
