//! "Mail loops back to myself": the delivery client refuses to hand mail to this box itself,
//! found either by the next hop's address being one of this box's listeners (no connection is
//! made) or by the server greeting / answering EHLO with this box's own hostname. Both bounce
//! every recipient with 5.4.6, as Postfix does. Real sockets on 127.0.0.1, in-test servers.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use postern::delivery::{Client, ClientSettings, Dns, DnsError, MxAnswer};
use postern::mail::Transport;
use postern::mail::{Envelope, QueueId};
use postern::queue::{Attempt, BodyBytes, DeliveryRequest, RcptResult};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

mod common;

use common::fixtures::{self, ARRIVAL};

const ME: &str = "gw.postern.test";

#[derive(Default)]
struct FakeDns {
    mx: HashMap<String, Vec<(u16, String)>>,
    a: HashMap<String, Vec<IpAddr>>,
}

impl Dns for FakeDns {
    async fn mx(&self, name: &str) -> Result<MxAnswer, DnsError> {
        Ok(match self.mx.get(name) {
            Some(r) => MxAnswer::Records(r.clone()),
            None => MxAnswer::NoRecords,
        })
    }
    async fn ips(&self, name: &str) -> Result<Vec<IpAddr>, DnsError> {
        self.a.get(name).cloned().ok_or(DnsError::NotFound)
    }
}

fn settings(own_listeners: Vec<SocketAddr>) -> ClientSettings {
    let mut s = ClientSettings::new(ME);
    s.own_listeners = own_listeners;
    // A broken test server should fail the test in seconds, not in RFC 5321's minutes.
    for t in [
        &mut s.timeouts.connect,
        &mut s.timeouts.greeting,
        &mut s.timeouts.helo,
        &mut s.timeouts.mail,
        &mut s.timeouts.rcpt,
        &mut s.timeouts.data_init,
        &mut s.timeouts.data_done,
        &mut s.timeouts.quit,
    ] {
        *t = Duration::from_secs(10);
    }
    s
}

fn envelope(hop: &Transport, rcpts: &[&str]) -> Envelope {
    fixtures::envelope(
        "alice@postern.test",
        fixtures::recipients(rcpts, hop),
        ARRIVAL,
    )
}

async fn deliver(client: &Client<FakeDns>, hop: &str, rcpts: &[&str]) -> Attempt {
    let hop: Transport = hop.parse().unwrap();
    let env = envelope(&hop, rcpts);
    let idx: Vec<usize> = (0..rcpts.len()).collect();
    client
        .deliver(DeliveryRequest {
            qid: QueueId::new(1_795_000_000_000, 1),
            envelope: &env,
            recipients: &idx,
            next_hop: &hop,
            body: &BodyBytes(b"Subject: hello\r\n\r\nhi\r\n"),
        })
        .await
}

/// A one-connection server that greets with `greeting` and answers EHLO/LHLO with `hello`
/// (full reply lines), accepts everything else, and returns the commands it was sent.
async fn server(greeting: &str, hello: &str) -> (u16, JoinHandle<Vec<String>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let (greeting, hello) = (greeting.to_string(), hello.to_string());
    let h = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let (r, mut w) = s.into_split();
        let mut r = BufReader::new(r);
        let mut seen = Vec::new();
        let mut rcpts = 0;
        w.write_all(greeting.as_bytes()).await.unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                break;
            }
            let cmd = line.trim_end().to_string();
            let verb = cmd.get(..4).unwrap_or("").to_ascii_uppercase();
            seen.push(cmd);
            let reply: String = match verb.as_str() {
                "EHLO" | "LHLO" | "HELO" => hello.clone(),
                "RCPT" => {
                    rcpts += 1;
                    "250 2.1.5 ok\r\n".into()
                }
                "DATA" => {
                    w.write_all(b"354 go ahead\r\n").await.unwrap();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 || line == ".\r\n" {
                            break;
                        }
                    }
                    let lmtp = seen.iter().any(|c| c.starts_with("LHLO"));
                    "250 2.0.0 queued\r\n".repeat(if lmtp { rcpts } else { 1 })
                }
                "QUIT" => {
                    let _ = w.write_all(b"221 2.0.0 bye\r\n").await;
                    break;
                }
                _ => "250 2.0.0 ok\r\n".into(),
            };
            w.write_all(reply.as_bytes()).await.unwrap();
        }
        seen
    });
    (port, h)
}

