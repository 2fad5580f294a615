//! The queue manager driven from tokio: persists its actions through a [`QueueStore`] (the
//! spool), runs its jobs through a [`Deliverer`] (the SMTP/LMTP client), makes DSNs, and writes
//! the mail log. The lead's daemon implements [`QueueStore`] over the flash spool; tests use an
//! in-memory one.
//!
//! Time: the runner reads the wall clock once, at start (or takes it from the config), and
//! counts from there with tokio's monotonic clock. Under `tokio::time::pause` tests therefore
//! run days of retries in milliseconds, through this very code.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};

use super::attempt::{Attempt, AttemptReport, Deliverer, DeliveryRequest, Job, RcptResult};
use super::body::{BODY_PIECE, BodyError, BodyRead, BodySource};
use super::filter::Filter;
use super::manager::{Action, Brief, BulkOp, DsnKind, MessageView, QueueManager, QueuedMessage};
use super::settings::QueueSettings;
use super::settled::{Settled, Written};
use crate::bounce::{self, DsnRequest, Kind};
use crate::log::{self, Delays, DeliveryLine, LogSink, Program, Status};
use crate::mail::{EnhancedStatus, Envelope, QueueId, QueueState, RecipientOutcome, StateChange};
use crate::mail::{Protocol, Transport};
use crate::metrics;
use crate::spool::{RecoveredQueue, Update};

/// What the runner reads of a stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub envelope: Envelope,
    pub outcomes: Vec<Option<RecipientOutcome>>,
    pub size: u64,
    /// The whole body as stored, kept from the session for a small message in its first round
    /// (see [`KEEP_BODY`]); None when it is read from the store.
    pub body: Option<Arc<[u8]>>,
}

/// Largest body a session hands the queue with a new message: a small message's first
/// delivery then costs no read from flash. The queue keeps at most [`KEPT_BYTES`] of them.
pub const KEEP_BODY: usize = 32 * 1024;

/// Bytes of kept bodies the queue holds at most; past it, new messages are read back.
pub const KEPT_BYTES: usize = 4 * 1024 * 1024;

/// The spool as the queue needs it. Each write returns once it is on flash.
pub trait QueueStore: Send + Sync + 'static {
    /// Why an operation failed (flash full, message gone, I/O error): the store's own type, which
    /// the runner only logs.
    type Error: std::fmt::Display + Send;

    fn load(&self, qid: QueueId)
    -> impl Future<Output = Result<StoredMessage, Self::Error>> + Send;
    /// At most `max` bytes of the body from byte `offset` on (fewer only at its end), integrity
    /// checked: delivery and DSNs read bodies a piece at a time, never whole.
    fn read_body_part(
        &self,
        qid: QueueId,
        offset: u64,
        max: usize,
    ) -> impl Future<Output = Result<Vec<u8>, Self::Error>> + Send;
    /// Writes `updates` in their order; one result each, once they are written. The writes
    /// are the store's before this returns (whatever is asked of it afterwards sees them), so
    /// a caller may read the message back before awaiting them. A store may take them at its
    /// next turn, within a second: a caller about to wait on the answer calls
    /// [`QueueStore::write_now`] first.
    fn apply(
        &self,
        updates: Vec<Update>,
    ) -> impl Future<Output = Vec<Result<(), Self::Error>>> + Send + 'static;
    /// Takes the updates applied so far now: their caller waits.
    fn write_now(&self) {}
    /// Store a new message (a DSN) and commit it; its queue id once it is on flash.
    fn store(
        &self,
        envelope: Envelope,
        message: Vec<u8>,
    ) -> impl Future<Output = Result<QueueId, Self::Error>> + Send;
}

/// How long a turn's writes wait for the spool's next commit to take them before the spool is
/// asked for them: a busy relay commits far more often, and a quiet box writes (and logs its
/// removals) this soon rather than at the spool's idle tick. One deadline serves every write
/// outstanding ([`Runner::settle_timer`]): a timer per turn, each the runtime's soonest, woke the
/// worker parked on the I/O driver at every turn (~0.4 wake-ups per relayed message at `-s 10`).
const UNHURRIED_WAIT: Duration = Duration::from_millis(20);

/// The runner wakes at least this often, for the deliverer's housekeeping.
const HOUSEKEEPING: Duration = Duration::from_secs(10);

/// How long a stop waits for deliveries in flight: most finish in well under a second, and
/// the console's poweroff must not hang on a peer that stopped answering.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Finds the next hop for a DSN's recipient (the original sender): the router's job.
pub type BounceRoute = Arc<dyn Fn(&str) -> Option<Transport> + Send + Sync>;

