//! Every limit of a session, one named setting each, with Postfix-like defaults. The doc
//! comment of each field names the Postfix (or Zimbra) parameter an admin knows it by. (How many
//! clients are served at once is the policy stage's: `policy::ConnectionLimits`.)

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::smtp::{Config, Mode};

/// Limits of the SMTP listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest message accepted, in bytes. Postfix `message_size_limit`, Zimbra
    /// `zimbraMtaMaxMessageSize` (10240000).
    pub message_size_limit: u64,
    /// Recipients per message. Postfix `smtpd_recipient_limit` (1000).
    pub recipient_limit: usize,
    /// Waiting for a command. Postfix `smtpd_timeout` (300 s; RFC 5321 §4.5.3.2.7 asks at least
    /// 5 minutes).
    pub command_timeout: Duration,
    /// Waiting for the next block of message data (RFC 5321 §4.5.3.2.6: 3 minutes).
    pub data_timeout: Duration,
    /// `command_timeout` and `data_timeout` bound a whole record (a command line; the message
    /// content after 354), not each read, so a client sending a byte a second is dropped all the
    /// same. Postfix `smtpd_per_record_deadline` (`yes` under stress; always here: a box has few
    /// slots to lose).
    pub per_record_deadline: bool,
    /// Bytes per second a client must keep up to be given more time for its record: each read
    /// extends the record's deadline by its size over this rate. Postfix `smtpd_min_data_rate`
    /// (500).
    pub min_data_rate: u64,
    /// TLS handshake after STARTTLS or on port 465. Postfix `smtpd_starttls_timeout` (300 s).
    pub tls_handshake_timeout: Duration,
    /// Errors before the session is dropped with 421. Postfix `smtpd_hard_error_limit` (20).
    pub hard_error_limit: u32,
    /// Failed AUTH attempts per connection before it is dropped with 421 (Postfix counts these
    /// towards its error limits; Zimbra's default policy allows 3).
    pub auth_failure_limit: u32,
    /// Delay before answering the first failed AUTH; each further failure waits this much longer.
    /// Postfix `smtpd_error_sleep_time` (1 s).
    pub auth_failure_delay: Duration,
    /// Longest command line, CRLF included. Postfix `line_length_limit` (2048).
    pub line_length_limit: usize,
    /// VRFY answers 252 instead of 502. Postfix `disable_vrfy_command` (here: disabled).
    pub vrfy: bool,
    /// Drop clients that send commands before the 354 of DATA without having authenticated.
    /// Postfix `smtpd_forbid_unauth_pipelining` (yes).
    pub forbid_unauth_pipelining: bool,
    /// How long the greeting is held to catch clients that talk first; zero: not at all.
    /// postscreen's `postscreen_greet_wait`, in force when `postscreen_greet_action = drop`.
    pub greet_wait: Duration,
    /// Reply code when a bare `<LF>` or `<CR>` ends the session. Postfix
    /// `smtpd_forbid_bare_newline_reject_code` (550 in 3.9; the first 2023 fixes used 521).
    /// Line discipline itself is not a setting: only CRLF is ever a line end here (Postfix
    /// `smtpd_forbid_bare_newline = reject`).
    pub bare_newline_reject_code: u16,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            message_size_limit: 10_240_000,
            recipient_limit: 1000,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(180),
            tls_handshake_timeout: Duration::from_secs(300),
            per_record_deadline: true,
            min_data_rate: 500,
            hard_error_limit: 20,
            auth_failure_limit: 3,
            auth_failure_delay: Duration::from_secs(1),
            line_length_limit: 2048,
            vrfy: false,
            forbid_unauth_pipelining: true,
            greet_wait: Duration::ZERO,
            bare_newline_reject_code: 550,
        }
    }
}

impl Limits {
    /// How much later a record may end for `bytes` more received (`smtpd_min_data_rate`).
    pub fn record_extension(&self, bytes: usize) -> Duration {
        match self.min_data_rate {
            0 => Duration::ZERO,
            rate => Duration::from_secs_f64(bytes as f64 / rate as f64),
        }
    }

    /// How long to wait before answering the `failures`th failed AUTH (1-based): it grows with
    /// every failure, so guessing passwords over one connection gets slower and slower.
    pub fn auth_delay(&self, failures: u32) -> Duration {
        self.auth_failure_delay.saturating_mul(failures.max(1))
    }

    /// The session core's settings for one listener.
    pub fn session_config(
        &self,
        hostname: &str,
        mode: Mode,
        starttls: bool,
        auth: bool,
        auth_required: bool,
    ) -> Config {
        Config {
            hostname: hostname.to_string(),
            mode,
            max_message_size: self.message_size_limit,
            max_recipients: self.recipient_limit,
            line_length_limit: self.line_length_limit,
            hard_error_limit: self.hard_error_limit,
            auth_failure_limit: self.auth_failure_limit,
            command_timeout: self.command_timeout,
            data_timeout: self.data_timeout,
            starttls,
            auth,
            auth_required,
            vrfy: self.vrfy,
            forbid_unauth_pipelining: self.forbid_unauth_pipelining,
            greet_wait: self.greet_wait,
            bare_newline_reject_code: self.bare_newline_reject_code,
        }
    }
}

/// The limits in force, replaced when the MTA settings change (no restart): a session takes
/// its size and recipient limits as it starts, its timeouts as it waits.
#[derive(Debug, Default)]
pub struct LiveLimits(RwLock<Arc<Limits>>);

impl LiveLimits {
    pub fn new(limits: Limits) -> LiveLimits {
        LiveLimits(RwLock::new(Arc::new(limits)))
    }

    pub fn get(&self) -> Arc<Limits> {
        // A poisoned lock still holds a whole Arc.
        Arc::clone(&self.0.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn set(&self, limits: Limits) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(limits);
    }
}

impl From<Limits> for LiveLimits {
    fn from(limits: Limits) -> LiveLimits {
        LiveLimits::new(limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_delay_grows_with_each_failure() {
        let l = Limits::default();
        assert_eq!(l.auth_delay(1), Duration::from_secs(1));
        assert_eq!(l.auth_delay(3), Duration::from_secs(3));
        assert!(l.auth_delay(u32::MAX) >= l.auth_delay(3));
    }
}
