//! A remote syslog for every line (RFC 5424 frames; over UDP, or over TCP with RFC 6587 octet
//! counting), set by the admin with `posternSyslogTarget`. Lines go through a bounded queue to one
//! sender thread: a slow or dead log host loses lines, never holds up mail.

use std::fmt;
use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::str::FromStr;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How lines travel to the log host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

/// `udp:192.0.2.5:514`, `tcp:192.0.2.5:6514`, or a bare address (UDP, port 514).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SyslogTarget {
    pub transport: Transport,
    pub addr: SocketAddr,
}

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadTarget;

impl fmt::Display for BadTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("use udp:ADDRESS:PORT, tcp:ADDRESS:PORT or an address (the log host's IP)")
    }
}

impl FromStr for SyslogTarget {
    type Err = BadTarget;

    fn from_str(s: &str) -> Result<SyslogTarget, BadTarget> {
        let lower = s.trim().to_ascii_lowercase();
        let (transport, rest) = if let Some(r) = lower.strip_prefix("udp:") {
            (Transport::Udp, r)
        } else if let Some(r) = lower.strip_prefix("tcp:") {
            (Transport::Tcp, r)
        } else {
            (Transport::Udp, lower.as_str())
        };
        let addr = match rest.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, 514),
            Err(_) => rest.parse::<SocketAddr>().map_err(|_| BadTarget)?,
        };
        Ok(SyslogTarget { transport, addr })
    }
}

impl fmt::Display for SyslogTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = match self.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        };
        write!(f, "{t}:{}", self.addr)
    }
}

/// Lines waiting for the sender thread; beyond this they are dropped.
const QUEUE: usize = 4096;

struct Remote {
    target: SyslogTarget,
    queue: SyncSender<String>,
}

static REMOTE: OnceLock<Mutex<Option<Remote>>> = OnceLock::new();

/// Sends every line from now on to `target` too (`None`: stop). `hostname` is the frame's
/// HOSTNAME field.
pub fn set_target(target: Option<SyslogTarget>, hostname: &str) {
    let slot = REMOTE.get_or_init(|| Mutex::new(None));
    let Ok(mut remote) = slot.lock() else {
        return;
    };
    if remote.as_ref().map(|r| r.target) == target {
        return;
    }
    *remote = target.map(|target| {
        let (queue, lines) = sync_channel::<String>(QUEUE);
        let hostname = hostname.to_string();
        // The thread ends when its queue's sender is dropped (a new target, or none).
        let _ = std::thread::Builder::new()
            .name("syslog".into())
            .spawn(move || send_all(target, &hostname, lines));
        Remote { target, queue }
    });
}

/// Hands one line (`program` as APP-NAME) to the sender thread, if a target is set.
pub(super) fn send(program: &str, text: &str) {
    let Some(slot) = REMOTE.get() else { return };
    let Ok(remote) = slot.lock() else { return };
    if let Some(r) = remote.as_ref() {
        match r.queue.try_send(format!("{program}\u{0}{text}")) {
            Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

fn send_all(target: SyslogTarget, hostname: &str, lines: std::sync::mpsc::Receiver<String>) {
    let udp = UdpSocket::bind(match target.addr {
        SocketAddr::V4(_) => "0.0.0.0:0",
        SocketAddr::V6(_) => "[::]:0",
    })
    .ok();
    let mut tcp: Option<TcpStream> = None;
    for item in lines {
        let (program, text) = item.split_once('\u{0}').unwrap_or(("postern", &item));
        let frame = frame(hostname, program, text, SystemTime::now());
        match target.transport {
            Transport::Udp => {
                if let Some(s) = &udp {
                    let _ = s.send_to(frame.as_bytes(), target.addr);
                }
            }
            Transport::Tcp => {
                if tcp.is_none() {
                    tcp = TcpStream::connect_timeout(&target.addr, Duration::from_secs(5)).ok();
                }
                let sent = tcp.as_mut().map(|s| {
                    // RFC 6587 octet counting: "LEN SP FRAME".
                    s.write_all(format!("{} {frame}", frame.len()).as_bytes())
                });
                if !matches!(sent, Some(Ok(()))) {
                    tcp = None;
                }
            }
        }
    }
}

/// `<22>1 2026-12-01T09:30:00.123Z mx.example.com postern/smtpd 4242 - - connect from ...`:
/// facility mail, severity info.
pub fn frame(hostname: &str, program: &str, text: &str, now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (y, m, d) = civil(secs / 86_400);
    let t = secs % 86_400;
    let field = |s: &str| -> String {
        let clean: String = s
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(48)
            .collect();
        if clean.is_empty() { "-".into() } else { clean }
    };
    format!(
        "<22>1 {y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z {} {} {} - - {}",
        t / 3600,
        t / 60 % 60,
        t % 60,
        since.subsec_millis(),
        field(hostname),
        field(program),
        super::pid(),
        text
    )
}

/// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's civil_from_days).
fn civil(days: u64) -> (i64, u32, u32) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_rfc_5424() {
        let t = UNIX_EPOCH + Duration::from_millis(1_796_117_400_123);
        assert_eq!(
            frame(
                "mx.example.com",
                "postern/smtpd",
                "connect from x[192.0.2.1]",
                t
            ),
            format!(
                "<22>1 2026-12-01T09:30:00.123Z mx.example.com postern/smtpd {} - - connect from x[192.0.2.1]",
                std::process::id()
            )
        );
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(11_016), (2000, 2, 29));
    }

    #[test]
    fn targets_parse() {
        let t: SyslogTarget = "tcp:192.0.2.5:6514".parse().unwrap();
        assert_eq!(t.transport, Transport::Tcp);
        assert_eq!(t.to_string(), "tcp:192.0.2.5:6514");
        assert_eq!(
            "192.0.2.5".parse::<SyslogTarget>().unwrap().to_string(),
            "udp:192.0.2.5:514"
        );
        assert_eq!(
            "udp:[2001:db8::5]:514"
                .parse::<SyslogTarget>()
                .unwrap()
                .to_string(),
            "udp:[2001:db8::5]:514"
        );
        for bad in ["logs.example.com", "udp:192.0.2.5:x", "smtp:1.2.3.4:25", ""] {
            assert!(bad.parse::<SyslogTarget>().is_err(), "{bad}");
        }
    }
}
