//! The box's counters and histograms for Prometheus, named as `postfix_exporter` names them where
//! it has a name (so existing Postfix dashboards work) and `postern_*` for the rest.
//!
//! Events are counted where they happen, by a one-line call into [`global`]: threading a handle
//! through every stage's constructors for a counter would touch them all, and a process has one
//! set of counters anyway. What is a state rather than an event (queue sizes and ages, flash use,
//! directory entries) is read from the handles at scrape time by `admin::metrics` and added to
//! the same [`Registry`]; every series exists from the start, at zero, so an idle box draws a
//! line, not a gap.

use std::borrow::Cow;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Label sets of what is read at scrape time: a few `(name, value)` pairs.
pub type Labels = Vec<(String, String)>;

/// A counted event's label set: `N` `(name, value)` pairs. Values are borrowed when they are one of the known
/// ones, so counting an event (several per message) allocates nothing.
type EventLabels<const N: usize> = [(&'static str, Cow<'static, str>); N];

/// `value` as the one of `known` it equals, borrowed; an unknown value is copied.
fn known(value: &str, known: &[&'static str]) -> Cow<'static, str> {
    match known.iter().find(|k| **k == value) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(value.to_string()),
    }
}

/// postfix_exporter's delay buckets (seconds): a millisecond to a week.
pub const DELAY_BUCKETS: [f64; 9] = [
    1e-3, 1e-2, 1e-1, 1.0, 10.0, 60.0, 3600.0, 86_400.0, 604_800.0,
];

/// The four parts of Postfix's `delays=a/b/c/d`, as postfix_exporter labels them.
pub const DELAY_TYPES: [&str; 4] = [
    "before_queue_manager",
    "queue_manager",
    "connection_setup",
    "transmission",
];

/// The TLS versions the box speaks; their series exist before the first session.
pub const TLS_VERSIONS: [&str; 2] = ["TLSv1.2", "TLSv1.3"];

/// The delivery statuses of the mail log.
pub const STATUSES: [&str; 3] = ["sent", "deferred", "bounced"];

/// The content stage's verdicts as its log lines give them (action, amavis category).
pub const VERDICTS: [(&str, &str); 9] = [
    ("Passed", "CLEAN"),
    ("Passed", "SPAMMY"),
    ("Passed", "UNCHECKED"),
    ("Blocked", "SPAM"),
    ("Blocked", "INFECTED"),
    ("Blocked", "BANNED"),
    ("Blocked", "UNCHECKED"),
    ("Blocked", "LOOP"),
    ("Deferred", "UNCHECKED"),
];

/// Directory syncs: their kinds and how they ended.
pub const SYNC_KINDS: [&str; 2] = ["full", "incremental"];
pub const SYNC_RESULTS: [&str; 2] = ["success", "failure"];

fn label(name: &'static str, value: Cow<'static, str>) -> EventLabels<1> {
    [(name, value)]
}

/// A content verdict's labels, borrowed from [`VERDICTS`] when the pair is one of them.
fn verdict_labels(action: &str, category: &str) -> EventLabels<2> {
    let (action, category) = match VERDICTS.iter().find(|v| **v == (action, category)) {
        Some((a, c)) => (Cow::Borrowed(*a), Cow::Borrowed(*c)),
        None => (Cow::Owned(action.into()), Cow::Owned(category.into())),
    };
    [("action", action), ("category", category)]
}

fn sync_labels(kind: &str, result: &'static str) -> EventLabels<2> {
    [
        ("kind", known(kind, &SYNC_KINDS)),
        ("result", Cow::Borrowed(result)),
    ]
}

fn delay_histogram() -> Histogram {
    Histogram::new(DELAY_BUCKETS)
}

/// Every event counter of the process.
pub struct Metrics {
    smtpd_connects: Counter,
    smtpd_processed: Counter,
    smtpd_rejected: Family<EventLabels<1>, Counter>,
    smtpd_tls: Family<EventLabels<1>, Counter>,
    cleanup_rejected: Counter,
    smtp_delay: Family<EventLabels<1>, Histogram, fn() -> Histogram>,
    lmtp_delay: Family<EventLabels<1>, Histogram, fn() -> Histogram>,
    delivery_status: Family<EventLabels<1>, Counter>,
    qmgr_removed: Counter,
    spool_batch: Histogram,
    spool_sync: Histogram,
    content_verdicts: Family<EventLabels<2>, Counter>,
    directory_syncs: Family<EventLabels<2>, Counter>,
}

static GLOBAL: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's counters.
pub fn global() -> &'static Metrics {
    &GLOBAL
}

/// Which delivery client the delays are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    Smtp,
    Lmtp,
}