/// How the runner is set up.
pub struct RunnerConfig {
    pub settings: QueueSettings,
    /// This box's name (Reporting-MTA of DSNs).
    pub hostname: String,
    pub route: BounceRoute,
    pub log: LogSink,
    /// Unix seconds at start; None reads the system clock.
    pub start_unix: Option<u64>,
}

/// Admin operations and new messages for a running queue. Cheap to clone.
#[derive(Clone)]
pub struct QueueHandle {
    tx: mpsc::Sender<Command>,
}

enum Command {
    Add(QueuedMessage),
    /// A message just committed, with what the session knows of it (see [`Runner::fresh`]).
    Arrived(QueuedMessage, Arc<StoredMessage>),
    AddRecovered(Box<RecoveredQueue>),
    Hold(QueueId, oneshot::Sender<bool>),
    Release(QueueId, oneshot::Sender<bool>),
    Requeue(QueueId, oneshot::Sender<bool>),
    Delete(QueueId, oneshot::Sender<bool>),
    Flush(Option<String>, oneshot::Sender<Vec<QueueId>>),
    Apply(BulkOp, Vec<QueueId>, oneshot::Sender<Vec<QueueId>>),
    List(oneshot::Sender<Vec<MessageView>>),
    /// The filter's candidates, the current time (see [`QueueManager::candidates`]).
    Candidates(Box<Filter>, u64, oneshot::Sender<Vec<QueueId>>),
    Views(Vec<QueueId>, oneshot::Sender<Vec<MessageView>>),
    Briefs(oneshot::Sender<Vec<Brief>>),
    Get(QueueId, oneshot::Sender<Option<MessageView>>),
    /// The MTA settings changed: timing and lifetimes from the next decision on.
    Settings(QueueSettings),
    /// Answered once the jobs in flight are settled on flash (or the grace ran out).
    Shutdown(oneshot::Sender<()>),
}

impl QueueHandle {
    /// A message was committed to the spool (or found at recovery).
    pub async fn add(&self, m: QueuedMessage) {
        let _ = self.tx.send(Command::Add(m)).await;
    }
    /// A message just committed by a session, every recipient pending: `stored` is what the
    /// spool holds of it, so its first round reads only its body back.
    pub async fn add_arrived(&self, m: QueuedMessage, stored: StoredMessage) {
        let _ = self.tx.send(Command::Arrived(m, Arc::new(stored))).await;
    }
    /// What the spool recovered at start, all at once.
    pub async fn add_recovered(&self, recovered: RecoveredQueue) {
        let _ = self
            .tx
            .send(Command::AddRecovered(Box::new(recovered)))
            .await;
    }
    pub async fn hold(&self, qid: QueueId) -> bool {
        self.ask(|r| Command::Hold(qid, r)).await.unwrap_or(false)
    }
    pub async fn release(&self, qid: QueueId) -> bool {
        self.ask(|r| Command::Release(qid, r))
            .await
            .unwrap_or(false)
    }
    pub async fn requeue(&self, qid: QueueId) -> bool {
        self.ask(|r| Command::Requeue(qid, r))
            .await
            .unwrap_or(false)
    }
    pub async fn delete(&self, qid: QueueId) -> bool {
        self.ask(|r| Command::Delete(qid, r)).await.unwrap_or(false)
    }
    /// `postqueue -f` (None) or `postqueue -s site`: how many messages are tried now, answered
    /// once their state changes are on flash (like [`apply`](Self::apply)).
    pub async fn flush(&self, site: Option<String>) -> usize {
        self.ask(|r| Command::Flush(site, r))
            .await
            .map_or(0, |done| done.len())
    }
    /// One operation on many messages in one turn of the queue manager; the ids it applied to,
    /// answered once the changes are on flash (synced together, not one sync per message).
    pub async fn apply(&self, op: BulkOp, ids: Vec<QueueId>) -> Vec<QueueId> {
        self.ask(|r| Command::Apply(op, ids, r))
            .await
            .unwrap_or_default()
    }
    pub async fn list(&self) -> Vec<MessageView> {
        self.ask(Command::List).await.unwrap_or_default()
    }
    /// The messages `filter` may select at `now`, oldest first, judged without their envelopes
    /// (see [`QueueManager::candidates`]).
    pub async fn candidates(&self, filter: &Filter, now: u64) -> Vec<QueueId> {
        let filter = Box::new(filter.clone());
        (self.ask(|r| Command::Candidates(filter, now, r)).await).unwrap_or_default()
    }
    /// The views of those of `qids` still queued, in the order given.
    pub async fn views(&self, qids: Vec<QueueId>) -> Vec<MessageView> {
        self.ask(|r| Command::Views(qids, r))
            .await
            .unwrap_or_default()
    }
    /// Each message's queue, arrival and size, without a view of each.
    pub async fn briefs(&self) -> Vec<Brief> {
        self.ask(Command::Briefs).await.unwrap_or_default()
    }
    /// One message's view (`postern queue show`), without copying the whole queue.
    pub async fn get(&self, qid: QueueId) -> Option<MessageView> {
        self.ask(|r| Command::Get(qid, r)).await.flatten()
    }
    /// New timing (the MTA settings changed), without a restart.
    pub async fn set_settings(&self, settings: QueueSettings) {
        let _ = self.tx.send(Command::Settings(settings)).await;
    }
    /// Stops scheduling and waits up to [`SHUTDOWN_GRACE`] for the deliveries in flight, whose
    /// outcomes go to flash first: a message delivered while the box stops is not sent again
    /// after the start. A delivery still going at the end is abandoned (it stays queued).
    pub async fn shutdown(&self) {
        let _ = self.ask(Command::Shutdown).await;
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.ok()?;
        rx.await.ok()
    }
}

