//! Settings of the content stage (`content/`): attachment blocking, the virus scanner and the spam
//! scanner. Zimbra's names where Zimbra has them; `postern...` names for what amavisd-new kept in
//! its own config file (scanner addresses, deadlines, limits).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::attr::{AttrError, boolean, invalid, show_bool, single};
use super::duration::{self, Unit};
use super::rspamd_url::{RspamdPassword, RspamdUrl};

pub const BLOCKED_EXT: &str = "zimbraMtaBlockedExtension";
pub const COMMON_BLOCKED_EXT: &str = "zimbraMtaCommonBlockedExtension";
pub const BLOCK_ENCRYPTED: &str = "zimbraVirusBlockEncryptedArchive";
pub const SCAN_LIMIT: &str = "posternContentScanLimit";
pub const OVERSIZE: &str = "posternContentOversizeAction";
pub const ARCHIVE_DEPTH: &str = "posternArchiveMaxDepth";
pub const ARCHIVE_UNPACKED: &str = "posternArchiveMaxUnpackedSize";
pub const VIRUS_CHECK: &str = "zimbraVirusCheckEnabled";
pub const CLAMD: &str = "posternClamdAddress";
pub const CLAMD_TIMEOUT: &str = "posternClamdTimeout";
pub const CLAMD_STREAM_MAX: &str = "posternClamdStreamMaxLength";
pub const CLAMD_FAIL: &str = "posternClamdFailAction";
pub const SPAMD: &str = "posternSpamdAddress";
pub const SPAMD_TIMEOUT: &str = "posternSpamdTimeout";
pub const SPAMD_MAX_SIZE: &str = "posternSpamdMaxSize";
pub const SPAMD_FAIL: &str = "posternSpamdFailAction";
pub const SPAM_KILL: &str = "zimbraSpamKillPercent";
pub const SPAM_TAG: &str = "zimbraSpamTagPercent";
pub const SPAM_SUBJECT_TAG: &str = "zimbraSpamSubjectTag";
pub const SPAM_ACCOUNT: &str = "zimbraSpamIsSpamAccount";
pub const HAM_ACCOUNT: &str = "zimbraSpamIsNotSpamAccount";
pub const RSPAMD: &str = "posternRspamdUrl";
pub const RSPAMD_PASSWORD: &str = "posternRspamdPassword";
pub const TRAINING_DELIVER: &str = "posternSpamTrainingDeliver";
pub const VIRUS_WARN_ADMIN: &str = "zimbraVirusWarnAdmin";
pub const VIRUS_WARN_RECIPIENT: &str = "zimbraVirusWarnRecipient";
pub const VIRUS_ADMIN: &str = "posternVirusAdminAddress";
pub const BLOCKED_WARN_RECIPIENT: &str = "zimbraMtaBlockedExtensionWarnRecipient";

/// The SpamAssassin score Zimbra calls 100 % (`zimbraSpamKillPercent` and
/// `zimbraSpamTagPercent` are percentages of it).
pub const SPAM_FULL_SCORE: f64 = 20.0;

/// Zimbra's default `zimbraMtaCommonBlockedExtension`: file types that run code on Windows.
pub const ZIMBRA_COMMON_BLOCKED: &[&str] = &[
    "asd", "bat", "chm", "cmd", "com", "dll", "do", "exe", "hlp", "hta", "js", "jse", "lnk", "ocx",
    "pif", "reg", "scr", "shb", "shm", "shs", "vbe", "vbs", "vbx", "vxd", "wsf", "wsh", "xl",
];

