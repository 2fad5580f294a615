//! Outbound STARTTLS against an in-process server (a few lines of SMTP over tokio-rustls with a
//! self-signed certificate), and the TLS policy against smtp-sink, which offers no STARTTLS.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use postern::delivery::{Client, ClientSettings, Dns, DnsError, MxAnswer, TlsPolicy};
use postern::mail::Transport;
use postern::mail::{Envelope, QueueId};
use postern::queue::{BodyBytes, DeliveryRequest, RcptResult};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

mod common;

use common::fixtures::{self, ARRIVAL};

struct NoDns;

impl Dns for NoDns {
    async fn mx(&self, _: &str) -> Result<MxAnswer, DnsError> {
        Err(DnsError::Temporary("no DNS here".into()))
    }
    async fn ips(&self, _: &str) -> Result<Vec<IpAddr>, DnsError> {
        Err(DnsError::Temporary("no DNS here".into()))
    }
}

fn acceptor() -> TlsAcceptor {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

/// After EHLO: answer the pipelined transaction; returns the message data it received.
async fn transaction<S: AsyncRead + AsyncWrite + Unpin>(mut s: BufReader<S>, tls: bool) -> String {
    let mut line = String::new();
    let mut data = String::new();
    let mut in_data = false;
    loop {
        line.clear();
        if s.read_line(&mut line).await.unwrap_or(0) == 0 {
            return data;
        }
        if in_data {
            if line == ".\r\n" {
                in_data = false;
                let reply = if tls {
                    "250 2.0.0 Ok: queued over TLS\r\n"
                } else {
                    "250 2.0.0 Ok: queued in clear\r\n"
                };
                s.write_all(reply.as_bytes()).await.unwrap();
            } else {
                data.push_str(&line);
            }
            continue;
        }
        let cmd = line.to_ascii_uppercase();
        let reply = if cmd.starts_with("EHLO") {
            "250-test.example\r\n250 PIPELINING\r\n"
        } else if cmd.starts_with("DATA") {
            in_data = true;
            "354 go ahead\r\n"
        } else if cmd.starts_with("QUIT") {
            let _ = s.write_all(b"221 bye\r\n").await;
            return data;
        } else {
            "250 2.0.0 Ok\r\n"
        };
        s.write_all(reply.as_bytes()).await.unwrap();
    }
}

/// A server offering STARTTLS; returns the port and a handle giving (was TLS used, data).
async fn starttls_server() -> (u16, tokio::task::JoinHandle<(bool, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = acceptor();
    let h = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut r = BufReader::new(tcp);
        r.get_mut()
            .write_all(b"220 test.example ESMTP\r\n")
            .await
            .unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                return (false, String::new());
            }
            let cmd = line.to_ascii_uppercase();
            if cmd.starts_with("EHLO") {
                r.get_mut()
                    .write_all(b"250-test.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
                    .await
                    .unwrap();
            } else if cmd.starts_with("STARTTLS") {
                r.get_mut()
                    .write_all(b"220 2.0.0 Ready to start TLS\r\n")
                    .await
                    .unwrap();
                let tcp = r.into_inner();
                return match acceptor.accept(tcp).await {
                    Ok(tls) => (true, transaction(BufReader::new(tls), true).await),
                    Err(_) => (false, String::new()),
                };
            } else {
                // The client went on in clear: this line was its MAIL FROM.
                r.get_mut().write_all(b"250 2.0.0 Ok\r\n").await.unwrap();
                return (false, transaction(r, false).await);
            }
        }
    });
    (port, h)
}

fn envelope(hop: &Transport) -> Envelope {
    let to = vec![fixtures::recipient("bob@example.test", hop)];
    fixtures::envelope("alice@postern.test", to, ARRIVAL)
}

