//! The sans-IO queue manager: a small index per message, per-destination concurrency and
//! back-off, retry scheduling and lifetime. Time is always an argument (Unix seconds).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::attempt::{AttemptReport, Job, RcptResult};
use super::settings::QueueSettings;
use crate::mail::{Envelope, QueueId, QueueState, RecipientOutcome};
use crate::mail::{Host, Transport};

/// A message as the queue learns of it: from recovery at boot or from a fresh commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub qid: QueueId,
    /// Unix seconds.
    pub arrival: u64,
    /// From the null sender (a bounce): never bounced, kept for `bounce_queue_lifetime`.
    pub null_sender: bool,
    pub size: u64,
    /// Per envelope recipient: its next hop and whether it already has a final outcome.
    pub recipients: Vec<(Transport, bool)>,
    pub state: QueueState,
}

impl QueuedMessage {
    /// From what the spool stores of a message.
    pub fn from_envelope(
        qid: QueueId,
        envelope: &Envelope,
        outcomes: &[Option<RecipientOutcome>],
        state: QueueState,
        size: u64,
    ) -> QueuedMessage {
        QueuedMessage {
            qid,
            arrival: envelope.arrival,
            null_sender: envelope.is_bounce(),
            size,
            recipients: envelope
                .recipients
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let done = matches!(outcomes.get(i), Some(Some(_)));
                    (r.next_hop.clone(), done)
                })
                .collect(),
            state,
        }
    }
}

/// Where one recipient stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RcptState {
    /// Waiting for a delivery slot or the next attempt.
    Pending,
    /// A delivery job has it now.
    InFlight,
    /// Tried (or its next hop is dead) in this round; waits for the message's next attempt.
    Deferred,
    Delivered,
    Failed,
}

impl RcptState {
    fn is_final(self) -> bool {
        matches!(self, RcptState::Delivered | RcptState::Failed)
    }
}

/// Which notification to make from the stored envelope and outcomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DsnKind {
    /// The message is done: report failures (and successes asked for with NOTIFY=SUCCESS).
    Final,
    /// Still trying after `delay_warning_time`: a delay warning for these recipients.
    Delay { recipients: Vec<usize> },
}

/// Something the runner must write to the spool or the log, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The message entered the active queue (log `from=<..>, size=.., nrcpt=.. (queue active)`).
    Activated {
        qid: QueueId,
    },
    MarkRecipient {
        qid: QueueId,
        index: usize,
        outcome: RecipientOutcome,
    },
    SetState {
        qid: QueueId,
        state: QueueState,
    },
    /// Make a DSN from the stored message and queue it, before any `Remove` of the same message.
    Dsn {
        qid: QueueId,
        kind: DsnKind,
    },
    /// These recipients were deferred without an attempt because their next hop is marked dead
    /// (log `status=deferred (delivery temporarily suspended: ...)`).
    Suspended {
        qid: QueueId,
        recipients: Vec<usize>,
        reason: String,
    },
    /// The lifetime ran out (log `status=expired`).
    Expired {
        qid: QueueId,
    },
    /// Delete the message from the spool (log `removed`).
    Remove {
        qid: QueueId,
    },
}

/// The postsuper operations an admin applies to many messages at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BulkOp {
    Hold,
    Release,
    Requeue,
    Delete,
}

impl BulkOp {
    /// The past participle the admin reads: `3 messages held`.
    pub fn done(self) -> &'static str {
        match self {
            BulkOp::Hold => "held",
            BulkOp::Release => "released",
            BulkOp::Requeue => "requeued",
            BulkOp::Delete => "deleted",
        }
    }
}

/// What [`QueueManager::poll`] asks for: persist the actions first, then start the jobs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Work {
    pub actions: Vec<Action>,
    pub jobs: Vec<Job>,
}

/// One recipient in [`QueueManager::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptView {
    pub index: usize,
    pub next_hop: Transport,
    pub state: RcptState,
    pub last_reason: Option<String>,
}

/// One message in [`QueueManager::list`] (`postqueue -p`, with per-recipient detail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageView {
    pub qid: QueueId,
    pub arrival: u64,
    pub size: u64,
    pub null_sender: bool,
    pub state: QueueState,
    /// Unix seconds of the next attempt (deferred), or None when active or held.
    pub next_attempt: Option<u64>,
    pub attempts: u32,
    pub last_reason: Option<String>,
    pub recipients: Vec<RcptView>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MState {
    Active,
    Deferred,
    Hold,
}