/// Start the queue. Feed it the recovered messages with [`QueueHandle::add`].
pub fn spawn<S: QueueStore, D: Deliverer>(
    config: RunnerConfig,
    store: Arc<S>,
    deliverer: Arc<D>,
) -> (QueueHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(1024);
    // The wall clock's second at start, and how far into it: `now` then counts from the very
    // instant, so it is the second the wall clock shows (which stamps arrivals), not up to one
    // behind it. A message given a one-second lifetime was still "0 s old" 1.1 s later.
    let (start_unix, start_sub) = match config.start_unix {
        Some(s) => (s, Duration::ZERO),
        None => {
            let d = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            (
                d.as_secs(),
                Duration::from_nanos(u64::from(d.subsec_nanos())),
            )
        }
    };
    let runner = Runner {
        qm: QueueManager::new(config.settings.clone()),
        config,
        store,
        deliverer,
        start: Instant::now(),
        start_unix,
        start_sub,
        answers: Vec::new(),
        fresh: Fresh::default(),
        unmarked: Arc::default(),
        settling: JoinSet::new(),
        settle_armed: false,
        settle_timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        in_flight: 0,
    };
    let task = tokio::spawn(runner.run(rx));
    (QueueHandle { tx }, task)
}

struct Runner<S, D> {
    qm: QueueManager,
    config: RunnerConfig,
    store: Arc<S>,
    deliverer: Arc<D>,
    start: Instant,
    start_unix: u64,
    /// How far into its second the wall clock was at `start`.
    start_sub: Duration,
    /// Bulk operations to answer once what they changed is written.
    answers: Vec<(oneshot::Sender<Vec<QueueId>>, Vec<QueueId>)>,
    /// Messages in their first round, as the session handed them over, with the outcomes
    /// written since: their active line, delivery and DSN check read nothing back from the
    /// spool but the body. Dropped at the first state change or removal (a deferred message
    /// reads what is on flash when it comes back), and at most [`FRESH_LIMIT`] of them.
    fresh: Fresh,
    /// Messages whose recipient outcome a turn could not write, found after the turn (see
    /// [`Runner::forget_unmarked`]).
    unmarked: Arc<Mutex<Vec<QueueId>>>,
    /// The turns' writes whose results are not in yet: a stop waits for them, so every
    /// removal written is logged.
    settling: JoinSet<()>,
    /// Whether `settle_timer` holds a deadline: writes in `settling` are outstanding.
    settle_armed: bool,
    /// When the spool is asked for the writes in `settling` ([`UNHURRIED_WAIT`] after the
    /// oldest of them). Kept across turns and reset only for a new deadline: a timer made anew
    /// at every turn would wake the parked worker each time.
    settle_timer: Pin<Box<Sleep>>,
    /// Jobs started whose attempt has not come back.
    in_flight: usize,
}

/// Envelopes kept for messages in their first round: a few hundred bytes each, so a backlog in
/// the active queue costs at most about a megabyte before messages are read back instead.
const FRESH_LIMIT: usize = 4096;

/// Messages in their first round, and what their kept bodies weigh ([`KEPT_BYTES`] at most).
#[derive(Default)]
struct Fresh {
    messages: HashMap<QueueId, Arc<StoredMessage>>,
    body_bytes: usize,
}

impl Fresh {
    fn len(&self) -> usize {
        self.messages.len()
    }

    fn get(&self, qid: &QueueId) -> Option<&Arc<StoredMessage>> {
        self.messages.get(qid)
    }

    fn get_mut(&mut self, qid: &QueueId) -> Option<&mut Arc<StoredMessage>> {
        self.messages.get_mut(qid)
    }

    /// Keeps `m`, without its body when the bodies kept already weigh too much.
    fn insert(&mut self, qid: QueueId, mut m: Arc<StoredMessage>) {
        self.remove(&qid);
        let weight = m.body.as_ref().map_or(0, |b| b.len());
        if weight > 0 && self.body_bytes + weight > KEPT_BYTES {
            Arc::make_mut(&mut m).body = None;
        } else {
            self.body_bytes += weight;
        }
        self.messages.insert(qid, m);
    }

