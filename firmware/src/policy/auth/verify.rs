//! The end-of-data checks: DKIM signatures of the message as received, then DMARC over them and
//! the transaction's SPF answer, and the Authentication-Results field that records it all.

use mail_auth::common::headers::HeaderWriter;
use mail_auth::dmarc::Policy as DmarcPolicy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimOutput, DmarcOutput, DmarcResult, DnsError,
    Error, ReceivedSpf,
};

use super::SenderAuth;
use super::arc::{override_comment, trusted_sealer};
use super::report::{Disposition, Evaluated, evaluation};
use crate::config::AuthConfig;
use crate::mail::Envelope;

/// What the sender checks decided about a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAuth {
    /// The `Authentication-Results:` field, folded, without its final line end.
    pub header: String,
    /// The `Received-SPF:` field (RFC 7208 §9.1) when SPF was checked, as policyd-spf adds it
    /// for the filters downstream that read it rather than Authentication-Results.
    pub received_spf: Option<String>,
    /// What DMARC asks of the box (only when `posternDmarcEnforce` is on).
    pub dmarc: DmarcAction,
    /// The trusted ARC sealer for whom a DMARC failure was delivered (for the log).
    pub arc_override: Option<String>,
}

/// What the From domain's DMARC policy asks for a message that failed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DmarcAction {
    /// Passed, no policy, `p=none`, or not enforced.
    Deliver,
    /// `p=quarantine`: held in the hold queue for the admin.
    Quarantine { domain: String },
    /// `p=reject`: refused before the 250.
    Reject { domain: String },
}

impl SenderAuth {
    /// The DKIM and DMARC checks of `message` (as received: its header section parsed and its
    /// body hashes filled as it streamed, see [`super::body_hash`]; `None` when it could not be
    /// read) under `config`, with the transaction's SPF answer. `None` when nothing is to be
    /// checked.
    pub async fn verify_message(
        &self,
        message: Option<&AuthenticatedMessage<'_>>,
        envelope: &Envelope,
        config: &AuthConfig,
    ) -> Option<MessageAuth> {
        if !config.checks_message() {
            return None;
        }
        let client = &envelope.client;
        let mut results = AuthenticationResults::new(&self.authserv_id);
        let spf = match (config.checks_spf(), client.addr) {
            (true, Some(_)) => self.spf(client, &envelope.sender).await,
            _ => None,
        };
        let mut received_spf = None;
        if let (Some(spf), Some(ip)) = (&spf, client.addr) {
            let sender = if spf.helo_identity {
                ""
            } else {
                envelope.sender.as_str()
            };
            let field = ReceivedSpf::new(&spf.output, ip, &client.helo, sender, &self.authserv_id);
            received_spf = Some(finish(field.to_header(), None));
            results = if spf.helo_identity {
                results.with_spf_ehlo_result(&spf.output, ip, &client.helo)
            } else {
                results.with_spf_mailfrom_result(&spf.output, ip, &envelope.sender, &client.helo)
            };
        }
        let Some(parsed) = message else {
            // A header section too long to hold, or not a message mail-auth can read: no
            // signature was verified.
            let note = "dkim=none (not verified: header section too long or unreadable)";
            return Some(MessageAuth {
                header: finish(results.to_header(), config.checks_dkim().then_some(note)),
                received_spf,
                dmarc: DmarcAction::Deliver,
                arc_override: None,
            });
        };
        let dkim = if config.checks_dkim() {
            self.dkim(parsed).await
        } else {
            Vec::new()
        };
        if config.checks_dkim() {
            results = results.with_dkim_results(&dkim, parsed.from());
        }
        let arc = if config.checks_arc() {
            Some(self.arc(parsed).await)
        } else {
            None
        };
        if let (Some(arc), Some(ip)) = (&arc, client.addr) {
            results = results.with_arc_result(arc, ip);
        }
        let mut action = DmarcAction::Deliver;
        let mut arc_override = None;
        if config.checks_dmarc()
            && let Some(spf) = &spf
        {
            let mail_from_domain = if spf.helo_identity {
                client.helo.as_str()
            } else {
                envelope.sender.rsplit_once('@').map_or("", |(_, d)| d)
            };
            let dmarc = self
                .dmarc(parsed, &dkim, mail_from_domain, &spf.output)
                .await;
            results = results.with_dmarc_result(&dmarc);
            let failed = matches!(dmarc.result(), DmarcResult::Fail(_));
            arc_override = arc
                .as_ref()
                .filter(|_| failed)
                .and_then(|arc| trusted_sealer(arc, config));
            if config.dmarc_enforce && arc_override.is_none() {
                action = enforce(&dmarc);
            }
            if config.dmarc_report
                && let Some(ip) = client.addr
            {
                let disposition = match action {
                    DmarcAction::Deliver => Disposition::Delivered,
                    DmarcAction::Quarantine { .. } => Disposition::Quarantined,
                    DmarcAction::Reject { .. } => Disposition::Rejected,
                };
                let row = evaluation(&Evaluated {
                    source_ip: ip,
                    envelope_from_domain: mail_from_domain,
                    header_from: parsed.from().rsplit_once('@').map_or("", |(_, d)| d),
                    spf: Some((&spf.output, spf.helo_identity)),
                    dkim: &dkim,
                    dmarc: &dmarc,
                    arc: arc.as_ref(),
                    disposition,
                    trusted_sealer: arc_override.as_deref(),
                });
                if let Some(row) = row {
                    self.note_evaluation(row);
                }
            }
        }
        let mut header = finish(results.to_header(), None);
        // The override note follows the dmarc result it explains (the last one written).
        if let Some(sealer) = &arc_override {
            header.push_str(&override_comment(sealer));
        }
        Some(MessageAuth {
            header: finish(
                header,
                (config.checks_dkim() && dkim.is_empty()).then_some("dkim=none"),
            ),
            received_spf,
            dmarc: action,
            arc_override,
        })
    }

