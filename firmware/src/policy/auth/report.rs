//! DMARC aggregate reports (RFC 7489 §7.2), as OpenDMARC's history file and `opendmarc-reports`
//! make them: every evaluation is noted as one row (source IP, identifiers, SPF and DKIM results,
//! what the box did), identical rows are counted instead of repeated, and once per interval each
//! domain's rows become one report (mail-auth's XML, gzipped, in a message to its `rua`).
//!
//! The book is RAM only and bounded ([`MAX_ROWS`] distinct rows): a row that does not fit is
//! counted and the report says how many were lost. It is not kept on flash as such: the box's
//! small state lives in the config slot, which holds settings and secrets written by admin
//! commands; rows written there at every evaluation would wear the flash, race those commands,
//! and a new slot layout would make the slot unreadable to the firmware a rollback returns to.
//! Instead a clean stop reports the interval in progress early (the queued reports are on flash);
//! a power cut or kill loses its rows.

use std::collections::HashMap;
use std::net::IpAddr;

use mail_auth::report::{ActionDisposition, PolicyOverride, PolicyOverrideReason, PolicyPublished};
use mail_auth::report::{Record, Report, SPFDomainScope};
use mail_auth::{ArcOutput, DkimOutput, DmarcOutput, SpfOutput};

/// Distinct rows the book holds at most (a few hundred bytes each).
pub const MAX_ROWS: usize = 4096;

/// Where a report for a domain may go: a `rua` `mailto:` address and its size limit (`!10m`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportAddress {
    pub address: String,
    /// Bytes; 0: no limit.
    pub max_size: usize,
}

/// One DMARC evaluation of a message, ready to be counted in its domain's report.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The policy domain (the domain whose record was found).
    pub domain: String,
    pub policy: PolicyPublished,
    pub rua: Vec<ReportAddress>,
    pub record: Record,
}

/// What the box did with a message that was evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Delivered,
    Quarantined,
    Rejected,
}

/// The facts of one evaluation, as [`evaluation`] turns them into a report row.
pub struct Evaluated<'a> {
    pub source_ip: IpAddr,
    pub envelope_from_domain: &'a str,
    pub header_from: &'a str,
    pub spf: Option<(&'a SpfOutput, bool)>,
    pub dkim: &'a [DkimOutput<'a>],
    pub dmarc: &'a DmarcOutput,
    pub arc: Option<&'a ArcOutput<'a>>,
    pub disposition: Disposition,
    /// The trusted ARC sealer that turned a failure into a delivery.
    pub trusted_sealer: Option<&'a str>,
}

/// The row of an evaluation; `None` when its domain publishes no record or asks for no report.
pub fn evaluation(e: &Evaluated<'_>) -> Option<Evaluation> {
    let record = e.dmarc.dmarc_record()?;
    let rua: Vec<ReportAddress> = record
        .rua
        .iter()
        .filter(|u| is_mailbox(u.uri()))
        .map(|u| ReportAddress {
            address: u.uri().to_ascii_lowercase(),
            max_size: u.max_size(),
        })
        .collect();
    if rua.is_empty() {
        return None;
    }
    let domain = e.dmarc.domain().to_ascii_lowercase();
    let mut row = Record::new()
        .with_source_ip(e.source_ip)
        .with_count(1)
        .with_envelope_from(e.envelope_from_domain.to_ascii_lowercase())
        .with_header_from(e.header_from.to_ascii_lowercase())
        .with_dkim_output(e.dkim)
        .with_dmarc_output(e.dmarc);
    if let Some((spf, helo)) = e.spf {
        let scope = if helo {
            SPFDomainScope::Helo
        } else {
            SPFDomainScope::MailFrom
        };
        row = row.with_spf_output(spf, scope);
    }
    // mail-auth writes the policy's disposition; the report says what was done (§7.2.1.1).
    let failed = !matches!(
        row.action_disposition(),
        ActionDisposition::Pass | ActionDisposition::Unspecified
    );
    if failed {
        row = row.with_action_disposition(match e.disposition {
            Disposition::Delivered => ActionDisposition::None,
            Disposition::Quarantined => ActionDisposition::Quarantine,
            Disposition::Rejected => ActionDisposition::Reject,
        });
    }
    if let (Some(sealer), Some(arc)) = (e.trusted_sealer, e.arc) {
        row = row.with_arc_output(arc).with_policy_override_reason(
            PolicyOverrideReason::new(PolicyOverride::TrustedForwarder)
                .with_comment(format!("trusted ARC sealer {sealer}")),
        );
    }
    Some(Evaluation {
        domain: domain.clone(),
        policy: PolicyPublished::from_record(domain, record),
        rua,
        record: row,
    })
}

