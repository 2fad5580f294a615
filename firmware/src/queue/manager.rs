//! The sans-IO queue manager: a small index per message, per-destination concurrency and
//! back-off, retry scheduling and lifetime. Time is always an argument (Unix seconds).

mod reasons;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::attempt::{AttemptReport, Job, RcptResult};
use super::filter::{Filter, QueueName};
use super::settings::QueueSettings;
use crate::mail::{Envelope, QueueId, QueueState, RecipientOutcome, Relay, Waiting};
use crate::mail::{Host, Transport};
use crate::spool::qid_map::QidMap;
use crate::spool::{RecoveredQueue, RecoveredState};
use reasons::{ReasonId, Reasons};

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
    /// Delivered or failed: nothing more will be tried for it.
    pub fn is_final(self) -> bool {
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
    Activated { qid: QueueId },
    MarkRecipient {
        qid: QueueId,
        index: usize,
        outcome: RecipientOutcome,
    },
    SetState {
        qid: QueueId,
        state: QueueState,
        /// For a deferral: each waiting recipient's own reason, for `postern queue show`.
        waiting: Vec<Waiting>,
        /// An admin's flush made it active (`queue show` says `flushed`, not `requeued`).
        flushed: bool,
    },
    /// Make a DSN from the stored message and queue it, before any `Remove` of the same message.
    Dsn { qid: QueueId, kind: DsnKind },
    /// These recipients were deferred without an attempt because their next hop is marked dead
    /// (log `status=deferred (delivery temporarily suspended: ...)`).
    Suspended {
        qid: QueueId,
        recipients: Vec<usize>,
        reason: String,
    },
    /// The lifetime ran out (log `status=expired`).
    Expired { qid: QueueId },
    /// Delete the message from the spool (log `removed`).
    Remove { qid: QueueId },
}

/// The postsuper operations an admin applies to many messages at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BulkOp {
    Hold,
    Release,
    Requeue,
    Delete,
    /// `postqueue -i`: a deferred message tried now, as `queue flush` with a filter does.
    Flush,
}

