//! DMARC beyond verification, end to end in host mode: ARC chains (RFC 8617) sealed by
//! mail-auth's ArcSealer, a trusted sealer's chain overriding a DMARC failure (RFC 7489 §6.7),
//! and the aggregate reports (RFC 7489 §7.2) the box queues to a domain's `rua`, read back from
//! smtp-sink as gzipped XML. Keys and records come from a DNS server the test starts on
//! 127.0.0.1; the client is 127.0.0.1, outside mynetworks.

use std::io::Read;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine;
use mail_auth::arc::ArcSealer;
use mail_auth::common::crypto::{RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::{ArcOutput, AuthenticatedMessage, AuthenticationResults};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use tests::dkimpy;
use tests::dns::{DnsServer, Record};
use tests::host::{HostPostern, auth_results, send_message};
use tests::peers::Sink;

fn prov(p: &HostPostern, args: &[&str]) -> String {
    let mut all = vec!["prov"];
    all.extend_from_slice(args);
    p.admin_ok(&all)
}

/// A box that is the final destination of `domains` (everything to `sink`), asking `dns`.
fn gateway(dns: &DnsServer, sink: &Sink, domains: &[&str]) -> HostPostern {
    let p = HostPostern::start(&["--dns", &dns.flag(), "--dns-timeout", "2"]);
    let transport = format!("smtp:[127.0.0.1]:{}", sink.port);
    for domain in domains {
        prov(&p, &["cd", domain, "zimbraMailTransport", &transport]);
    }
    prov(&p, &["ca", "user@example.com", "pw"]);
    prov(&p, &["mcf", "zimbraMtaMyNetworks", "192.0.2.0/24"]);
    p
}

/// A whole transaction to user@example.com; the reply to the end of data (or the refusal).
fn send(addr: SocketAddr, from: &str, message: &[u8]) -> String {
    send_message(addr, "client.test", from, "user@example.com", message)
}

/// `message` with an ARC set on top, sealed by `domain` with `key_pem` under selector `arc`, as
/// the first hop of a chain.
fn arc_seal(message: &[u8], domain: &str, key_pem: &str) -> Vec<u8> {
    let parsed = AuthenticatedMessage::parse(message).expect("a message");
    let results = AuthenticationResults::new("mx.fwd.example");
    let der = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("a PEM key");
    let key = RsaKey::<Sha256>::from_key_der(der).expect("an RSA key");
    let set = ArcSealer::from_key(key)
        .domain(domain)
        .selector("arc")
        .headers(["From", "To", "Subject"])
        .seal(&parsed, &results, &ArcOutput::default())
        .expect("sealed");
    let mut sealed = set.to_header().into_bytes();
    sealed.extend_from_slice(message);
    sealed
}

/// strict.example publishes p=reject and sends from elsewhere: unsigned, its mail fails DMARC.
fn strict_records(dns: &DnsServer) {
    dns.add(
        "strict.example",
        Record::Txt("v=spf1 ip4:192.0.2.1 -all".into()),
    );
    dns.add(
        "_dmarc.strict.example",
        Record::Txt("v=DMARC1; p=reject".into()),
    );
}

#[test]
fn a_trusted_arc_sealer_overrides_a_dmarc_failure() {
    if !dkimpy::available() {
        return;
    }
    let dns = DnsServer::start();
    strict_records(&dns);
    let (key, record) = dkimpy::rsa_key();
    dns.add("arc._domainkey.fwd.example", Record::Txt(record.clone()));
    dns.add("arc._domainkey.other-fwd.example", Record::Txt(record));
    let sink = Sink::start(0);
    let mut seen = Vec::new();
    let p = gateway(&dns, &sink, &["example.com"]);
    let smtp = p.listener("smtp");
    prov(
        &p,
        &[
            "mcf",
            "posternSpfAction",
            "record",
            "posternDmarcEnforce",
            "TRUE",
        ],
    );
    let plain =
        b"From: a@strict.example\r\nTo: user@example.com\r\nSubject: via a list\r\n\r\nbody\r\n";
    let sealed = arc_seal(plain, "fwd.example", &key);

    // No sealer trusted yet: the chain passes, but DMARC p=reject still refuses.
    let reply = send(smtp, "list@strict.example", &sealed);
    assert_eq!(
        reply,
        "550 5.7.1 rejected by DMARC policy for strict.example"
    );
    let bad = p.admin(&["prov", "mcf", "posternArcTrustedSealers", "not a domain"]);
    assert!(!bad.status.success());
    prov(&p, &["mcf", "posternArcTrustedSealers", "fwd.example"]);
    assert_eq!(
        prov(&p, &["gacf", "posternArcTrustedSealers"]).trim(),
        "posternArcTrustedSealers: fwd.example"
    );

    // Trusted: delivered, the failure recorded with the override that let it through.
    let reply = send(smtp, "list@strict.example", &sealed);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let fields = auth_results(&sink.next_unseen(&mut seen));
    assert_eq!(fields.len(), 1, "{fields:?}");
    let ours = &fields[0];
    assert!(ours.contains("arc=pass smtp.remote-ip=127.0.0.1"), "{ours}");
    assert!(
        ours.contains("dmarc=fail")
            && ours.contains(
                "policy.dmarc=reject (policy.override=arc: chain sealed by trusted fwd.example)"
            ),
        "{ours}"
    );
    assert!(
        p.log()
            .contains("DMARC failure delivered: ARC chain sealed by trusted fwd.example"),
        "{}",
        p.log()
    );

    // A chain broken on the way (a signed field changed after sealing) fails and overrides nothing.
    let altered = String::from_utf8_lossy(&sealed).replace("via a list", "via a l1st");
    let reply = send(smtp, "list@strict.example", altered.as_bytes());
    assert_eq!(
        reply,
        "550 5.7.1 rejected by DMARC policy for strict.example"
    );
    // A passing chain sealed by someone else is not trusted.
    let other = arc_seal(plain, "other-fwd.example", &key);
    let reply = send(smtp, "list@strict.example", &other);
    assert_eq!(
        reply,
        "550 5.7.1 rejected by DMARC policy for strict.example"
    );

    // Recorded without enforcement: the broken chain shows as arc=fail, none without a chain.
    prov(
        &p,
        &[
            "mcf",
            "posternDmarcEnforce",
            "FALSE",
            "posternDmarcVerify",
            "TRUE",
        ],
    );
    let reply = send(smtp, "list@strict.example", altered.as_bytes());
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let fields = auth_results(&sink.next_unseen(&mut seen));
    assert!(fields[0].contains("arc=fail"), "{fields:?}");
    let reply = send(smtp, "list@strict.example", plain);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let fields = auth_results(&sink.next_unseen(&mut seen));
    assert!(
        fields[0].contains("arc=none") && !fields[0].contains("policy.override"),
        "{fields:?}"
    );
}

/// The gzipped XML attachment of a report as smtp-sink saved it, unpacked.
fn report_xml(message: &str) -> String {
    let message = message.replace("\r\n", "\n");
    let at = message.find("application/gzip").expect("a gzip attachment");
    let part = &message[at..];
    let body_start = part.find("\n\n").expect("the part's body") + 2;
    let b64: String = part[body_start..]
        .lines()
        .take_while(|l| !l.starts_with("--"))
        .collect();
    let gz = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .expect("base64");
    let mut xml = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut xml)
        .expect("gzip");
    xml
}