fn assert_loops(a: &Attempt, host: &str, n: usize) {
    assert_eq!(a.report.results.len(), n, "{a:?}");
    for (_, r) in &a.report.results {
        match r {
            RcptResult::Bounced {
                status, diagnostic, ..
            } => {
                assert_eq!(status.to_string(), "5.4.6", "{a:?}");
                assert_eq!(
                    diagnostic,
                    &format!("X-Postern; mail for {host} loops back to myself")
                );
            }
            other => panic!("expected a 5.4.6 bounce, got {other:?}"),
        }
    }
    assert!(
        !a.report.destination_failed,
        "a loop is not a dead destination"
    );
}

#[tokio::test]
async fn a_server_greeting_with_my_own_hostname_bounces_5_4_6() {
    let (port, srv) = server(&format!("220 {ME} ESMTP\r\n"), "250 ok\r\n").await;
    let client = Client::new(settings(Vec::new()), FakeDns::default());
    let a = deliver(
        &client,
        &format!("smtp:[127.0.0.1]:{port}"),
        &["bob@example.test", "carol@example.test"],
    )
    .await;
    assert_loops(&a, "127.0.0.1", 2);
    let seen = srv.await.unwrap();
    assert!(
        !seen.iter().any(|c| c.starts_with("MAIL")),
        "no mail may be sent to myself: {seen:?}"
    );
}

#[tokio::test]
async fn an_ehlo_reply_with_my_own_hostname_bounces_5_4_6_and_sends_no_mail() {
    // Case and a trailing dot do not hide the name.
    let (port, srv) = server(
        "220 relay.example.test ESMTP\r\n",
        "250-GW.Postern.Test. hello\r\n250 PIPELINING\r\n",
    )
    .await;
    let client = Client::new(settings(Vec::new()), FakeDns::default());
    let a = deliver(
        &client,
        &format!("smtp:[127.0.0.1]:{port}"),
        &["bob@example.test"],
    )
    .await;
    assert_loops(&a, "127.0.0.1", 1);
    let seen = srv.await.unwrap();
    assert_eq!(
        seen.first().map(String::as_str),
        Some("EHLO gw.postern.test")
    );
    assert!(!seen.iter().any(|c| c.starts_with("MAIL")), "{seen:?}");
    assert_eq!(client.idle_connections(), 0);
}

#[tokio::test]
async fn a_server_with_another_name_gets_the_mail() {
    let (port, srv) = server(
        "220 relay.example.test ESMTP\r\n",
        "250-relay.example.test\r\n250 8BITMIME\r\n",
    )
    .await;
    let client = Client::new(settings(Vec::new()), FakeDns::default());
    let a = deliver(
        &client,
        &format!("smtp:[127.0.0.1]:{port}"),
        &["bob@example.test"],
    )
    .await;
    assert!(
        matches!(
            a.report.results.as_slice(),
            [(0, RcptResult::Delivered { .. })]
        ),
        "{a:?}"
    );
    drop(client);
    let seen = srv.await.unwrap();
    assert!(
        seen.iter()
            .any(|c| c.starts_with("MAIL FROM:<alice@postern.test>"))
    );
}

/// An LMTP server on this same host (Dovecot, a mailbox server) rightly shares the hostname;
/// Postfix skips the name check for LMTP, and so does Postern.
#[tokio::test]
async fn an_lmtp_server_sharing_my_hostname_is_not_a_loop() {
    let (port, srv) = server(
        &format!("220 {ME} LMTP ready\r\n"),
        &format!("250-{ME}\r\n250 PIPELINING\r\n"),
    )
    .await;
    let client = Client::new(settings(Vec::new()), FakeDns::default());
    let a = deliver(
        &client,
        &format!("lmtp:[127.0.0.1]:{port}"),
        &["bob@example.test", "carol@example.test"],
    )
    .await;
    assert!(
        a.report
            .results
            .iter()
            .all(|(_, r)| matches!(r, RcptResult::Delivered { .. })),
        "{a:?}"
    );
    drop(client);
    srv.abort();
}

