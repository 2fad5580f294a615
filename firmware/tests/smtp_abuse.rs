//! Exhaustion and abuse over real sockets on loopback (issue 17): many connections from one
//! address, a client trickling a byte at a time, a message far over the size limit, a flood of
//! RCPT commands, AUTH guessing. Each test fails with its defence switched off; counts are scaled
//! down to what a test may do in seconds (hundreds of connections, not ten thousand).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postern::config::network::NetworkList;
use postern::inbound::tls::{self_signed, server_config};
use postern::inbound::{
    Authenticator, InboundContext, IncomingMessage, Limits, ListenerKind, MessageStore,
    RecipientCheck, serve,
};
use postern::log::LogSink;
use postern::mail::{Envelope, QueueId, Reply, Transport};
use postern::policy::{ConnectionLimits, Policy};
use postern::smtp::{RcptQuery, RcptTarget};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Every address is a local recipient.
struct Router;

impl RecipientCheck for Router {
    async fn check(&self, q: &RcptQuery) -> Result<Vec<RcptTarget>, Reply> {
        Ok(vec![RcptTarget {
            address: q.address.clone(),
            next_hop: "lmtp:[127.0.0.1]:7025".parse::<Transport>().unwrap(),
        }])
    }
}

/// Counts what reaches the store: bytes written (committed or not) and messages committed.
#[derive(Default, Clone)]
struct Spool {
    written: Arc<AtomicUsize>,
    committed: Arc<Mutex<Vec<Envelope>>>,
}

struct Incoming {
    spool: Spool,
    envelope: Envelope,
}

impl MessageStore for Spool {
    type Incoming = Incoming;
    async fn begin(&self, envelope: Envelope) -> Result<Incoming, Reply> {
        Ok(Incoming {
            spool: self.clone(),
            envelope,
        })
    }
}

impl IncomingMessage for Incoming {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), Reply> {
        self.spool.written.fetch_add(chunk.len(), Ordering::Relaxed);
        Ok(())
    }
    async fn commit(self) -> Result<QueueId, Reply> {
        let mut v = self.spool.committed.lock().unwrap();
        v.push(self.envelope);
        Ok(QueueId(v.len() as u64))
    }
}

/// Never accepts a password.
struct Guessed;

impl Authenticator for Guessed {
    async fn verify(&self, _user: &str, _password: &str) -> bool {
        false
    }
}

struct Server {
    addr: SocketAddr,
    spool: Spool,
    log: LogSink,
}

async fn start(kind: ListenerKind, limits: Limits, connections: ConnectionLimits) -> Server {
    let identity = self_signed("localhost").unwrap();
    let spool = Spool::default();
    let log = LogSink::memory();
    let ctx = Arc::new(InboundContext {
        hostname: "mx.test".into(),
        limits: limits.into(),
        tls: Some(server_config(&identity).unwrap()),
        policy: Policy::new(connections),
        recipients: Router,
        store: spool.clone(),
        auth: Some(Guessed),
        log: log.clone(),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(kind, listener, ctx));
    Server { addr, spool, log }
}

struct Client {
    io: BufReader<TcpStream>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        Client::connect_from("127.0.0.1", addr).await
    }

    /// From a chosen loopback address, as a second client would come from.
    async fn connect_from(source: &str, addr: SocketAddr) -> Client {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        Client {
            io: BufReader::new(socket.connect(addr).await.unwrap()),
        }
    }

    /// One whole reply; empty when the server hung up.
    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            match self.io.read_line(&mut line).await {
                Ok(0) | Err(_) => return all,
                Ok(_) => {}
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        // The server may have hung up already; what it said is read after.
        let _ = self.io.get_mut().write_all(bytes).await;
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }
}

fn limits() -> Limits {
    Limits {
        auth_failure_delay: Duration::from_millis(50),
        ..Limits::default()
    }
}

/// Opens `n` connections from `source` and keeps them; returns them and their greetings.
async fn open(addr: SocketAddr, source: &str, n: usize) -> (Vec<Client>, Vec<String>) {
    let mut held = Vec::new();
    let mut greetings = Vec::new();
    for _ in 0..n {
        let mut c = Client::connect_from(source, addr).await;
        greetings.push(c.reply().await);
        held.push(c);
    }
    (held, greetings)
}

