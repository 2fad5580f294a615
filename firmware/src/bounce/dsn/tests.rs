//! DSNs checked by parsing them back with mail-parser, field by field.

use super::*;
use mail_parser::{MessageParser, MimeHeaders, PartType};

const NOW: u64 = 1_795_100_000;
const ORIGINAL: &[u8] = b"From: Alice <alice@example.org>\r\nTo: bob@example.com\r\n\
Subject: Hello\r\nMessage-ID: <m1@example.org>\r\n\r\nHi Bob,\r\nthe body.\r\n";

fn rcpt(addr: &str, notify: Notify, hop: &str) -> Recipient {
    Recipient {
        address: addr.into(),
        original: None,
        orcpt: Some(("rfc822".into(), addr.to_uppercase())),
        notify,
        next_hop: hop.parse().unwrap(),
    }
}

fn envelope(sender: &str, rcpts: Vec<Recipient>) -> Envelope {
    Envelope {
        sender: sender.into(),
        recipients: rcpts,
        ret: None,
        envid: Some("ENV42".into()),
        body_type: BodyType::SevenBit,
        smtputf8: false,
        arrival: NOW - 3600,
        client: ClientInfo::default(),
    }
}

fn failed(status: &str, diag: &str) -> Option<RecipientOutcome> {
    Some(RecipientOutcome::Failed {
        status: status.into(),
        diagnostic: diag.into(),
        remote_mta: Some("store.example.com".into()),
    })
}

fn req<'a>(
    env: &'a Envelope,
    outcomes: &'a [Option<RecipientOutcome>],
    kind: Kind,
) -> DsnRequest<'a> {
    DsnRequest {
        qid: QueueId::new(NOW * 1000, 1),
        envelope: env,
        outcomes,
        original: ORIGINAL,
        original_size: ORIGINAL.len() as u64,
        kind,
        reporting_mta: "gw.example.net",
        now: NOW,
    }
}

/// The three parts of a report: (human text, delivery-status text, returned original).
fn parts(msg: &[u8]) -> (String, String, Vec<u8>, String) {
    let m = MessageParser::default().parse(msg).expect("parses");
    let ct = m.root_part().content_type().expect("content type");
    assert_eq!(ct.ctype(), "multipart");
    assert_eq!(ct.subtype(), Some("report"));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    let PartType::Multipart(ids) = &m.root_part().body else {
        panic!("not multipart");
    };
    assert_eq!(ids.len(), 3);
    let part = |i: usize| m.part(ids[i]).unwrap();
    let human = part(0).text_contents().unwrap().to_string();
    let status_ct = part(1).content_type().unwrap();
    let status_type = format!("{}/{}", status_ct.ctype(), status_ct.subtype().unwrap());
    let status = String::from_utf8_lossy(part(1).contents()).into_owned();
    let third = part(2);
    let original = match &third.body {
        PartType::Message(inner) => inner.raw_message().to_vec(),
        _ => third.contents().to_vec(),
    };
    (human, status, original, status_type)
}

#[test]
fn quota_bounce_has_rfc3464_fields_and_the_full_message() {
    let env = envelope(
        "alice@example.org",
        vec![
            rcpt(
                "bob@example.com",
                Notify::DEFAULT,
                "lmtp:store.example.com:7025",
            ),
            rcpt(
                "carol@example.com",
                Notify::DEFAULT,
                "lmtp:store.example.com:7025",
            ),
        ],
    );
    let outcomes = vec![
        failed(
            "5.2.2",
            "lmtp; 552 5.2.2 <bob@example.com> Quota exceeded (mailbox for user is full)",
        ),
        Some(RecipientOutcome::Delivered {
            relay: "store.example.com[192.0.2.5]:7025".into(),
            reply: "250 2.0.0 <carol@example.com> Saved".into(),
        }),
    ];
    let dsn = build(&req(&env, &outcomes, Kind::Final)).expect("a bounce");
    assert_eq!(dsn.recipient, "alice@example.org");
    assert_eq!(dsn.notification, Notification::NonDelivery);
    let m = MessageParser::default().parse(&dsn.message).unwrap();
    assert_eq!(m.subject(), Some("Undelivered Mail Returned to Sender"));
    assert_eq!(
        m.from().unwrap().first().unwrap().address(),
        Some("MAILER-DAEMON@gw.example.net")
    );
    assert_eq!(
        m.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-replied")
    );
    let (human, status, original, status_type) = parts(&dsn.message);
    assert_eq!(status_type, "message/delivery-status");
    assert!(human.contains("<bob@example.com>: 552 5.2.2"));
    assert!(
        !human.contains("carol"),
        "a delivered recipient without NOTIFY=SUCCESS is not reported"
    );
    for want in [
        "Reporting-MTA: dns; gw.example.net",
        "Original-Envelope-Id: ENV42",
        "Arrival-Date: ",
        "Final-Recipient: rfc822; bob@example.com",
        "Original-Recipient: rfc822; BOB@EXAMPLE.COM",
        "Action: failed",
        "Status: 5.2.2",
        "Remote-MTA: dns; store.example.com",
        "Diagnostic-Code: lmtp; 552 5.2.2 <bob@example.com> Quota exceeded",
    ] {
        assert!(status.contains(want), "missing {want:?} in\n{status}");
    }
    assert_eq!(
        original, ORIGINAL,
        "RET default: the full message comes back"
    );
}