    fn remove(&mut self, qid: &QueueId) -> Option<Arc<StoredMessage>> {
        let m = self.messages.remove(qid)?;
        self.forget(&m);
        Some(m)
    }

    fn forget(&mut self, m: &StoredMessage) {
        let weight = m.body.as_ref().map_or(0, |b| b.len());
        self.body_bytes = self.body_bytes.saturating_sub(weight);
    }
}

impl<S: QueueStore, D: Deliverer> Runner<S, D> {
    fn now(&self) -> u64 {
        let into = self.start_sub.saturating_add(self.start.elapsed());
        self.start_unix.saturating_add(into.as_secs())
    }

    fn instant_of(&self, unix: u64) -> Instant {
        self.start + Duration::from_secs(unix.saturating_sub(self.start_unix))
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let (done_tx, mut done_rx) = mpsc::channel::<Attempt>(1024);
        let stop = self.schedule(&mut rx, &mut done_rx, done_tx).await;
        self.settle(&mut done_rx).await;
        if let Some(ack) = stop {
            let _ = ack.send(());
        }
    }

    /// Schedules until told to stop (the stop's answer) or every handle is gone (None).
    async fn schedule(
        &mut self,
        rx: &mut mpsc::Receiver<Command>,
        done_rx: &mut mpsc::Receiver<Attempt>,
        done_tx: mpsc::Sender<Attempt>,
    ) -> Option<oneshot::Sender<()>> {
        loop {
            let now = self.now();
            // Here too, not only where the loop waits: it goes round without waiting while
            // work is due at once.
            self.ask_when_due();
            self.forget_unmarked();
            let work = self.qm.poll(now);
            let wait = !self.answers.is_empty();
            self.execute_all(work.actions, wait).await;
            for (r, done) in self.answers.drain(..) {
                let _ = r.send(done);
            }
            for job in work.jobs {
                self.start_job(job, done_tx.clone());
            }
            if self.qm.next_wakeup() == Some(0) {
                continue;
            }
            let housekeeping = Instant::now() + HOUSEKEEPING;
            let wake = self
                .qm
                .next_wakeup()
                .map(|t| self.instant_of(t.max(now + 1)))
                .unwrap_or(housekeeping)
                .min(housekeeping);
            tokio::select! {
                cmd = rx.recv() => {
                    let mut next = cmd;
                    next.as_ref()?;
                    // Take every command already in (a busy relay's arrivals) before
                    // scheduling again: one turn for them all.
                    while let Some(c) = next {
                        if let Command::Shutdown(ack) = c {
                            return Some(ack);
                        }
                        self.command(c);
                        next = rx.try_recv().ok();
                    }
                }
                Some(a) = done_rx.recv() => {
                    let now = self.now();
                    self.finished(a, now);
                    // Take every result that is already in before scheduling again.
                    while let Ok(a) = done_rx.try_recv() {
                        self.finished(a, now);
                    }
                }
                _ = tokio::time::sleep_until(wake) => self.deliverer.idle().await,
                _ = &mut self.settle_timer, if self.settle_armed => self.ask_when_due(),
            }
        }
    }

    fn command(&mut self, c: Command) {
        let now = self.now();
        match c {
            Command::Add(m) => self.qm.add(m, now),
            Command::Arrived(m, stored) => {
                let qid = m.qid;
                // A second add of a queue id is ignored: so is what came with it.
                let new = !self.qm.contains(qid);
                self.qm.add(m, now);
                if new && self.fresh.len() < FRESH_LIMIT && self.qm.contains(qid) {
                    self.fresh.insert(qid, stored);
                }
            }
            Command::AddRecovered(r) => {
                self.qm.add_recovered(&r, now);
                // Recovery's tables die here, the largest memory the box frees at once.
                drop(r);
                hal::sys::memory::release_free_memory();
            }
            Command::Settings(s) => self.qm.set_settings(s),
            Command::Hold(q, r) => drop(r.send(self.qm.hold(q))),
            Command::Release(q, r) => drop(r.send(self.qm.release(q, now))),
            Command::Requeue(q, r) => drop(r.send(self.qm.requeue(q, now))),
            Command::Delete(q, r) => drop(r.send(self.qm.delete(q))),
            Command::Flush(s, r) => {
                let done = self.qm.flush(s.as_deref(), now);
                self.answers.push((r, done));
            }
            Command::Apply(op, ids, r) => {
                let done = ids
                    .into_iter()
                    .filter(|q| self.qm.apply(op, *q, now))
                    .collect();
                // Answered once the state changes are on flash (after the next execute_all).
                self.answers.push((r, done));
            }
            Command::List(r) => drop(r.send(self.qm.list())),
            Command::Candidates(f, now, r) => drop(r.send(self.qm.candidates(&f, now))),
            Command::Views(qids, r) => drop(r.send(self.qm.views(&qids))),
            Command::Briefs(r) => drop(r.send(self.qm.briefs())),
            Command::Get(qid, r) => drop(r.send(self.qm.get(qid))),
            // Taken by the loop before it gets here.
            Command::Shutdown(ack) => drop(ack.send(())),
        }
    }