/// A `mailto:` target the box can send to: one address, nothing that would need decoding.
fn is_mailbox(uri: &str) -> bool {
    uri.rsplit_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && domain.contains('.')
            && !uri
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b"<>%,;".contains(&b))
    })
}

/// The rows of one domain since its last report.
#[derive(Debug, Clone, PartialEq)]
struct DomainRows {
    policy: PolicyPublished,
    rua: Vec<ReportAddress>,
    /// Each distinct row (its count left at 0) and how many times it was seen.
    rows: HashMap<Record, u32>,
    /// Rows that did not fit the book.
    dropped: u64,
}

/// The evaluations of the interval in progress.
#[derive(Debug, Default)]
pub struct ReportBook {
    domains: HashMap<String, DomainRows>,
    rows: usize,
    /// Unix seconds of the first row of this interval.
    since: Option<u64>,
}

/// One domain's report, due now.
#[derive(Debug, Clone, PartialEq)]
pub struct DueReport {
    pub domain: String,
    pub rua: Vec<ReportAddress>,
    pub report: Report,
}

impl ReportBook {
    /// Counts `e`, seen at `now` (Unix seconds).
    pub fn note(&mut self, e: Evaluation, now: u64) {
        self.since.get_or_insert(now);
        let full = self.rows >= MAX_ROWS;
        let rows = self.domains.entry(e.domain).or_insert_with(|| DomainRows {
            policy: e.policy.clone(),
            rua: e.rua.clone(),
            rows: HashMap::new(),
            dropped: 0,
        });
        // The newest record is the one in force when the report goes.
        rows.policy = e.policy;
        rows.rua = e.rua;
        let key = e.record.with_count(0);
        if let Some(n) = rows.rows.get_mut(&key) {
            *n = n.saturating_add(1);
        } else if full {
            rows.dropped += 1;
        } else {
            rows.rows.insert(key, 1);
            self.rows += 1;
        }
    }

