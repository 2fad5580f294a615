//! The SMTP listeners over real sockets on 127.0.0.1: STARTTLS + AUTH on submission, implicit TLS,
//! wrong passwords, connection limits, and what lands in the store.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postern::config::network::NetworkList;
use postern::inbound::tls::{LiveCert, TlsIdentity, load_certs, self_signed, server_config_with};
use postern::inbound::{
    Authenticator, InboundContext, IncomingMessage, Limits, ListenerKind, MessageStore,
    RecipientCheck, serve,
};
use postern::log::LogSink;
use postern::mail::Reply;
use postern::mail::Transport;
use postern::mail::{Envelope, QueueId};
use postern::policy::dns::{Dns, Lookup, Resolve, Rtype};
use postern::policy::{ConnectionLimits, Policy};
use postern::smtp::{RcptQuery, RcptTarget};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

mod common;

struct Router;

impl RecipientCheck for Router {
    async fn check(&self, q: &RcptQuery) -> Result<Vec<RcptTarget>, Reply> {
        if q.address.ends_with("@example.com") {
            let next_hop: Transport = "lmtp:[127.0.0.1]:7025".parse().unwrap();
            Ok(vec![RcptTarget {
                address: q.address.clone(),
                next_hop,
            }])
        } else {
            Err(Reply::new(
                554,
                [5, 7, 1],
                format!("<{}>: Relay access denied", q.address),
            ))
        }
    }
}

/// Committed messages: envelope and body.
type Stored = Vec<(Envelope, Vec<u8>)>;

#[derive(Default, Clone)]
struct Spool(Arc<Mutex<Stored>>);

struct Incoming {
    spool: Spool,
    envelope: Envelope,
    body: Vec<u8>,
}

impl MessageStore for Spool {
    type Incoming = Incoming;
    async fn begin(&self, envelope: Envelope) -> Result<Incoming, Reply> {
        Ok(Incoming {
            spool: self.clone(),
            envelope,
            body: Vec::new(),
        })
    }
}

impl IncomingMessage for Incoming {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), Reply> {
        self.body.extend_from_slice(chunk);
        Ok(())
    }
    async fn commit(self) -> Result<QueueId, Reply> {
        let mut v = self.spool.0.lock().unwrap();
        v.push((self.envelope, self.body));
        Ok(QueueId(v.len() as u64))
    }
}

struct Directory;

impl Authenticator for Directory {
    async fn verify(&self, user: &str, password: &str) -> bool {
        let stored = "{SSHA512}aCu7JRc+kLsuEmFs1zTY+AiP7DSGnjjG+dH28Dp+E5usqoAixeTPihKqZmkWal4mUfp63tqvCAkFV1LKTDFH6XNhbHRzYWx0";
        user == "user@example.com"
            && postern::directory::password::verify(password, stored) == Ok(true)
    }
}

struct Server {
    addr: SocketAddr,
    spool: Spool,
    identity: TlsIdentity,
    /// What the listeners present (`postern tls install` replaces it).
    live: Arc<LiveCert>,
}

async fn start(kind: ListenerKind, limits: Limits) -> Server {
    start_with(kind, limits, ConnectionLimits::default()).await
}

async fn start_with(kind: ListenerKind, limits: Limits, connections: ConnectionLimits) -> Server {
    start_with_policy(kind, limits, Policy::new(connections), LogSink::memory()).await
}

async fn start_with_policy(
    kind: ListenerKind,
    limits: Limits,
    policy: Arc<Policy>,
    log: LogSink,
) -> Server {
    let identity = self_signed("localhost").unwrap();
    let live = LiveCert::new(&identity).unwrap();
    let spool = Spool::default();
    let ctx = Arc::new(InboundContext {
        hostname: "mx.test".into(),
        limits: limits.into(),
        tls: Some(server_config_with(live.clone()).unwrap()),
        policy,
        recipients: Router,
        store: spool.clone(),
        auth: Some(Directory),
        log,
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(kind, listener, ctx));
    Server {
        addr,
        spool,
        identity,
        live,
    }
}

fn fast_limits() -> Limits {
    Limits {
        auth_failure_delay: Duration::from_millis(100),
        ..Limits::default()
    }
}

/// A line-oriented SMTP client over any stream.
struct Client<S> {
    io: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    /// Reads one whole reply (all its lines).
    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = self.io.read_line(&mut line).await.unwrap();
            if n == 0 {
                return all;
            }
            all.push_str(&line);
            if line.as_bytes().get(3) == Some(&b' ') {
                return all;
            }
        }
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.io
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
        self.reply().await
    }
}