#[test]
fn ret_hdrs_returns_headers_only() {
    let mut env = envelope(
        "alice@example.org",
        vec![rcpt("bob@example.com", Notify::DEFAULT, "smtp:example.com")],
    );
    env.ret = Some(Ret::Headers);
    let outcomes = vec![failed("5.1.1", "smtp; 550 5.1.1 User unknown")];
    let dsn = build(&req(&env, &outcomes, Kind::Final)).unwrap();
    let (_, _, original, _) = parts(&dsn.message);
    let text = String::from_utf8_lossy(&original);
    assert!(text.contains("Subject: Hello"));
    assert!(!text.contains("the body"));
}

#[test]
fn notify_never_bounce_of_bounce_and_nothing_to_say_give_no_dsn() {
    let never = envelope(
        "alice@example.org",
        vec![rcpt("bob@example.com", Notify::NEVER, "smtp:example.com")],
    );
    let outcomes = vec![failed("5.1.1", "smtp; 550 5.1.1 User unknown")];
    assert!(build(&req(&never, &outcomes, Kind::Final)).is_none());

    let bounce = envelope(
        "",
        vec![rcpt(
            "alice@example.org",
            Notify::DEFAULT,
            "smtp:example.org",
        )],
    );
    assert!(build(&req(&bounce, &outcomes, Kind::Final)).is_none());

    let fine = envelope(
        "alice@example.org",
        vec![rcpt("bob@example.com", Notify::DEFAULT, "smtp:example.com")],
    );
    let ok = vec![Some(RecipientOutcome::Delivered {
        relay: "mx[192.0.2.1]:25".into(),
        reply: "250 2.0.0 Ok".into(),
    })];
    assert!(build(&req(&fine, &ok, Kind::Final)).is_none());
}

#[test]
fn notify_success_reports_relayed_or_delivered() {
    let success = Notify {
        success: true,
        failure: true,
        delay: false,
        explicit: true,
    };
    let env = envelope(
        "alice@example.org",
        vec![
            rcpt("bob@example.com", success, "smtp:example.com"),
            rcpt("dave@example.com", success, "lmtp:store.example.com:7025"),
        ],
    );
    let ok = |relay: &str| {
        Some(RecipientOutcome::Delivered {
            relay: relay.into(),
            reply: "250 2.0.0 Ok: queued as ABC".into(),
        })
    };
    let outcomes = vec![
        ok("mx.example.com[192.0.2.1]:25"),
        ok("store.example.com[192.0.2.5]:7025"),
    ];
    let dsn = build(&req(&env, &outcomes, Kind::Final)).unwrap();
    assert_eq!(dsn.notification, Notification::Success);
    let (_, status, original, _) = parts(&dsn.message);
    assert!(status.contains("Final-Recipient: rfc822; bob@example.com\r\nOriginal-Recipient: rfc822; BOB@EXAMPLE.COM\r\nAction: relayed\r\nStatus: 2.0.0"));
    assert!(status.contains("Action: delivered"));
    assert!(status.contains("Remote-MTA: dns; mx.example.com"));
    assert!(!String::from_utf8_lossy(&original).contains("the body"));
}

