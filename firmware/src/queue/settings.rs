//! The queue's settings with Postfix's defaults, under Zimbra's attribute names.

/// Scheduling limits. Times are in seconds. `Default` gives Postfix's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// `zimbraMtaQueueRunDelay` (queue_run_delay): how often the deferred queue is scanned.
    pub queue_run_delay: u64,
    /// `zimbraMtaMinimalBackoffTime` (minimal_backoff_time).
    pub minimal_backoff_time: u64,
    /// `zimbraMtaMaximalBackoffTime` (maximal_backoff_time).
    pub maximal_backoff_time: u64,
    /// `zimbraMtaMaximalQueueLifetime` (maximal_queue_lifetime): then the message bounces.
    pub maximal_queue_lifetime: u64,
    /// `zimbraMtaBounceQueueLifetime` (bounce_queue_lifetime): how long an undeliverable bounce
    /// is kept before it is dropped.
    pub bounce_queue_lifetime: u64,
    /// `zimbraMtaDelayWarningTime` (delay_warning_time): 0 sends no delay warnings.
    pub delay_warning_time: u64,
    /// default_destination_concurrency_limit: parallel deliveries per next hop.
    pub destination_concurrency_limit: usize,
    /// default_destination_recipient_limit: recipients per delivery job.
    pub destination_recipient_limit: usize,
}

impl QueueSettings {
    /// Zimbra's attribute names, in the order of the fields, for the config and the console.
    pub const ZIMBRA_NAMES: [&'static str; 6] = [
        "zimbraMtaQueueRunDelay",
        "zimbraMtaMinimalBackoffTime",
        "zimbraMtaMaximalBackoffTime",
        "zimbraMtaMaximalQueueLifetime",
        "zimbraMtaBounceQueueLifetime",
        "zimbraMtaDelayWarningTime",
    ];
}

impl Default for QueueSettings {
    fn default() -> Self {
        const DAY: u64 = 86_400;
        QueueSettings {
            queue_run_delay: 300,
            minimal_backoff_time: 300,
            maximal_backoff_time: 4000,
            maximal_queue_lifetime: 5 * DAY,
            bounce_queue_lifetime: 5 * DAY,
            delay_warning_time: 0,
            destination_concurrency_limit: 20,
            destination_recipient_limit: 50,
        }
    }
}