fn tls_connector(identity: &TlsIdentity) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in load_certs(&identity.cert_pem).unwrap() {
        roots.add(cert).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn starttls(server: &Server) -> Client<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut c = Client {
        io: BufReader::new(tcp),
    };
    assert!(c.reply().await.starts_with("220 mx.test ESMTP"));
    let ehlo = c.cmd("EHLO client.test").await;
    assert!(ehlo.contains("250-STARTTLS"), "{ehlo}");
    assert!(!ehlo.contains("AUTH"), "AUTH offered before TLS: {ehlo}");
    assert_eq!(
        c.cmd("AUTH PLAIN AHVzZXJAZXhhbXBsZS5jb20Ac2VjcmV0").await,
        "503 5.5.1 Error: authentication not enabled\r\n"
    );
    assert_eq!(c.cmd("STARTTLS").await, "220 2.0.0 Ready to start TLS\r\n");
    let tcp = c.io.into_inner();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tls_connector(&server.identity)
        .connect(name, tcp)
        .await
        .unwrap();
    Client {
        io: BufReader::new(tls),
    }
}

/// STARTTLS trusting only `trust`'s certificate: whether the handshake went through.
async fn handshake_trusting(server: &Server, trust: &TlsIdentity) -> std::io::Result<()> {
    let tcp = TcpStream::connect(server.addr).await?;
    let mut c = Client {
        io: BufReader::new(tcp),
    };
    c.reply().await;
    c.cmd("EHLO client.test").await;
    assert_eq!(c.cmd("STARTTLS").await, "220 2.0.0 Ready to start TLS\r\n");
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tls_connector(trust)
        .connect(name, c.io.into_inner())
        .await?;
    let mut c = Client {
        io: BufReader::new(tls),
    };
    assert!(c.cmd("EHLO client.test").await.starts_with("250-mx.test"));
    Ok(())
}

/// `postern tls install` on a running box: the next handshake presents the new certificate,
/// a session under way goes on with the old one, and a key of another certificate is refused
/// without changing what is presented.
#[tokio::test]
async fn a_replaced_certificate_is_presented_from_the_next_handshake() {
    let server = start(ListenerKind::Submission, fast_limits()).await;
    let mut under_way = starttls(&server).await;
    let new = self_signed("localhost").unwrap();
    server.live.replace(&new).unwrap();
    assert!(
        under_way
            .cmd("EHLO client.test")
            .await
            .starts_with("250-mx.test")
    );
    assert!(handshake_trusting(&server, &server.identity).await.is_err());
    handshake_trusting(&server, &new).await.unwrap();

    let other = self_signed("localhost").unwrap();
    let mismatched = TlsIdentity {
        cert_pem: other.cert_pem,
        key_pem: new.key_pem.clone(),
    };
    assert!(server.live.replace(&mismatched).is_err());
    handshake_trusting(&server, &new).await.unwrap();
    assert_eq!(under_way.cmd("QUIT").await, "221 2.0.0 Bye\r\n");
}