#[test]
fn delay_warning_lists_waiting_recipients_with_retry_until() {
    let no_delay = Notify {
        success: false,
        failure: true,
        delay: false,
        explicit: true,
    };
    let env = envelope(
        "alice@example.org",
        vec![
            rcpt("bob@example.com", Notify::DEFAULT, "smtp:example.com"),
            rcpt("erin@example.com", no_delay, "smtp:example.com"),
        ],
    );
    let kind = Kind::Delay {
        recipients: vec![
            (0, Some("452 4.2.2 Mailbox full".into())),
            (1, Some("452 4.2.2 Mailbox full".into())),
        ],
        retry_until: env.arrival + 5 * 86_400,
    };
    let dsn = build(&req(&env, &[None, None], kind)).unwrap();
    assert_eq!(dsn.notification, Notification::Delay);
    let m = MessageParser::default().parse(&dsn.message).unwrap();
    assert_eq!(m.subject(), Some("Delayed Mail (still being retried)"));
    let (human, status, _, _) = parts(&dsn.message);
    assert!(human.contains("THIS IS A WARNING ONLY"));
    assert!(human.contains("retried until it is 5 day(s) old"));
    assert!(status.contains("Action: delayed\r\nStatus: 4.2.2"));
    assert!(status.contains("Will-Retry-Until: "));
    assert!(
        !status.contains("erin"),
        "NOTIFY without DELAY gets no warning"
    );
}

#[test]
fn hostile_diagnostic_cannot_break_the_report() {
    let env = envelope(
        "alice@example.org",
        vec![rcpt("bob@example.com", Notify::DEFAULT, "smtp:example.com")],
    );
    let evil = format!(
        "smtp; 550 5.0.0 x\r\nAction: delivered\r\n{}",
        "A".repeat(5000)
    );
    let outcomes = vec![failed("5.0.0", &evil)];
    let dsn = build(&req(&env, &outcomes, Kind::Final)).unwrap();
    let (_, status, _, _) = parts(&dsn.message);
    assert_eq!(
        status.lines().filter(|l| l.starts_with("Action:")).count(),
        1
    );
    assert!(status.lines().all(|l| l.len() < 1000));
}

#[test]
fn utf8_recipient_gives_a_global_report() {
    let env = envelope(
        "alice@example.org",
        vec![rcpt(
            "jörg@example.com",
            Notify::DEFAULT,
            "smtp:example.com",
        )],
    );
    let outcomes = vec![failed(
        "5.6.7",
        "X-Postern; SMTPUTF8 is required, but was not offered by host mx.example.com[192.0.2.1]",
    )];
    let dsn = build(&req(&env, &outcomes, Kind::Final)).unwrap();
    let (_, status, _, status_type) = parts(&dsn.message);
    assert_eq!(status_type, "message/global-delivery-status");
    assert!(status.contains("Final-Recipient: utf-8; jörg@example.com"));
    assert!(status.contains("Status: 5.6.7"));
}

#[test]
fn dsn_envelope_is_from_the_null_sender_and_never_notifies() {
    let env = envelope(
        "alice@example.org",
        vec![rcpt("bob@example.com", Notify::DEFAULT, "smtp:example.com")],
    );
    let outcomes = vec![failed("5.1.1", "smtp; 550 5.1.1 User unknown")];
    let dsn = build(&req(&env, &outcomes, Kind::Final)).unwrap();
    let e = dsn.envelope("smtp:example.org".parse().unwrap(), NOW);
    assert!(e.is_bounce());
    assert_eq!(e.recipients[0].address, "alice@example.org");
    assert_eq!(e.recipients[0].notify, Notify::NEVER);
}

#[test]
fn absurd_times_from_a_damaged_record_do_not_panic() {
    let mut env = envelope(
        "alice@example.org",
        vec![rcpt("bob@example.com", Notify::DEFAULT, "smtp:example.com")],
    );
    env.arrival = u64::MAX;
    let outcomes = vec![failed("5.1.1", "smtp; 550 5.1.1 User unknown")];
    let mut r = req(&env, &outcomes, Kind::Final);
    r.now = u64::MAX;
    let dsn = build(&r).unwrap();
    assert!(MessageParser::default().parse(&dsn.message).is_some());
}

