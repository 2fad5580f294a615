//! MX resolution through hickory-resolver against a small DNS server on 127.0.0.1 (UDP), so the
//! real resolver's answers (trailing dots, NXDOMAIN, NODATA) meet our ordering and error rules.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hickory_resolver::proto::op::{Message, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, MX};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use postern::delivery::HickoryDns;
use postern::delivery::resolve::targets;
use postern::mail::Transport;
use tokio::net::UdpSocket;

enum Answer {
    Records(Vec<RData>),
    NxDomain,
}

/// Answers from `zone`; names absent from it exist but have no records of the asked type.
async fn dns_server(zone: HashMap<(String, RecordType), Answer>) -> SocketAddr {
    dns_server_on("127.0.0.1:0", zone).await
}

async fn dns_server_on(bind: &str, zone: HashMap<(String, RecordType), Answer>) -> SocketAddr {
    let sock = UdpSocket::bind(bind)
        .await
        .unwrap_or_else(|e| panic!("a DNS server on {bind} (port 53 needs root): {e}"));
    let addr = sock.local_addr().unwrap();
    let zone = Arc::new(zone);
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(query) = q.queries.first().cloned() else {
                continue;
            };
            let mut resp = Message::response(q.metadata.id, q.metadata.op_code);
            resp.metadata.recursion_desired = true;
            resp.metadata.recursion_available = true;
            resp.metadata.authoritative = true;
            resp.add_query(query.clone());
            let key = (
                query.name().to_ascii().to_ascii_lowercase(),
                query.query_type(),
            );
            match zone.get(&key) {
                Some(Answer::Records(rs)) => {
                    for r in rs {
                        resp.add_answer(Record::from_rdata(query.name().clone(), 60, r.clone()));
                    }
                }
                Some(Answer::NxDomain) => resp.metadata.response_code = ResponseCode::NXDomain,
                None => {}
            }
            let _ = sock.send_to(&resp.to_vec().unwrap(), peer).await;
        }
    });
    addr
}

fn mx(pref: u16, host: &str) -> RData {
    RData::MX(MX::new(pref, Name::from_ascii(host).unwrap()))
}

fn a(ip: &str) -> RData {
    RData::A(A(ip.parse().unwrap()))
}

fn hop(s: &str) -> Transport {
    s.parse().unwrap()
}

#[tokio::test]
async fn mx_order_fallback_nxdomain_and_implicit_mx_through_hickory() {
    let mut zone = HashMap::new();
    zone.insert(
        ("example.test.".to_string(), RecordType::MX),
        Answer::Records(vec![
            mx(20, "backup.example.test."),
            mx(10, "mx1.example.test."),
        ]),
    );
    zone.insert(
        ("mx1.example.test.".into(), RecordType::A),
        Answer::Records(vec![a("127.0.0.11")]),
    );
    zone.insert(
        ("backup.example.test.".into(), RecordType::A),
        Answer::Records(vec![a("127.0.0.12")]),
    );
    zone.insert(("nosuch.test.".into(), RecordType::MX), Answer::NxDomain);
    zone.insert(("nosuch.test.".into(), RecordType::A), Answer::NxDomain);
    zone.insert(
        ("plain.test.".into(), RecordType::A),
        Answer::Records(vec![a("127.0.0.13")]),
    );
    zone.insert(
        ("nullmx.test.".into(), RecordType::MX),
        Answer::Records(vec![mx(0, ".")]),
    );
    let server = dns_server(zone).await;
    let dns = HickoryDns::with_servers_on(&[server]).unwrap();

    let t = targets(&dns, &hop("smtp:example.test")).await.unwrap();
    let relays: Vec<String> = t.iter().map(|t| t.relay()).collect();
    assert_eq!(
        relays,
        [
            "mx1.example.test[127.0.0.11]:25",
            "backup.example.test[127.0.0.12]:25"
        ]
    );

    let e = targets(&dns, &hop("smtp:nosuch.test")).await.unwrap_err();
    assert!(e.permanent(), "{e:?}");
    assert_eq!(e.status().to_string(), "5.4.4");

    // No MX records: the domain's own address is its mail exchanger.
    let t = targets(&dns, &hop("smtp:plain.test")).await.unwrap();
    assert_eq!(t[0].relay(), "plain.test[127.0.0.13]:25");
    assert_eq!(t[0].ip, "127.0.0.13".parse::<IpAddr>().unwrap());

    let e = targets(&dns, &hop("smtp:nullmx.test")).await.unwrap_err();
    assert_eq!(
        (e.permanent(), e.status().to_string()),
        (true, "5.1.10".into())
    );

    // Brackets: the A record of the name itself, MX ignored.
    let e = targets(&dns, &hop("smtp:[example.test]:25")).await;
    assert!(
        e.is_err() || e.unwrap().is_empty(),
        "example.test has no A record"
    );
}

/// The appliance rewrites resolv.conf when a DHCP lease or the console changes the servers: a
/// running daemon's resolver asks the new ones at its first lookup once it looks at the file
/// again (at most a second later). resolv.conf names servers on
/// port 53 only, so the two servers sit on 127.0.0.2:53 and 127.0.0.3:53 (root, as `make test`).
#[tokio::test]
async fn the_system_resolver_follows_resolv_conf_as_it_changes() {
    let zone = |exchanger: &str| {
        let mut z = HashMap::new();
        z.insert(
            ("moved.test.".to_string(), RecordType::MX),
            Answer::Records(vec![mx(10, exchanger)]),
        );
        z.insert(
            (exchanger.to_string(), RecordType::A),
            Answer::Records(vec![a("127.0.0.21")]),
        );
        z
    };
    dns_server_on("127.0.0.2:53", zone("old.example.test.")).await;
    dns_server_on("127.0.0.3:53", zone("new.example.test.")).await;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("resolv.conf");
    std::fs::write(&conf, "nameserver 127.0.0.2\n").unwrap();
    let dns = HickoryDns::following(&conf);

    let relay = |t: Vec<postern::delivery::resolve::Target>| t[0].relay();
    let t = targets(&dns, &hop("smtp:moved.test")).await.unwrap();
    assert_eq!(relay(t), "old.example.test[127.0.0.21]:25");
    // A new lease: written aside and renamed, as the appliance writes it.
    std::fs::write(dir.path().join("new"), "nameserver 127.0.0.3\n").unwrap();
    std::fs::rename(dir.path().join("new"), &conf).unwrap();
    tokio::time::sleep(postern::nameserver::RECHECK + std::time::Duration::from_millis(100)).await;
    let t = targets(&dns, &hop("smtp:moved.test")).await.unwrap();
    assert_eq!(relay(t), "new.example.test[127.0.0.21]:25");
}