struct Rcpt {
    next_hop: Arc<Transport>,
    state: RcptState,
    /// Shared between the recipients that got the same answer: one string, not one each.
    reason: Option<Arc<str>>,
}

struct Msg {
    arrival: u64,
    null_sender: bool,
    size: u64,
    rcpts: Vec<Rcpt>,
    state: MState,
    next_attempt: u64,
    activated: u64,
    attempts: u32,
    last_reason: Option<Arc<str>>,
    warned: bool,
}

impl Msg {
    fn in_flight(&self) -> bool {
        self.rcpts.iter().any(|r| r.state == RcptState::InFlight)
    }
    fn round_over(&self) -> bool {
        !self
            .rcpts
            .iter()
            .any(|r| matches!(r.state, RcptState::InFlight | RcptState::Pending))
    }
}

#[derive(Default)]
struct Dest {
    active: usize,
    dead_until: Option<u64>,
    dead_reason: String,
    /// Active messages with recipients waiting for this next hop, oldest first (Postfix's
    /// per-destination queue). Entries can be stale (held, deleted, already scheduled); they
    /// are checked when taken.
    waiting: VecDeque<QueueId>,
}

/// The queue manager. See the module docs of [`crate::queue`].
pub struct QueueManager {
    settings: QueueSettings,
    msgs: BTreeMap<QueueId, Msg>,
    dests: HashMap<Arc<Transport>, Dest>,
    /// Active messages that may have nothing left to try (recovered finished ones).
    check: Vec<QueueId>,
    next_queue_run: u64,
    actions: Vec<Action>,
}

impl QueueManager {
    pub fn new(settings: QueueSettings) -> QueueManager {
        QueueManager {
            settings,
            msgs: BTreeMap::new(),
            dests: HashMap::new(),
            check: Vec::new(),
            next_queue_run: 0,
            actions: Vec::new(),
        }
    }

    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    /// Replace the settings (the config changed); takes effect at the next decision.
    pub fn set_settings(&mut self, settings: QueueSettings) {
        self.settings = settings;
    }

    /// Number of messages in the queue.
    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    /// A message committed to the spool (new, or found by recovery). A second add of the same
    /// queue id is ignored.
    pub fn add(&mut self, m: QueuedMessage, now: u64) {
        if self.msgs.contains_key(&m.qid) {
            return;
        }
        let rcpts = m
            .recipients
            .into_iter()
            .map(|(hop, done)| Rcpt {
                next_hop: self.intern(hop),
                // Recovery does not say how a finished recipient ended; for scheduling only
                // "finished" matters, and DSNs read outcomes from the spool.
                state: if done {
                    RcptState::Delivered
                } else {
                    RcptState::Pending
                },
                reason: None,
            })
            .collect();
        let (state, next_attempt, last_reason) = match m.state {
            QueueState::Active => (MState::Active, now, None),
            QueueState::Deferred { until, reason } => {
                (MState::Deferred, until, Some(Arc::from(reason)))
            }
            QueueState::Hold => (MState::Hold, 0, None),
        };
        // Whether a delay warning went out is not stored. A message recovered well past the
        // point where it would have been warned (warning time plus one full retry cycle) is
        // taken as warned, so a restart does not repeat warnings.
        let st = &self.settings;
        let warned = st.delay_warning_time > 0
            && now.saturating_sub(m.arrival)
                > st.delay_warning_time
                    .saturating_add(st.maximal_backoff_time)
                    .saturating_add(st.queue_run_delay);
        let msg = Msg {
            arrival: m.arrival,
            null_sender: m.null_sender,
            size: m.size,
            rcpts,
            state,
            next_attempt,
            activated: now,
            attempts: 0,
            last_reason,
            warned,
        };
        self.msgs.insert(m.qid, msg);
        if state == MState::Active {
            self.enqueue(m.qid);
            self.actions.push(Action::Activated { qid: m.qid });
        }
    }

    fn intern(&mut self, hop: Transport) -> Arc<Transport> {
        if let Some((k, _)) = self.dests.get_key_value(&hop) {
            return k.clone();
        }
        let k = Arc::new(hop);
        self.dests.insert(k.clone(), Dest::default());
        k
    }