#[test]
fn an_oversized_original_is_read_only_as_far_as_its_headers_and_returned_as_headers() {
    let env = envelope(
        "alice@example.org",
        vec![rcpt("bob@example.com", Notify::DEFAULT, "smtp:example.com")],
    );
    let outcomes = vec![failed("5.1.1", "smtp; 550 5.1.1 User unknown")];
    let mut big = ORIGINAL.to_vec();
    big.resize(5 * 1024 * 1024, b'x');
    let wanted = returned_bytes(big.len() as u64);
    assert!(wanted <= RETURNED_HEADERS_LIMIT, "never the whole 5 MB");
    let mut r = req(&env, &outcomes, Kind::Final);
    r.original = &big[..wanted];
    r.original_size = big.len() as u64;
    let dsn = build(&r).unwrap();
    let (_, _, original, _) = parts(&dsn.message);
    let text = String::from_utf8_lossy(&original);
    assert!(text.contains("Subject: Hello"), "{text}");
    assert!(!text.contains("the body"), "{text}");
    assert!(dsn.message.len() < 10_000);
    // Small enough: all of it is read, and all of it comes back.
    assert_eq!(returned_bytes(ORIGINAL.len() as u64), ORIGINAL.len());
    assert_eq!(returned_bytes(BOUNCE_SIZE_LIMIT as u64), BOUNCE_SIZE_LIMIT);
}

#[test]
fn a_header_section_longer_than_what_is_read_is_cut_at_a_line_end() {
    let env = envelope(
        "alice@example.org",
        vec![rcpt("bob@example.com", Notify::DEFAULT, "smtp:example.com")],
    );
    let outcomes = vec![failed("5.1.1", "smtp; 550 5.1.1 User unknown")];
    let mut big = Vec::new();
    let mut n = 0;
    while big.len() < RETURNED_HEADERS_LIMIT + 1000 {
        big.extend_from_slice(format!("Received: from hop{n} by hop{n}\r\n").as_bytes());
        n += 1;
    }
    big.extend_from_slice(b"\r\nbody\r\n");
    let wanted = returned_bytes(big.len() as u64);
    let mut r = req(&env, &outcomes, Kind::Final);
    r.original = &big[..wanted];
    r.original_size = big.len() as u64;
    let dsn = build(&r).unwrap();
    let (_, _, original, _) = parts(&dsn.message);
    assert!(original.len() <= RETURNED_HEADERS_LIMIT);
    let text = String::from_utf8_lossy(&original);
    let last: Vec<&str> = text
        .trim_end()
        .lines()
        .last()
        .unwrap_or_default()
        .split(' ')
        .collect();
    assert!(
        last.len() == 5 && last[0] == "Received:" && last[2] == last[4],
        "cut inside a line: {last:?}"
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// Whatever a peer said and whatever the addresses, the DSN is built, parses, and its
        /// delivery-status part has exactly one Action line per reported recipient.
        #[test]
        fn any_diagnostic_gives_a_parsable_report(
            diag in "\\PC{0,300}",
            status in "[245]\\.[0-9]{1,3}\\.[0-9]{1,3}",
            local in "[a-zA-Z0-9.é]{1,20}",
            original in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let env = envelope(
                "alice@example.org",
                vec![
                    rcpt(&format!("{local}@example.com"), Notify::DEFAULT, "smtp:example.com"),
                    rcpt("second@example.com", Notify::DEFAULT, "smtp:example.com"),
                ],
            );
            let outcomes = vec![failed(&status, &diag), failed("5.0.0", "smtp; 550 no")];
            let mut r = req(&env, &outcomes, Kind::Final);
            r.original = &original;
            r.original_size = original.len() as u64;
            let dsn = build(&r).expect("a bounce");
            let m = MessageParser::default().parse(&dsn.message).expect("parses");
            let PartType::Multipart(ids) = &m.root_part().body else { panic!("not multipart") };
            let status_text = String::from_utf8_lossy(m.part(ids[1]).unwrap().contents()).into_owned();
            prop_assert_eq!(status_text.lines().filter(|l| l.starts_with("Action:")).count(), 2);
        }
    }
}
