//! Mail log lines in the shape Postfix writes them, so `grep QID`, pflogsumm-style tools and an
//! admin's habits work unchanged. [`format`](mod@format) holds pure functions from facts to one line each;
//! [`sink`] writes lines out (stderr, with the Postfix-like program name in front).

pub mod format;
pub mod sink;

pub use format::{
    Delays, DeliveryLine, Notification, Status, active_line, delivery_line,
    dropped_from_expansion_line, expired_line, notification_line, removed_line,
};
pub use sink::{LogSink, Program};
