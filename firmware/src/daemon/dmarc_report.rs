//! The DMARC aggregate reporter (`posternDmarcReport`), OpenDMARC's `opendmarc-reports` run from
//! cron: once per `posternDmarcReportInterval` every domain evaluated since the last run gets one
//! report (RFC 7489 §7.2), queued through the normal queue to its `rua` addresses that may
//! receive it (§7.1) and whose size limit (`!`) it fits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::MtaConfig;
use crate::directory::SharedDirectory;
use crate::log::{LogSink, Program};
use crate::mail::{BodyType, Envelope, Notify, Recipient};
use crate::policy::SenderAuth;
use crate::policy::auth::report::{DueReport, ReportAddress};
use crate::queue::runner::{QueueHandle, QueueStore};
use crate::route::{self, Decision, Relay};
use crate::spool::SpoolHandle;

/// How often the reporter looks whether the interval (or the setting) changed.
const TICK: Duration = Duration::from_secs(5);

/// What the reporter needs: the evaluations, the directory (settings, routes), the queue.
pub struct Reporter {
    pub auth: Arc<SenderAuth>,
    pub directory: Arc<SharedDirectory>,
    pub spool: SpoolHandle,
    pub queue: QueueHandle,
    pub hostname: String,
    pub log: LogSink,
    /// Reports made so far: part of each report's id.
    pub serial: AtomicU64,
    /// Set at a clean stop: reports go onto the spool only.
    pub stopping: AtomicBool,
}

impl Reporter {
    /// Reports once per interval, until aborted.
    pub async fn run(self: Arc<Self>) {
        let mut started = Instant::now();
        loop {
            tokio::time::sleep(TICK).await;
            let interval = self
                .directory
                .snapshot()
                .config()
                .auth
                .dmarc_report_interval;
            if started.elapsed() >= interval {
                started = Instant::now();
                self.report_now().await;
            }
        }
    }