fn count(replies: &[String], prefix: &str) -> usize {
    replies.iter().filter(|r| r.starts_with(prefix)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_connections_from_one_address_are_held_to_the_limits() {
    let connections = ConnectionLimits {
        connection_limit: 120,
        client_connection_limit: 50,
        client_limit_exceptions: "10.0.0.0/8".parse::<NetworkList>().unwrap(),
        ..ConnectionLimits::default()
    };
    let server = start(ListenerKind::Smtp, limits(), connections).await;
    // 300 from one address: 50 served, the rest told why and dropped.
    let (held, greetings) = open(server.addr, "127.0.0.1", 300).await;
    assert_eq!(count(&greetings, "220 "), 50, "{:?}", &greetings[48..52]);
    assert_eq!(
        count(
            &greetings,
            "421 4.7.0 mx.test Error: too many connections from 127.0.0.1\r\n"
        ),
        250
    );
    // Another address still gets in: the limit is per client.
    let (others, greetings) = open(server.addr, "127.0.0.2", 100).await;
    assert_eq!(count(&greetings, "220 "), 50);
    // 120 in all: the third address finds the box full.
    let (_third, greetings) = open(server.addr, "127.0.0.3", 30).await;
    assert_eq!(count(&greetings, "220 "), 20);
    assert_eq!(
        count(
            &greetings,
            "421 4.7.0 mx.test Error: too many connections\r\n"
        ),
        10
    );
    // Slots come back when clients leave: once the server has seen them go (a moment on a busy
    // machine), all 50 again.
    drop(held);
    drop(others);
    let started = Instant::now();
    loop {
        let (back, greetings) = open(server.addr, "127.0.0.1", 50).await;
        if count(&greetings, "220 ") == 50 {
            break;
        }
        drop(back);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            &greetings[..]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mynetworks_is_exempt_from_the_per_client_limit_but_not_the_total() {
    let connections = ConnectionLimits {
        connection_limit: 200,
        client_connection_limit: 50,
        client_limit_exceptions: NetworkList::loopback(),
        ..ConnectionLimits::default()
    };
    let server = start(ListenerKind::Smtp, limits(), connections).await;
    let (_held, greetings) = open(server.addr, "127.0.0.1", 300).await;
    assert_eq!(count(&greetings, "220 "), 200);
    assert_eq!(
        count(
            &greetings,
            "421 4.7.0 mx.test Error: too many connections\r\n"
        ),
        100
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_a_byte_at_a_time_is_dropped_at_the_record_deadline() {
    let limits = Limits {
        command_timeout: Duration::from_secs(1),
        data_timeout: Duration::from_secs(1),
        ..limits()
    };
    let server = start(ListenerKind::Smtp, limits, ConnectionLimits::default()).await;
    let mut c = Client::connect(server.addr).await;
    assert!(c.reply().await.starts_with("220 "));
    // Each byte comes well inside smtpd_timeout; the line as a whole does not.
    let reply = trickle(&mut c, b"MAIL FROM:<slow@outside.example>\r\n").await;
    assert_eq!(
        reply,
        Some("421 4.4.2 mx.test Error: timeout exceeded\r\n".to_string())
    );

    // The same in DATA: content trickling in far below smtpd_min_data_rate.
    let mut c = Client::connect(server.addr).await;
    c.reply().await;
    assert!(c.cmd("EHLO client.test").await.starts_with("250"));
    assert!(
        c.cmd("MAIL FROM:<a@outside.example>")
            .await
            .starts_with("250")
    );
    assert!(c.cmd("RCPT TO:<b@example.com>").await.starts_with("250"));
    assert!(c.cmd("DATA").await.starts_with("354"));
    let reply = trickle(&mut c, b"Subject: slow\r\n\r\nbody, slowly\r\n.\r\n").await;
    assert_eq!(
        reply,
        Some("421 4.4.2 mx.test Error: timeout exceeded\r\n".to_string())
    );
    assert!(server.spool.committed.lock().unwrap().is_empty());
}

/// Sends `bytes` one every 200 ms and returns what the server says before the last is sent and
/// within 4 s (with 1 s timeouts: the margin is for a busy machine); `None` if it says nothing
/// by then. A timeout per byte would never fire, and the trickle outlasts the 4 s.
async fn trickle(c: &mut Client, bytes: &[u8]) -> Option<String> {
    assert!(
        bytes.len() * 200 > 6000,
        "the trickle must outlast the deadline"
    );
    let started = Instant::now();
    for b in bytes {
        c.send(&[*b]).await;
        if let Ok(reply) = tokio::time::timeout(Duration::from_millis(200), c.reply()).await {
            assert!(started.elapsed() < Duration::from_secs(4), "{reply}");
            return Some(reply);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_far_over_the_size_limit_is_refused_and_not_stored_past_it() {
    let limit = 100_000;
    let limits = Limits {
        message_size_limit: limit,
        ..limits()
    };
    let server = start(ListenerKind::Smtp, limits, ConnectionLimits::default()).await;
    let mut c = Client::connect(server.addr).await;
    c.reply().await;
    let ehlo = c.cmd("EHLO client.test").await;
    assert!(ehlo.contains("250-SIZE 100000"), "{ehlo}");
    assert!(
        c.cmd("MAIL FROM:<a@outside.example>")
            .await
            .starts_with("250")
    );
    assert!(c.cmd("RCPT TO:<b@example.com>").await.starts_with("250"));
    assert!(c.cmd("DATA").await.starts_with("354"));
    // 10 MB, a hundred times the limit.
    let line = [b'x'; 998];
    let mut sent = 0;
    while sent < 10_000_000 {
        c.send(&line).await;
        c.send(b"\r\n").await;
        sent += line.len() + 2;
    }
    c.send(b".\r\n").await;
    let reply = c.reply().await;
    assert!(
        reply == "552 5.3.4 Error: message file too big\r\n",
        "{reply}"
    );
    let written = server.spool.written.load(Ordering::Relaxed);
    assert!(
        written <= limit as usize + 2 * 1024,
        "{written} bytes written for a limit of {limit}"
    );
    assert!(server.spool.committed.lock().unwrap().is_empty());
    // The session goes on: the next message is taken.
    assert!(
        c.cmd("MAIL FROM:<a@outside.example>")
            .await
            .starts_with("250")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_rcpt_is_held_to_the_recipient_limit_then_dropped() {
    let limits = Limits {
        recipient_limit: 100,
        hard_error_limit: 20,
        ..limits()
    };
    let server = start(ListenerKind::Smtp, limits, ConnectionLimits::default()).await;
    let mut c = Client::connect(server.addr).await;
    c.reply().await;
    assert!(c.cmd("EHLO client.test").await.starts_with("250"));
    assert!(
        c.cmd("MAIL FROM:<a@outside.example>")
            .await
            .starts_with("250")
    );
    let mut replies = Vec::new();
    for i in 0..10_000 {
        let r = c.cmd(&format!("RCPT TO:<user{i}@example.com>")).await;
        if r.is_empty() {
            break;
        }
        replies.push(r);
    }
    assert_eq!(count(&replies, "250 "), 100);
    assert_eq!(
        count(&replies, "452 4.5.3 Error: too many recipients\r\n"),
        20,
        "{:?}",
        replies.last()
    );
    // The 20th error is followed by 421 and the end of the session.
    assert_eq!(
        replies.last().map(String::as_str),
        Some("421 4.7.0 mx.test Error: too many errors\r\n")
    );
    assert_eq!(
        replies.len(),
        121,
        "the session ends at the hard error limit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_guessing_is_slowed_and_cut_off() {
    let server = start(ListenerKind::Smtp, limits(), ConnectionLimits::default()).await;
    let mut c = Client::connect(server.addr).await;
    c.reply().await;
    assert!(c.cmd("EHLO client.test").await.starts_with("250"));
    // AUTH is offered only under TLS; guessing in clear gets nowhere at all.
    let r = c.cmd("AUTH PLAIN AHVzZXIAZ3Vlc3M=").await;
    assert!(r.starts_with("503 5.5.1"), "{r}");
    let mut delays = Vec::new();
    let mut replies = Vec::new();
    let mut tls = starttls(c).await;
    for guess in 0..10 {
        let started = Instant::now();
        let r = tls
            .cmd(&format!(
                "AUTH PLAIN {}",
                plain("user@example.com", &format!("guess{guess}"))
            ))
            .await;
        if r.is_empty() {
            break;
        }
        delays.push(started.elapsed());
        replies.push(r);
    }
    // 3 failures, each answered later than the one before, then 421 and hang up.
    assert_eq!(count(&replies, "535 5.7.8"), 3, "{replies:?}");
    assert!(
        replies.last().is_some_and(|r| r.contains("421 ")),
        "{replies:?}"
    );
    assert!(delays[0] >= Duration::from_millis(50), "{delays:?}");
    assert!(delays[1] >= Duration::from_millis(100), "{delays:?}");
    assert!(delays[2] >= Duration::from_millis(150), "{delays:?}");
    // Each failure is logged as Postfix logs it, for the admin and fail2ban.
    let failed = server
        .log
        .lines()
        .iter()
        .filter(|l| {
            l.starts_with(
                "postern/smtpd: warning: unknown[127.0.0.1]: SASL PLAIN authentication failed",
            )
        })
        .count();
    assert_eq!(failed, 3, "{:#?}", server.log.lines());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_guessing_over_many_connections_is_held_to_the_client_auth_rate_limit() {
    let connections = ConnectionLimits {
        auth_rate_limit: 7,
        client_limit_exceptions: "10.0.0.0/8".parse::<NetworkList>().unwrap(),
        ..ConnectionLimits::default()
    };
    let server = start(ListenerKind::Smtp, limits(), connections).await;
    let mut replies = Vec::new();
    // Each connection may fail 3 times; a fresh one starts over, so only the rate per client
    // stops the guessing.
    for _ in 0..5 {
        let mut c = Client::connect(server.addr).await;
        c.reply().await;
        assert!(c.cmd("EHLO client.test").await.starts_with("250"));
        let mut tls = starttls(c).await;
        for guess in 0..3 {
            let r = tls
                .cmd(&format!(
                    "AUTH PLAIN {}",
                    plain("user@example.com", &format!("g{guess}"))
                ))
                .await;
            replies.push(r);
        }
    }
    assert_eq!(count(&replies, "535 5.7.8"), 7, "{replies:#?}");
    assert_eq!(
        count(
            &replies,
            "450 4.7.1 Error: too many AUTH commands from 127.0.0.1\r\n"
        ),
        8,
        "{replies:#?}"
    );
    let warned = server
        .log
        .lines()
        .iter()
        .filter(|l| l.contains("warning: AUTH command rate limit exceeded from unknown[127.0.0.1]"))
        .count();
    assert_eq!(warned, 8);
}

fn plain(user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
}

struct TlsClient {
    io: BufReader<tokio_rustls::client::TlsStream<TcpStream>>,
}

impl TlsClient {
    async fn cmd(&mut self, line: &str) -> String {
        let _ = self
            .io
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await;
        let mut all = String::new();
        loop {
            let mut l = String::new();
            match self.io.read_line(&mut l).await {
                Ok(0) | Err(_) => return all,
                Ok(_) => {}
            }
            all.push_str(&l);
            if l.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }
}

async fn starttls(mut c: Client) -> TlsClient {
    assert_eq!(c.cmd("STARTTLS").await, "220 2.0.0 Ready to start TLS\r\n");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(AnyCert))
    .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, c.io.into_inner())
        .await
        .unwrap();
    let mut t = TlsClient {
        io: BufReader::new(tls),
    };
    assert!(t.cmd("EHLO client.test").await.contains("AUTH"));
    t
}

/// The test trusts the box's self-signed certificate: what is tested is AUTH, not PKI.
#[derive(Debug)]
struct AnyCert;

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