#[test]
fn aggregate_reports_go_to_the_authorised_rua_once_per_interval() {
    let dns = DnsServer::start();
    dns.add(
        "rep.example",
        Record::Txt("v=spf1 ip4:127.0.0.1 -all".into()),
    );
    dns.add(
        "fail.example",
        Record::Txt("v=spf1 ip4:192.0.2.1 -all".into()),
    );
    // Four rua: in the domain itself; outside it and authorised; outside and not authorised;
    // authorised but with a size limit no report fits.
    dns.add(
        "_dmarc.rep.example",
        Record::Txt(
            "v=DMARC1; p=none; rua=mailto:reports@rep.example,mailto:agg@example.com,\
mailto:agg@elsewhere.example,mailto:tiny@example.com!100"
                .into(),
        ),
    );
    dns.add(
        "rep.example._report._dmarc.example.com",
        Record::Txt("v=DMARC1".into()),
    );
    let sink = Sink::start(0);
    let p = gateway(&dns, &sink, &["example.com", "rep.example"]);
    prov(&p, &["ca", "reports@rep.example", "pw"]);
    prov(&p, &["ca", "agg@example.com", "pw"]);
    prov(&p, &["ca", "tiny@example.com", "pw"]);
    let smtp = p.listener("smtp");
    assert_eq!(
        prov(&p, &["gacf", "posternDmarcReportInterval"]).trim(),
        "posternDmarcReportInterval: 1d"
    );
    let bad = p.admin(&["prov", "mcf", "posternDmarcReportInterval", "1s"]);
    assert!(!bad.status.success());
    prov(
        &p,
        &[
            "mcf",
            "posternDmarcReport",
            "TRUE",
            "posternDmarcReportAddress",
            "dmarc-reports@reports.test.example",
            "posternDmarcReportInterval",
            "10s",
        ],
    );

    // Two evaluations: aligned SPF passes; an envelope from another domain fails (p=none).
    let one = b"From: a@rep.example\r\nTo: user@example.com\r\nSubject: 1\r\n\r\nbody\r\n";
    let reply = send(smtp, "a@rep.example", one);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let two = b"From: b@rep.example\r\nTo: user@example.com\r\nSubject: 2\r\n\r\nbody\r\n";
    let reply = send(smtp, "b@fail.example", two);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let mut seen = sink.wait_for(2, Duration::from_secs(30));
    assert_eq!(seen.len(), 2, "not delivered");
    for m in &seen {
        assert!(auth_results(m)[0].contains("dmarc="), "{m}");
    }

    // Within an interval and a few seconds the report arrives, once, to the two it may go to.
    let started = Instant::now();
    let report = sink.next_unseen(&mut seen);
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "{:?}",
        started.elapsed()
    );
    assert!(report.contains("Report Domain: rep.example"), "{report}");
    assert!(
        report.lines().any(|l| l.starts_with("From: ")
            && l.contains("reports.test.example")
            && l.ends_with("<dmarc-reports@reports.test.example>")),
        "{report}"
    );
    let rcpts: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("X-Rcpt-Args:"))
        .collect();
    assert_eq!(rcpts.len(), 2, "{report}");
    assert!(
        report.contains("<reports@rep.example>") && report.contains("<agg@example.com>"),
        "{report}"
    );
    assert!(
        !report.contains("agg@elsewhere.example") && !report.contains("tiny@example.com"),
        "{report}"
    );
    let log = p.log();
    assert!(
        log.contains(
            "DMARC aggregate report for rep.example (2 rows) to <reports@rep.example>, <agg@example.com>"
        ),
        "{log}"
    );
    assert!(
        log.contains("not sent to <agg@elsewhere.example>: rep.example._report._dmarc.elsewhere.example does not authorise it"),
        "{log}"
    );
    assert!(
        log.contains("not sent to <tiny@example.com>") && log.contains("over its limit of 100"),
        "{log}"
    );

    let xml = report_xml(&report);
    assert!(
        xml.contains("<org_name>reports.test.example</org_name>")
            && xml.contains("<email>dmarc-reports@reports.test.example</email>"),
        "{xml}"
    );
    assert!(xml.contains("<domain>rep.example</domain>"), "{xml}");
    assert_eq!(xml.matches("<record>").count(), 2, "{xml}");
    assert_eq!(
        xml.matches("<source_ip>127.0.0.1</source_ip>").count(),
        2,
        "{xml}"
    );
    assert!(
        xml.contains("<envelope_from>fail.example</envelope_from>"),
        "{xml}"
    );
    assert!(
        xml.contains("<header_from>rep.example</header_from>"),
        "{xml}"
    );
    // mail-auth reads its own XML back to the same two rows, with what was done with each.
    let parsed = mail_auth::report::Report::parse_xml(xml.as_bytes()).expect("a DMARC report");
    let mut spf: Vec<_> = parsed
        .records()
        .iter()
        .map(|r| (r.dmarc_spf_result(), r.action_disposition(), r.count()))
        .collect();
    spf.sort_by_key(|s| format!("{s:?}"));
    use mail_auth::report::{ActionDisposition, DmarcResult};
    assert_eq!(
        spf,
        [
            (DmarcResult::Fail, ActionDisposition::None, 1),
            (DmarcResult::Pass, ActionDisposition::Pass, 1)
        ]
    );

    // No traffic, no report: the next intervals send nothing.
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!(
        sink.messages().len(),
        seen.len(),
        "an empty report was sent"
    );
}

