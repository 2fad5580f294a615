//! The split-domain scenarios of Zimbra's "Split Domain" page, provisioned with `prov` commands as
//! an admin would type them, and routed as the SMTP session will route each RCPT TO.

use std::net::IpAddr;
use std::sync::Arc;

use postern::content::{self, hops};
use postern::directory::Directory;
use postern::directory::prov::{self, ProvError};
use postern::inbound::recipients::reject_reply;
use postern::mail::ClientInfo;
use postern::policy::{ConnectionLimits, Policy, Relay};
use postern::route::{self, Decision, NextHop};

/// Runs prov command lines (words split on spaces) against `dir`, keeping each new directory.
fn prov(dir: &mut Directory, lines: &[&str]) {
    for line in lines {
        let args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        let out = prov::execute(dir, &args).unwrap_or_else(|e: ProvError| panic!("{line}: {e}"));
        if let Some(next) = out.directory {
            *dir = next;
        }
    }
}

fn provisioned(lines: &[&str]) -> Directory {
    let mut d = Directory::default();
    prov(&mut d, lines);
    d
}

/// What the policy stage lets this client do at RCPT (relay or not), as the session asks it.
fn client(ip: &str, authenticated: bool) -> impl Fn(&Directory) -> Relay {
    let info = ClientInfo {
        addr: Some(ip.parse::<IpAddr>().unwrap()),
        auth: authenticated.then(|| "user@example.com".to_string()),
        ..ClientInfo::default()
    };
    move |dir| Policy::new(ConnectionLimits::default()).rcpt(&info, dir.config())
}