/// The content settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentConfig {
    /// `zimbraMtaBlockedExtension`: extensions the admin blocks (lower case, no dot).
    pub blocked_extensions: Vec<String>,
    /// `zimbraMtaCommonBlockedExtension`: Zimbra's list of dangerous extensions. Zimbra's admin
    /// console only offers it as a menu; here it is blocked too, so the default is safe. Clear it
    /// to block only `zimbraMtaBlockedExtension`.
    pub common_blocked_extensions: Vec<String>,
    /// `zimbraVirusBlockEncryptedArchive`: refuse archives whose contents cannot be read.
    pub block_encrypted_archive: bool,
    /// `posternContentScanLimit`: bytes kept in RAM for the checks that cannot stream: the copy
    /// of a message for spam training, a zip attachment being opened (clamd, spamd, DKIM and
    /// attachment names read any size). What happens past it is `posternContentOversizeAction`.
    pub scan_limit: u64,
    /// `posternContentOversizeAction`: a message (or zip attachment) over
    /// `posternContentScanLimit` is accepted without the checks that needed it held, with a header
    /// saying so (`accept`, as spamc and clamd's StreamMaxLength let big
    /// mail through), or refused for now (`tempfail`).
    pub oversize: FailAction,
    /// `posternArchiveMaxDepth`: archives inside archives opened before giving up (amavis's
    /// `$MAXLEVELS`); deeper ones are refused as unreadable.
    pub archive_max_depth: u32,
    /// `posternArchiveMaxUnpackedSize`: bytes unpacked from nested archives per message; past it
    /// the message is refused as a decompression bomb (amavis's `$MAX_EXPANSION_QUOTA`).
    pub archive_max_unpacked: u64,
    /// `zimbraVirusCheckEnabled`: scan every message with clamd.
    pub virus_check_enabled: bool,
    /// `posternClamdAddress`: where clamd listens (its `TCPSocket` or `LocalSocket`).
    pub clamd: Option<ScannerAddress>,
    /// `posternClamdTimeout`: the most one scan may take, connect included.
    pub clamd_timeout: Duration,
    /// `posternClamdStreamMaxLength`: clamd's `StreamMaxLength`; a bigger message is not sent.
    pub clamd_stream_max: u64,
    /// `posternClamdFailAction`: what happens when clamd gives no verdict.
    pub clamd_fail: FailAction,
    /// `posternSpamdAddress`: where spamd listens; unset, no spam check.
    pub spamd: Option<ScannerAddress>,
    /// `posternRspamdUrl`: where rspamd answers HTTP; unset, no rspamd. One spam scanner at a
    /// time: this or `posternSpamdAddress`.
    pub rspamd: Option<RspamdUrl>,
    /// `posternRspamdPassword`: the controller's `password` (or `enable_password`), sent with
    /// every request; unset, none is sent (rspamd then trusts only its `secure_ip`).
    pub rspamd_password: Option<RspamdPassword>,
    /// `posternSpamdTimeout`: the most one call to the spam scanner (spamd or rspamd) may take.
    pub spamd_timeout: Duration,
    /// `posternSpamdMaxSize`: bigger messages are not scored (spamc's `-s`, 500 KB); for rspamd
    /// too.
    pub spamd_max_size: u64,
    /// `posternSpamdFailAction`: what happens when the spam scanner gives no score.
    pub spamd_fail: FailAction,
    /// `zimbraSpamKillPercent`: at this share of [`SPAM_FULL_SCORE`] a message is refused.
    pub spam_kill_percent: u32,
    /// `zimbraSpamTagPercent`: at this share it is tagged as spam.
    pub spam_tag_percent: u32,
    /// `zimbraSpamSubjectTag`: put before the Subject of tagged mail; empty, none.
    pub spam_subject_tag: String,
    /// `zimbraSpamIsSpamAccount`: mail to it teaches spamd that what it carries is spam.
    pub spam_account: Option<String>,
    /// `zimbraSpamIsNotSpamAccount`: the same for ham.
    pub ham_account: Option<String>,
    /// `posternSpamTrainingDeliver`: mail to the training accounts is delivered to them after it
    /// was learned (TRUE), or only learned (FALSE, the default: the box is the training
    /// account's only reader).
    pub training_deliver: bool,
    /// `zimbraVirusWarnAdmin`: a refused virus is reported to the admin (`posternVirusAdminAddress`,
    /// else `posternPostmasterAddress`), as amavis's `$virus_admin`.
    pub virus_warn_admin: bool,
    /// `zimbraVirusWarnRecipient`: the recipients of a refused virus are told it was refused
    /// (inbound mail only; never the sender, whose address a virus forges).
    pub virus_warn_recipient: bool,
    /// `posternVirusAdminAddress`: where the admin's virus warnings go.
    pub virus_admin: Option<String>,
    /// `zimbraMtaBlockedExtensionWarnRecipient`: the recipients of a message refused for a
    /// blocked attachment are told, naming the files (inbound mail only, as for a virus). Off by
    /// default like the virus notices (Zimbra's global config sets it TRUE).
    pub blocked_warn_recipient: bool,
}

