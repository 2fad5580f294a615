//! The delivery client over LMTP to a private Dovecot instance on 127.0.0.1: delivery into a
//! maildir, and the quota replies per recipient after DATA (`452 4.2.2` with
//! quota_full_tempfail, `552 5.2.2` without). Skips (saying so) only when Dovecot's LMTP server
//! is not installed, and fails then under CI=true.

use std::net::IpAddr;

use postern::delivery::{Client, ClientSettings, Dns, DnsError, MxAnswer};
use postern::mail::Transport;
use postern::mail::{Envelope, QueueId};
use postern::queue::{BodyBytes, DeliveryRequest, RcptResult};

mod common;

use common::dovecot::Dovecot;
use common::fixtures::{self, ARRIVAL};

struct NoDns;

impl Dns for NoDns {
    async fn mx(&self, _: &str) -> Result<MxAnswer, DnsError> {
        Err(DnsError::Temporary("no DNS in this test".into()))
    }
    async fn ips(&self, _: &str) -> Result<Vec<IpAddr>, DnsError> {
        Err(DnsError::Temporary("no DNS in this test".into()))
    }
}

fn envelope(hop: &Transport, rcpts: &[&str]) -> Envelope {
    fixtures::envelope(
        "alice@postern.test",
        fixtures::recipients(rcpts, hop),
        ARRIVAL,
    )
}

fn body() -> Vec<u8> {
    let mut b = b"From: alice@postern.test\r\nTo: bob@postern.test\r\nSubject: lmtp test\r\n\r\n\
.dot line\r\n"
        .to_vec();
    for i in 0..100 {
        b.extend_from_slice(
            format!("filler line {i:03} to pass a one kilobyte quota\r\n").as_bytes(),
        );
    }
    b
}

fn deliver(dc: &Dovecot, rcpts: &[&str]) -> postern::queue::Attempt {
    let hop: Transport = format!("lmtp:[127.0.0.1]:{}", dc.port).parse().unwrap();
    let env = envelope(&hop, rcpts);
    let client = Client::new(ClientSettings::new("gw.postern.test"), NoDns);
    let idx: Vec<usize> = (0..rcpts.len()).collect();
    let msg = body();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(client.deliver(DeliveryRequest {
            qid: QueueId::new(1_795_000_000_000, 1),
            envelope: &env,
            recipients: &idx,
            next_hop: &hop,
            body: &BodyBytes(&msg),
        }))
}

fn delivered_files(dc: &Dovecot, user: &str) -> Vec<Vec<u8>> {
    let new = dc.dir.join("mail").join(user).join("new");
    std::fs::read_dir(new)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn lmtp_delivers_into_the_mailbox() {
    let Some(dc) = Dovecot::start(false) else {
        return;
    };
    let a = deliver(&dc, &["bob"]);
    match &a.report.results[0].1 {
        RcptResult::Delivered { relay, reply } => {
            assert_eq!(relay, &format!("127.0.0.1[127.0.0.1]:{}", dc.port));
            assert!(reply.to_string().starts_with("250 2.0.0 <bob>"), "{reply}");
        }
        other => panic!("{other:?}"),
    }
    let files = delivered_files(&dc, "bob");
    assert_eq!(files.len(), 1);
    let text = String::from_utf8_lossy(&files[0]);
    assert!(text.contains("Subject: lmtp test"));
    assert!(
        text.contains("\n.dot line"),
        "dot-stuffing undone by the server"
    );
    assert!(text.contains("filler line 099"));
}

#[test]
fn quota_per_recipient_after_data_tempfail_defers_452_4_2_2() {
    let Some(dc) = Dovecot::start(true) else {
        return;
    };
    let a = deliver(&dc, &["bob", "full"]);
    assert!(
        matches!(a.report.results[0].1, RcptResult::Delivered { .. }),
        "{:?}",
        a.report
    );
    match &a.report.results[1].1 {
        RcptResult::Deferred { status, reason } => {
            assert_eq!(status.to_string(), "4.2.2");
            assert!(
                reason.contains("said: 452 4.2.2 <full> Quota exceeded"),
                "{reason}"
            );
            assert!(reason.ends_with("(in reply to end of DATA command)"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(delivered_files(&dc, "bob").len(), 1);
    assert!(delivered_files(&dc, "full").is_empty());
}

#[test]
fn quota_permanent_bounces_552_5_2_2() {
    let Some(dc) = Dovecot::start(false) else {
        return;
    };
    let a = deliver(&dc, &["full", "bob"]);
    match &a.report.results[0].1 {
        RcptResult::Bounced {
            status,
            diagnostic,
            remote_mta,
        } => {
            assert_eq!(status.to_string(), "5.2.2");
            assert!(
                diagnostic.starts_with("smtp; 552 5.2.2 <full> Quota exceeded"),
                "{diagnostic}"
            );
            assert_eq!(remote_mta.as_deref(), Some("127.0.0.1"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        a.report.results[1].1,
        RcptResult::Delivered { .. }
    ));
}