    /// Put an active message in line at each next hop it has pending recipients for.
    fn enqueue(&mut self, qid: QueueId) {
        let Some(m) = self.msgs.get(&qid) else {
            return;
        };
        let mut seen: Vec<&Arc<Transport>> = Vec::new();
        for r in &m.rcpts {
            if r.state == RcptState::Pending && !seen.iter().any(|h| Arc::ptr_eq(h, &r.next_hop)) {
                seen.push(&r.next_hop);
                if let Some(d) = self.dests.get_mut(&r.next_hop) {
                    d.waiting.push_back(qid);
                }
            }
        }
        self.check.push(qid);
    }

    /// Decide what to do at `now`: due queue runs, dead destinations coming back, and jobs for
    /// active messages within each destination's concurrency limit. The cost is in the jobs
    /// made and the destinations, not in the size of the queue.
    pub fn poll(&mut self, now: u64) -> Work {
        if now >= self.next_queue_run {
            self.queue_run(now);
        }
        for d in self.dests.values_mut() {
            if d.dead_until.is_some_and(|t| t <= now) {
                d.dead_until = None;
            }
        }
        let mut jobs = Vec::new();
        // Next hops whose oldest waiting message is oldest go first: fair, and the same
        // inputs always give the same jobs in the same order.
        let mut hops: Vec<(QueueId, String, Arc<Transport>)> = self
            .dests
            .iter()
            .filter_map(|(h, d)| d.waiting.front().map(|q| (*q, h.to_string(), h.clone())))
            .collect();
        hops.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        for (_, _, hop) in hops {
            self.schedule_dest(&hop, now, &mut jobs);
        }
        for qid in std::mem::take(&mut self.check) {
            let over = self
                .msgs
                .get(&qid)
                .is_some_and(|m| m.state == MState::Active && m.round_over());
            if over {
                self.finish(qid, now);
            }
        }
        self.prune_dests();
        Work {
            actions: std::mem::take(&mut self.actions),
            jobs,
        }
    }

    /// Move due deferred messages to the active queue and send due delay warnings.
    fn queue_run(&mut self, now: u64) {
        self.next_queue_run = now.saturating_add(self.settings.queue_run_delay.max(1));
        let due: Vec<QueueId> = self
            .msgs
            .iter()
            .filter(|(_, m)| m.state == MState::Deferred && m.next_attempt <= now)
            .map(|(q, _)| *q)
            .collect();
        for qid in due {
            self.activate(qid, now);
        }
        let waiting: Vec<QueueId> = self
            .msgs
            .iter()
            .filter(|(_, m)| m.state == MState::Deferred)
            .map(|(q, _)| *q)
            .collect();
        for qid in waiting {
            self.maybe_warn(qid, now);
        }
    }

    fn activate(&mut self, qid: QueueId, now: u64) {
        let Some(m) = self.msgs.get_mut(&qid) else {
            return;
        };
        m.state = MState::Active;
        m.activated = now;
        m.next_attempt = now;
        for r in &mut m.rcpts {
            if r.state == RcptState::Deferred {
                r.state = RcptState::Pending;
            }
        }
        self.enqueue(qid);
        self.actions.push(Action::Activated { qid });
    }