impl Metrics {
    fn new() -> Metrics {
        let m = Metrics {
            smtpd_connects: Counter::default(),
            smtpd_processed: Counter::default(),
            smtpd_rejected: Family::default(),
            smtpd_tls: Family::default(),
            cleanup_rejected: Counter::default(),
            smtp_delay: Family::new_with_constructor(delay_histogram),
            lmtp_delay: Family::new_with_constructor(delay_histogram),
            delivery_status: Family::default(),
            qmgr_removed: Counter::default(),
            // Messages per sync: 1 alone, up to hundreds under load.
            spool_batch: Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
            // A sync: tens of microseconds on a file, milliseconds on real flash.
            spool_sync: Histogram::new([
                1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5, 1.0,
            ]),
            content_verdicts: Family::default(),
            directory_syncs: Family::default(),
        };
        for (action, category) in VERDICTS {
            drop(
                m.content_verdicts
                    .get_or_create(&verdict_labels(action, category)),
            );
        }
        for kind in SYNC_KINDS {
            for result in SYNC_RESULTS {
                drop(m.directory_syncs.get_or_create(&sync_labels(kind, result)));
            }
        }
        for v in TLS_VERSIONS {
            drop(
                m.smtpd_tls
                    .get_or_create(&label("protocol", Cow::Borrowed(v))),
            );
        }
        for t in DELAY_TYPES {
            drop(
                m.smtp_delay
                    .get_or_create(&label("delay_type", Cow::Borrowed(t))),
            );
            drop(
                m.lmtp_delay
                    .get_or_create(&label("delay_type", Cow::Borrowed(t))),
            );
        }
        for s in STATUSES {
            drop(
                m.delivery_status
                    .get_or_create(&label("status", Cow::Borrowed(s))),
            );
        }
        m
    }

    /// A client connected to a listener.
    pub fn smtpd_connect(&self) {
        self.smtpd_connects.inc();
    }

    /// The end of DATA: queued (answered 250), or refused with this code. A 5xx there is the
    /// content stage's verdict; a 4xx (the spool could not take it) is nobody's rejection.
    pub fn smtpd_message_end(&self, result: Result<(), u16>) {
        match result {
            Ok(()) => self.smtpd_processed.inc(),
            Err(code) if code >= 500 => self.cleanup_rejected.inc(),
            Err(_) => 0,
        };
    }

    /// A recipient (or the client at another stage) was refused with this reply code.
    pub fn smtpd_rejected(&self, code: u16) {
        self.smtpd_rejected
            .get_or_create(&label("code", Cow::Owned(code.to_string())))
            .inc();
    }

    /// A TLS session started (STARTTLS or port 465), by protocol version.
    pub fn smtpd_tls(&self, version: &str) {
        self.smtpd_tls
            .get_or_create(&label("protocol", known(version, &TLS_VERSIONS)))
            .inc();
    }

    /// One recipient's delivery attempt ended with this status (`sent`, `deferred`, `bounced`)
    /// and Postfix's four delays.
    pub fn delivery(&self, client: Client, status: &str, delays: [Duration; 4]) {
        let family = match client {
            Client::Smtp => &self.smtp_delay,
            Client::Lmtp => &self.lmtp_delay,
        };
        for (t, d) in DELAY_TYPES.iter().zip(delays) {
            family
                .get_or_create(&label("delay_type", Cow::Borrowed(t)))
                .observe(d.as_secs_f64());
        }
        self.delivery_status
            .get_or_create(&label("status", known(status, &STATUSES)))
            .inc();
    }

    /// A message left the queue (delivered, bounced, expired or deleted).
    pub fn qmgr_removed(&self) {
        self.qmgr_removed.inc();
    }

    /// The content stage decided about a message (`Passed`/`Blocked`/`Deferred`, amavis's
    /// category), as its log line says.
    pub fn content_verdict(&self, action: &str, category: &str) {
        self.content_verdicts
            .get_or_create(&verdict_labels(action, category))
            .inc();
    }

    /// A directory sync from LDAP ended (`full`/`incremental`).
    pub fn directory_sync(&self, kind: &str, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.directory_syncs
            .get_or_create(&sync_labels(kind, result))
            .inc();
    }

    /// Runs one group-commit sync of `batch` waiting requests and times it.
    pub fn spool_sync<T>(&self, batch: usize, sync: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let result = sync();
        self.spool_sync.observe(started.elapsed().as_secs_f64());
        self.spool_batch.observe(batch as f64);
        result
    }

