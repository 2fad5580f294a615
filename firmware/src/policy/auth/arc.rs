//! ARC (RFC 8617), as OpenARC verifies it beside OpenDKIM: the chain of ARC sets a forwarder
//! (a mailing list, a forwarding service) added after checking the message itself. The result
//! goes into Authentication-Results (`arc=pass/fail/none`); and when the chain passes and its
//! newest sealer is one the admin trusts (`posternArcTrustedSealers`), a DMARC failure is the
//! forwarder's doing, not a forgery: it is delivered as a local policy override
//! (RFC 7489 §6.7, RFC 8617 §7.2) and reported as one.

use mail_auth::{ArcOutput, AuthenticatedMessage, DkimResult};

use super::SenderAuth;
use super::verify::dns_timeout;
use crate::config::AuthConfig;

impl SenderAuth {
    /// The chain's verdict; `temperror` when the deadline passed first.
    pub(super) async fn arc<'x>(&self, message: &'x AuthenticatedMessage<'x>) -> ArcOutput<'x> {
        let timeout = || ArcOutput::default().with_result(DkimResult::TempError(dns_timeout()));
        if message.ams_headers.is_empty() && !message.has_arc_errors {
            return ArcOutput::default();
        }
        let Some(resolver) = &self.resolver else {
            return timeout();
        };
        tokio::time::timeout(self.deadline, resolver.verify_arc(message))
            .await
            .unwrap_or_else(|_| timeout())
    }
}

/// The trusted sealer that vouches for a message: the `d=` of the newest ARC seal, when the whole
/// chain passed and `config` trusts that domain. Only the newest sealer is asked: it is the hop
/// that handed the message to this box, and its seal covers every set before it.
pub fn trusted_sealer(arc: &ArcOutput<'_>, config: &AuthConfig) -> Option<String> {
    if *arc.result() != DkimResult::Pass {
        return None;
    }
    let newest = arc.sets().last()?;
    let domain = newest.seal.header.d.to_ascii_lowercase();
    config.trusts_sealer(&domain).then_some(domain)
}

/// The comment that goes after a DMARC failure delivered for a trusted sealer.
pub fn override_comment(sealer: &str) -> String {
    format!(" (policy.override=arc: chain sealed by trusted {sealer})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_auth::Error;

    #[test]
    fn nothing_is_trusted_without_a_passing_chain() {
        let config = AuthConfig {
            arc_trusted_sealers: vec!["fwd.example".into()],
            ..AuthConfig::default()
        };
        // No chain at all, or one that failed: no sealer to trust whatever the list says.
        assert_eq!(trusted_sealer(&ArcOutput::default(), &config), None);
        let failed = ArcOutput::default().with_result(DkimResult::Fail(Error::Arc(
            mail_auth::arc::ArcError::BrokenChain,
        )));
        assert_eq!(trusted_sealer(&failed, &config), None);
        // A pass without sets is not something mail-auth gives, and trusts nobody either.
        let odd = ArcOutput::default().with_result(DkimResult::Pass);
        assert_eq!(trusted_sealer(&odd, &config), None);
    }
}