impl BulkOp {
    /// The past participle the admin reads: `3 messages held`.
    pub fn done(self) -> &'static str {
        match self {
            BulkOp::Hold => "held",
            BulkOp::Release => "released",
            BulkOp::Requeue => "requeued",
            BulkOp::Delete => "deleted",
            BulkOp::Flush => "flushed",
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
    /// Who gave `last_reason`, when there is one.
    pub last_relay: Option<Relay>,
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

/// One message in [`QueueManager::briefs`]: 12 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Brief {
    pub queue: QueueName,
    /// Unix seconds.
    pub arrival: u32,
    pub size: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MState {
    Active,
    Deferred,
    Hold,
}

/// One recipient: 16 bytes.
struct Rcpt {
    next_hop: Arc<Transport>,
    /// Shared between the recipients that got the same answer (see [`Reasons`]).
    reason: ReasonId,
    state: RcptState,
}

/// The recipients of a message: the usual single one inline, more behind one pointer.
enum Rcpts {
    One(Rcpt),
    // A thin pointer: `Box<[Rcpt]>` would make every message 8 bytes bigger.
    #[allow(clippy::box_collection)]
    Many(Box<Vec<Rcpt>>),
}

impl Rcpts {
    fn as_slice(&self) -> &[Rcpt] {
        match self {
            Rcpts::One(r) => std::slice::from_ref(r),
            Rcpts::Many(v) => v,
        }
    }
    fn as_mut_slice(&mut self) -> &mut [Rcpt] {
        match self {
            Rcpts::One(r) => std::slice::from_mut(r),
            Rcpts::Many(v) => v,
        }
    }
}

/// One queued message: 40 bytes with one recipient. Times are Unix seconds in a u32 (good
/// until 2106); a size past 4 GiB cannot sit on a u32-addressed flash and is shown as 4 GiB.
struct Msg {
    arrival: u32,
    /// Deferred: when it is tried again. Active: when it entered the active queue (for the
    /// delays in the mail log).
    next_attempt: u32,
    size: u32,
    attempts: u16,
    state: MState,
    null_sender: bool,
    warned: bool,
    last_reason: ReasonId,
    rcpts: Rcpts,
}

impl Msg {
    fn rcpts(&self) -> &[Rcpt] {
        self.rcpts.as_slice()
    }
    fn rcpts_mut(&mut self) -> &mut [Rcpt] {
        self.rcpts.as_mut_slice()
    }
    fn queue(&self) -> QueueName {
        match self.state {
            MState::Active => QueueName::Active,
            MState::Deferred => QueueName::Deferred,
            MState::Hold => QueueName::Hold,
        }
    }
    fn in_flight(&self) -> bool {
        self.rcpts().iter().any(|r| r.state == RcptState::InFlight)
    }
    fn round_over(&self) -> bool {
        !self
            .rcpts()
            .iter()
            .any(|r| matches!(r.state, RcptState::InFlight | RcptState::Pending))
    }
}

fn secs(t: u64) -> u32 {
    u32::try_from(t).unwrap_or(u32::MAX)
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
    msgs: QidMap<Msg>,
    dests: HashMap<Arc<Transport>, Dest>,
    reasons: Reasons,
    /// When deferred messages fall due or are due a delay warning: the queue run takes what is
    /// due and leaves the rest untouched, so its cost follows the work, not the queue's size.
    /// Entries can be stale (the message was requeued, held or deleted); they are checked when
    /// taken.
    timers: BTreeMap<u32, Vec<QueueId>>,
    /// Active messages that may have nothing left to try (recovered finished ones).
    check: Vec<QueueId>,
    next_queue_run: u64,
    actions: Vec<Action>,
}

impl QueueManager {
    pub fn new(settings: QueueSettings) -> QueueManager {
        QueueManager {
            settings,
            msgs: QidMap::new(),
            dests: HashMap::new(),
            reasons: Reasons::default(),
            timers: BTreeMap::new(),
            check: Vec::new(),
            next_queue_run: 0,
            actions: Vec::new(),
        }
    }

    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    /// Replace the settings (the config changed); takes effect at the next decision. A shorter
    /// `queue_run_delay` brings the next queue run closer at once.
    pub fn set_settings(&mut self, settings: QueueSettings) {
        let (old, new) = (
            self.settings.queue_run_delay.max(1),
            settings.queue_run_delay.max(1),
        );
        if new < old && self.next_queue_run > 0 {
            let last = self.next_queue_run.saturating_sub(old);
            self.next_queue_run = self.next_queue_run.min(last.saturating_add(new));
        }
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
        let hops: Vec<(Arc<Transport>, bool)> = m
            .recipients
            .into_iter()
            .map(|(hop, done)| (self.intern(hop), done))
            .collect();
        let (state, reason) = match m.state {
            QueueState::Active => (Start::Active, None),
            QueueState::Deferred { until, reason } => (Start::Deferred(until), Some(reason)),
            QueueState::Hold => (Start::Hold, None),
        };
        let start = Arrival {
            qid: m.qid,
            arrival: m.arrival,
            null_sender: m.null_sender,
            size: m.size,
            state,
        };
        self.insert(start, hops, reason.as_deref(), now);
    }

    /// Every message the spool recovered at start, in the state it was in: next hops and
    /// reasons are interned once for all of them.
    pub fn add_recovered(&mut self, recovered: &RecoveredQueue, now: u64) {
        let hops: Vec<Arc<Transport>> = recovered
            .next_hops
            .iter()
            .map(|h| self.intern(h.clone()))
            .collect();
        self.msgs.reserve(recovered.messages.len());
        let mut rcpts = Vec::new();
        for m in &recovered.messages {
            if self.msgs.contains_key(&m.qid) {
                continue;
            }
            rcpts.clear();
            for r in recovered.recipients_of(m) {
                if let Some(h) = hops.get(r.next_hop as usize) {
                    rcpts.push((h.clone(), r.done));
                }
            }
            let (state, reason) = match m.state {
                RecoveredState::Active => (Start::Active, None),
                RecoveredState::Hold => (Start::Hold, None),
                RecoveredState::Deferred { until, reason } => (
                    Start::Deferred(until),
                    recovered.reasons.get(reason as usize),
                ),
            };
            let start = Arrival {
                qid: m.qid,
                arrival: m.arrival,
                null_sender: m.null_sender,
                size: m.size,
                state,
            };
            self.insert(start, rcpts.drain(..), reason.map(String::as_str), now);
        }
        // Each second's list of due messages grew by doubling: a restarted backup MX holds
        // mostly recovered messages, so give the slack back.
        for due in self.timers.values_mut() {
            due.shrink_to_fit();
        }
    }

    fn insert(
        &mut self,
        a: Arrival,
        hops: impl IntoIterator<Item = (Arc<Transport>, bool)>,
        reason: Option<&str>,
        now: u64,
    ) {
        let mut rcpts = hops.into_iter().map(|(next_hop, done)| Rcpt {
            next_hop,
            // Recovery does not say how a finished recipient ended; for scheduling only
            // "finished" matters, and DSNs read outcomes from the spool.
            state: if done {
                RcptState::Delivered
            } else {
                RcptState::Pending
            },
            reason: ReasonId::NONE,
        });
        // One recipient, the common case, goes inline without a vector made and dropped.
        let rcpts = match (rcpts.next(), rcpts.next()) {
            (Some(r), None) => Rcpts::One(r),
            (first, second) => {
                let mut all: Vec<Rcpt> = first.into_iter().chain(second).chain(rcpts).collect();
                all.shrink_to_fit();
                Rcpts::Many(Box::new(all))
            }
        };
        let (state, next_attempt) = match a.state {
            Start::Active => (MState::Active, now),
            Start::Deferred(until) => (MState::Deferred, until),
            Start::Hold => (MState::Hold, 0),
        };
        // Whether a delay warning went out is not stored. A message recovered well past the
        // point where it would have been warned (warning time plus one full retry cycle) is
        // taken as warned, so a restart does not repeat warnings.
        let st = &self.settings;
        let warned = st.delay_warning_time > 0
            && now.saturating_sub(a.arrival)
                > st.delay_warning_time
                    .saturating_add(st.maximal_backoff_time)
                    .saturating_add(st.queue_run_delay);
        let mut msg = Msg {
            arrival: secs(a.arrival),
            null_sender: a.null_sender,
            size: secs(a.size),
            rcpts,
            state,
            next_attempt: secs(next_attempt),
            attempts: 0,
            last_reason: ReasonId::NONE,
            warned,
        };
        self.reasons.set(&mut msg.last_reason, reason);
        self.msgs.insert(a.qid, msg);
        match state {
            MState::Active => {
                self.enqueue(a.qid);
                self.actions.push(Action::Activated { qid: a.qid });
            }
            MState::Deferred => self.schedule(a.qid, next_attempt),
            MState::Hold => {}
        }
        self.schedule_warning(a.qid);
    }

    fn intern(&mut self, hop: Transport) -> Arc<Transport> {
        if let Some((k, _)) = self.dests.get_key_value(&hop) {
            return k.clone();
        }
        let k = Arc::new(hop);
        self.dests.insert(k.clone(), Dest::default());
        k
    }

    /// Look at `qid` again at the first queue run at or after `at`.
    fn schedule(&mut self, qid: QueueId, at: u64) {
        self.timers.entry(secs(at)).or_default().push(qid);
    }

    /// A delay warning is due at `arrival + delay_warning_time`: look at the message then.
    fn schedule_warning(&mut self, qid: QueueId) {
        let after = self.settings.delay_warning_time;
        let Some(m) = self.msgs.get(&qid) else {
            return;
        };
        if after == 0 || m.warned || m.null_sender {
            return;
        }
        let at = u64::from(m.arrival).saturating_add(after);
        self.schedule(qid, at);
    }

    /// Put an active message in line at each next hop it has pending recipients for.
    fn enqueue(&mut self, qid: QueueId) {
        let Some(m) = self.msgs.get(&qid) else {
            return;
        };
        let mut seen: Vec<&Arc<Transport>> = Vec::new();
        for r in m.rcpts() {
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
        Work {
            actions: self.settle(now),
            jobs,
        }
    }

    /// What the results reported so far call for (recipient marks, DSNs, removals, deferrals),
    /// without starting anything: [`QueueManager::poll`] without its jobs, for a stop.
    pub fn settle(&mut self, now: u64) -> Vec<Action> {
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
        std::mem::take(&mut self.actions)
    }

    /// Move due deferred messages to the active queue and send due delay warnings: only the
    /// timers that are due are looked at.
    fn queue_run(&mut self, now: u64) {
        self.next_queue_run = now.saturating_add(self.settings.queue_run_delay.max(1));
        let later = self.timers.split_off(&secs(now).saturating_add(1));
        let due = std::mem::replace(&mut self.timers, later);
        let mut woken: Vec<QueueId> = due.into_values().flatten().collect();
        // Oldest first, each once, as a scan of the queue would find them.
        woken.sort_unstable();
        woken.dedup();
        for &qid in &woken {
            let ready = self
                .msgs
                .get(&qid)
                .is_some_and(|m| m.state == MState::Deferred && u64::from(m.next_attempt) <= now);
            if ready {
                self.activate(qid, now);
            }
        }
        for qid in woken {
            let waits = self
                .msgs
                .get(&qid)
                .is_some_and(|m| m.state == MState::Deferred);
            if waits {
                self.maybe_warn(qid, now);
            }
        }
    }

    fn activate(&mut self, qid: QueueId, now: u64) {
        let Some(m) = self.msgs.get_mut(&qid) else {
            return;
        };
        m.state = MState::Active;
        m.next_attempt = secs(now);
        for r in m.rcpts_mut() {
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
                .rcpts()
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
                self.reasons.set(&mut m.last_reason, Some(&reason));
                let shared = m.last_reason;
                for &i in &idx {
                    if let Some(r) = m.rcpts_mut().get_mut(i) {
                        r.state = RcptState::Deferred;
                        self.reasons.assign(&mut r.reason, shared);
                    }
                }
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
                    if let Some(r) = m.rcpts_mut().get_mut(i) {
                        r.state = RcptState::InFlight;
                    }
                }
                jobs.push(Job {
                    qid,
                    next_hop: (**hop).clone(),
                    recipients: chunk.to_vec(),
                    activated: u64::from(m.next_attempt),
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

    /// The result of a job whose server was `relay` (`host[ip]:port`; None if it reached none).
    /// Results for messages deleted meanwhile only free the slot.
    pub fn report(&mut self, report: AttemptReport, relay: Option<&str>, now: u64) {
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
            let Some(r) = m.rcpts.as_mut_slice().get_mut(index) else {
                continue;
            };
            if r.state != RcptState::InFlight {
                continue;
            }
            match result {
                RcptResult::Delivered { relay, reply } => {
                    r.state = RcptState::Delivered;
                    self.reasons.clear(&mut r.reason);
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
                    self.reasons.set_answer(&mut r.reason, relay, &reason);
                    self.reasons.assign(&mut m.last_reason, r.reason);
                }
                RcptResult::Bounced {
                    status,
                    diagnostic,
                    remote_mta,
                } => {
                    r.state = RcptState::Failed;
                    self.reasons.set(&mut r.reason, Some(&diagnostic));
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
        for r in m.rcpts_mut() {
            if r.state == RcptState::InFlight && Arc::as_ref(&r.next_hop) == &report.next_hop {
                r.state = RcptState::Deferred;
                self.reasons
                    .set(&mut r.reason, Some("delivery attempt gave no result"));
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
        if m.rcpts().iter().all(|r| r.state.is_final()) {
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
        let age = now.saturating_sub(u64::from(m.arrival));
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
        m.next_attempt = secs(until);
        m.attempts = m.attempts.saturating_add(1);
        let reason = self
            .reasons
            .text(m.last_reason)
            .unwrap_or("deferred")
            .to_string();
        let waiting = waiting(&self.reasons, m.rcpts());
        self.actions.push(Action::SetState {
            qid,
            state: QueueState::Deferred { until, reason },
            waiting,
            flushed: false,
        });
        self.schedule(qid, until);
        self.maybe_warn(qid, now);
    }

    /// Fail what is left with 4.4.7 and return the message to its sender (or drop a bounce).
    fn expire(&mut self, qid: QueueId) {
        let Some(m) = self.msgs.get_mut(&qid) else {
            return;
        };
        self.actions.push(Action::Expired { qid });
        let last = m.last_reason;
        for (index, r) in m.rcpts.as_mut_slice().iter_mut().enumerate() {
            if r.state.is_final() {
                continue;
            }
            let why = self
                .reasons
                .text(r.reason)
                .or(self.reasons.text(last))
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
        if now.saturating_sub(u64::from(m.arrival)) < warn_after {
            return;
        }
        let recipients: Vec<usize> = m
            .rcpts()
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
        if let Some(mut m) = self.msgs.remove(&qid) {
            self.reasons.clear(&mut m.last_reason);
            for r in m.rcpts_mut() {
                self.reasons.clear(&mut r.reason);
            }
        }
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
        // Deferred messages move at queue runs: the first run at or after the first timer.
        let run = self
            .timers
            .keys()
            .next()
            .map(|&t| self.next_queue_run.max(u64::from(t)));
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
            BulkOp::Flush => self.flush_one(qid, now),
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
            waiting: Vec::new(),
            flushed: false,
        });
        true
    }

    /// `postsuper -H`: release a held message for delivery now.
    pub fn release(&mut self, qid: QueueId, now: u64) -> bool {
        match self.msgs.get(&qid) {
            Some(m) if m.state == MState::Hold => {}
            _ => return false,
        }
        self.requeue_now(qid, now, false);
        true
    }

    /// `postsuper -r`: try a deferred message now.
    pub fn requeue(&mut self, qid: QueueId, now: u64) -> bool {
        self.wake_deferred(qid, now, false)
    }

    /// `postqueue -i`: the same as a requeue, remembered as a flush.
    pub fn flush_one(&mut self, qid: QueueId, now: u64) -> bool {
        self.wake_deferred(qid, now, true)
    }

    fn wake_deferred(&mut self, qid: QueueId, now: u64, flushed: bool) -> bool {
        match self.msgs.get(&qid) {
            Some(m) if m.state == MState::Deferred => {}
            _ => return false,
        }
        self.requeue_now(qid, now, flushed);
        true
    }

    fn requeue_now(&mut self, qid: QueueId, now: u64, flushed: bool) {
        if let Some(m) = self.msgs.get(&qid) {
            for r in m.rcpts() {
                if let Some(d) = self.dests.get_mut(&r.next_hop) {
                    d.dead_until = None;
                }
            }
        }
        self.activate_on_flash(qid, now, flushed);
    }

    /// An admin's "now" goes to flash as well, as Postfix moves the queue file: a restart
    /// finds the message due, not deferred until its old next attempt.
    fn activate_on_flash(&mut self, qid: QueueId, now: u64, flushed: bool) {
        self.actions.push(Action::SetState {
            qid,
            state: QueueState::Active,
            waiting: Vec::new(),
            flushed,
        });
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
    /// Returns the messages moved to the active queue (each with a state change to write).
    pub fn flush(&mut self, site: Option<&str>, now: u64) -> Vec<QueueId> {
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
                    && m.rcpts()
                        .iter()
                        .any(|r| !r.state.is_final() && matches(&r.next_hop))
            })
            .map(|(q, _)| q)
            .collect();
        for &qid in &due {
            self.activate_on_flash(qid, now, true);
        }
        due
    }

    /// The queue as `postqueue -p` would list it, oldest first, with per-recipient state.
    pub fn list(&self) -> Vec<MessageView> {
        self.msgs.iter().map(|(q, m)| self.view(q, m)).collect()
    }

    /// The messages `filter` may select, oldest first, judged on what the manager holds (queue,
    /// age, reason, a recipient still to deliver) without making a view of each: the criteria
    /// on the envelope are the caller's, with the spool.
    pub fn candidates(&self, filter: &Filter, now: u64) -> Vec<QueueId> {
        let reason = |id: ReasonId| filter.reason_in(self.reasons.text(id));
        (self.msgs.iter())
            .filter(|(_, m)| {
                filter.admits(m.queue(), u64::from(m.arrival), now)
                    && (!filter.needs_pending() || m.rcpts().iter().any(|r| !r.state.is_final()))
                    && (filter.reason.is_none()
                        || reason(m.last_reason)
                        || m.rcpts().iter().any(|r| reason(r.reason)))
            })
            .map(|(q, _)| q)
            .collect()
    }

    /// The views of those of `qids` still queued, in the order given.
    pub fn views(&self, qids: &[QueueId]) -> Vec<MessageView> {
        (qids.iter())
            .filter_map(|&q| self.msgs.get(&q).map(|m| self.view(q, m)))
            .collect()
    }

    /// Each message's queue, arrival and size (status lines and metrics): a few bytes a
    /// message where a view is a few hundred.
    pub fn briefs(&self) -> Vec<Brief> {
        (self.msgs.iter())
            .map(|(_, m)| Brief {
                queue: m.queue(),
                arrival: m.arrival,
                size: m.size,
            })
            .collect()
    }

    /// Whether the queue holds this message (in any state).
    pub fn contains(&self, qid: QueueId) -> bool {
        self.msgs.contains_key(&qid)
    }

    /// One message of [`list`](Self::list).
    pub fn get(&self, qid: QueueId) -> Option<MessageView> {
        self.msgs.get(&qid).map(|m| self.view(qid, m))
    }

    fn view(&self, qid: QueueId, m: &Msg) -> MessageView {
        let reason = self.reasons.text(m.last_reason).map(str::to_string);
        let next_attempt = u64::from(m.next_attempt);
        let state = match m.state {
            MState::Active => QueueState::Active,
            MState::Hold => QueueState::Hold,
            MState::Deferred => QueueState::Deferred {
                until: next_attempt,
                reason: reason.clone().unwrap_or_default(),
            },
        };
        MessageView {
            qid,
            arrival: u64::from(m.arrival),
            size: u64::from(m.size),
            null_sender: m.null_sender,
            state,
            next_attempt: (m.state == MState::Deferred).then_some(next_attempt),
            attempts: u32::from(m.attempts),
            last_reason: reason,
            recipients: m
                .rcpts()
                .iter()
                .enumerate()
                .map(|(index, r)| RcptView {
                    index,
                    next_hop: (*r.next_hop).clone(),
                    state: r.state,
                    last_reason: self.reasons.text(r.reason).map(str::to_string),
                    last_relay: self
                        .reasons
                        .text(r.reason)
                        .map(|_| Relay::of(self.reasons.relay(r.reason))),
                })
                .collect(),
        }
    }
}

/// The recipients still to deliver, grouped by the answer each waits for (in RAM only one
/// number each; spelled out here for the state record).
fn waiting(reasons: &Reasons, rcpts: &[Rcpt]) -> Vec<Waiting> {
    let mut groups: Vec<(ReasonId, Vec<u32>)> = Vec::new();
    for (i, r) in rcpts.iter().enumerate() {
        if r.state.is_final() || r.reason == ReasonId::NONE {
            continue;
        }
        match groups.iter_mut().find(|(id, _)| *id == r.reason) {
            Some((_, recipients)) => recipients.push(i as u32),
            None => groups.push((r.reason, vec![i as u32])),
        }
    }
    groups
        .into_iter()
        .filter_map(|(id, recipients)| {
            Some(Waiting {
                recipients,
                reason: reasons.text(id)?.to_string(),
                relay: Some(Relay::of(reasons.relay(id))),
            })
        })
        .collect()
}

/// How a message enters the queue.
enum Start {
    Active,
    Deferred(u64),
    Hold,
}

/// What [`QueueManager::insert`] needs besides recipients and reason.
struct Arrival {
    qid: QueueId,
    arrival: u64,
    null_sender: bool,
    size: u64,
    state: Start,
}

#[cfg(test)]
mod tests;
