//! `postern status`: what an admin looks at first.

use std::fmt::Write;

use super::BoxFacts;
use crate::config::MtaConfig;
use crate::queue::{Brief, QueueName};
use crate::spool::FlashInfo;

/// The status report, one `name: value` line per fact.
pub fn render(
    state: &BoxFacts,
    config: &MtaConfig,
    flash: Option<&FlashInfo>,
    queue: Option<&[Brief]>,
) -> String {
    let mut out = String::new();
    let up = state.started.elapsed().as_secs();
    let _ = writeln!(out, "postern {}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(out, "hostname: {}", state.hostname);
    let _ = writeln!(
        out,
        "uptime: {}d {:02}:{:02}:{:02}",
        up / 86400,
        up / 3600 % 24,
        up / 60 % 60,
        up % 60
    );
    let _ = writeln!(
        out,
        "flash: {} ({})",
        state.flash_path.display(),
        human_bytes(state.flash_size)
    );
    if let Some(info) = flash {
        let _ = writeln!(
            out,
            "spool: {} messages, {} of {} segments in use",
            info.messages, info.segments_used, info.segments
        );
    }
    if let Some(queue) = queue {
        let count = |q: QueueName| queue.iter().filter(|m| m.queue == q).count();
        let _ = writeln!(
            out,
            "queue: active {}, deferred {}, hold {}",
            count(QueueName::Active),
            count(QueueName::Deferred),
            count(QueueName::Hold),
        );
    }
    for (kind, addr) in &state.listeners {
        let _ = writeln!(out, "listener: {kind} {addr}");
    }
    if let Some(control) = &state.control {
        let _ = writeln!(out, "control: {}", control.display());
    }
    for (attr, value) in config.unenforced() {
        let _ = writeln!(out, "ignored: {attr} {value} (on flash; not supported yet)");
    }
    out
}

/// `268435456 bytes, 256.0 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = None;
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = Some(u);
    }
    match unit {
        Some(u) => format!("{n} bytes, {v:.1} {u}"),
        None => format!("{n} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_as_an_admin_expects() {
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(268_435_456), "268435456 bytes, 256.0 MiB");
        assert_eq!(human_bytes(1536), "1536 bytes, 1.5 KiB");
    }
}