    fn finished(&mut self, a: Attempt, now: u64) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.qm.report(a.report, a.relay.as_deref(), now);
    }

    /// At a stop: no new jobs; the attempts in flight come back within [`SHUTDOWN_GRACE`] and
    /// their outcomes (marks, DSNs, removals) are written, so a delivered message is not sent
    /// again after the start.
    async fn settle(&mut self, done_rx: &mut mpsc::Receiver<Attempt>) {
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while self.in_flight > 0 {
            match tokio::time::timeout_at(deadline, done_rx.recv()).await {
                Ok(Some(a)) => {
                    let now = self.now();
                    self.finished(a, now);
                }
                Ok(None) | Err(_) => break,
            }
        }
        if self.in_flight > 0 {
            self.config.log.line(
                Program::Qmgr,
                &format!(
                    "warning: stopping with deliveries in flight ({}): their messages stay queued",
                    self.in_flight
                ),
            );
        }
        let now = self.now();
        let actions = self.qm.settle(now);
        self.execute_all(actions, true).await;
        // The earlier turns' writes went with this one's (the spool takes them in order), or,
        // with nothing of its own to write, are asked for now rather than at their deadline.
        self.store.write_now();
        while self.settling.join_next().await.is_some() {}
        for (r, done) in self.answers.drain(..) {
            let _ = r.send(done);
        }
    }

    fn start_job(&mut self, job: Job, done: mpsc::Sender<Attempt>) {
        self.in_flight += 1;
        let store = self.store.clone();
        let deliverer = self.deliverer.clone();
        let log = self.config.log.clone();
        let started_unix = self.now();
        let known = self.fresh.get(&job.qid).cloned();
        tokio::spawn(async move {
            let attempt = run_job(&*store, &*deliverer, &log, &job, known, started_unix).await;
            let _ = done.send(attempt).await;
        });
    }

    /// Carries out a turn's actions: every recipient outcome goes to the spool first, then what
    /// reads the stored message (log lines, DSNs, which see those outcomes), then state changes
    /// and removals. Each message's own actions keep their order (outcomes before its DSN, its
    /// DSN before its removal): only actions of different messages are regrouped. The turn
    /// waits for the writes only when `wait` (a bulk operation is answered once they are
    /// written; a stop settles them); otherwise their results are logged when they come, so a
    /// busy relay's turns never wait for the spool, and cost its writer no wake-up of their own
    /// while commits come more often than [`UNHURRIED_WAIT`].
    async fn execute_all(&mut self, actions: Vec<Action>, wait: bool) {
        let (marks, rest): (Vec<Action>, Vec<Action>) = actions
            .into_iter()
            .partition(|a| matches!(a, Action::MarkRecipient { .. }));
        let (writes, reads): (Vec<Action>, Vec<Action>) = rest
            .into_iter()
            .partition(|a| matches!(a, Action::SetState { .. } | Action::Remove { .. }));
        let now = self.now();
        let marks: Vec<Update> = marks
            .into_iter()
            .filter_map(|a| self.mark_update(a, now))
            .collect();
        let marked_kinds: Vec<Written> = marks.iter().map(Written::of).collect();
        let marked = (!marks.is_empty()).then(|| self.store.apply(marks));
        for a in reads {
            self.execute(a).await;
        }
        let writes: Vec<Update> = writes
            .into_iter()
            .filter_map(|a| self.write_update(a, now))
            .collect();
        let written_kinds: Vec<Written> = writes.iter().map(Written::of).collect();
        let written = (!writes.is_empty()).then(|| self.store.apply(writes));
        if marked.is_none() && written.is_none() {
            return;
        }
        let settled = Settled {
            marks: marked_kinds,
            writes: written_kinds,
            log: self.config.log.clone(),
            unmarked: self.unmarked.clone(),
        };
        let results = async move {
            let marked = async move {
                match marked {
                    Some(f) => f.await,
                    None => Vec::new(),
                }
            };
            let written = async move {
                match written {
                    Some(f) => f.await,
                    None => Vec::new(),
                }
            };
            tokio::join!(marked, written)
        };
        if wait {
            self.store.write_now();
            let (marked, written) = results.await;
            settled.report(marked, written);
            self.forget_unmarked();
        } else {
            self.settling.spawn(async move {
                let (marked, written) = results.await;
                settled.report(marked, written);
            });
            if !self.settle_armed {
                self.arm_settle();
            }
        }
    }

    /// Drops the settle tasks that are done (with none left, no deadline is pending) and asks
    /// the spool for the outstanding writes once their deadline has come.
    fn ask_when_due(&mut self) {
        while self.settling.try_join_next().is_some() {}
        if self.settling.is_empty() {
            self.settle_armed = false;
        }
        if self.settle_armed && self.settle_timer.deadline() <= Instant::now() {
            self.store.write_now();
            // Writes handed over after this are asked for by the next deadline.
            self.arm_settle();
        }
    }

    fn arm_settle(&mut self) {
        self.settle_armed = true;
        self.settle_timer
            .as_mut()
            .reset(Instant::now() + UNHURRIED_WAIT);
    }

    /// Messages whose recipient outcome could not be written: what their first round
    /// remembers is not on flash, so later rounds read the spool.
    fn forget_unmarked(&mut self) {
        let unmarked = match self.unmarked.lock() {
            Ok(mut u) if !u.is_empty() => std::mem::take(&mut *u),
            _ => return,
        };
        for qid in unmarked {
            self.fresh.remove(&qid);
        }
    }

    /// A recipient outcome as the spool writes it; a message in its first round remembers it.
    fn mark_update(&mut self, a: Action, now: u64) -> Option<Update> {
        let Action::MarkRecipient {
            qid,
            index,
            outcome,
        } = a
        else {
            return None;
        };
        if let Some(m) = self.fresh.get_mut(&qid) {
            match Arc::make_mut(m).outcomes.get_mut(index) {
                Some(slot) => *slot = Some(outcome.clone()),
                None => drop(self.fresh.remove(&qid)),
            }
        }
        Some(Update::Mark {
            qid,
            index,
            outcome,
            at: now,
        })
    }

    /// A state change or removal as the spool writes it; the message leaves its first round.
    fn write_update(&mut self, a: Action, now: u64) -> Option<Update> {
        match a {
            Action::SetState {
                qid,
                state,
                waiting,
                flushed,
            } => {
                self.fresh.remove(&qid);
                let change = StateChange {
                    state,
                    at: now,
                    waiting,
                    flushed,
                };
                Some(Update::State(qid, change))
            }
            Action::Remove { qid } => {
                self.fresh.remove(&qid);
                Some(Update::Remove(qid))
            }
            _ => None,
        }
    }

    /// What the spool holds of a message: remembered in its first round, else read back.
    async fn stored(&self, qid: QueueId) -> Result<Arc<StoredMessage>, S::Error> {
        match self.fresh.get(&qid) {
            Some(m) => Ok(m.clone()),
            None => self.store.load(qid).await.map(Arc::new),
        }
    }

    /// A turn's action that reads the stored message or only logs; [`Runner::execute_all`]
    /// writes the others.
    async fn execute(&mut self, a: Action) {
        let log = self.config.log.clone();
        match a {
            Action::Activated { qid } => {
                if let Ok(m) = self.stored(qid).await {
                    let line = log::active_line(
                        qid,
                        &m.envelope.sender,
                        m.size,
                        m.envelope.recipients.len(),
                    );
                    log.line(Program::Qmgr, &line);
                }
            }
            Action::Suspended {
                qid,
                recipients,
                reason,
            } => self.log_suspended(qid, recipients, &reason).await,
            Action::Expired { qid } => {
                if let Ok(m) = self.stored(qid).await {
                    log.line(Program::Qmgr, &log::expired_line(qid, &m.envelope.sender));
                }
            }
            Action::Dsn { qid, kind } => self.make_dsn(qid, kind).await,
            Action::MarkRecipient { .. } | Action::SetState { .. } | Action::Remove { .. } => {}
        }
    }

    /// One `status=deferred` line per recipient held back because its next hop is down.
    async fn log_suspended(&self, qid: QueueId, recipients: Vec<usize>, reason: &str) {
        let Ok(m) = self.stored(qid).await else {
            return;
        };
        let now = self.now();
        for i in recipients {
            let Some(rcpt) = m.envelope.recipients.get(i) else {
                continue;
            };
            let line = log::delivery_line(&DeliveryLine {
                qid,
                to: &rcpt.address,
                orig_to: rcpt.original.as_deref(),
                relay: None,
                delays: Delays {
                    before_queue: Duration::ZERO,
                    in_queue: Duration::from_secs(now.saturating_sub(m.envelope.arrival)),
                    ..Delays::default()
                },
                dsn: "4.4.1",
                status: Status::Deferred,
                detail: reason,
            });
            self.config.log.line(Program::Qmgr, &line);
        }
    }

    /// What the notification reports: failures, or delays with each recipient's last reason.
    fn dsn_kind(&self, qid: QueueId, kind: DsnKind, envelope: &Envelope) -> Kind {
        let DsnKind::Delay { recipients } = kind else {
            return Kind::Final;
        };
        let view = self.qm.get(qid);
        let reasons = recipients
            .into_iter()
            .map(|i| {
                let why = view
                    .as_ref()
                    .and_then(|v| v.recipients.get(i))
                    .and_then(|r| r.last_reason.clone());
                (i, why)
            })
            .collect();
        Kind::Delay {
            recipients: reasons,
            retry_until: envelope
                .arrival
                .saturating_add(self.qm.settings().maximal_queue_lifetime),
        }
    }

    async fn make_dsn(&mut self, qid: QueueId, kind: DsnKind) {
        let log = self.config.log.clone();
        let gone = || {
            log.line(
                Program::Bounce,
                &format!("{qid}: warning: message gone, no notification"),
            )
        };
        let Ok(m) = self.stored(qid).await else {
            return gone();
        };
        let kind = self.dsn_kind(qid, kind, &m.envelope);
        let now = self.now();
        let mut req = DsnRequest {
            qid,
            envelope: &m.envelope,
            outcomes: &m.outcomes,
            original: &[],
            original_size: m.size,
            kind,
            reporting_mta: &self.config.hostname,
            now,
        };
        // Most delivered mail asks for no report: its body is not read back for nothing.
        if !bounce::wanted(&req) {
            return;
        }
        let Ok(original) = self
            .store
            .read_body_part(qid, 0, bounce::returned_bytes(m.size))
            .await
        else {
            return gone();
        };
        req.original = &original;
        let Some(dsn) = bounce::build(&req) else {
            return;
        };
        let Some(hop) = (self.config.route)(&dsn.recipient) else {
            log.line(
                Program::Bounce,
                &format!(
                    "{qid}: warning: no route to <{}>, notification dropped",
                    dsn.recipient
                ),
            );
            return;
        };
        let env = dsn.envelope(hop, now);
        let size = dsn.message.len() as u64;
        let recipients = env
            .recipients
            .iter()
            .map(|r| (r.next_hop.clone(), false))
            .collect();
        match self.store.store(env, dsn.message).await {
            Ok(new) => {
                log.line(
                    Program::Bounce,
                    &log::notification_line(qid, dsn.notification, new),
                );
                self.qm.add(
                    QueuedMessage {
                        qid: new,
                        arrival: now,
                        null_sender: true,
                        size,
                        recipients,
                        state: QueueState::Active,
                    },
                    now,
                );
            }
            Err(e) => log.line(
                Program::Bounce,
                &format!("{qid}: warning: cannot queue notification: {e}"),
            ),
        }
    }
}

