//! The restrictions end to end inside the policy stage: a directory made with `prov`, DNS from a
//! table, one RCPT at a time.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::dns::fake::FakeDns;
use super::dns::{DnsFailure, Rdata, Rtype};
use super::*;
use crate::directory::prov;

/// A command line split as a shell would: spaces, and '...' quoting.
fn words(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => out.push(String::new()),
            c => out.last_mut().into_iter().for_each(|w| w.push(c)),
        }
    }
    out.retain(|w| !w.is_empty());
    out
}

fn directory(lines: &[&str]) -> Directory {
    let mut d = Directory::default();
    for line in lines {
        let args = words(line);
        if let Some(next) = prov::execute(&d, &args).unwrap().directory {
            d = next;
        }
    }
    d
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn a(s: &str) -> Rdata {
    Rdata::Ip(ip(s))
}

/// The client 192.0.2.1 with PTR mx.good.example (which points back), sender domains that
/// exist or not, and a blocklist that lists 192.0.2.66.
fn dns() -> FakeDns {
    let mut f = FakeDns::default();
    f.add(
        "1.2.0.192.in-addr.arpa",
        Rtype::Ptr,
        vec![Rdata::Name("mx.good.example.".into())],
    )
    .add("mx.good.example", Rtype::A, vec![a("192.0.2.1")])
    .add(
        "66.2.0.192.in-addr.arpa",
        Rtype::Ptr,
        vec![Rdata::Name("liar.example.".into())],
    )
    .add("liar.example", Rtype::A, vec![a("198.51.100.1")])
    .add(
        "good.example",
        Rtype::Mx,
        vec![Rdata::Mx(10, "mx.good.example.".into())],
    )
    .add("aonly.example", Rtype::A, vec![a("198.51.100.2")])
    .fail("slow.example", Rtype::Mx, DnsFailure::ServerFailure)
    .add("66.2.0.192.bl.example", Rtype::A, vec![a("127.0.0.2")])
    .add(
        "66.2.0.192.bl.example",
        Rtype::Txt,
        vec![Rdata::Txt(
            "Listed, see http://bl.example/q?192.0.2.66".into(),
        )],
    )
    .add("1.2.0.192.bl.example", Rtype::A, vec![a("127.0.0.10")])
    .fail(
        "66.2.0.192.broken.example",
        Rtype::A,
        DnsFailure::ServerFailure,
    )
    .add("liar.example.dbl.example", Rtype::A, vec![a("127.0.1.2")])
    .add("spam.example.dbl.example", Rtype::A, vec![a("127.0.1.2")]);
    let huge = format!("{}example.", "a.".repeat(300));
    f.add(
        "77.2.0.192.in-addr.arpa",
        Rtype::Ptr,
        vec![Rdata::Name(huge)],
    );
    f.silent.push("66.2.0.192.silent.example".into());
    f
}

fn policy() -> Arc<Policy> {
    Policy::with_dns(
        ConnectionLimits::default(),
        Dns::new(Arc::new(dns()), Duration::from_secs(2)),
        "mx.test.example",
        crate::log::LogSink::memory(),
    )
}

struct Rcpt<'a> {
    from_ip: &'a str,
    helo: &'a str,
    sender: &'a str,
    auth: Option<&'a str>,
}

const OUTSIDE: Rcpt = Rcpt {
    from_ip: "192.0.2.1",
    helo: "mx.good.example",
    sender: "someone@good.example",
    auth: None,
};

async fn answer(d: &Directory, who: &Rcpt<'_>, to: &str) -> String {
    let q = RcptQuery {
        client: ClientInfo {
            addr: Some(ip(who.from_ip)),
            helo: who.helo.to_string(),
            auth: who.auth.map(str::to_string),
            ..ClientInfo::default()
        },
        sender: who.sender.into(),
        address: to.into(),
        notify: crate::mail::Notify::DEFAULT,
        orcpt: None,
    };
    match policy().restrictions(&q, d).await {
        Ok(()) => "OK".into(),
        Err(r) => r.reply().to_string(),
    }
}