    /// Hand out jobs for one next hop while it has free slots, oldest message first; or, when
    /// it is dead, defer everything waiting for it without trying.
    fn schedule_dest(&mut self, hop: &Arc<Transport>, now: u64, jobs: &mut Vec<Job>) {
        let limit = self.settings.destination_concurrency_limit.max(1);
        let per_job = self.settings.destination_recipient_limit.max(1);
        let Some(dest) = self.dests.get_mut(hop) else {
            return;
        };
        let dead = dest.dead_until.is_some_and(|t| t > now);
        while dead || dest.active < limit {
            let Some(qid) = dest.waiting.pop_front() else {
                break;
            };
            let Some(m) = self.msgs.get_mut(&qid) else {
                continue;
            };
            if m.state != MState::Active {
                continue;
            }
            let idx: Vec<usize> = m
                .rcpts
                .iter()
                .enumerate()
                .filter(|(_, r)| r.state == RcptState::Pending && Arc::ptr_eq(&r.next_hop, hop))
                .map(|(i, _)| i)
                .collect();
            if idx.is_empty() {
                continue;
            }
            if dead {
                let reason = format!("delivery temporarily suspended: {}", dest.dead_reason);
                let shared: Arc<str> = Arc::from(reason.as_str());
                for &i in &idx {
                    if let Some(r) = m.rcpts.get_mut(i) {
                        r.state = RcptState::Deferred;
                        r.reason = Some(shared.clone());
                    }
                }
                m.last_reason = Some(shared);
                self.actions.push(Action::Suspended {
                    qid,
                    recipients: idx,
                    reason,
                });
                self.check.push(qid);
                continue;
            }
            let mut chunks = idx.chunks(per_job);
            for chunk in chunks.by_ref() {
                dest.active += 1;
                for &i in chunk {
                    if let Some(r) = m.rcpts.get_mut(i) {
                        r.state = RcptState::InFlight;
                    }
                }
                jobs.push(Job {
                    qid,
                    next_hop: (**hop).clone(),
                    recipients: chunk.to_vec(),
                    activated: m.activated,
                });
                if dest.active >= limit {
                    break;
                }
            }
            if chunks.next().is_some() {
                // Out of slots in the middle of a big message: it keeps its place in line.
                dest.waiting.push_front(qid);
            }
        }
    }

    /// The result of a job. Results for messages deleted meanwhile only free the slot.
    pub fn report(&mut self, report: AttemptReport, now: u64) {
        let minimal = self.settings.minimal_backoff_time;
        if let Some(d) = self.dests.get_mut(&report.next_hop) {
            d.active = d.active.saturating_sub(1);
            if report.destination_failed {
                d.dead_until = Some(now.saturating_add(minimal));
                d.dead_reason = report
                    .results
                    .iter()
                    .find_map(|(_, r)| match r {
                        RcptResult::Deferred { reason, .. } => Some(reason.clone()),
                        _ => None,
                    })
                    .unwrap_or_else(|| "destination not reachable".into());
            }
        }
        let qid = report.qid;
        let Some(m) = self.msgs.get_mut(&qid) else {
            return;
        };
        for (index, result) in report.results {
            let Some(r) = m.rcpts.get_mut(index) else {
                continue;
            };
            if r.state != RcptState::InFlight {
                continue;
            }
            match result {
                RcptResult::Delivered { relay, reply } => {
                    r.state = RcptState::Delivered;
                    r.reason = None;
                    self.actions.push(Action::MarkRecipient {
                        qid,
                        index,
                        outcome: RecipientOutcome::Delivered {
                            relay,
                            reply: reply.to_string(),
                        },
                    });
                }
                RcptResult::Deferred { reason, .. } => {
                    r.state = RcptState::Deferred;
                    let shared = match &m.last_reason {
                        Some(last) if **last == *reason => last.clone(),
                        _ => Arc::from(reason),
                    };
                    r.reason = Some(shared.clone());
                    m.last_reason = Some(shared);
                }
                RcptResult::Bounced {
                    status,
                    diagnostic,
                    remote_mta,
                } => {
                    r.state = RcptState::Failed;
                    r.reason = Some(Arc::from(diagnostic.as_str()));
                    self.actions.push(Action::MarkRecipient {
                        qid,
                        index,
                        outcome: RecipientOutcome::Failed {
                            status: status.to_string(),
                            diagnostic,
                            remote_mta,
                        },
                    });
                }
            }
        }
        // A job that forgot a recipient must not leave it in flight forever.
        for r in &mut m.rcpts {
            if r.state == RcptState::InFlight && Arc::as_ref(&r.next_hop) == &report.next_hop {
                r.state = RcptState::Deferred;
                r.reason = Some("delivery attempt gave no result".into());
            }
        }
        if m.round_over() {
            self.finish(qid, now);
        }
    }