    /// Distinct rows held.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Every domain's report for the interval up to `now`, from `org` (`email` its contact),
    /// numbered after `serial`; the book starts a new interval.
    pub fn take(&mut self, now: u64, org: &str, email: &str, serial: u64) -> Vec<DueReport> {
        let Some(begin) = self.since.take() else {
            return Vec::new();
        };
        self.rows = 0;
        let mut domains: Vec<(String, DomainRows)> = self.domains.drain().collect();
        domains.sort_by(|a, b| a.0.cmp(&b.0));
        domains
            .into_iter()
            .enumerate()
            .map(|(n, (domain, rows))| {
                let mut report = Report::new()
                    .with_version(1.0)
                    .with_org_name(org)
                    .with_email(email)
                    .with_report_id(format!("{begin}.{serial}.{n}@{org}"))
                    .with_date_range_begin(begin)
                    .with_date_range_end(now.max(begin))
                    .with_generator("postern")
                    .with_policy_published(rows.policy);
                if rows.dropped > 0 {
                    report = report.with_error(format!(
                        "{} rows not counted: the reporter's store was full",
                        rows.dropped
                    ));
                }
                let mut records: Vec<Record> = rows
                    .rows
                    .into_iter()
                    .map(|(r, count)| r.with_count(count))
                    .collect();
                // A stable order: the report reads the same for the same traffic.
                records.sort_by_key(|r| std::cmp::Reverse(r.count()));
                for r in records {
                    report.add_record(r);
                }
                DueReport {
                    domain,
                    rua: rows.rua,
                    report,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_auth::common::parse::TxtRecordParser;
    use mail_auth::dmarc::Dmarc;
    use mail_auth::{DmarcResult, Error};
    use std::sync::Arc;

    fn record(txt: &str) -> Arc<Dmarc> {
        Arc::new(Dmarc::parse(txt.as_bytes()).unwrap())
    }

    fn dmarc(domain: &str, failed: bool) -> DmarcOutput {
        let record = record(&format!(
            "v=DMARC1; p=quarantine; rua=mailto:rua@{domain},mailto:root@localhost,\
mailto:big@reports.example!10k"
        ));
        let result = if failed {
            DmarcResult::Fail(Error::NotAligned)
        } else {
            DmarcResult::Pass
        };
        DmarcOutput::new(domain.into())
            .with_spf_result(result.clone())
            .with_dkim_result(result)
            .with_record(record)
    }

    fn evaluated<'a>(dmarc: &'a DmarcOutput, ip: &str, d: Disposition) -> Evaluated<'a> {
        Evaluated {
            source_ip: ip.parse().unwrap(),
            envelope_from_domain: "Example.COM",
            header_from: "example.com",
            spf: None,
            dkim: &[],
            dmarc,
            arc: None,
            disposition: d,
            trusted_sealer: None,
        }
    }

    #[test]
    fn identical_rows_are_counted_and_each_domain_gets_its_report() {
        let failed = dmarc("example.com", true);
        let passed = dmarc("other.example", false);
        let mut book = ReportBook::default();
        for _ in 0..3 {
            let e = evaluation(&evaluated(&failed, "192.0.2.1", Disposition::Quarantined));
            book.note(e.unwrap(), 100);
        }
        let e = evaluation(&evaluated(&failed, "192.0.2.2", Disposition::Delivered)).unwrap();
        assert_eq!(
            e.rua.len(),
            2,
            "the unusable address is left out: {:?}",
            e.rua
        );
        assert_eq!(e.rua[1].max_size, 10 * 1024);
        book.note(e, 150);
        let e = evaluation(&evaluated(&passed, "192.0.2.1", Disposition::Delivered)).unwrap();
        book.note(e, 160);
        assert_eq!(book.rows(), 3);

        let due = book.take(200, "mx.example.net", "dmarc@mx.example.net", 7);
        assert_eq!(due.len(), 2);
        let r = &due[0].report;
        assert_eq!(due[0].domain, "example.com");
        assert_eq!((r.date_range_begin(), r.date_range_end()), (100, 200));
        assert_eq!(r.report_id(), "100.7.0@mx.example.net");
        let rows = r.records();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].count(), 3);
        assert_eq!(rows[0].action_disposition(), ActionDisposition::Quarantine);
        assert_eq!(rows[1].action_disposition(), ActionDisposition::None);
        assert_eq!(
            due[1].report.records()[0].action_disposition(),
            ActionDisposition::Pass
        );
        // A new interval starts empty.
        assert!(book.take(300, "o", "e@o.example", 8).is_empty());
    }

    #[test]
    fn a_full_book_counts_what_it_drops_and_the_report_says_so() {
        let failed = dmarc("example.com", true);
        let mut book = ReportBook::default();
        for n in 0..(MAX_ROWS + 5) {
            let ip = format!("10.{}.{}.{}", n >> 16, (n >> 8) & 255, n & 255);
            let e = evaluation(&evaluated(&failed, &ip, Disposition::Delivered)).unwrap();
            book.note(e, 1);
        }
        assert_eq!(book.rows(), MAX_ROWS);
        let due = book.take(2, "o.example", "e@o.example", 1);
        assert_eq!(due[0].report.records().len(), MAX_ROWS);
        assert_eq!(
            due[0].report.error(),
            ["5 rows not counted: the reporter's store was full"]
        );
    }

    #[test]
    fn no_record_or_no_rua_gives_no_row() {
        let none = DmarcOutput::new("example.com".into());
        assert!(evaluation(&evaluated(&none, "192.0.2.1", Disposition::Delivered)).is_none());
        let quiet = DmarcOutput::new("example.com".into()).with_record(record("v=DMARC1; p=none"));
        assert!(evaluation(&evaluated(&quiet, "192.0.2.1", Disposition::Delivered)).is_none());
    }
}