/// A listener that must see no connection; checked with a nonblocking accept.
fn own_listener(addr: &str) -> std::net::TcpListener {
    let l = std::net::TcpListener::bind(addr).unwrap();
    l.set_nonblocking(true).unwrap();
    l
}

fn assert_no_connection(l: &std::net::TcpListener) {
    // Give a stray connect time to land in the accept queue.
    std::thread::sleep(Duration::from_millis(100));
    match l.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("this box's own listener was connected to from {peer}"),
        Err(e) => panic!("accept: {e}"),
    }
}

#[tokio::test]
async fn a_next_hop_on_my_own_listener_bounces_without_connecting() {
    let l = own_listener("127.0.0.1:0");
    let me = l.local_addr().unwrap();
    let client = Client::new(settings(vec![me]), FakeDns::default());
    let a = deliver(
        &client,
        &format!("smtp:[127.0.0.1]:{}", me.port()),
        &["bob@example.test", "carol@example.test"],
    )
    .await;
    assert_loops(&a, "127.0.0.1", 2);
    assert_eq!(a.relay, None);
    assert_no_connection(&l);
}

#[tokio::test]
async fn a_wildcard_listener_covers_loopback_and_names_resolving_to_it() {
    let l = own_listener("0.0.0.0:0");
    let me = l.local_addr().unwrap();
    let dns = FakeDns {
        a: HashMap::from([(
            "mail.example.test".into(),
            vec!["127.0.0.1".parse().unwrap()],
        )]),
        ..FakeDns::default()
    };
    let client = Client::new(settings(vec![me]), dns);
    let a = deliver(
        &client,
        &format!("smtp:[mail.example.test]:{}", me.port()),
        &["bob@example.test"],
    )
    .await;
    assert_loops(&a, "mail.example.test", 1);
    assert_no_connection(&l);
}

/// Postfix's smtp_truncate_self: when this box is a lower-preference MX, the better MX hosts
/// are tried and this box and anything after it are not; when it is the best MX, the mail loops.
#[tokio::test]
async fn as_backup_mx_only_better_mx_hosts_are_tried() {
    let l = own_listener("127.0.0.1:0");
    let me = l.local_addr().unwrap();
    // 127.0.0.1:<me.port()> is the only listener; the "primary" on 127.0.0.2 is down.
    let dns = |primary_pref: u16| FakeDns {
        mx: HashMap::from([(
            "example.test".into(),
            vec![
                (primary_pref, "primary.example.test".into()),
                (20, "gw.example.test".into()),
                (30, "tertiary.example.test".into()),
            ],
        )]),
        a: HashMap::from([
            (
                "primary.example.test".into(),
                vec!["127.0.0.2".parse().unwrap()],
            ),
            ("gw.example.test".into(), vec!["127.0.0.1".parse().unwrap()]),
            (
                "tertiary.example.test".into(),
                vec!["127.0.0.3".parse().unwrap()],
            ),
        ]),
    };
    let hop = format!("smtp:example.test:{}", me.port());

    let client = Client::new(settings(vec![me]), dns(10));
    let a = deliver(&client, &hop, &["bob@example.test"]).await;
    match a.report.results.as_slice() {
        [(0, RcptResult::Deferred { reason, .. })] => {
            assert!(
                reason.contains("127.0.0.2"),
                "the primary was tried: {reason}"
            );
        }
        other => panic!("expected a deferral after the primary failed, got {other:?}"),
    }
    assert!(a.report.destination_failed);
    assert_no_connection(&l);

    // This box is the best MX (preference 20 beats 30 when the primary is ranked 40).
    let client = Client::new(settings(vec![me]), dns(40));
    let a = deliver(&client, &hop, &["bob@example.test"]).await;
    assert_loops(&a, "example.test", 1);
    assert_no_connection(&l);
}