/// The spam scanner set, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpamScanner<'a> {
    Spamd(&'a ScannerAddress),
    Rspamd {
        url: RspamdUrl,
        password: Option<&'a RspamdPassword>,
    },
}

/// What the content stage does with a message a scanner could not judge (down, timed out, the
/// message too big for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailAction {
    /// `451 4.7.1`: the client tries again later (amavis's default for a failed virus scan).
    Tempfail,
    /// Accept it, with a header saying it was not scanned.
    Accept,
}

impl FailAction {
    fn parse(attr: &'static str, v: &str) -> Result<FailAction, AttrError> {
        match v.to_ascii_lowercase().as_str() {
            "tempfail" => Ok(FailAction::Tempfail),
            "accept" => Ok(FailAction::Accept),
            _ => Err(invalid(attr, v, "use tempfail or accept")),
        }
    }

    fn show(self) -> String {
        match self {
            FailAction::Tempfail => "tempfail",
            FailAction::Accept => "accept",
        }
        .to_string()
    }
}

impl Default for ContentConfig {
    fn default() -> ContentConfig {
        ContentConfig {
            blocked_extensions: Vec::new(),
            common_blocked_extensions: ZIMBRA_COMMON_BLOCKED
                .iter()
                .map(|e| e.to_string())
                .collect(),
            block_encrypted_archive: true,
            scan_limit: 10_240_000,
            oversize: FailAction::Accept,
            archive_max_depth: 4,
            archive_max_unpacked: 10_485_760,
            virus_check_enabled: false,
            clamd: None,
            clamd_timeout: Duration::from_secs(30),
            clamd_stream_max: 26_214_400,
            clamd_fail: FailAction::Tempfail,
            spamd: None,
            spamd_timeout: Duration::from_secs(30),
            spamd_max_size: 512_000,
            spamd_fail: FailAction::Tempfail,
            spam_kill_percent: 75,
            spam_tag_percent: 33,
            spam_subject_tag: String::new(),
            spam_account: None,
            ham_account: None,
            rspamd: None,
            rspamd_password: None,
            training_deliver: false,
            virus_warn_admin: false,
            virus_warn_recipient: false,
            virus_admin: None,
            blocked_warn_recipient: false,
        }
    }
}

/// Where a scanner daemon listens: `host:port` (TCP) or a unix socket path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScannerAddress {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// Why a scanner address was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadScannerAddress;

impl fmt::Display for BadScannerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("use IP:PORT, [IPv6]:PORT, or the absolute path of a unix socket")
    }
}

impl FromStr for ScannerAddress {
    type Err = BadScannerAddress;
    fn from_str(s: &str) -> Result<ScannerAddress, BadScannerAddress> {
        let path = s.strip_prefix("unix:").unwrap_or(s);
        if path.starts_with('/') {
            return Ok(ScannerAddress::Unix(PathBuf::from(path)));
        }
        s.parse()
            .map(ScannerAddress::Tcp)
            .map_err(|_| BadScannerAddress)
    }
}

