//! The MTA settings the services copy (session and connection limits, queue timing, the remote
//! syslog target), taken at start and again whenever a change brings other settings: an `mcf`,
//! or a sync that changed the MTA configuration in LDAP. No restart: new sessions get the new
//! limits, the queue the new timing from its next decision.

use std::sync::Arc;

use tokio::sync::watch;

use crate::config::MtaConfig;
use crate::directory::SharedDirectory;
use crate::inbound::Limits;
use crate::policy::ConnectionLimits;
use crate::queue::QueueSettings;
use crate::queue::runner::QueueHandle;

use super::{Inbound, master};

/// The settings the services were built with, and the changes after them.
pub(super) struct Following {
    pub directory: Arc<SharedDirectory>,
    /// Subscribed when `applied` was read.
    pub changes: watch::Receiver<u64>,
    pub applied: MtaConfig,
}

/// Applies every change of the MTA settings to the running services until the directory goes.
pub(super) async fn follow(
    following: Following,
    inbound: Arc<Inbound>,
    queue: QueueHandle,
    hostname: String,
) {
    let Following {
        directory,
        mut changes,
        mut applied,
    } = following;
    while changes.changed().await.is_ok() {
        let now = directory.snapshot();
        let new = now.config();
        let changed = apply(&applied, new, &inbound, &queue, &hostname).await;
        if !changed.is_empty() {
            master(&format!(
                "MTA settings changed, applied without a restart: {}",
                changed.join(", ")
            ));
        }
        applied = new.clone();
    }
}

/// Hands each service what changed for it; names what it applied.
async fn apply(
    old: &MtaConfig,
    new: &MtaConfig,
    inbound: &Inbound,
    queue: &QueueHandle,
    hostname: &str,
) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if limits(old) != limits(new) {
        inbound.limits.set(limits(new));
        changed.push("session limits");
    }
    if connection_limits(old) != connection_limits(new) {
        inbound.policy.set_limits(connection_limits(new));
        changed.push("connection limits");
        if old.connection_limit != new.connection_limit {
            raise_open_files(new);
        }
    }
    if queue_settings(old) != queue_settings(new) {
        queue.set_settings(queue_settings(new)).await;
        changed.push("queue timing");
    }
    if old.syslog_target != new.syslog_target {
        crate::log::remote::set_target(new.syslog_target, hostname);
        changed.push("syslog target");
    }
    changed
}

/// The queue's timing from the MTA settings (Postfix's defaults unless changed with `mcf`).
pub(super) fn queue_settings(c: &MtaConfig) -> QueueSettings {
    QueueSettings {
        queue_run_delay: c.queue_run_delay.as_secs(),
        minimal_backoff_time: c.minimal_backoff_time.as_secs(),
        maximal_backoff_time: c.maximal_backoff_time.as_secs(),
        maximal_queue_lifetime: c.maximal_queue_lifetime.as_secs(),
        bounce_queue_lifetime: c.bounce_queue_lifetime.as_secs(),
        delay_warning_time: c.delay_warning_time.as_secs(),
        ..QueueSettings::default()
    }
}

/// The session limits from the MTA settings.
pub(super) fn limits(c: &MtaConfig) -> Limits {
    Limits {
        message_size_limit: c.max_message_size,
        recipient_limit: c.recipient_limit as usize,
        command_timeout: c.smtpd_timeout,
        greet_wait: if c.greet_action_drop {
            c.greet_wait
        } else {
            std::time::Duration::ZERO
        },
        ..Limits::default()
    }
}

/// One descriptor per session: the soft limit on open files (often 1024) goes up to the hard one,
/// and a `default_process_limit` the kernel would not let the box reach is said at start.
pub(super) fn raise_open_files(c: &MtaConfig) {
    match hal::sys::limits::raise_open_files() {
        Ok(Some(n)) if n < c.connection_limit as u64 + 64 => master(&format!(
            "warning: default_process_limit {} but only {n} open files allowed (RLIMIT_NOFILE)",
            c.connection_limit
        )),
        Ok(_) => {}
        Err(e) => master(&format!("warning: cannot raise the open files limit: {e}")),
    }
}

/// The connection limits, with `$mynetworks` exempt from the per-client one as in Postfix.
pub(super) fn connection_limits(c: &MtaConfig) -> ConnectionLimits {
    ConnectionLimits {
        client_limit_exceptions: c.my_networks.clone(),
        connection_rate_limit: c.connection_rate_limit,
        message_rate_limit: c.message_rate_limit,
        auth_rate_limit: c.auth_rate_limit,
        connection_limit: c.connection_limit as usize,
        client_connection_limit: c.client_connection_limit as usize,
        ..ConnectionLimits::default()
    }
}