async fn deliver(policy: TlsPolicy, port: u16) -> postern::queue::Attempt {
    let hop: Transport = format!("smtp:[127.0.0.1]:{port}").parse().unwrap();
    let env = envelope(&hop);
    let mut settings = ClientSettings::new("gw.postern.test");
    settings.tls_policy = policy;
    settings.timeouts.connect = Duration::from_secs(5);
    // A broken test server should fail the test in seconds, not in RFC 5321's minutes.
    for t in [
        &mut settings.timeouts.greeting,
        &mut settings.timeouts.helo,
        &mut settings.timeouts.mail,
        &mut settings.timeouts.rcpt,
        &mut settings.timeouts.data_init,
        &mut settings.timeouts.data_done,
    ] {
        *t = Duration::from_secs(10);
    }
    let client = Client::new(settings, NoDns);
    client
        .deliver(DeliveryRequest {
            qid: QueueId::new(1_795_000_000_000, 1),
            envelope: &env,
            recipients: &[0],
            next_hop: &hop,
            body: &BodyBytes(b"Subject: secret\r\n\r\nover TLS please\r\n"),
        })
        .await
}

#[tokio::test]
async fn opportunistic_starttls_encrypts_the_transaction() {
    let (port, server) = starttls_server().await;
    let a = deliver(TlsPolicy::May, port).await;
    match &a.report.results[0].1 {
        RcptResult::Delivered { reply, .. } => {
            assert_eq!(reply.to_string(), "250 2.0.0 Ok: queued over TLS")
        }
        other => panic!("{other:?}"),
    }
    let (tls, data) = server.await.unwrap();
    assert!(tls);
    assert!(data.contains("over TLS please"));
}

#[tokio::test]
async fn tls_none_stays_in_clear() {
    let (port, server) = starttls_server().await;
    let a = deliver(TlsPolicy::None, port).await;
    assert!(
        matches!(&a.report.results[0].1, RcptResult::Delivered { reply, .. } if reply.to_string().ends_with("in clear")),
        "{a:?}"
    );
    let (tls, _) = server.await.unwrap();
    assert!(!tls);
}

#[tokio::test]
async fn verify_refuses_an_untrusted_certificate_and_defers() {
    let (port, _server) = starttls_server().await;
    let a = deliver(TlsPolicy::Verify, port).await;
    match &a.report.results[0].1 {
        RcptResult::Deferred { status, reason } => {
            assert_eq!(status.to_string(), "4.7.5");
            assert!(
                reason.starts_with("Cannot start TLS: handshake failure"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn encrypt_defers_when_the_server_offers_no_starttls() {
    // A server that never offers STARTTLS.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        tcp.write_all(b"220 plain ESMTP\r\n").await.unwrap();
        transaction(BufReader::new(tcp), false).await
    });
    let a = deliver(TlsPolicy::Encrypt, port).await;
    match &a.report.results[0].1 {
        RcptResult::Deferred { status, reason } => {
            assert_eq!(status.to_string(), "4.7.4");
            assert_eq!(
                reason,
                "TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_failed_opportunistic_handshake_falls_back_to_clear_text() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        // First connection: STARTTLS accepted, then no TLS at all.
        let (tcp, _) = listener.accept().await.unwrap();
        let mut r = BufReader::new(tcp);
        r.get_mut()
            .write_all(b"220 broken ESMTP\r\n")
            .await
            .unwrap();
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        r.get_mut()
            .write_all(b"250-broken\r\n250 STARTTLS\r\n")
            .await
            .unwrap();
        line.clear();
        r.read_line(&mut line).await.unwrap();
        assert!(line.starts_with("STARTTLS"));
        r.get_mut()
            .write_all(b"220 go\r\nthis is not a TLS record at all\r\n")
            .await
            .unwrap();
        drop(r);
        // Second connection: the client comes back and does not ask for TLS.
        let (mut tcp, _) = listener.accept().await.unwrap();
        tcp.write_all(b"220 broken ESMTP\r\n").await.unwrap();
        transaction(BufReader::new(tcp), false).await
    });
    let a = deliver(TlsPolicy::May, port).await;
    assert!(
        matches!(&a.report.results[0].1, RcptResult::Delivered { reply, .. } if reply.to_string().ends_with("in clear")),
        "{a:?}"
    );
    assert!(server.await.unwrap().contains("over TLS please"));
}