impl fmt::Display for ScannerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScannerAddress::Tcp(a) => write!(f, "{a}"),
            ScannerAddress::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl ContentConfig {
    /// The attributes the content stage enforces, in `gacf` order.
    pub const ATTRS: &'static [&'static str] = &[
        BLOCKED_EXT,
        COMMON_BLOCKED_EXT,
        BLOCK_ENCRYPTED,
        SCAN_LIMIT,
        OVERSIZE,
        ARCHIVE_DEPTH,
        ARCHIVE_UNPACKED,
        VIRUS_CHECK,
        CLAMD,
        CLAMD_TIMEOUT,
        CLAMD_STREAM_MAX,
        CLAMD_FAIL,
        SPAMD,
        RSPAMD,
        RSPAMD_PASSWORD,
        SPAMD_TIMEOUT,
        SPAMD_MAX_SIZE,
        SPAMD_FAIL,
        SPAM_KILL,
        SPAM_TAG,
        SPAM_SUBJECT_TAG,
        SPAM_ACCOUNT,
        HAM_ACCOUNT,
        TRAINING_DELIVER,
        VIRUS_WARN_ADMIN,
        VIRUS_WARN_RECIPIENT,
        VIRUS_ADMIN,
        BLOCKED_WARN_RECIPIENT,
    ];

    pub fn owns(attr: &str) -> bool {
        Self::ATTRS.contains(&attr)
    }

    pub fn is_multi(attr: &str) -> bool {
        [BLOCKED_EXT, COMMON_BLOCKED_EXT]
            .iter()
            .any(|a| a.eq_ignore_ascii_case(attr))
    }

    /// Whether a file name ends in a blocked extension (case-insensitive).
    pub fn blocks_name(&self, name: &str) -> bool {
        let Some((_, ext)) = name.trim_end_matches(['.', ' ']).rsplit_once('.') else {
            return false;
        };
        self.blocked_extensions
            .iter()
            .chain(&self.common_blocked_extensions)
            .any(|b| b.eq_ignore_ascii_case(ext))
    }

    /// The values of `attr` (a canonical name this config owns).
    pub fn values(&self, attr: &str) -> Vec<String> {
        let one = |s: String| vec![s];
        match attr {
            BLOCKED_EXT => self.blocked_extensions.clone(),
            COMMON_BLOCKED_EXT => self.common_blocked_extensions.clone(),
            BLOCK_ENCRYPTED => one(show_bool(self.block_encrypted_archive)),
            SCAN_LIMIT => one(self.scan_limit.to_string()),
            OVERSIZE => one(self.oversize.show()),
            ARCHIVE_DEPTH => one(self.archive_max_depth.to_string()),
            ARCHIVE_UNPACKED => one(self.archive_max_unpacked.to_string()),
            VIRUS_CHECK => one(show_bool(self.virus_check_enabled)),
            CLAMD => self.clamd.iter().map(|a| a.to_string()).collect(),
            CLAMD_TIMEOUT => one(duration::show(self.clamd_timeout, Unit::Seconds)),
            CLAMD_STREAM_MAX => one(self.clamd_stream_max.to_string()),
            CLAMD_FAIL => one(self.clamd_fail.show()),
            SPAMD => self.spamd.iter().map(|a| a.to_string()).collect(),
            RSPAMD => self.rspamd.iter().map(|a| a.to_string()).collect(),
            RSPAMD_PASSWORD => self
                .rspamd_password
                .iter()
                .map(|p| p.as_str().to_string())
                .collect(),
            SPAMD_TIMEOUT => one(duration::show(self.spamd_timeout, Unit::Seconds)),
            SPAMD_MAX_SIZE => one(self.spamd_max_size.to_string()),
            SPAMD_FAIL => one(self.spamd_fail.show()),
            SPAM_KILL => one(self.spam_kill_percent.to_string()),
            SPAM_TAG => one(self.spam_tag_percent.to_string()),
            SPAM_ACCOUNT => self.spam_account.iter().cloned().collect(),
            HAM_ACCOUNT => self.ham_account.iter().cloned().collect(),
            TRAINING_DELIVER => one(show_bool(self.training_deliver)),
            VIRUS_WARN_ADMIN => one(show_bool(self.virus_warn_admin)),
            VIRUS_WARN_RECIPIENT => one(show_bool(self.virus_warn_recipient)),
            VIRUS_ADMIN => self.virus_admin.iter().cloned().collect(),
            BLOCKED_WARN_RECIPIENT => one(show_bool(self.blocked_warn_recipient)),
            _ => [self.spam_subject_tag.clone()]
                .into_iter()
                .filter(|t| !t.is_empty())
                .collect(),
        }
    }

    /// Sets `attr`; no value restores its default.
    pub fn set(&mut self, attr: &'static str, values: &[String]) -> Result<(), AttrError> {
        let defaults = ContentConfig::default();
        match attr {
            BLOCKED_EXT => self.blocked_extensions = extensions(attr, values)?,
            COMMON_BLOCKED_EXT => self.common_blocked_extensions = extensions(attr, values)?,
            _ => {
                let Some(v) = single(attr, values)? else {
                    self.reset(attr, &defaults);
                    return Ok(());
                };
                match attr {
                    BLOCK_ENCRYPTED => self.block_encrypted_archive = boolean(attr, v)?,
                    SCAN_LIMIT => self.scan_limit = number(attr, v)?,
                    OVERSIZE => self.oversize = FailAction::parse(attr, v)?,
                    ARCHIVE_DEPTH => self.archive_max_depth = number(attr, v)?,
                    ARCHIVE_UNPACKED => self.archive_max_unpacked = number(attr, v)?,
                    VIRUS_CHECK => self.virus_check_enabled = boolean(attr, v)?,
                    CLAMD => self.clamd = Some(v.parse().map_err(|e| invalid(attr, v, e))?),
                    CLAMD_TIMEOUT => self.clamd_timeout = time(attr, v)?,
                    CLAMD_STREAM_MAX => self.clamd_stream_max = number(attr, v)?,
                    CLAMD_FAIL => self.clamd_fail = FailAction::parse(attr, v)?,
                    SPAMD => self.spamd = Some(v.parse().map_err(|e| invalid(attr, v, e))?),
                    RSPAMD => self.rspamd = Some(v.parse().map_err(|e| invalid(attr, v, e))?),
                    RSPAMD_PASSWORD => {
                        // Not echoed in the error: it is a secret.
                        let p = v.parse().map_err(|e| invalid(attr, "(hidden)", e))?;
                        self.rspamd_password = Some(p);
                    }
                    SPAMD_TIMEOUT => self.spamd_timeout = time(attr, v)?,
                    SPAMD_MAX_SIZE => self.spamd_max_size = number(attr, v)?,
                    SPAMD_FAIL => self.spamd_fail = FailAction::parse(attr, v)?,
                    SPAM_KILL => self.spam_kill_percent = percent(attr, v)?,
                    SPAM_TAG => self.spam_tag_percent = percent(attr, v)?,
                    SPAM_ACCOUNT => self.spam_account = Some(account(attr, v)?),
                    HAM_ACCOUNT => self.ham_account = Some(account(attr, v)?),
                    TRAINING_DELIVER => self.training_deliver = boolean(attr, v)?,
                    VIRUS_WARN_ADMIN => self.virus_warn_admin = boolean(attr, v)?,
                    VIRUS_WARN_RECIPIENT => self.virus_warn_recipient = boolean(attr, v)?,
                    VIRUS_ADMIN => self.virus_admin = Some(account(attr, v)?),
                    BLOCKED_WARN_RECIPIENT => self.blocked_warn_recipient = boolean(attr, v)?,
                    _ => self.spam_subject_tag = subject_tag(attr, v)?,
                }
            }
        }
        Ok(())
    }

    fn reset(&mut self, attr: &str, d: &ContentConfig) {
        match attr {
            BLOCK_ENCRYPTED => self.block_encrypted_archive = d.block_encrypted_archive,
            SCAN_LIMIT => self.scan_limit = d.scan_limit,
            OVERSIZE => self.oversize = d.oversize,
            ARCHIVE_DEPTH => self.archive_max_depth = d.archive_max_depth,
            ARCHIVE_UNPACKED => self.archive_max_unpacked = d.archive_max_unpacked,
            VIRUS_CHECK => self.virus_check_enabled = d.virus_check_enabled,
            CLAMD => self.clamd = d.clamd.clone(),
            CLAMD_TIMEOUT => self.clamd_timeout = d.clamd_timeout,
            CLAMD_STREAM_MAX => self.clamd_stream_max = d.clamd_stream_max,
            CLAMD_FAIL => self.clamd_fail = d.clamd_fail,
            SPAMD => self.spamd = d.spamd.clone(),
            RSPAMD => self.rspamd = d.rspamd,
            RSPAMD_PASSWORD => self.rspamd_password = d.rspamd_password.clone(),
            SPAMD_TIMEOUT => self.spamd_timeout = d.spamd_timeout,
            SPAMD_MAX_SIZE => self.spamd_max_size = d.spamd_max_size,
            SPAMD_FAIL => self.spamd_fail = d.spamd_fail,
            SPAM_KILL => self.spam_kill_percent = d.spam_kill_percent,
            SPAM_TAG => self.spam_tag_percent = d.spam_tag_percent,
            SPAM_ACCOUNT => self.spam_account = d.spam_account.clone(),
            HAM_ACCOUNT => self.ham_account = d.ham_account.clone(),
            TRAINING_DELIVER => self.training_deliver = d.training_deliver,
            VIRUS_WARN_ADMIN => self.virus_warn_admin = d.virus_warn_admin,
            VIRUS_WARN_RECIPIENT => self.virus_warn_recipient = d.virus_warn_recipient,
            VIRUS_ADMIN => self.virus_admin = d.virus_admin.clone(),
            BLOCKED_WARN_RECIPIENT => self.blocked_warn_recipient = d.blocked_warn_recipient,
            _ => self.spam_subject_tag = d.spam_subject_tag.clone(),
        }
    }

    /// The rules that tie content settings together.
    pub fn validate(&self) -> Result<(), AttrError> {
        if self.virus_check_enabled && self.clamd.is_none() {
            return Err(invalid(
                VIRUS_CHECK,
                "TRUE",
                format_args!("set {CLAMD} first (where clamd listens)"),
            ));
        }
        if self.clamd_timeout.is_zero() {
            return Err(invalid(CLAMD_TIMEOUT, "0s", "must be at least 1s"));
        }
        if let (Some(_), Some(url)) = (&self.spamd, &self.rspamd) {
            return Err(invalid(
                RSPAMD,
                &url.to_string(),
                format_args!(
                    "one spam scanner at a time: clear {SPAMD} first, or set both in one mcf \
                     ({SPAMD} '' {RSPAMD} URL)"
                ),
            ));
        }
        if self.spamd_timeout.is_zero() {
            return Err(invalid(SPAMD_TIMEOUT, "0s", "must be at least 1s"));
        }
        if self.spam_tag_percent > self.spam_kill_percent {
            return Err(invalid(
                SPAM_TAG,
                &self.spam_tag_percent.to_string(),
                format_args!("must not exceed {SPAM_KILL} ({})", self.spam_kill_percent),
            ));
        }
        Ok(())
    }

    /// The spam scanner set, if any (validation keeps it to one).
    pub fn spam_scanner(&self) -> Option<SpamScanner<'_>> {
        match (&self.spamd, self.rspamd) {
            (Some(addr), _) => Some(SpamScanner::Spamd(addr)),
            (None, Some(url)) => Some(SpamScanner::Rspamd {
                url,
                password: self.rspamd_password.as_ref(),
            }),
            (None, None) => None,
        }
    }

    /// The score at which a message is refused.
    pub fn spam_kill_score(&self) -> f64 {
        SPAM_FULL_SCORE * f64::from(self.spam_kill_percent) / 100.0
    }

    /// The score at which a message is tagged.
    pub fn spam_tag_score(&self) -> f64 {
        SPAM_FULL_SCORE * f64::from(self.spam_tag_percent) / 100.0
    }

    /// Restores `attr` to `other`'s value.
    pub fn copy_from(&mut self, attr: &str, other: &ContentConfig) {
        match attr {
            BLOCKED_EXT => self.blocked_extensions = other.blocked_extensions.clone(),
            COMMON_BLOCKED_EXT => {
                self.common_blocked_extensions = other.common_blocked_extensions.clone()
            }
            _ => self.reset(attr, other),
        }
    }
}