const BASE: &[&str] = &[
    "mcf zimbraMtaMyNetworks 10.0.0.0/8",
    "cd example.com zimbraMailTransport lmtp:store.example.com:7025",
    "ca user@example.com pw",
];

fn with(extra: &[&str]) -> Directory {
    let lines: Vec<&str> = BASE.iter().chain(extra).copied().collect();
    directory(&lines)
}

#[tokio::test]
async fn helo_checks_refuse_with_postfix_codes_and_spare_mynetworks() {
    let d = with(&[
        "mcf zimbraMtaRestriction reject_invalid_hostname zimbraMtaRestriction reject_non_fqdn_hostname",
    ]);
    let to = "user@example.com";
    let bare = Rcpt {
        helo: "workstation",
        ..OUTSIDE
    };
    assert_eq!(
        answer(&d, &bare, to).await,
        "504 5.5.2 <workstation>: Helo command rejected: need fully-qualified hostname"
    );
    let bad = Rcpt {
        helo: "bad_host..example",
        ..OUTSIDE
    };
    assert_eq!(
        answer(&d, &bad, to).await,
        "501 5.5.2 <bad_host..example>: Helo command rejected: Invalid name"
    );
    let literal = Rcpt {
        helo: "[192.0.2.1]",
        ..OUTSIDE
    };
    assert_eq!(answer(&d, &literal, to).await, "OK");
    let lan = Rcpt {
        from_ip: "10.1.2.3",
        ..bare
    };
    assert_eq!(answer(&d, &lan, to).await, "OK");
    let authed = Rcpt {
        auth: Some("user@example.com"),
        ..bare
    };
    assert_eq!(answer(&d, &authed, to).await, "OK");
    assert_eq!(answer(&d, &OUTSIDE, to).await, "OK");
}

#[tokio::test]
async fn an_unknown_helo_name_is_refused_for_now() {
    let d = with(&["mcf zimbraMtaRestriction reject_unknown_hostname"]);
    let to = "user@example.com";
    let helo = |helo| Rcpt { helo, ..OUTSIDE };
    assert_eq!(
        answer(&d, &helo("nx.example"), to).await,
        "450 4.7.1 <nx.example>: Helo command rejected: Host not found"
    );
    assert_eq!(
        answer(&d, &helo("slow.example"), to).await,
        "450 4.4.3 <slow.example>: Helo command rejected: Host not found"
    );
    for ok in ["mx.good.example", "good.example", "[192.0.2.1]"] {
        assert_eq!(answer(&d, &helo(ok), to).await, "OK", "{ok}");
    }
}

#[tokio::test]
async fn sender_checks_ask_dns_only_for_foreign_domains() {
    let d = with(&[
        "mcf zimbraMtaRestriction reject_non_fqdn_sender zimbraMtaRestriction reject_unknown_sender_domain",
    ]);
    let to = "user@example.com";
    let from = |sender| Rcpt { sender, ..OUTSIDE };
    assert_eq!(
        answer(&d, &from("x@nx.example"), to).await,
        "450 4.1.8 <x@nx.example>: Sender address rejected: Domain not found"
    );
    assert_eq!(
        answer(&d, &from("x@localpart"), to).await,
        "504 5.5.2 <x@localpart>: Sender address rejected: need fully-qualified address"
    );
    assert_eq!(
        answer(&d, &from("x@slow.example"), to).await,
        "450 4.4.3 <x@slow.example>: Sender address rejected: Domain not found"
    );
    for ok in ["x@good.example", "x@aonly.example", "other@example.com", ""] {
        assert_eq!(answer(&d, &from(ok), to).await, "OK", "{ok}");
    }
}

