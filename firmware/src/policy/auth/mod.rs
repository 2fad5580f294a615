//! Sender authentication, as policyd-spf, OpenDKIM and OpenDMARC do it beside Postfix, with the
//! `mail-auth` crate over the restrictions' own hickory resolver and deadline:
//!
//! - **SPF** ([`SenderAuth::spf`]): the MAIL FROM identity, or the HELO identity for the null
//!   sender. With `posternSpfAction reject` a `fail` is refused at RCPT (`550 5.7.23`) and a
//!   `temperror` deferred (`451 4.7.24`); otherwise it is only recorded. Asked once per client,
//!   HELO and sender ([`memo`]), so each RCPT and the end of data share one answer.
//! - **DKIM and DMARC** ([`SenderAuth::verify_message`]) at the end of data, on the message as
//!   received: every signature is checked, then the From domain's DMARC policy against the SPF
//!   and DKIM results (alignment is mail-auth's). With `posternDmarcEnforce`, `p=reject` is
//!   refused (`550 5.7.1`) and `p=quarantine` held in the hold queue.
//! - Every result goes into one `Authentication-Results:` field under the box's host name
//!   ([`results`]); fields claiming that name that came with the message are removed first.
//!
//! - **ARC** ([`arc`]) with DKIM: the chain's result recorded, and a DMARC failure sealed by a
//!   trusted forwarder (`posternArcTrustedSealers`) delivered as a local policy override.
//! - **DMARC aggregate reports** ([`report`], `posternDmarcReport`): each evaluation counted,
//!   the reports built per interval; the daemon queues them.
//!
//! Clients in `$mynetworks` and authenticated clients are not checked (their mail is signed
//! instead, see `content::dkim`). No check holds a session past the DNS deadline: each one is
//! bounded as a whole and ends as `temperror` when the deadline passes.

mod arc;
pub mod body_hash;
mod memo;
pub mod report;
pub mod results;
mod spf;
mod verify;

pub use spf::SpfCheck;
pub use verify::{DmarcAction, MessageAuth};

use std::sync::Mutex;
use std::time::Duration;

use mail_auth::MessageAuthenticator;

use super::Dns;

/// The sender checks of one running box.
pub struct SenderAuth {
    /// `None`: no resolver (every check ends as `temperror`).
    resolver: Option<MessageAuthenticator>,
    deadline: Duration,
    /// The `authserv-id` of the Authentication-Results field: the box's host name.
    authserv_id: String,
    spf_memo: Mutex<memo::SpfMemo>,
    /// The DMARC evaluations the next aggregate reports count.
    reports: Mutex<report::ReportBook>,
}

impl std::fmt::Debug for SenderAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SenderAuth")
            .field("authserv_id", &self.authserv_id)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl SenderAuth {
    /// Checks through `dns`'s resolver and within its deadline, in the name of `hostname`.
    pub fn new(dns: &Dns, hostname: &str) -> SenderAuth {
        SenderAuth {
            resolver: dns.authenticator(),
            deadline: dns.deadline(),
            authserv_id: hostname.to_ascii_lowercase(),
            spf_memo: Mutex::new(memo::SpfMemo::default()),
            reports: Mutex::new(report::ReportBook::default()),
        }
    }

    fn note_evaluation(&self, row: report::Evaluation) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // A poisoned lock only means another session panicked mid-note: the book is still sound.
        let mut book = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        book.note(row, now);
    }

    /// The aggregate reports of the interval that ends `now`; see [`report::ReportBook::take`].
    pub fn take_reports(
        &self,
        now: u64,
        org: &str,
        email: &str,
        serial: u64,
    ) -> Vec<report::DueReport> {
        let mut book = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        book.take(now, org, email, serial)
    }

    /// The rua addresses of `domain`'s report that may receive it (RFC 7489 §7.1): those in the
    /// domain itself, and those whose domain publishes `<domain>._report._dmarc.<theirs>`.
    /// `None`: DNS did not answer in time (try again at the next report).
    pub async fn authorised_rua(
        &self,
        domain: &str,
        rua: &[report::ReportAddress],
    ) -> Option<Vec<report::ReportAddress>> {
        let resolver = self.resolver.as_ref()?;
        let addresses: Vec<&str> = rua.iter().map(|r| r.address.as_str()).collect();
        let none = None::<&mail_auth::common::cache::NoCache<Box<str>, mail_auth::Txt>>;
        let ok = tokio::time::timeout(
            self.deadline,
            resolver.verify_dmarc_report_address(domain, &addresses, none),
        )
        .await
        .ok()??;
        Some(
            rua.iter()
                .filter(|r| ok.iter().any(|a| **a == r.address))
                .cloned()
                .collect(),
        )
    }

    /// The name the box's Authentication-Results fields carry.
    pub fn authserv_id(&self) -> &str {
        &self.authserv_id
    }
}