/// Extensions as Zimbra stores them: no dot, any case given, kept lower case.
fn extensions(attr: &'static str, values: &[String]) -> Result<Vec<String>, AttrError> {
    let mut out: Vec<String> = Vec::new();
    for v in values.iter().filter(|v| !v.is_empty()) {
        let ext = v.strip_prefix('.').unwrap_or(v).to_ascii_lowercase();
        if ext.is_empty() || !ext.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(invalid(
                attr,
                v,
                "an extension is letters and digits, like exe",
            ));
        }
        if !out.contains(&ext) {
            out.push(ext);
        }
    }
    Ok(out)
}

fn time(attr: &'static str, v: &str) -> Result<Duration, AttrError> {
    duration::parse(v, Unit::Seconds).map_err(|e| invalid(attr, v, e))
}

/// A training account's (or the virus admin's) address, kept lower case (addresses are compared that way).
fn account(attr: &'static str, v: &str) -> Result<String, AttrError> {
    match v.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && domain.contains('.')
                && !v
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '<') =>
        {
            Ok(v.to_ascii_lowercase())
        }
        _ => Err(invalid(attr, v, "an address like spam.abc@example.com")),
    }
}

fn percent(attr: &'static str, v: &str) -> Result<u32, AttrError> {
    let p: u32 = number(attr, v)?;
    if p > 100 {
        return Err(invalid(attr, v, "a percentage from 0 to 100"));
    }
    Ok(p)
}

