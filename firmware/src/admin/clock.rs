//! The appliance's last clock setting by SNTP, for `postern status`. The appliance's clock task
//! writes it; nothing else sets the clock, so in host mode it stays "never".

use std::sync::Mutex;
use std::time::SystemTime;

use tokio::sync::Notify;

/// One SNTP exchange that set (or checked) the clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockSync {
    /// The server as configured, and the address that answered.
    pub server: String,
    pub address: String,
    pub at: SystemTime,
    /// How far the clock was behind the server (negative: ahead), in nanoseconds.
    pub offset_ns: i128,
}

#[derive(Default)]
struct State {
    last: Option<ClockSync>,
    /// Why the attempts after `last` failed, if they did.
    failing: Option<String>,
}

static STATE: Mutex<State> = Mutex::new(State {
    last: None,
    failing: None,
});

/// Wakes the clock task when the stored servers change, so a new list is used at once rather
/// than at its next minute's look.
static SERVERS_CHANGED: Notify = Notify::const_new();

/// The stored NTP servers changed.
pub fn servers_changed() {
    SERVERS_CHANGED.notify_one();
}

/// Until the stored NTP servers change (or at once, when they changed since the last wait).
pub async fn wait_for_new_servers() {
    SERVERS_CHANGED.notified().await
}

pub fn record_sync(sync: ClockSync) {
    if let Ok(mut s) = STATE.lock() {
        s.last = Some(sync);
        s.failing = None;
    }
}

pub fn record_failure(why: String) {
    if let Ok(mut s) = STATE.lock() {
        s.failing = Some(why);
    }
}

/// The `clock:` line of `postern status`.
pub fn status_line(now: SystemTime) -> String {
    let Ok(s) = STATE.lock() else {
        return "clock: unknown".into();
    };
    let mut line = match &s.last {
        None => "clock: never set by SNTP".to_string(),
        Some(sync) => {
            let ago = now.duration_since(sync.at).unwrap_or_default();
            format!(
                "clock: set by SNTP from {} ({}) {} ago, it was {:+.3} s off",
                sync.server,
                sync.address,
                crate::directory::ldap::status::show_age(ago.as_secs()),
                sync.offset_ns as f64 / 1e9
            )
        }
    };
    if let Some(why) = &s.failing {
        line += &format!("; the last attempt failed: {why}");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn status_says_when_and_from_where_and_a_failure_since() {
        let now = SystemTime::now();
        assert_eq!(status_line(now), "clock: never set by SNTP");
        record_sync(ClockSync {
            server: "pool.ntp.org".into(),
            address: "192.0.2.123".into(),
            at: now - Duration::from_secs(125),
            offset_ns: -1_500_000_000,
        });
        assert_eq!(
            status_line(now),
            "clock: set by SNTP from pool.ntp.org (192.0.2.123) 2m 5s ago, it was -1.500 s off"
        );
        record_failure("pool.ntp.org: no answer".into());
        assert!(status_line(now).ends_with("; the last attempt failed: pool.ntp.org: no answer"));
    }
}