/// What the SMTP session would say or do for one RCPT TO, in one line.
fn outcome(dir: &Directory, rcpt: &str, who: &impl Fn(&Directory) -> Relay) -> String {
    match route::route(rcpt, dir, dir.config(), who(dir)) {
        Decision::Reject(r) => reject_reply(rcpt, r).to_string(),
        Decision::Accept(targets) => targets
            .iter()
            .map(|t| match &t.next_hop {
                NextHop::Transport(tr) => format!("{} -> {tr}", t.address),
                NextHop::Defer(d) => format!("{} -> deferred ({d})", t.address),
                NextHop::Bounce(r) => format!("{} -> bounce ({r})", t.address),
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

const INTERNET: &str = "198.51.100.20";

/// Zimbra (zimbra.example.com) is primary for example.com: foo was migrated here, bar still
/// lives on the old system mail.example.com.
fn primary() -> Directory {
    provisioned(&[
        "cd example.com zimbraMailTransport lmtp:zimbra.example.com:7025",
        "ca foo@example.com secret",
        "ca bar@example.com secret zimbraMailTransport smtp:mail.example.com:25",
        "ca old@example.com secret zimbraMailStatus disabled",
        "aaa foo@example.com sales@example.com",
    ])
}

/// The box is secondary for example.com: it hosts foo and hands every other address of the
/// domain to the primary, mail.example.com, through the domain's catch-all.
fn secondary() -> Directory {
    provisioned(&[
        "cd example.com",
        "md example.com zimbraMailCatchAllAddress @example.com zimbraMailCatchAllForwardingAddress @example.com zimbraMailTransport smtp:mail.example.com:25",
        "ca foo@example.com secret zimbraMailTransport lmtp:zimbra.example.com:7025",
    ])
}

/// ZCS 5/6 as primary, the catch-all variant: the Zimbra box keeps its own accounts and catches
/// everything else of the domain for the other system, instead of one account entry per user
/// that lives elsewhere.
fn zcs_catch_all_primary() -> Directory {
    provisioned(&[
        "cd example.com zimbraMailCatchAllAddress @example.com zimbraMailCatchAllForwardingAddress @example.com zimbraMailTransport smtp:mail.example.com:25",
        "ca foo@example.com secret zimbraMailTransport lmtp:zimbra.example.com:7025",
    ])
}

/// What is tested, the site, the RCPT TO address, and what the box says or does.
type Case = (&'static str, fn() -> Directory, &'static str, &'static str);

#[test]
fn split_domain_table() {
    let outside = client(INTERNET, false);
    let cases: &[Case] = &[
        (
            "primary: local account",
            primary,
            "foo@example.com",
            "foo@example.com -> lmtp:zimbra.example.com:7025",
        ),
        (
            "primary: account on the old system",
            primary,
            "bar@example.com",
            "bar@example.com -> smtp:mail.example.com",
        ),
        (
            "primary: case does not matter",
            primary,
            "BAR@Example.Com",
            "bar@example.com -> smtp:mail.example.com",
        ),
        (
            "primary: alias",
            primary,
            "sales@example.com",
            "foo@example.com -> lmtp:zimbra.example.com:7025",
        ),
        (
            "primary: unknown address rejected at RCPT",
            primary,
            "nobody@example.com",
            "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown",
        ),
        (
            "primary: disabled account rejected",
            primary,
            "old@example.com",
            "550 5.2.1 <old@example.com>: Recipient address rejected: Mailbox disabled",
        ),
        (
            "secondary: local account",
            secondary,
            "foo@example.com",
            "foo@example.com -> lmtp:zimbra.example.com:7025",
        ),
        (
            "secondary: everything else to the primary",
            secondary,
            "bar@example.com",
            "bar@example.com -> smtp:mail.example.com",
        ),
        (
            "secondary: even unknown ones",
            secondary,
            "nobody@example.com",
            "nobody@example.com -> smtp:mail.example.com",
        ),
        (
            "ZCS catch-all primary: local account",
            zcs_catch_all_primary,
            "foo@example.com",
            "foo@example.com -> lmtp:zimbra.example.com:7025",
        ),
        (
            "ZCS catch-all primary: other users to the old system",
            zcs_catch_all_primary,
            "bar@example.com",
            "bar@example.com -> smtp:mail.example.com",
        ),
        (
            "open relay refused from outside",
            primary,
            "someone@example.net",
            "554 5.7.1 <someone@example.net>: Relay access denied",
        ),
    ];
    for (what, dir, rcpt, want) in cases {
        assert_eq!(outcome(&dir(), rcpt, &outside), *want, "{what}");
    }
}

#[test]
fn relay_after_auth_or_from_mynetworks() {
    let mut d = primary();
    assert_eq!(
        outcome(&d, "x@example.net", &client(INTERNET, true)),
        "x@example.net -> smtp:example.net"
    );
    assert_eq!(
        outcome(&d, "x@example.net", &client("127.0.0.1", false)),
        "x@example.net -> smtp:example.net"
    );
    assert_eq!(
        outcome(&d, "x@example.net", &client("10.1.2.3", false)),
        "554 5.7.1 <x@example.net>: Relay access denied"
    );
    prov(
        &mut d,
        &[
            "mcf zimbraMtaMyNetworks 127.0.0.0/8,10.0.0.0/8",
            "mcf zimbraMtaRelayHost [smtp.isp.example]:587",
        ],
    );
    assert_eq!(
        outcome(&d, "x@example.net", &client("10.1.2.3", false)),
        "x@example.net -> smtp:[smtp.isp.example]:587"
    );
    prov(
        &mut d,
        &[
            "mcf -zimbraMtaRelayHost smtp:[smtp.isp.example]:587",
            "mcf zimbraMtaDnsLookupsEnabled FALSE",
        ],
    );
    assert!(
        outcome(&d, "x@example.net", &client("10.1.2.3", false))
            .starts_with("x@example.net -> deferred (4.4.3")
    );
}

#[test]
fn moving_a_user_applies_to_new_sessions_only() {
    let before = Arc::new(primary());
    let session = Arc::clone(&before);
    let mut next = (*before).clone();
    prov(
        &mut next,
        &["ma bar@example.com zimbraMailTransport lmtp:zimbra.example.com:7025"],
    );
    let current = Arc::new(next);
    let outside = client(INTERNET, false);
    assert_eq!(
        outcome(&current, "bar@example.com", &outside),
        "bar@example.com -> lmtp:zimbra.example.com:7025"
    );
    // A session that started before the change keeps the directory it started with.
    assert_eq!(
        outcome(&session, "bar@example.com", &outside),
        "bar@example.com -> smtp:mail.example.com"
    );
}

#[test]
fn snapshot_restores_the_same_routing() {
    let d = primary();
    let back = Directory::decode(&d.encode()).expect("snapshot decodes");
    let outside = client(INTERNET, false);
    for rcpt in [
        "foo@example.com",
        "bar@example.com",
        "sales@example.com",
        "nobody@example.com",
        "old@example.com",
    ] {
        assert_eq!(
            outcome(&back, rcpt, &outside),
            outcome(&d, rcpt, &outside),
            "{rcpt}"
        );
    }
}

/// "Avoiding Loops in Delivery": both systems catch-all to each other. An unknown address bounces
/// on the primary's side only because hop counting stops the ping-pong.
#[test]
fn dual_catch_all_ends_in_a_hop_count_bounce() {
    let zimbra = provisioned(&[
        "mcf zimbraMtaMyHostname zimbra.example.com",
        "cd example.com zimbraMailCatchAllAddress @example.com zimbraMailCatchAllForwardingAddress @example.com zimbraMailTransport smtp:mail.example.com:25",
    ]);
    let other = provisioned(&[
        "mcf zimbraMtaMyHostname mail.example.com",
        "cd example.com zimbraMailCatchAllAddress @example.com zimbraMailCatchAllForwardingAddress @example.com zimbraMailTransport smtp:zimbra.example.com:25",
    ]);
    let boxes = [
        ("zimbra.example.com", &zimbra),
        ("mail.example.com", &other),
    ];
    let mut headers = String::from("Subject: hello\r\n");
    let mut at = 0usize;
    let mut hops = 0;
    let outcome = loop {
        let (name, dir) = boxes[at];
        if let Err(e) = hops::check_hops(headers.as_bytes(), dir.config().hopcount_limit) {
            break e;
        }
        let decision = route::route(
            "nobody@example.com",
            dir,
            dir.config(),
            client(INTERNET, false)(dir),
        );
        let Decision::Accept(targets) = decision else {
            panic!("{name} refused: {decision:?}");
        };
        let NextHop::Transport(t) = &targets.first().next_hop else {
            panic!("no transport");
        };
        at = boxes
            .iter()
            .position(|(n, _)| *n == t.host.to_string())
            .expect("next hop is the other box");
        headers.insert_str(0, &format!("Received: from peer by {name} with ESMTP\r\n"));
        hops += 1;
        assert!(hops <= 100, "never ends");
    };
    assert_eq!(
        outcome,
        content::Rejection::TooManyHops {
            count: 51,
            limit: 50
        }
    );
    assert_eq!(hops, 51);
    assert!(
        outcome
            .to_string()
            .starts_with("5.4.6 mail forwarding loop")
    );
}