/// A subject tag goes into a header line: printable, one line.
fn subject_tag(attr: &'static str, v: &str) -> Result<String, AttrError> {
    if v.len() > 64 || v.chars().any(|c| c.is_control()) {
        return Err(invalid(attr, v, "one line of at most 64 characters"));
    }
    Ok(v.to_string())
}

fn number<T: FromStr>(attr: &'static str, v: &str) -> Result<T, AttrError> {
    if !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(attr, v, "not a whole number"));
    }
    v.parse()
        .map_err(|_| invalid(attr, v, "not a whole number in range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_match_case_insensitively_on_the_last_dot() {
        let c = ContentConfig::default();
        for blocked in [
            "a.exe",
            "A.EXE",
            "x.tar.Exe",
            "report.pdf.scr",
            "b.exe.",
            "c.js",
        ] {
            assert!(c.blocks_name(blocked), "{blocked}");
        }
        for fine in ["exe", "a.exe.txt", "a.pdf", "a.exec", "readme"] {
            assert!(!c.blocks_name(fine), "{fine}");
        }
        let mut c = ContentConfig::default();
        c.set(COMMON_BLOCKED_EXT, &[]).unwrap();
        assert!(!c.blocks_name("a.exe"));
        c.set(BLOCKED_EXT, &[".ZIP".to_string(), "iso".to_string()])
            .unwrap();
        assert_eq!(c.values(BLOCKED_EXT), ["zip", "iso"]);
        assert!(c.blocks_name("x.Zip"));
        assert!(c.set(BLOCKED_EXT, &["e x e".to_string()]).is_err());
    }

    #[test]
    fn the_virus_check_needs_clamd_and_a_deadline() {
        let mut c = ContentConfig::default();
        let on = ["TRUE".to_string()];
        c.set(VIRUS_CHECK, &on).unwrap();
        assert!(c.validate().unwrap_err().to_string().contains(CLAMD));
        c.set(CLAMD, &["127.0.0.1:3310".to_string()]).unwrap();
        assert_eq!(c.validate(), Ok(()));
        c.set(CLAMD_TIMEOUT, &["2m".to_string()]).unwrap();
        assert_eq!(c.clamd_timeout, Duration::from_secs(120));
        assert_eq!(c.values(CLAMD_TIMEOUT), ["120s"]);
        c.set(CLAMD_FAIL, &["Accept".to_string()]).unwrap();
        assert_eq!(c.values(CLAMD_FAIL), ["accept"]);
        assert!(c.set(CLAMD_FAIL, &["drop".to_string()]).is_err());
        c.set(CLAMD_TIMEOUT, &["0".to_string()]).unwrap();
        assert!(c.validate().is_err());
    }

    #[test]
    fn zimbra_spam_thresholds_are_percent_of_20() {
        let mut c = ContentConfig::default();
        assert_eq!((c.spam_kill_score(), c.spam_tag_score()), (15.0, 6.6));
        assert!(c.values(SPAM_SUBJECT_TAG).is_empty());
        c.set(SPAM_SUBJECT_TAG, &["[SPAM]".to_string()]).unwrap();
        assert_eq!(c.values(SPAM_SUBJECT_TAG), ["[SPAM]"]);
        c.set(SPAM_TAG, &["80".to_string()]).unwrap();
        assert!(c.validate().unwrap_err().to_string().contains(SPAM_KILL));
        assert!(c.set(SPAM_KILL, &["101".to_string()]).is_err());
        assert!(
            c.set(SPAM_SUBJECT_TAG, &["a\r\nBcc: x".to_string()])
                .is_err()
        );
    }

    #[test]
    fn one_spam_scanner_at_a_time() {
        let mut c = ContentConfig::default();
        let v = |s: &str| [s.to_string()];
        c.set(SPAMD, &v("127.0.0.1:783")).unwrap();
        c.set(RSPAMD, &v("http://127.0.0.1:11334")).unwrap();
        let both = c.validate().unwrap_err().to_string();
        assert!(both.contains("one spam scanner at a time"), "{both}");
        c.set(SPAMD, &[]).unwrap();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(
            c.spam_scanner(),
            Some(SpamScanner::Rspamd {
                url: "http://127.0.0.1:11334".parse().unwrap(),
                password: None
            })
        );
        assert_eq!(c.values(RSPAMD), ["http://127.0.0.1:11334"]);
        c.set(RSPAMD, &v("https://127.0.0.1:11334")).unwrap();
        assert_eq!(c.values(RSPAMD), ["https://127.0.0.1:11334"]);
        let bad = c.set(RSPAMD_PASSWORD, &v("a\r\nb")).unwrap_err();
        assert!(!bad.to_string().contains("a\r\nb"), "{bad}");
        c.set(RSPAMD_PASSWORD, &v("q1w2e3")).unwrap();
        assert_eq!(c.values(RSPAMD_PASSWORD), ["q1w2e3"]);
        assert!(!format!("{c:?}").contains("q1w2e3"));
        let Some(SpamScanner::Rspamd { password, .. }) = c.spam_scanner() else {
            panic!("rspamd");
        };
        assert_eq!(password.map(RspamdPassword::as_str), Some("q1w2e3"));
        c.set(RSPAMD_PASSWORD, &[]).unwrap();
        assert_eq!(c.rspamd_password, None);
        assert_eq!(c.values(TRAINING_DELIVER), ["FALSE"]);
        c.set(TRAINING_DELIVER, &v("true")).unwrap();
        assert!(c.training_deliver);
    }

    #[test]
    fn scanner_addresses() {
        assert_eq!(
            "127.0.0.1:3310".parse(),
            Ok(ScannerAddress::Tcp("127.0.0.1:3310".parse().unwrap()))
        );
        let unix: ScannerAddress = "unix:/run/clamd.sock".parse().unwrap();
        assert_eq!(unix, ScannerAddress::Unix("/run/clamd.sock".into()));
        assert_eq!(unix.to_string(), "unix:/run/clamd.sock");
        assert_eq!(
            "/run/c".parse::<ScannerAddress>().unwrap().to_string(),
            "unix:/run/c"
        );
        assert!("localhost:3310".parse::<ScannerAddress>().is_err());
        assert!("clamd.sock".parse::<ScannerAddress>().is_err());
    }
}