    /// Adds every counter to `registry` (the counters are shared, not copied).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "postfix_smtpd_connects",
            "Connections accepted by the SMTP listeners",
            self.smtpd_connects.clone(),
        );
        registry.register(
            "postfix_smtpd_messages_processed",
            "Messages accepted and queued (answered 250)",
            self.smtpd_processed.clone(),
        );
        registry.register(
            "postfix_smtpd_messages_rejected",
            "Recipients refused by policy or routing, by reply code",
            self.smtpd_rejected.clone(),
        );
        registry.register(
            "postfix_smtpd_tls_connections",
            "TLS sessions started by clients, by protocol version",
            self.smtpd_tls.clone(),
        );
        registry.register(
            "postfix_cleanup_messages_rejected",
            "Messages refused at the end of DATA for their content",
            self.cleanup_rejected.clone(),
        );
        registry.register_with_unit(
            "postfix_smtp_delivery_delay",
            "SMTP delivery delays per recipient, as in the log's delays=",
            Unit::Seconds,
            self.smtp_delay.clone(),
        );
        registry.register_with_unit(
            "postfix_lmtp_delivery_delay",
            "LMTP delivery delays per recipient, as in the log's delays=",
            Unit::Seconds,
            self.lmtp_delay.clone(),
        );
        registry.register(
            "postern_delivery_recipients",
            "Recipient delivery attempts, by the status the mail log gives",
            self.delivery_status.clone(),
        );
        registry.register(
            "postfix_qmgr_messages_removed",
            "Messages removed from the queue",
            self.qmgr_removed.clone(),
        );
        registry.register(
            "postern_spool_group_commit_batch_requests",
            "Requests (commits, state changes) made durable by one flash sync",
            self.spool_batch.clone(),
        );
        registry.register_with_unit(
            "postern_spool_sync",
            "Time one flash sync of the spool took",
            Unit::Seconds,
            self.spool_sync.clone(),
        );
        registry.register(
            "postern_content_verdicts",
            "Messages judged by the content stage, by action and amavis category",
            self.content_verdicts.clone(),
        );
        registry.register(
            "postern_directory_syncs",
            "Directory syncs from LDAP, by kind and result",
            self.directory_syncs.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::prometheus_text::encode;

    /// What a scrape of `m` alone shows.
    fn text(m: &Metrics) -> String {
        let mut r = Registry::default();
        m.register(&mut r);
        let mut out = String::new();
        encode(&mut out, &r).unwrap();
        out
    }

    #[test]
    fn series_exist_at_zero_and_count() {
        let m = Metrics::new();
        let before = text(&m);
        assert!(
            before.contains("\npostfix_smtpd_connects_total 0\n"),
            "{before}"
        );
        assert!(before.contains("postfix_smtpd_tls_connections_total{protocol=\"TLSv1.3\"} 0\n"));
        assert!(before.contains(
            "postfix_smtp_delivery_delay_seconds_bucket{delay_type=\"transmission\",le=\"0.001\"} 0\n"
        ), "{before}");
        m.smtpd_connect();
        m.smtpd_rejected(550);
        m.delivery(
            Client::Smtp,
            "sent",
            [
                Duration::from_millis(5),
                Duration::ZERO,
                Duration::ZERO,
                Duration::from_secs(2),
            ],
        );
        let after = text(&m);
        assert!(
            after.contains("\npostfix_smtpd_connects_total 1\n"),
            "{after}"
        );
        assert!(after.contains("postfix_smtpd_messages_rejected_total{code=\"550\"} 1\n"));
        assert!(after.contains(
            "postfix_smtp_delivery_delay_seconds_bucket{delay_type=\"transmission\",le=\"10\"} 1\n"
        ), "{after}");
        assert!(after.contains("postern_delivery_recipients_total{status=\"sent\"} 1\n"));
    }

    #[test]
    fn verdicts_and_syncs_are_series_from_the_start() {
        let m = Metrics::new();
        let infected = "postern_content_verdicts_total{action=\"Blocked\",category=\"INFECTED\"}";
        let failed = "postern_directory_syncs_total{kind=\"incremental\",result=\"failure\"}";
        let before = text(&m);
        assert!(before.contains(&format!("{infected} 0\n")), "{before}");
        assert!(before.contains(&format!("{failed} 0\n")), "{before}");
        m.content_verdict("Blocked", "INFECTED");
        m.directory_sync("incremental", false);
        m.directory_sync("full", true);
        let after = text(&m);
        assert!(after.contains(&format!("{infected} 1\n")), "{after}");
        assert!(after.contains(&format!("{failed} 1\n")), "{after}");
        assert!(
            after.contains("postern_directory_syncs_total{kind=\"full\",result=\"success\"} 1\n"),
            "{after}"
        );
    }
}
