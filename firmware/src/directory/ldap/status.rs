//! What `postern ldap status` shows: the last sync (when, what kind, how many entries, how long,
//! the error if it failed) and the entries skipped with their reasons.

use std::fmt;
use std::time::Duration;

use super::build::Counts;
use super::model::Changes;
use super::object::Skipped;

/// Full (everything read; finds deletions) or incremental (only what changed since the last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    Full,
    Incremental,
}

impl fmt::Display for SyncKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SyncKind::Full => "full",
            SyncKind::Incremental => "incremental",
        })
    }
}

/// One sync, done or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub kind: SyncKind,
    /// An incremental sync that went on from the state on flash (the first after a restart).
    pub resumed: bool,
    /// Unix seconds when it started.
    pub started: u64,
    pub duration: Duration,
    /// The server that answered.
    pub server: String,
    /// Entries the server returned.
    pub read: usize,
    pub changes: Changes,
    /// Why it failed; the directory served did not change.
    pub error: Option<String>,
    /// A poll's changes went to flash as the whole snapshot because the flash refused them as a
    /// journal record: why (the journal was full, the slot's tail torn).
    pub journal_refused: Option<String>,
}

impl SyncReport {
    /// `full`, `incremental`, or `incremental (resumed from flash)`.
    pub fn kind_text(&self) -> String {
        match self.resumed {
            true => format!("{} (resumed from flash)", self.kind),
            false => self.kind.to_string(),
        }
    }
}

/// The sync's state, for status and for the cache age.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LdapStatus {
    pub last: Option<SyncReport>,
    /// Unix seconds of the last sync that succeeded.
    pub last_success: Option<u64>,
    /// What the served directory holds from LDAP.
    pub counts: Counts,
    pub skipped: Vec<Skipped>,
}

/// `2026-12-01 10:15:00 UTC` from Unix seconds, without a time-zone database.
pub fn show_time(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `3m 20s` for an age.
pub fn show_age(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h {}m", secs / 3600, secs / 60 % 60),
        _ => format!("{}d {}h", secs / 86_400, secs / 3600 % 24),
    }
}

impl LdapStatus {
    /// The text of `postern ldap status` at `now` (Unix seconds).
    pub fn render(&self, now: u64) -> String {
        let mut out = String::new();
        match &self.last {
            None => out.push_str("last sync: none yet\n"),
            Some(r) => {
                out.push_str(&format!(
                    "last sync: {} ({} ago), {}, {} ms, {} entries read{}\n",
                    show_time(r.started),
                    show_age(now.saturating_sub(r.started)),
                    r.kind_text(),
                    r.duration.as_millis(),
                    r.read,
                    if r.server.is_empty() {
                        String::new()
                    } else {
                        format!(" from {}", r.server)
                    }
                ));
                match &r.error {
                    Some(e) => out.push_str(&format!("last error: {e}\n")),
                    None => out.push_str(&format!(
                        "last changes: {} added, {} modified, {} deleted\n",
                        r.changes.added_count(),
                        r.changes.modified_count(),
                        r.changes.deleted_count()
                    )),
                }
                if let Some(why) = &r.journal_refused {
                    out.push_str(&format!("written to flash as a whole snapshot: {why}\n"));
                }
            }
        }
        match self.last_success {
            Some(t) => out.push_str(&format!(
                "last success: {} (cache age {})\n",
                show_time(t),
                show_age(now.saturating_sub(t))
            )),
            None => out.push_str("last success: never\n"),
        }
        let c = &self.counts;
        out.push_str(&format!(
            "from LDAP: {} domains, {} accounts, {} lists, {} aliases\n",
            c.domains, c.accounts, c.lists, c.aliases
        ));
        out.push_str(&format!("skipped entries: {}\n", self.skipped.len()));
        for s in &self.skipped {
            out.push_str(&format!("  {s}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_ages_read_like_a_log() {
        assert_eq!(show_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(show_time(1_796_123_700), "2026-12-01 11:15:00 UTC");
        assert_eq!(show_time(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(show_age(200), "3m 20s");
        assert_eq!(show_age(90_000), "1d 1h");
    }

    #[test]
    fn the_status_says_when_a_poll_wrote_the_whole_snapshot() {
        let mut report = SyncReport {
            kind: SyncKind::Incremental,
            resumed: false,
            started: 1_796_123_700,
            duration: Duration::from_millis(12),
            server: "ldap://127.0.0.1:389".into(),
            read: 1,
            changes: Changes::default(),
            error: None,
            journal_refused: None,
        };
        let status = |r: &SyncReport| {
            LdapStatus {
                last: Some(r.clone()),
                ..LdapStatus::default()
            }
            .render(1_796_123_760)
        };
        assert!(!status(&report).contains("whole snapshot"));
        report.journal_refused = Some("the slot's journal is full".into());
        assert!(
            status(&report)
                .contains("written to flash as a whole snapshot: the slot's journal is full\n"),
            "{}",
            status(&report)
        );
    }
}
