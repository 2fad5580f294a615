use super::*;
use crate::directory::prov;
use proptest::prelude::*;

fn provision(lines: &[&str]) -> Directory {
    let mut d = Directory::default();
    for line in lines {
        let args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        let out = prov::execute(&d, &args).unwrap_or_else(|e| panic!("{line}: {e}"));
        if let Some(next) = out.directory {
            d = next;
        }
    }
    d
}

/// A client outside mynetworks, not authenticated.
const OUTSIDE: Relay = Relay::Denied;

fn decide(d: &Directory, addr: &str) -> Decision<'static> {
    decide_as(d, addr, OUTSIDE)
}

fn decide_as(d: &Directory, addr: &str, relay: Relay) -> Decision<'static> {
    match route(addr, d, d.config(), relay) {
        Decision::Accept(t) => {
            let mut v = t.into_vec().into_iter().map(Target::into_owned);
            let first = v.next().expect("at least one target");
            Decision::Accept(Targets {
                first,
                rest: v.collect(),
            })
        }
        Decision::Reject(r) => Decision::Reject(r),
    }
}

/// The (address, next hop) pairs of an accepted recipient, as strings.
fn hops(d: &Decision<'_>) -> Vec<(String, String)> {
    match d {
        Decision::Accept(t) => t
            .iter()
            .map(|t| {
                let hop = match &t.next_hop {
                    NextHop::Transport(tr) => tr.to_string(),
                    NextHop::Defer(x) => format!("defer {}", x.status()),
                    NextHop::Bounce(r) => format!("bounce {}", r.status()),
                };
                (t.address.to_string(), hop)
            })
            .collect(),
        Decision::Reject(r) => vec![("REJECT".into(), r.status().to_string())],
    }
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn next_hop_is_account_then_domain_then_virtual_transport() {
    let mut d = provision(&[
        "cd example.com",
        "ca own@example.com pw zimbraMailTransport lmtp:store.example.com:7025",
        "ca plain@example.com pw",
    ]);
    assert_eq!(
        hops(&decide(&d, "own@example.com")),
        pairs(&[("own@example.com", "lmtp:store.example.com:7025")])
    );
    assert_eq!(
        hops(&decide(&d, "Plain@Example.COM")),
        pairs(&[("plain@example.com", "defer 4.3.5")])
    );
    d = provision(&[
        "cd example.com zimbraMailTransport smtp:[mail.example.com]:25",
        "ca plain@example.com pw",
        "mcf virtual_transport lmtp:store.example.com:7025",
    ]);
    assert_eq!(
        hops(&decide(&d, "plain@example.com")),
        pairs(&[("plain@example.com", "smtp:[mail.example.com]:25")])
    );
    d = provision(&[
        "cd example.com",
        "ca plain@example.com pw",
        "mcf virtual_transport lmtp:store.example.com:7025",
    ]);
    assert_eq!(
        hops(&decide(&d, "plain@example.com")),
        pairs(&[("plain@example.com", "lmtp:store.example.com:7025")])
    );
}

#[test]
fn aliases_deliver_to_the_account() {
    let d = provision(&[
        "cd example.com",
        "cd example.org",
        "ca foo@example.com pw zimbraMailTransport lmtp:store.example.com:7025",
        "aaa foo@example.com info@example.org",
    ]);
    assert_eq!(
        hops(&decide(&d, "INFO@example.org")),
        pairs(&[("foo@example.com", "lmtp:store.example.com:7025")])
    );
}

#[test]
fn rejections_at_rcpt() {
    let d = provision(&[
        "cd example.com",
        "ca off@example.com pw zimbraMailStatus disabled",
    ]);
    assert_eq!(
        decide(&d, "nobody@example.com"),
        Decision::Reject(Reject::UserUnknown)
    );
    assert_eq!(
        decide(&d, "off@example.com"),
        Decision::Reject(Reject::MailboxDisabled)
    );
    assert_eq!(
        decide(&d, "someone@example.net"),
        Decision::Reject(Reject::RelayDenied)
    );
    assert_eq!(
        decide(&d, "no-at-sign"),
        Decision::Reject(Reject::BadAddress)
    );
    let authed = Relay::Permitted;
    assert_eq!(
        decide_as(&d, "x@bad_dom@@", authed),
        Decision::Reject(Reject::BadAddress)
    );
    assert_eq!(
        decide_as(&d, "x@[no-literal]", authed),
        Decision::Reject(Reject::BadAddress)
    );
}

#[test]
fn relay_goes_out_only_when_permitted() {
    let mut d = provision(&["cd example.com"]);
    let authed = Relay::Permitted;
    assert_eq!(
        hops(&decide_as(&d, "a@example.net", authed)),
        pairs(&[("a@example.net", "smtp:example.net")])
    );
    assert_eq!(
        decide_as(&d, "a@example.net", Relay::Denied),
        Decision::Reject(Reject::RelayDenied)
    );
    assert_eq!(
        hops(&decide_as(&d, "a@[192.0.2.7]", authed)),
        pairs(&[("a@[192.0.2.7]", "smtp:[192.0.2.7]:25")])
    );
    d = provision(&[
        "cd example.com",
        "mcf zimbraMtaRelayHost [smtp.isp.example]:587",
    ]);
    assert_eq!(
        hops(&decide_as(&d, "a@example.net", authed)),
        pairs(&[("a@example.net", "smtp:[smtp.isp.example]:587")])
    );
    d = provision(&["cd example.com", "mcf zimbraMtaDnsLookupsEnabled FALSE"]);
    assert_eq!(
        hops(&decide_as(&d, "a@example.net", authed)),
        pairs(&[("a@example.net", "defer 4.4.3")])
    );
    assert_eq!(
        decide(&d, "a@example.net"),
        Decision::Reject(Reject::RelayDenied)
    );
}

#[test]
fn catch_all_forwarding_variants() {
    let d = provision(&[
        "cd example.com zimbraMailCatchAllAddress @example.com zimbraMailCatchAllForwardingAddress @example.com zimbraMailTransport smtp:mail.example.com:25",
        "cd example.org zimbraMailCatchAllForwardingAddress boss@example.com",
        "cd example.net zimbraMailCatchAllForwardingAddress @example.com",
        "ca boss@example.com pw zimbraMailTransport lmtp:store.example.com:7025",
    ]);
    assert_eq!(
        hops(&decide(&d, "Who@Example.com")),
        pairs(&[("Who@Example.com", "smtp:mail.example.com")])
    );
    assert_eq!(
        hops(&decide(&d, "who@example.org")),
        pairs(&[("boss@example.com", "lmtp:store.example.com:7025")])
    );
    assert_eq!(
        hops(&decide(&d, "who@example.net")),
        pairs(&[("who@example.com", "smtp:mail.example.com")])
    );
}

#[test]
fn relay_domain_accepts_everything_for_its_transport() {
    let d = provision(&[
        "cd backup.example posternAuthoritative FALSE zimbraMailTransport smtp:[primary.backup.example]:25",
    ]);
    assert_eq!(
        hops(&decide(&d, "anyone@backup.example")),
        pairs(&[("anyone@backup.example", "smtp:[primary.backup.example]:25")])
    );
}

#[test]
fn forwarding_expands_and_loops_end() {
    let d = provision(&[
        "cd example.com zimbraMailTransport lmtp:store.example.com:7025",
        "ca a@example.com pw zimbraMailForwardingAddress b@example.com",
        "ca b@example.com pw zimbraPrefMailForwardingAddress a@example.com",
        "ca c@example.com pw zimbraMailForwardingAddress d@example.com zimbraPrefMailLocalDeliveryDisabled TRUE",
        "ca d@example.com pw zimbraMailForwardingAddress c@example.com zimbraPrefMailLocalDeliveryDisabled TRUE",
        "ca e@example.com pw zimbraMailForwardingAddress out@example.net zimbraMailForwardingAddress ghost@example.com zimbraPrefMailLocalDeliveryDisabled TRUE",
    ]);
    let store = "lmtp:store.example.com:7025";
    assert_eq!(
        hops(&decide(&d, "a@example.com")),
        pairs(&[("a@example.com", store), ("b@example.com", store)])
    );
    assert_eq!(
        hops(&decide(&d, "b@example.com")),
        pairs(&[("b@example.com", store), ("a@example.com", store)])
    );
    assert_eq!(
        decide(&d, "c@example.com"),
        Decision::Reject(Reject::ForwardingLoop)
    );
    // The owner of e asked for the forward, so it may leave the box whoever sent the message.
    assert_eq!(
        hops(&decide(&d, "e@example.com")),
        pairs(&[
            ("out@example.net", "smtp:example.net"),
            ("ghost@example.com", "bounce 5.1.1")
        ])
    );
}

#[test]
fn bare_postmaster_is_accepted() {
    let d = provision(&[
        "cd gw.example.com",
        "mcf zimbraMtaMyHostname gw.example.com",
        "ca postmaster@gw.example.com pw zimbraMailTransport smtp:[admin.example.com]:25",
    ]);
    assert_eq!(
        hops(&decide(&d, "Postmaster")),
        pairs(&[("postmaster@gw.example.com", "smtp:[admin.example.com]:25")])
    );
}

fn messy() -> Directory {
    provision(&[
        "cd a.example zimbraMailCatchAllForwardingAddress @b.example zimbraMailTransport smtp:[a-mx.example]:25",
        "cd b.example zimbraMailCatchAllForwardingAddress @a.example",
        "cd c.example posternAuthoritative FALSE",
        "ca x@a.example pw zimbraMailForwardingAddress y@a.example zimbraMailForwardingAddress z@z.example",
        "ca y@a.example pw zimbraMailForwardingAddress x@a.example zimbraPrefMailLocalDeliveryDisabled TRUE",
        "ca off@b.example pw zimbraMailStatus disabled",
        "aaa x@a.example al@b.example",
        "mcf zimbraMtaDnsLookupsEnabled FALSE",
    ])
}

#[test]
fn catch_alls_that_point_at_each_other_are_a_loop() {
    let d = messy();
    assert_eq!(
        decide(&d, "q@a.example"),
        Decision::Reject(Reject::ForwardingLoop)
    );
}

proptest! {
    #[test]
    fn routing_is_total_and_deterministic(
        local in "[a-zA-Z.+]{0,4}|x|y|off|al|postmaster",
        domain in "[abcz]\\.example|A\\.EXAMPLE|example\\.net|\\[192\\.0\\.2\\.1\\]|[a-z@.\\[\\]]{0,6}",
        at in prop::bool::weighted(0.9),
        permitted in any::<bool>(),
    ) {
        let d = messy();
        let addr = if at { format!("{local}@{domain}") } else { local.clone() };
        let relay = if permitted { Relay::Permitted } else { Relay::Denied };
        let first = route(&addr, &d, d.config(), relay);
        let again = route(&addr, &d, d.config(), relay);
        prop_assert_eq!(&first, &again);
        if let Decision::Accept(t) = &first {
            prop_assert!((1..=MAX_TARGETS).contains(&t.len()));
        }
    }
}
