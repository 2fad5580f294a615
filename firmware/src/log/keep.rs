//! Where the mail log is kept besides stderr: the ring on flash, once the daemon has a spool.
//! Lines get the syslog frame (`Dec  1 09:30:00 HOST postern/qmgr[PID]: ...`) there, so the kept
//! log reads like a Postfix box's /var/log/mail.log and pflogsumm-style tools take it.
//!
//! A hook rather than a handle in every [`LogSink`](super::LogSink): sinks are made in many
//! places (one per stage) long before and independently of the spool.

use std::cell::RefCell;
use std::fmt::Write;
use std::sync::{Arc, RwLock};

/// Takes one framed line; must not block (the spool's hook only copies it into its queue).
pub type Keeper = Arc<dyn Fn(&str) + Send + Sync>;

struct Kept {
    host: String,
    keeper: Keeper,
}

static KEPT: RwLock<Option<Kept>> = RwLock::new(None);

/// From now on every line also goes to `keeper`, framed with this host name.
pub fn keep_in(host: &str, keeper: Keeper) {
    if let Ok(mut k) = KEPT.write() {
        *k = Some(Kept {
            host: host.to_string(),
            keeper,
        });
    }
}

/// Stop keeping lines (the daemon stops; its spool goes away).
pub fn keep_nowhere() {
    if let Ok(mut k) = KEPT.write() {
        *k = None;
    }
}

/// Hands a line (`postern/qmgr: text`) to the keeper, if there is one.
pub(super) fn keep(program: &str, text: &str) {
    let Ok(k) = KEPT.read() else {
        return;
    };
    let Some(kept) = k.as_ref() else {
        return;
    };
    // Framed in this thread's own buffer, which the keeper copies from: a busy relay keeps
    // several lines per message, and each was an allocation freed on another thread.
    FRAMED.with(|framed| {
        let Ok(mut line) = framed.try_borrow_mut() else {
            return;
        };
        line.clear();
        syslog_time(&mut line, crate::mail::unix_now());
        let _ = write!(line, " {} {program}[{}]: {text}", kept.host, super::pid());
        (kept.keeper)(&line);
        if line.capacity() > FRAMED_KEPT {
            *line = String::new();
        }
    });
}

thread_local! {
    static FRAMED: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Room a thread keeps for framing lines; a longer line's is given back.
const FRAMED_KEPT: usize = 4096;

/// `Dec  1 09:30:00` (UTC), the time syslog writes, at the end of `out`.
fn syslog_time(out: &mut String, unix: u64) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let _ = write!(
        out,
        "{} {day:>2} {:02}:{:02}:{:02}",
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
}

#[cfg(test)]
mod tests {
    /// The time alone, as the kept line starts with it.
    fn syslog_time(unix: u64) -> String {
        let mut out = String::new();
        super::syslog_time(&mut out, unix);
        out
    }

    #[test]
    fn times_as_syslog_writes_them() {
        assert_eq!(syslog_time(0), "Jan  1 00:00:00");
        // 2026-12-01 09:30:05 UTC.
        assert_eq!(syslog_time(1_796_117_405), "Dec  1 09:30:05");
        // 2024-02-29 23:59:59 UTC.
        assert_eq!(syslog_time(1_709_251_199), "Feb 29 23:59:59");
    }
}
