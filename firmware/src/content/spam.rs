//! The spam scanner, whichever is set (spamd or rspamd): one score and one way to learn, so the
//! verdicts, log lines and metrics are the same for both.
//!
//! Both are judged by Zimbra's thresholds on their score (`zimbraSpamKillPercent` and
//! `zimbraSpamTagPercent` of 20): rspamd's own action is not followed. Its default thresholds
//! (reject 15, add header 6) sit where Zimbra's defaults put them (75 % = 15, 33 % = 6.6), and an
//! admin tunes one set of settings whichever scanner runs.

use std::time::Duration;

use super::rspamd::{self, protocol::LearnReply};
use super::scanner::{Class, ScannerError};
use super::spamd;
use super::stored::StoredMessage;
use crate::config::SpamScanner;
use crate::mail::Envelope;

/// A message's spam score and the rules that hit.
#[derive(Debug, Clone, PartialEq)]
pub struct SpamScore {
    pub score: f64,
    pub symbols: Vec<String>,
}

/// How the log and the headers name the scanner.
pub fn name(scanner: SpamScanner<'_>) -> &'static str {
    match scanner {
        SpamScanner::Spamd(_) => "spamd",
        SpamScanner::Rspamd { .. } => "rspamd",
    }
}

/// Scores `message` (of `envelope`, which rspamd is told) within `deadline`.
pub async fn score(
    scanner: SpamScanner<'_>,
    message: &dyn StoredMessage,
    envelope: &Envelope,
    deadline: Duration,
) -> Result<SpamScore, ScannerError> {
    match scanner {
        SpamScanner::Spamd(addr) => {
            let reply = spamd::check(addr, message, deadline).await?;
            Ok(SpamScore {
                score: reply.score.unwrap_or(0.0),
                symbols: reply.symbols,
            })
        }
        SpamScanner::Rspamd { url, password } => {
            let facts = rspamd::facts(envelope);
            let endpoint = rspamd::Endpoint::new(url, password);
            let reply = rspamd::check(&endpoint, message, &facts, deadline).await?;
            Ok(SpamScore {
                score: reply.score,
                symbols: reply.symbols,
            })
        }
    }
}

/// Teaches the scanner that `message` is `class`: `Ok(true)` when it learned, `Ok(false)` when
/// it declined (learned already, too little text).
pub async fn learn(
    scanner: SpamScanner<'_>,
    message: &dyn StoredMessage,
    class: Class,
    deadline: Duration,
) -> Result<bool, ScannerError> {
    match scanner {
        SpamScanner::Spamd(addr) => match spamd::tell(addr, message, class, deadline).await {
            Ok(()) => Ok(true),
            Err(ScannerError::Reply(_)) => Ok(false),
            Err(e) => Err(e),
        },
        SpamScanner::Rspamd { url, password } => {
            let endpoint = rspamd::Endpoint::new(url, password);
            match rspamd::learn(&endpoint, message, class, deadline).await? {
                LearnReply::Learned => Ok(true),
                LearnReply::Declined(_) => Ok(false),
            }
        }
    }
}
