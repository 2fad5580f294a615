//! SPF (RFC 7208) of one transaction: the MAIL FROM identity, or `postmaster@HELO` for the null
//! sender, as policyd-spf checks them.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use mail_auth::spf::verify::SpfParameters;
use mail_auth::{SpfOutput, SpfResult};

use super::SenderAuth;
use crate::mail::ClientInfo;

/// One SPF answer and the identity it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfCheck {
    pub output: SpfOutput,
    /// The HELO identity was checked (null sender), not MAIL FROM.
    pub helo_identity: bool,
}

impl SpfCheck {
    pub fn new(output: SpfOutput, helo_identity: bool) -> SpfCheck {
        SpfCheck {
            output,
            helo_identity,
        }
    }

    pub fn result(&self) -> SpfResult {
        self.output.result()
    }

    /// The word policyd-spf and Authentication-Results use.
    pub fn word(&self) -> &'static str {
        match self.result() {
            SpfResult::Pass => "pass",
            SpfResult::Fail => "fail",
            SpfResult::SoftFail => "softfail",
            SpfResult::Neutral => "neutral",
            SpfResult::TempError => "temperror",
            SpfResult::PermError => "permerror",
            SpfResult::None => "none",
        }
    }
}

impl SenderAuth {
    /// The SPF answer for `sender` (empty: the null sender) from `client`; `None` for a client
    /// without an IP address (a local pipe), which SPF cannot judge.
    pub async fn spf(&self, client: &ClientInfo, sender: &str) -> Option<Arc<SpfCheck>> {
        let ip = client.addr?;
        let key = (
            ip,
            client.helo.to_ascii_lowercase(),
            sender.to_ascii_lowercase(),
        );
        let now = Instant::now();
        if let Some(known) = self.spf_memo.lock().ok()?.get(&key, now) {
            return Some(known);
        }
        let check = Arc::new(self.check_spf(ip, &client.helo, sender).await);
        if let Ok(mut memo) = self.spf_memo.lock() {
            memo.put(key, check.clone(), now);
        }
        Some(check)
    }

    async fn check_spf(&self, ip: IpAddr, helo: &str, sender: &str) -> SpfCheck {
        let helo_identity = sender.is_empty();
        let domain = if helo_identity {
            helo
        } else {
            sender.rsplit_once('@').map_or(helo, |(_, d)| d)
        };
        let temperror =
            || SpfOutput::new(domain.to_ascii_lowercase()).with_result(SpfResult::TempError);
        let Some(resolver) = &self.resolver else {
            return SpfCheck::new(temperror(), helo_identity);
        };
        let params = if helo_identity {
            SpfParameters::verify_ehlo(ip, helo, &self.authserv_id)
        } else {
            SpfParameters::verify_mail_from(ip, helo, &self.authserv_id, sender)
        };
        // Up to ten lookups in a chain of includes: bounded as a whole, not one by one.
        let output = tokio::time::timeout(self.deadline, resolver.verify_spf(params))
            .await
            .unwrap_or_else(|_| temperror());
        SpfCheck::new(output, helo_identity)
    }
}