    /// Nothing in flight and nothing left to try this round: done, deferred or expired.
    fn finish(&mut self, qid: QueueId, now: u64) {
        let Some(m) = self.msgs.get_mut(&qid) else {
            return;
        };
        if m.in_flight() {
            return;
        }
        if m.rcpts.iter().all(|r| r.state.is_final()) {
            let null_sender = m.null_sender;
            self.drop_message(qid);
            if !null_sender {
                self.actions.push(Action::Dsn {
                    qid,
                    kind: DsnKind::Final,
                });
            }
            self.actions.push(Action::Remove { qid });
            return;
        }
        if m.state == MState::Hold {
            return;
        }
        let age = now.saturating_sub(m.arrival);
        let lifetime = if m.null_sender {
            self.settings.bounce_queue_lifetime
        } else {
            self.settings.maximal_queue_lifetime
        };
        if age >= lifetime {
            self.expire(qid);
            return;
        }
        let backoff = age.clamp(
            self.settings.minimal_backoff_time,
            self.settings
                .maximal_backoff_time
                .max(self.settings.minimal_backoff_time),
        );
        let until = now.saturating_add(backoff);
        m.state = MState::Deferred;
        m.next_attempt = until;
        m.attempts = m.attempts.saturating_add(1);
        let reason = m.last_reason.as_deref().unwrap_or("deferred").to_string();
        self.actions.push(Action::SetState {
            qid,
            state: QueueState::Deferred { until, reason },
        });
        self.maybe_warn(qid, now);
    }

    /// Fail what is left with 4.4.7 and return the message to its sender (or drop a bounce).
    fn expire(&mut self, qid: QueueId) {
        let Some(m) = self.msgs.get_mut(&qid) else {
            return;
        };
        self.actions.push(Action::Expired { qid });
        for (index, r) in m.rcpts.iter_mut().enumerate() {
            if r.state.is_final() {
                continue;
            }
            let why = r
                .reason
                .as_deref()
                .or(m.last_reason.as_deref())
                .unwrap_or("delivery time expired");
            self.actions.push(Action::MarkRecipient {
                qid,
                index,
                outcome: RecipientOutcome::Failed {
                    status: "4.4.7".into(),
                    diagnostic: format!("x-postern; message expired in the queue: {why}"),
                    remote_mta: None,
                },
            });
            r.state = RcptState::Failed;
        }
        let null_sender = m.null_sender;
        self.drop_message(qid);
        if !null_sender {
            self.actions.push(Action::Dsn {
                qid,
                kind: DsnKind::Final,
            });
        }
        self.actions.push(Action::Remove { qid });
    }