    /// Every signature's result; one `temperror` when the deadline passed first.
    async fn dkim<'x>(&self, message: &'x AuthenticatedMessage<'x>) -> Vec<DkimOutput<'x>> {
        let timeout = || vec![DkimOutput::temp_err(dns_timeout())];
        let Some(resolver) = &self.resolver else {
            return if message.dkim_headers.is_empty() {
                Vec::new()
            } else {
                timeout()
            };
        };
        tokio::time::timeout(self.deadline, resolver.verify_dkim(message))
            .await
            .unwrap_or_else(|_| timeout())
    }

    async fn dmarc(
        &self,
        message: &AuthenticatedMessage<'_>,
        dkim: &[DkimOutput<'_>],
        mail_from_domain: &str,
        spf: &mail_auth::SpfOutput,
    ) -> DmarcOutput {
        let from_domain = message
            .from()
            .rsplit_once('@')
            .map_or("", |(_, d)| d)
            .to_ascii_lowercase();
        let temperror = || {
            DmarcOutput::new(from_domain.clone())
                .with_spf_result(DmarcResult::TempError(dns_timeout()))
                .with_dkim_result(DmarcResult::TempError(dns_timeout()))
        };
        let Some(resolver) = &self.resolver else {
            return temperror();
        };
        let params = DmarcParameters::new(message, dkim, mail_from_domain, spf);
        tokio::time::timeout(self.deadline, resolver.verify_dmarc(params))
            .await
            .unwrap_or_else(|_| temperror())
    }
}

pub(super) fn dns_timeout() -> Error {
    Error::Dns(DnsError::Resolver("no answer within the deadline".into()))
}

/// The field as it goes on top of the message: without the line end mail-auth writes, and with
/// `dkim_note` (`dkim=none` when DKIM was checked and the message had no signature, which
/// mail-auth does not write).
fn finish(mut header: String, dkim_note: Option<&str>) -> String {
    while header.ends_with(['\r', '\n']) {
        header.pop();
    }
    if let Some(note) = dkim_note {
        if let Some(bare) = header.strip_suffix("; none") {
            header.truncate(bare.len());
        }
        header.push_str(";\r\n\t");
        header.push_str(note);
    }
    header
}

/// A failed DMARC evaluation under its domain's policy (OpenDMARC's `RejectFailures`).
fn enforce(dmarc: &DmarcOutput) -> DmarcAction {
    if !matches!(dmarc.result(), DmarcResult::Fail(_)) {
        return DmarcAction::Deliver;
    }
    let domain = dmarc.domain().to_string();
    match dmarc.policy() {
        DmarcPolicy::Reject => DmarcAction::Reject { domain },
        DmarcPolicy::Quarantine => DmarcAction::Quarantine { domain },
        DmarcPolicy::None | DmarcPolicy::Unspecified => DmarcAction::Deliver,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_has_no_line_end_and_says_when_nothing_was_signed() {
        let h = finish(
            "Authentication-Results: mx.example.com;\r\n\tspf=pass\r\n".into(),
            Some("dkim=none"),
        );
        assert_eq!(
            h,
            "Authentication-Results: mx.example.com;\r\n\tspf=pass;\r\n\tdkim=none"
        );
        let h = finish(
            "Authentication-Results: mx.example.com; none\r\n".into(),
            Some("dkim=none"),
        );
        assert_eq!(h, "Authentication-Results: mx.example.com;\r\n\tdkim=none");
    }

    #[test]
    fn only_a_failed_evaluation_is_enforced_and_as_its_policy_says() {
        let failed = DmarcOutput::new("example.com".into())
            .with_spf_result(DmarcResult::Fail(Error::NotAligned))
            .with_dkim_result(DmarcResult::Fail(Error::NotAligned));
        // Without a record mail-auth gives policy none: nothing to enforce.
        assert_eq!(enforce(&failed), DmarcAction::Deliver);
        let passed = DmarcOutput::new("example.com".into())
            .with_spf_result(DmarcResult::Pass)
            .with_dkim_result(DmarcResult::Fail(Error::NotAligned));
        assert_eq!(enforce(&passed), DmarcAction::Deliver);
    }
}