/// Load, deliver and log one job; never fails (a spool error defers the recipients).
async fn run_job<S: QueueStore, D: Deliverer>(
    store: &S,
    deliverer: &D,
    log: &LogSink,
    job: &Job,
    known: Option<Arc<StoredMessage>>,
    started_unix: u64,
) -> Attempt {
    // The envelope and the body's first piece (all of most messages) in one wait, not two; a
    // message in its first round has its envelope already, and a small one its body too.
    let first = store.read_body_part(job.qid, 0, BODY_PIECE);
    let loaded = match known {
        Some(m) => match m.body.clone() {
            Some(body) => Ok((m, First::Kept(body))),
            None => first.await.map(|b| (m, First::Read(b))),
        },
        None => match tokio::join!(store.load(job.qid), first) {
            (Ok(m), Ok(b)) => Ok((Arc::new(m), First::Read(b))),
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
    };
    let (m, first) = match loaded {
        Ok(x) => x,
        Err(e) => return unreadable(job, &e),
    };
    let body = StoredBody {
        store,
        qid: job.qid,
        size: m.size,
        first,
    };
    let attempt = deliverer
        .deliver(DeliveryRequest {
            qid: job.qid,
            envelope: &m.envelope,
            recipients: &job.recipients,
            next_hop: &job.next_hop,
            body: &body,
        })
        .await;
    log_attempt(log, job, &m.envelope, &attempt, started_unix);
    attempt
}

/// A queued body as delivery reads it: the first piece came with the envelope, the rest is read
/// from the store as the transaction sends it.
struct StoredBody<'a, S> {
    store: &'a S,
    qid: QueueId,
    size: u64,
    first: First,
}

