//! Mail log lines in the shape Postfix writes them, so `grep QID`, pflogsumm-style tools and an
//! admin's habits work unchanged. [`format`](mod@format) holds pure functions from facts to one line each;
//! [`sink`] writes lines out (stderr, with the Postfix-like program name in front); [`keep`]
//! also hands them to the ring on flash.

pub mod console;
pub mod content;
pub mod format;
pub mod keep;
pub mod remote;
pub mod sink;
pub mod smtpd;

pub use format::{
    Delays, DeliveryLine, Notification, Status, active_line, delivery_line,
    dropped_from_expansion_line, expired_line, notification_line, removed_line,
};
pub use sink::{LogSink, Program};

/// This process's id for the `program[pid]` of every line, asked of the kernel once (a message
/// writes about seven lines; getpid each time showed in the relay profile).
pub fn pid() -> u32 {
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *PID.get_or_init(std::process::id)
}