    /// At a clean stop: the rows counted in RAM go onto flash as reports instead of being lost.
    /// They are stored but not handed to the queue manager, which is stopping: a delivery cut
    /// short by the stop would be made again after the start. Recovery queues them then.
    pub async fn report_at_stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.report_now().await;
    }

    /// Ends the interval in progress: its reports are queued now.
    async fn report_now(&self) {
        let config = self.directory.snapshot().config().clone();
        let serial = self.serial.fetch_add(1, Ordering::Relaxed) + 1;
        let (org, email) = self.sender(&config);
        let due = self.auth.take_reports(unix_now(), &org, &email, serial);
        // Rows left from before the setting was turned off are dropped with the interval.
        if !config.auth.dmarc_report {
            return;
        }
        for report in due {
            self.send(report, &config, &org, &email).await;
        }
    }

    /// The reporting organisation (the From address's domain) and its From address.
    fn sender(&self, config: &MtaConfig) -> (String, String) {
        let email = config
            .auth
            .dmarc_report_address
            .clone()
            .unwrap_or_else(|| format!("postmaster@{}", self.hostname));
        let org = email
            .rsplit_once('@')
            .map_or(self.hostname.as_str(), |(_, d)| d)
            .to_string();
        (org, email)
    }

    async fn send(&self, due: DueReport, config: &MtaConfig, org: &str, email: &str) {
        let domain = &due.domain;
        let Some(allowed) = self.auth.authorised_rua(domain, &due.rua).await else {
            return self.warn(&format!(
                "DMARC report for {domain} not sent: DNS did not answer for its rua"
            ));
        };
        for refused in due.rua.iter().filter(|r| !allowed.contains(r)) {
            self.warn(&format!(
                "DMARC report for {domain} not sent to <{}>: {domain}._report._dmarc.{} \
                 does not authorise it (RFC 7489 7.1)",
                refused.address,
                refused.address.rsplit_once('@').map_or("", |(_, d)| d)
            ));
        }
        if allowed.is_empty() {
            return;
        }
        let Some(message) = self.build(&due, org, email, &allowed) else {
            return;
        };
        let fits = |r: &&ReportAddress| r.max_size == 0 || message.len() <= r.max_size;
        for big in allowed.iter().filter(|r| !fits(r)) {
            self.warn(&format!(
                "DMARC report for {domain} not sent to <{}>: {} bytes, over its limit of {}",
                big.address,
                message.len(),
                big.max_size
            ));
        }
        let fitting: Vec<ReportAddress> = allowed.iter().filter(fits).cloned().collect();
        if fitting.is_empty() {
            return;
        }
        // The To: field names only those it goes to (the message only gets smaller).
        let message = if fitting.len() < allowed.len() {
            match self.build(&due, org, email, &fitting) {
                Some(m) => m,
                None => return,
            }
        } else {
            message
        };
        let allowed = fitting;
        let directory = self.directory.snapshot();
        let mut recipients = Vec::new();
        for r in &allowed {
            match routed(&r.address, &directory, config) {
                Some(rcpt) => recipients.push(rcpt),
                None => self.warn(&format!(
                    "DMARC report for {domain} not sent to <{}>: no route to it",
                    r.address
                )),
            }
        }
        if recipients.is_empty() {
            return;
        }
        self.queue_report(
            domain,
            email,
            recipients,
            message,
            due.report.records().len(),
        )
        .await;
    }

    async fn queue_report(
        &self,
        domain: &str,
        email: &str,
        recipients: Vec<Recipient>,
        message: Vec<u8>,
        rows: usize,
    ) {
        let listed = recipients
            .iter()
            .map(|r| r.address.as_str())
            .collect::<Vec<_>>()
            .join(">, <");
        let envelope = Envelope {
            sender: email.to_string(),
            recipients,
            ret: None,
            envid: None,
            body_type: BodyType::SevenBit,
            smtputf8: false,
            arrival: unix_now(),
            client: Default::default(),
        };
        let size = message.len() as u64;
        match QueueStore::store(&self.spool, envelope.clone(), message).await {
            Ok(qid) => {
                self.log.line(
                    Program::Bounce,
                    &format!(
                        "{qid}: DMARC aggregate report for {domain} ({rows} {}) to <{listed}>",
                        if rows == 1 { "row" } else { "rows" }
                    ),
                );
                if !self.stopping.load(Ordering::Relaxed) {
                    self.queue.arrived(qid, envelope, size).await;
                }
            }
            Err(e) => self.warn(&format!(
                "DMARC report for {domain} to <{listed}> not queued: {e}"
            )),
        }
    }

    /// The report's message to `to`; `None` (logged) if it cannot be built.
    fn build(
        &self,
        due: &DueReport,
        org: &str,
        email: &str,
        to: &[ReportAddress],
    ) -> Option<Vec<u8>> {
        let to = to.iter().map(|r| r.address.as_str());
        match due.report.to_rfc5322(&self.hostname, (org, email), to) {
            Ok(m) => Some(m.into_bytes()),
            Err(e) => {
                let domain = &due.domain;
                self.warn(&format!("DMARC report for {domain} not built: {e}"));
                None
            }
        }
    }

    fn warn(&self, line: &str) {
        self.log.line(Program::Bounce, &format!("warning: {line}"));
    }
}

/// `address` with its next hop; none when routing refuses it.
fn routed(
    address: &str,
    dir: &crate::directory::Directory,
    config: &MtaConfig,
) -> Option<Recipient> {
    let next_hop = match route::route(address, dir, config, Relay::Permitted) {
        Decision::Accept(targets) => targets.first().next_hop.transport().cloned()?,
        Decision::Reject(_) => return None,
    };
    Some(Recipient {
        address: address.to_string(),
        original: None,
        orcpt: None,
        notify: Notify::NEVER,
        next_hop,
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