/// The start of a body delivery has before it sends: read from the store, or kept whole.
enum First {
    Read(Vec<u8>),
    Kept(Arc<[u8]>),
}

impl First {
    fn bytes(&self) -> &[u8] {
        match self {
            First::Read(b) => b,
            First::Kept(b) => b,
        }
    }
}

impl<S: QueueStore> BodySource for StoredBody<'_, S> {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, max: usize) -> BodyRead<'_> {
        if let Some(rest) = usize::try_from(offset)
            .ok()
            .and_then(|o| self.first.bytes().get(o..))
            .filter(|r| !r.is_empty())
        {
            let piece = rest.get(..max.min(rest.len())).unwrap_or_default().to_vec();
            return Box::pin(std::future::ready(Ok(piece)));
        }
        let (store, qid) = (self.store, self.qid);
        Box::pin(async move {
            store
                .read_body_part(qid, offset, max)
                .await
                .map_err(|e| BodyError::Unreadable(e.to_string()))
        })
    }
}

/// The message could not be read from the spool: every recipient of the job waits.
fn unreadable(job: &Job, e: &impl std::fmt::Display) -> Attempt {
    let result = RcptResult::Deferred {
        status: EnhancedStatus::of(4, 3, 0),
        reason: format!("cannot read the queued message: {e}"),
    };
    Attempt {
        report: AttemptReport {
            qid: job.qid,
            next_hop: job.next_hop.clone(),
            results: job
                .recipients
                .iter()
                .map(|&i| (i, result.clone()))
                .collect(),
            destination_failed: false,
        },
        relay: None,
        connection_time: Duration::ZERO,
        transmission_time: Duration::ZERO,
    }
}