#[test]
fn a_clean_stop_reports_the_interval_in_progress() {
    let dns = DnsServer::start();
    dns.add(
        "rep.example",
        Record::Txt("v=spf1 ip4:127.0.0.1 -all".into()),
    );
    dns.add(
        "_dmarc.rep.example",
        Record::Txt("v=DMARC1; p=none; rua=mailto:reports@rep.example".into()),
    );
    let sink = Sink::start(0);
    let mut p = gateway(&dns, &sink, &["example.com", "rep.example"]);
    prov(&p, &["ca", "reports@rep.example", "pw"]);
    // The default interval, a day: only the stop makes the report now.
    prov(&p, &["mcf", "posternDmarcReport", "TRUE"]);
    let one = b"From: a@rep.example\r\nTo: user@example.com\r\nSubject: 1\r\n\r\nbody\r\n";
    let reply = send(p.listener("smtp"), "a@rep.example", one);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    assert_eq!(sink.wait_for(1, Duration::from_secs(30)).len(), 1);

    assert!(p.stop().success());
    assert!(
        p.log()
            .contains("DMARC aggregate report for rep.example (1 row) to <reports@rep.example>"),
        "{}",
        p.log()
    );
    // Stored on flash at the stop, delivered after the next start, once.
    assert_eq!(sink.messages().len(), 1, "delivered while stopping");
    p.restart();
    assert_eq!(sink.wait_for(2, Duration::from_secs(30)).len(), 2);
    // A second copy would be in by now.
    std::thread::sleep(Duration::from_secs(2));
    let all = sink.messages();
    let reports: Vec<&String> = all
        .iter()
        .filter(|m| m.contains("Report Domain: rep.example"))
        .collect();
    assert_eq!(reports.len(), 1, "{all:?}");
    let xml = report_xml(reports[0]);
    assert!(xml.contains("<count>1</count>"), "{xml}");
    assert!(
        xml.contains("<header_from>rep.example</header_from>"),
        "{xml}"
    );
}