#[tokio::test]
async fn a_temporary_failure_defers_only_if_nothing_later_refuses() {
    let d = with(&[
        "mcf zimbraMtaRestriction reject_unknown_sender_domain zimbraMtaRestriction 'reject_rbl_client bl.example'",
    ]);
    let listed_and_slow = Rcpt {
        from_ip: "192.0.2.66",
        sender: "x@slow.example",
        ..OUTSIDE
    };
    assert!(
        answer(&d, &listed_and_slow, "user@example.com")
            .await
            .starts_with(
                "554 5.7.1 Service unavailable; Client host [192.0.2.66] blocked using bl.example"
            )
    );
}

#[tokio::test]
async fn blocklists_refuse_with_their_reason_and_fail_open() {
    let d = with(&[
        "mcf zimbraMtaRestriction 'reject_rbl_client bl.example=127.0.0.[2..9]' zimbraMtaRestriction 'reject_rbl_client broken.example' zimbraMtaRestriction 'reject_rbl_client silent.example'",
    ]);
    let to = "user@example.com";
    let listed = Rcpt {
        from_ip: "192.0.2.66",
        ..OUTSIDE
    };
    assert_eq!(
        answer(&d, &listed, to).await,
        "554 5.7.1 Service unavailable; Client host [192.0.2.66] blocked using bl.example; Listed, see http://bl.example/q?192.0.2.66"
    );
    // 192.0.2.1 is listed with 127.0.0.10, outside the pattern.
    assert_eq!(answer(&d, &OUTSIDE, to).await, "OK");
    // Without the pattern it counts; the list has no TXT for it.
    let d = with(&["mcf zimbraMtaRestrictionRBLs bl.example"]);
    assert_eq!(
        answer(&d, &OUTSIDE, to).await,
        "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using bl.example"
    );
    // SERVFAIL and a silent list: not listed, and no hang.
    let d = with(&[
        "mcf zimbraMtaRestrictionRBLs broken.example zimbraMtaRestrictionRBLs silent.example",
    ]);
    let started = std::time::Instant::now();
    assert_eq!(answer(&d, &listed, to).await, "OK");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A list that does not answer lists no one, and the admin reads why in the log.
#[tokio::test]
async fn a_dead_list_is_logged() {
    let d = with(&["mcf zimbraMtaRestrictionRBLs broken.example"]);
    let log = crate::log::LogSink::memory();
    let policy = Policy::with_dns(
        ConnectionLimits::default(),
        Dns::new(Arc::new(dns()), Duration::from_secs(2)),
        "mx.test.example",
        log.clone(),
    );
    let q = RcptQuery {
        client: ClientInfo {
            addr: Some(ip("192.0.2.66")),
            ..ClientInfo::default()
        },
        sender: "a@good.example".into(),
        address: "user@example.com".into(),
        notify: crate::mail::Notify::DEFAULT,
        orcpt: None,
    };
    assert_eq!(policy.restrictions(&q, &d).await, Ok(()));
    assert_eq!(
        log.lines(),
        [
            "postern/smtpd: warning: RBL lookup error for DNS query 66.2.0.192.broken.example: server failure, try again"
        ]
    );
}

#[tokio::test]
async fn domain_blocklists_of_client_names_and_senders() {
    let to = "user@example.com";
    let d = with(&["mcf zimbraMtaRestrictionRHSBLSs dbl.example"]);
    let spammer = Rcpt {
        sender: "x@spam.example",
        ..OUTSIDE
    };
    assert_eq!(
        answer(&d, &spammer, to).await,
        "554 5.7.1 Service unavailable; Sender address [spam.example] blocked using dbl.example"
    );
    // liar.example does not point back to 192.0.2.66: only the reverse list sees it.
    let liar = Rcpt {
        from_ip: "192.0.2.66",
        ..OUTSIDE
    };
    let d = with(&["mcf zimbraMtaRestrictionRHSBLCs dbl.example"]);
    assert_eq!(answer(&d, &liar, to).await, "OK");
    let d = with(&["mcf zimbraMtaRestriction 'reject_rhsbl_reverse_client dbl.example'"]);
    assert_eq!(
        answer(&d, &liar, to).await,
        "554 5.7.1 Service unavailable; Unverified Client host [liar.example] blocked using dbl.example"
    );
}

#[tokio::test]
async fn client_names_must_exist_and_point_back() {
    let to = "user@example.com";
    let d = with(&["mcf zimbraMtaRestriction reject_unknown_client_hostname"]);
    let liar = Rcpt {
        from_ip: "192.0.2.66",
        ..OUTSIDE
    };
    let nameless = Rcpt {
        from_ip: "192.0.2.99",
        ..OUTSIDE
    };
    assert_eq!(answer(&d, &OUTSIDE, to).await, "OK");
    assert_eq!(
        answer(&d, &liar, to).await,
        "450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.66]"
    );
    let d = with(&["mcf zimbraMtaRestriction reject_unknown_reverse_client_hostname"]);
    assert_eq!(answer(&d, &liar, to).await, "OK");
    assert_eq!(
        answer(&d, &nameless, to).await,
        "450 4.7.25 Client host rejected: cannot find your reverse hostname, [192.0.2.99]"
    );
    // A reverse name of 300 labels is no name at all.
    let absurd = Rcpt {
        from_ip: "192.0.2.77",
        ..OUTSIDE
    };
    assert_eq!(
        answer(&d, &absurd, to).await,
        "450 4.7.25 Client host rejected: cannot find your reverse hostname, [192.0.2.77]"
    );
}

/// The Split Domain page's loop breaker: with a catch-all, `reject` after the split-domain
/// lookup still refuses what no account or alias has, for clients outside mynetworks.
#[tokio::test]
async fn split_domain_recipe_accepts_known_addresses_and_refuses_the_rest() {
    let d = with(&[
        "md example.com zimbraMailCatchAllAddress @example.com zimbraMailCatchAllForwardingAddress @example.com",
        "aaa user@example.com alias@example.com",
        "ca off@example.com pw zimbraMailStatus disabled",
        "mcf zimbraMtaRestriction 'check_recipient_access ldap:/opt/zimbra/conf/ldap-splitdomain.cf' +zimbraMtaRestriction reject",
    ]);
    assert_eq!(answer(&d, &OUTSIDE, "user@example.com").await, "OK");
    assert_eq!(answer(&d, &OUTSIDE, "alias@example.com").await, "OK");
    for refused in ["nobody@example.com", "off@example.com"] {
        assert_eq!(
            answer(&d, &OUTSIDE, refused).await,
            format!("554 5.7.1 <{refused}>: Recipient address rejected: Access denied")
        );
    }
    let lan = Rcpt {
        from_ip: "10.0.0.5",
        ..OUTSIDE
    };
    assert_eq!(answer(&d, &lan, "nobody@example.com").await, "OK");
}

/// Zimbra puts reject_non_fqdn_recipient before the permits, and so does this box with
/// reject_unknown_recipient_domain: they apply to mynetworks too.
#[tokio::test]
async fn recipient_checks() {
    let d = with(&[
        "mcf zimbraMtaRestriction reject_non_fqdn_recipient zimbraMtaRestriction reject_unknown_recipient_domain",
    ]);
    let lan = Rcpt {
        from_ip: "10.0.0.5",
        ..OUTSIDE
    };
    assert_eq!(
        answer(&d, &lan, "x@intranet").await,
        "504 5.5.2 <x@intranet>: Recipient address rejected: need fully-qualified address"
    );
    assert_eq!(
        answer(&d, &lan, "x@nx.example").await,
        "450 4.1.2 <x@nx.example>: Recipient address rejected: Domain not found"
    );
    assert_eq!(answer(&d, &lan, "x@good.example").await, "OK");
    assert_eq!(answer(&d, &OUTSIDE, "user@example.com").await, "OK");
}

#[tokio::test]
async fn no_restrictions_no_lookups() {
    let d = with(&[]);
    let nameless = Rcpt {
        from_ip: "192.0.2.99",
        helo: "x",
        sender: "a@nx.example",
        ..OUTSIDE
    };
    assert_eq!(answer(&d, &nameless, "user@example.com").await, "OK");
}