#[tokio::test]
async fn submission_with_starttls_and_auth_plain_is_queued() {
    let server = start(ListenerKind::Submission, fast_limits()).await;
    let mut c = starttls(&server).await;
    let ehlo = c.cmd("EHLO client.test").await;
    assert_eq!(
        ehlo,
        "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-AUTH PLAIN LOGIN\r\n\
         250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
    );
    assert_eq!(
        c.cmd("MAIL FROM:<user@example.com>").await,
        "530 5.7.0 Authentication required\r\n"
    );
    assert_eq!(
        c.cmd("AUTH PLAIN AHVzZXJAZXhhbXBsZS5jb20Ac2VjcmV0").await,
        "235 2.7.0 Authentication successful\r\n"
    );
    assert_eq!(
        c.cmd("MAIL FROM:<user@example.com>").await,
        "250 2.1.0 Ok\r\n"
    );
    assert_eq!(
        c.cmd("RCPT TO:<friend@example.com>").await,
        "250 2.1.5 Ok\r\n"
    );
    assert_eq!(
        c.cmd("RCPT TO:<someone@elsewhere.test>").await,
        "554 5.7.1 <someone@elsewhere.test>: Relay access denied\r\n"
    );
    assert!(c.cmd("DATA").await.starts_with("354 "));
    let r = c.cmd("Subject: hello\r\n\r\nHi.\r\n..\r\n.").await;
    assert_eq!(r, "250 2.0.0 Ok: queued as 0000000000001\r\n");
    assert_eq!(c.cmd("QUIT").await, "221 2.0.0 Bye\r\n");

    let stored = server.spool.0.lock().unwrap();
    let (env, body) = &stored[0];
    assert_eq!(env.recipients.len(), 1);
    assert_eq!(env.client.auth.as_deref(), Some("user@example.com"));
    assert_eq!(env.client.helo, "client.test");
    assert!(env.arrival > 1_700_000_000);
    let body = String::from_utf8_lossy(body);
    assert!(
        body.starts_with(
            "Received: from client.test (unknown [127.0.0.1])\r\n\t(using TLSv1.3 with cipher TLS_"
        ),
        "{body}"
    );
    assert!(
        body.contains("(Authenticated sender: user@example.com)\r\n"),
        "{body}"
    );
    assert!(body.contains("by mx.test (Postern) with ESMTPSA\r\n\tfor <friend@example.com>; "));
    assert!(
        body.ends_with("Subject: hello\r\n\r\nHi.\r\n.\r\n"),
        "{body}"
    );
}