    fn maybe_warn(&mut self, qid: QueueId, now: u64) {
        let warn_after = self.settings.delay_warning_time;
        let Some(m) = self.msgs.get_mut(&qid) else {
            return;
        };
        if warn_after == 0 || m.warned || m.null_sender {
            return;
        }
        if now.saturating_sub(m.arrival) < warn_after {
            return;
        }
        let recipients: Vec<usize> = m
            .rcpts
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.state.is_final())
            .map(|(i, _)| i)
            .collect();
        if recipients.is_empty() {
            return;
        }
        m.warned = true;
        self.actions.push(Action::Dsn {
            qid,
            kind: DsnKind::Delay { recipients },
        });
    }

    fn drop_message(&mut self, qid: QueueId) {
        self.msgs.remove(&qid);
    }

    fn prune_dests(&mut self) {
        self.dests
            .retain(|k, d| Arc::strong_count(k) > 1 || d.active > 0 || d.dead_until.is_some());
        for d in self.dests.values_mut() {
            if d.waiting.capacity() > 64 && d.waiting.len() < d.waiting.capacity() / 4 {
                d.waiting.shrink_to_fit();
            }
        }
    }

    /// When `poll` next has something to do by the clock alone (Unix seconds), if ever.
    /// Reports, adds and admin operations call for a `poll` of their own.
    pub fn next_wakeup(&self) -> Option<u64> {
        if !self.actions.is_empty() {
            return Some(0);
        }
        let deferred = self.msgs.values().any(|m| m.state == MState::Deferred);
        let run = deferred.then_some(self.next_queue_run);
        let dead = self.dests.values().filter_map(|d| d.dead_until).min();
        match (run, dead) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---- admin operations (postsuper / postqueue) ----

    /// One postsuper operation on one message; whether it applied.
    pub fn apply(&mut self, op: BulkOp, qid: QueueId, now: u64) -> bool {
        match op {
            BulkOp::Hold => self.hold(qid),
            BulkOp::Release => self.release(qid, now),
            BulkOp::Requeue => self.requeue(qid, now),
            BulkOp::Delete => self.delete(qid),
        }
    }

    /// `postsuper -h`: hold a message; jobs in flight finish, no new ones start.
    pub fn hold(&mut self, qid: QueueId) -> bool {
        let Some(m) = self.msgs.get_mut(&qid) else {
            return false;
        };
        m.state = MState::Hold;
        self.actions.push(Action::SetState {
            qid,
            state: QueueState::Hold,
        });
        true
    }

    /// `postsuper -H`: release a held message for delivery now.
    pub fn release(&mut self, qid: QueueId, now: u64) -> bool {
        match self.msgs.get(&qid) {
            Some(m) if m.state == MState::Hold => {}
            _ => return false,
        }
        self.requeue_now(qid, now);
        true
    }

    /// `postsuper -r` / `postqueue -i`: try a deferred message now.
    pub fn requeue(&mut self, qid: QueueId, now: u64) -> bool {
        match self.msgs.get(&qid) {
            Some(m) if m.state == MState::Deferred => {}
            _ => return false,
        }
        self.requeue_now(qid, now);
        true
    }

    fn requeue_now(&mut self, qid: QueueId, now: u64) {
        self.actions.push(Action::SetState {
            qid,
            state: QueueState::Active,
        });
        if let Some(m) = self.msgs.get(&qid) {
            for r in &m.rcpts {
                if let Some(d) = self.dests.get_mut(&r.next_hop) {
                    d.dead_until = None;
                }
            }
        }
        self.activate(qid, now);
    }

    /// `postsuper -d`: delete a message without notification.
    pub fn delete(&mut self, qid: QueueId) -> bool {
        if self.msgs.contains_key(&qid) {
            self.drop_message(qid);
            self.actions.push(Action::Remove { qid });
            true
        } else {
            false
        }
    }

    /// `postqueue -f` (all) or `postqueue -s site` (messages with a recipient whose next hop is
    /// `site`): try deferred messages now and forget that their destinations were dead.
    /// Returns how many messages were moved to the active queue.
    pub fn flush(&mut self, site: Option<&str>, now: u64) -> usize {
        let matches = |t: &Transport| match (site, &t.host) {
            (None, _) => true,
            (Some(s), Host::Name(n)) => n.eq_ignore_ascii_case(s.trim_end_matches('.')),
            (Some(s), Host::Ip(ip)) => s.trim_matches(['[', ']']) == ip.to_string(),
        };
        for (k, d) in self.dests.iter_mut() {
            if matches(k) {
                d.dead_until = None;
            }
        }
        let due: Vec<QueueId> = self
            .msgs
            .iter()
            .filter(|(_, m)| {
                m.state == MState::Deferred
                    && m.rcpts
                        .iter()
                        .any(|r| !r.state.is_final() && matches(&r.next_hop))
            })
            .map(|(q, _)| *q)
            .collect();
        for &qid in &due {
            self.activate(qid, now);
        }
        due.len()
    }

    /// The queue as `postqueue -p` would list it, oldest first, with per-recipient state.
    pub fn list(&self) -> Vec<MessageView> {
        self.msgs.iter().map(|(q, m)| self.view(*q, m)).collect()
    }

    /// One message of [`list`](Self::list).
    pub fn get(&self, qid: QueueId) -> Option<MessageView> {
        self.msgs.get(&qid).map(|m| self.view(qid, m))
    }

    fn view(&self, qid: QueueId, m: &Msg) -> MessageView {
        let reason = m.last_reason.as_deref().map(str::to_string);
        let state = match m.state {
            MState::Active => QueueState::Active,
            MState::Hold => QueueState::Hold,
            MState::Deferred => QueueState::Deferred {
                until: m.next_attempt,
                reason: reason.clone().unwrap_or_default(),
            },
        };
        MessageView {
            qid,
            arrival: m.arrival,
            size: m.size,
            null_sender: m.null_sender,
            state,
            next_attempt: (m.state == MState::Deferred).then_some(m.next_attempt),
            attempts: m.attempts,
            last_reason: reason,
            recipients: m
                .rcpts
                .iter()
                .enumerate()
                .map(|(index, r)| RcptView {
                    index,
                    next_hop: (*r.next_hop).clone(),
                    state: r.state,
                    last_reason: r.reason.as_deref().map(str::to_string),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests;