/// One mail log line per recipient of the attempt, as Postfix's smtp/lmtp write them.
fn log_attempt(
    log: &LogSink,
    job: &Job,
    envelope: &Envelope,
    attempt: &Attempt,
    started_unix: u64,
) {
    let program = match job.next_hop.protocol {
        Protocol::Smtp => Program::Smtp,
        Protocol::Lmtp => Program::Lmtp,
    };
    let delays = Delays {
        before_queue: Duration::from_secs(job.activated.saturating_sub(envelope.arrival)),
        in_queue: Duration::from_secs(started_unix.saturating_sub(job.activated)),
        connection: attempt.connection_time,
        transmission: attempt.transmission_time,
    };
    for (i, r) in &attempt.report.results {
        let Some(rcpt) = envelope.recipients.get(*i) else {
            continue;
        };
        let (status, detail) = match r {
            RcptResult::Delivered { reply, .. } => (Status::Sent, reply.to_string()),
            RcptResult::Deferred { reason, .. } => (Status::Deferred, reason.clone()),
            RcptResult::Bounced { diagnostic, .. } => (
                Status::Bounced,
                diagnostic
                    .split_once("; ")
                    .map_or(diagnostic.as_str(), |(_, t)| t)
                    .to_string(),
            ),
        };
        let client = match job.next_hop.protocol {
            Protocol::Smtp => metrics::Client::Smtp,
            Protocol::Lmtp => metrics::Client::Lmtp,
        };
        let d = [
            delays.before_queue,
            delays.in_queue,
            delays.connection,
            delays.transmission,
        ];
        metrics::global().delivery(client, status.as_str(), d);
        let line = log::delivery_line(&DeliveryLine {
            qid: job.qid,
            to: &rcpt.address,
            orig_to: rcpt.original.as_deref(),
            relay: attempt.relay.as_deref(),
            delays,
            dsn: &r.status().to_string(),
            status,
            detail: &detail,
        });
        log.line(program, &line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(len: usize) -> Arc<StoredMessage> {
        Arc::new(StoredMessage {
            envelope: crate::spool::tests::envelope("a@example.org", 1),
            outcomes: vec![None],
            size: len as u64,
            body: Some(Arc::from(vec![b'x'; len])),
        })
    }

    /// Bodies are kept up to the budget; past it a message is kept without its body, and what
    /// leaves the first round gives its weight back.
    #[test]
    fn kept_bodies_stay_within_their_budget() {
        let mut fresh = Fresh::default();
        let each = KEEP_BODY;
        let fit = KEPT_BYTES / each;
        for n in 0..fit as u64 {
            fresh.insert(QueueId(n), kept(each));
        }
        assert_eq!(fresh.body_bytes, fit * each);
        fresh.insert(QueueId(9999), kept(each));
        assert!(fresh.get(&QueueId(9999)).is_some_and(|m| m.body.is_none()));
        assert_eq!(fresh.body_bytes, KEPT_BYTES);
        fresh.remove(&QueueId(0));
        assert_eq!(fresh.body_bytes, KEPT_BYTES - each);
        fresh.insert(QueueId(10_000), kept(each));
        assert!(
            fresh
                .get(&QueueId(10_000))
                .is_some_and(|m| m.body.is_some())
        );
        // The same queue id again replaces the first, and its weight.
        fresh.insert(QueueId(10_000), kept(10));
        assert_eq!(fresh.body_bytes, KEPT_BYTES - each + 10);
        assert_eq!(fresh.len(), fit + 1);
    }
}