#[tokio::test]
async fn wrong_password_gets_535_after_a_growing_delay() {
    let server = start(ListenerKind::Submission, fast_limits()).await;
    let mut c = starttls(&server).await;
    c.cmd("EHLO client.test").await;
    let t = Instant::now();
    assert_eq!(
        c.cmd("AUTH PLAIN AHVzZXJAZXhhbXBsZS5jb20Ad3Jvbmc=").await,
        "535 5.7.8 Error: authentication failed: authentication failure\r\n"
    );
    let first = t.elapsed();
    assert!(first >= Duration::from_millis(100), "{first:?}");
    let t = Instant::now();
    assert_eq!(c.cmd("AUTH LOGIN").await, "334 VXNlcm5hbWU6\r\n");
    assert_eq!(
        c.cmd("dXNlckBleGFtcGxlLmNvbQ==").await,
        "334 UGFzc3dvcmQ6\r\n"
    );
    assert!(c.cmd("bm9wZQ==").await.starts_with("535 5.7.8"));
    assert!(t.elapsed() >= Duration::from_millis(200));
    let r = c.cmd("AUTH PLAIN AHVzZXJAZXhhbXBsZS5jb20Ad3Jvbmc=").await;
    assert!(r.starts_with("535 5.7.8"), "{r}");
    assert_eq!(
        c.reply().await,
        "421 4.7.0 mx.test Error: too many failed authentication attempts\r\n"
    );
    assert!(server.spool.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn port_465_speaks_tls_from_the_first_byte() {
    let server = start(ListenerKind::Smtps, fast_limits()).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tls_connector(&server.identity)
        .connect(name, tcp)
        .await
        .unwrap();
    let mut c = Client {
        io: BufReader::new(tls),
    };
    assert_eq!(c.reply().await, "220 mx.test ESMTP Postern\r\n");
    let ehlo = c.cmd("EHLO client.test").await;
    assert!(
        ehlo.contains("250-AUTH PLAIN LOGIN") && !ehlo.contains("STARTTLS"),
        "{ehlo}"
    );
    assert_eq!(
        c.cmd("MAIL FROM:<user@example.com>").await,
        "530 5.7.0 Authentication required\r\n"
    );
    assert!(
        c.cmd("AUTH PLAIN AHVzZXJAZXhhbXBsZS5jb20Ac2VjcmV0")
            .await
            .starts_with("235")
    );
    c.cmd("MAIL FROM:<user@example.com>").await;
    c.cmd("RCPT TO:<a@example.com>").await;
    c.cmd("DATA").await;
    assert!(c.cmd("x\r\n.").await.starts_with("250 2.0.0 Ok: queued as"));
    assert_eq!(server.spool.0.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn port_25_takes_mail_without_auth_and_refuses_smuggling() {
    let server = start(ListenerKind::Smtp, fast_limits()).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut c = Client {
        io: BufReader::new(tcp),
    };
    c.reply().await;
    c.cmd("EHLO client.test").await;
    c.cmd("MAIL FROM:<a@b.test>").await;
    assert_eq!(c.cmd("RCPT TO:<x@example.com>").await, "250 2.1.5 Ok\r\n");
    assert!(c.cmd("DATA").await.starts_with("354"));
    let r = c
        .cmd("a\r\n\n.\n\r\nMAIL FROM:<evil@b.test>\r\nRCPT TO:<x@example.com>\r\nDATA\r\nforged\r\n.")
        .await;
    assert_eq!(r, "550 5.5.2 mx.test Error: bare <LF> received\r\n");
    // The server hung up.
    assert_eq!(c.reply().await, "");
    assert!(server.spool.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn connections_per_client_are_limited() {
    let connections = ConnectionLimits {
        client_connection_limit: 2,
        // Loopback is in mynetworks by default, and mynetworks is exempt, as in Postfix.
        client_limit_exceptions: NetworkList::default(),
        ..ConnectionLimits::default()
    };
    let server = start_with(ListenerKind::Smtp, fast_limits(), connections).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = Client {
            io: BufReader::new(TcpStream::connect(server.addr).await.unwrap()),
        };
        assert!(c.reply().await.starts_with("220"));
        held.push(c);
    }
    let mut third = Client {
        io: BufReader::new(TcpStream::connect(server.addr).await.unwrap()),
    };
    assert_eq!(
        third.reply().await,
        "421 4.7.0 mx.test Error: too many connections from 127.0.0.1\r\n"
    );
    // A slot comes back when a client leaves (once the server has seen it go).
    let mut gone = held.pop().unwrap();
    gone.cmd("QUIT").await;
    drop(gone);
    let started = std::time::Instant::now();
    loop {
        let mut again = Client {
            io: BufReader::new(TcpStream::connect(server.addr).await.unwrap()),
        };
        let reply = again.reply().await;
        if reply.starts_with("220") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{reply}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn mynetworks_clients_are_exempt_from_the_per_client_limit() {
    let connections = ConnectionLimits {
        client_connection_limit: 1,
        ..ConnectionLimits::default()
    };
    let server = start_with(ListenerKind::Smtp, fast_limits(), connections).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = Client {
            io: BufReader::new(TcpStream::connect(server.addr).await.unwrap()),
        };
        assert!(c.reply().await.starts_with("220"));
        held.push(c);
    }
}

#[tokio::test]
async fn idle_clients_are_dropped_with_421() {
    let limits = Limits {
        command_timeout: Duration::from_millis(200),
        ..fast_limits()
    };
    let server = start(ListenerKind::Smtp, limits).await;
    let mut c = Client {
        io: BufReader::new(TcpStream::connect(server.addr).await.unwrap()),
    };
    c.reply().await;
    assert_eq!(
        c.reply().await,
        "421 4.4.2 mx.test Error: timeout exceeded\r\n"
    );
    // And the session is over: the server closed the connection.
    let mut rest = String::new();
    let read = c.io.read_line(&mut rest).await.unwrap();
    assert_eq!((read, rest.as_str()), (0, ""));
}

/// A resolver that answers nothing until the test lets it: a DNS server that has gone away.
struct StalledDns(Arc<tokio::sync::Notify>);

impl Resolve for StalledDns {
    fn query<'a>(&'a self, _name: &'a str, _rtype: Rtype) -> Lookup<'a> {
        let released = self.0.clone();
        Box::pin(async move {
            released.notified().await;
            Ok(Vec::new())
        })
    }
}

#[tokio::test]
async fn the_greeting_does_not_wait_for_the_client_name() {
    let release = Arc::new(tokio::sync::Notify::new());
    let dns = Dns::new(
        Arc::new(StalledDns(release.clone())),
        Duration::from_secs(3600),
    );
    let log = LogSink::memory();
    let policy = Policy::with_dns(ConnectionLimits::default(), dns, "mx.test", log.clone());
    let server = start_with_policy(ListenerKind::Smtp, fast_limits(), policy, log.clone()).await;
    let mut c = Client {
        io: BufReader::new(TcpStream::connect(server.addr).await.unwrap()),
    };
    // Not a timing assertion: with the lookup still stalled, a greeting held for it never comes.
    let greeting = tokio::time::timeout(Duration::from_secs(30), c.reply()).await;
    assert_eq!(
        greeting.expect("the greeting waited for the client's name"),
        "220 mx.test ESMTP Postern\r\n"
    );
    assert!(c.cmd("EHLO client.test").await.starts_with("250-mx.test"));
    // The PTR lookup comes back with nothing: the client is `unknown`, and the connect line is
    // still the first of the connection's lines.
    release.notify_waiters();
    release.notify_one();
    assert!(c.cmd("QUIT").await.starts_with("221"));
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = log.lines();
        if lines.iter().any(|l| l.contains("disconnect from")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let smtpd: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("connect from"))
        .collect();
    assert_eq!(smtpd.len(), 2, "{lines:?}");
    assert!(
        smtpd[0].contains("connect from unknown[127.0.0.1]"),
        "{lines:?}"
    );
    assert!(
        smtpd[1].contains("disconnect from unknown[127.0.0.1]"),
        "{lines:?}"
    );
}

/// Runs swaks (a real, independent SMTP client) against the listener; `None` when swaks is not
/// installed (`apt-get install swaks libnet-ssleay-perl libio-socket-ssl-perl libauthen-sasl-perl`).
async fn swaks(args: Vec<String>) -> Option<(bool, String)> {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("swaks")
            .args(&args)
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        Some((out.status.success(), text))
    })
    .await
    .unwrap()
}

fn swaks_args(server: &Server, extra: &[&str]) -> Vec<String> {
    let port = server.addr.port().to_string();
    let mut args: Vec<String> = [
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--ehlo",
        "client.test",
        "--from",
        "user@example.com",
        "--to",
        "friend@example.com",
        "--timeout",
        "10",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_submits_with_starttls_and_auth_plain() {
    let server = start(ListenerKind::Submission, fast_limits()).await;
    let ok = [
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        "user@example.com",
        "--auth-password",
        "secret",
    ];
    let Some((success, out)) = swaks(swaks_args(&server, &ok)).await else {
        common::peers::missing("swaks", "swaks");
        return;
    };
    assert!(success, "{out}");
    assert!(
        out.contains("<~  250 2.0.0 Ok: queued as 0000000000001"),
        "{out}"
    );
    assert_eq!(server.spool.0.lock().unwrap().len(), 1);

    let wrong = [
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        "user@example.com",
        "--auth-password",
        "guess",
    ];
    let (success, out) = swaks(swaks_args(&server, &wrong)).await.unwrap();
    assert!(!success, "{out}");
    assert!(
        out.contains("<~* 535 5.7.8 Error: authentication failed"),
        "{out}"
    );
    assert_eq!(server.spool.0.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_submits_over_implicit_tls_on_465() {
    let server = start(ListenerKind::Smtps, fast_limits()).await;
    let args = [
        "--tls-on-connect",
        "--auth",
        "LOGIN",
        "--auth-user",
        "user@example.com",
        "--auth-password",
        "secret",
    ];
    let Some((success, out)) = swaks(swaks_args(&server, &args)).await else {
        common::peers::missing("swaks", "swaks");
        return;
    };
    assert!(success, "{out}");
    assert!(out.contains("250 2.0.0 Ok: queued as"), "{out}");
    let stored = server.spool.0.lock().unwrap();
    let body = String::from_utf8_lossy(&stored[0].1);
    assert!(body.contains("with ESMTPSA"), "{body}");
}

#[tokio::test]
async fn lmtp_listener_answers_per_recipient() {
    let server = start(ListenerKind::Lmtp, fast_limits()).await;
    let mut c = Client {
        io: BufReader::new(TcpStream::connect(server.addr).await.unwrap()),
    };
    assert_eq!(c.reply().await, "220 mx.test LMTP Postern\r\n");
    let lhlo = c.cmd("LHLO client.test").await;
    assert!(
        !lhlo.contains("STARTTLS") && !lhlo.contains("AUTH"),
        "{lhlo}"
    );
    c.cmd("MAIL FROM:<a@b.test>").await;
    c.cmd("RCPT TO:<x@example.com>").await;
    c.cmd("RCPT TO:<y@example.com>").await;
    assert!(c.cmd("DATA").await.starts_with("354"));
    assert_eq!(
        c.cmd("hi\r\n.").await,
        "250 2.0.0 <x@example.com> Ok: queued as 0000000000001\r\n"
    );
    assert_eq!(
        c.reply().await,
        "250 2.0.0 <y@example.com> Ok: queued as 0000000000001\r\n"
    );
    let stored = server.spool.0.lock().unwrap();
    assert!(String::from_utf8_lossy(&stored[0].1).contains("with LMTP"));
}
