//! The async front of the spool: one writer thread owns the [`Spool`] and does group commit.
//!
//! Sessions talk to it through a [`SpoolHandle`]. Records from every session go to the writer in
//! arrival order; requests that must be durable (a commit, the 250's promise) wait until the
//! writer syncs; the queue manager's updates (recipient outcomes, state changes, removals, after
//! a delivery or an admin's `queue` command) do not (see [`SpoolHandle::apply`]). The writer
//! syncs as soon as no session that is still receiving a message could add to the batch, when
//! the batch is `group_commit_bytes` large, or when the oldest waiter has waited
//! `group_commit_delay`, and then answers everyone in the batch at once. So a commit wakes the
//! writer only when it completes the batch or opens one; the others ride to its next turn.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hal::flash::Flash;
use tokio::sync::oneshot;

use crate::mail::{Envelope, QueueId, RecipientOutcome, StateChange};

use super::store::EncodedEnvelope;
use super::{
    Admission, FlashInfo, LogLines, MessageHistory, MessageSummary, RecoveredQueue, Region, Spool,
    SpoolError, next_qid,
};

type Reply<T> = oneshot::Sender<Result<T, SpoolError>>;
/// Where a request's answer comes (a writer gone drops its [`Reply`]: `Stopped`).
type Answer<T> = oneshot::Receiver<Result<T, SpoolError>>;

async fn answer<T>(rx: Answer<T>) -> Result<T, SpoolError> {
    rx.await.map_err(|_| SpoolError::Stopped)?
}
/// One result per update of an [`Request::Apply`].
type Answers = oneshot::Sender<Vec<Result<(), SpoolError>>>;

enum Request {
    /// Not answered: a begin the spool refuses fails the message's next request. The flag:
    /// keep chunk 0 for the header section ([`Incoming::commit_with_head`]).
    Begin(QueueId, EncodedEnvelope, bool),
    Write(QueueId, Vec<u8>, Reply<()>),
    HoldHead(QueueId, Reply<()>),
    WriteHead(QueueId, Vec<u8>, Reply<()>),
    /// The held head (if any) and the last body bytes go with the commit: one trip, not three.
    Commit(QueueId, Option<Vec<u8>>, Vec<u8>, Reply<QueueId>),
    Abandon(QueueId),
    Mark(QueueId, usize, RecipientOutcome, u64, Reply<()>),
    SetState(QueueId, StateChange, Reply<()>),
    Remove(QueueId, Reply<()>),
    /// Several records in one trip: one result each, once written (see [`SpoolHandle::apply`]).
    Apply(Vec<Update>, Answers),
    List(Reply<Vec<MessageSummary>>),
    Envelopes(Vec<QueueId>, Reply<Vec<(QueueId, Envelope)>>),
    Get(QueueId, Reply<Option<MessageSummary>>),
    History(QueueId, Reply<Option<MessageHistory>>),
    TakeRecovered(Reply<RecoveredQueue>),
    ReadBody(QueueId, Reply<Vec<u8>>),
    /// Offset and most bytes: a piece of a body, for delivery.
    ReadBodyPart(QueueId, u64, usize, Reply<Vec<u8>>),
    /// The same of a message not committed yet.
    ReadIncomingPart(QueueId, u64, usize, Reply<Vec<u8>>),
    Info(Reply<FlashInfo>),
    ReadSlot(Region, Reply<Option<Vec<u8>>>),
    ReadSlotJournaled(Region, Reply<Option<super::Journaled>>),
    WriteSlot(Region, Vec<u8>, Reply<()>),
    /// A slot's data in parts: its length, the parts, then the header and sync.
    BeginSlot(Region, usize, Reply<()>),
    WriteSlotPart(Region, Vec<u8>, Reply<()>),
    FinishSlot(Region, Reply<()>),
    AppendSlot(Region, Vec<u8>, Reply<Result<(), super::AppendRefused>>),
    /// Mail log lines wait in [`SpoolHandle`]'s queue: append them.
    LogWake,
    /// Requests wait in [`Riders`] and the writer may be about to sleep: take them.
    Wake,
    LogRead(u64, usize, Reply<Option<LogLines>>),
}

/// A record the queue writes about a committed message (see [`SpoolHandle::apply`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Recipient `index` reached its final outcome at `at` (Unix seconds).
    Mark {
        qid: QueueId,
        index: usize,
        outcome: RecipientOutcome,
        at: u64,
    },
    State(QueueId, StateChange),
    Remove(QueueId),
}

/// A cheap, clonable way to the spool writer.
#[derive(Clone, Debug)]
pub struct SpoolHandle {
    tx: mpsc::Sender<Request>,
    chunk_size: usize,
    log: LogQueue,
    /// Queue ids are handed out here, so a session starts a message without waiting for the
    /// writer (which writes under the id it is given): the newest id given.
    last_qid: Arc<AtomicU64>,
    /// Whether the spool takes new mail, as the writer last saw it (an [`Admission`]): a
    /// session is refused at DATA, not after sending its message.
    admission: Arc<AtomicU8>,
    riders: Arc<Riders>,
}

fn admission_code(a: Admission) -> u8 {
    match a {
        Admission::Open => 0,
        Admission::Full => 1,
        Admission::Failed => 2,
    }
}

/// Mail log lines on their way to the ring on flash. A busy relay logs several lines per message;
/// queued here, they cost the writer thread no wake-up of their own: it takes them at every turn,
/// so they are on flash with the sync of the next record; an idle writer looks for them every
/// [`LOG_TICK`], and a long queue wakes it at once.
type LogQueue = Arc<Mutex<QueuedLines>>;

/// The queued lines as one text, each ended by a newline: copied in by the sessions, swapped out
/// by the writer for the text it has emptied. A `String` per line, made on a session's thread and
/// freed on the writer's, took the session thread's malloc lock from the writer for each line.
#[derive(Debug, Default)]
struct QueuedLines {
    text: String,
    lines: usize,
}

/// Room the writer keeps in its emptied text between bursts.
const LOG_TEXT_KEPT: usize = 64 * 1024;

/// Longest a mail log line waits for the writer when no mail moves.
const LOG_TICK: Duration = Duration::from_secs(1);
/// Lines queued before the writer is woken for them alone: a bound on RAM, not a batch size.
const LOG_WAKE_LINES: usize = 256;
/// The same for the requests that ride ([`Riders`]).
const RIDERS_WAKE: usize = 256;

/// Requests that need no wake-up of their own: a message's begin (never answered, and followed by
/// the same session's write, commit or abandon), its commit (answered after the sync) and the
/// queue's updates (answered once written). The writer takes them at its next turn, before any
/// request that comes through the channel, so whatever is asked after them sees them. A begin
/// never wakes the writer, an update only when no turn is coming (and an unhurried one only when
/// many wait), a commit also when it is the last of the messages being received (the batch is
/// complete: sync now). For the updates, the writer's context switches per relayed message went
/// from ~7.9 to ~7.3 at `-s 1`; for commits, from ~1.0 to ~0.8 at `-s 50`; for the queue's
/// unhurried updates, from ~1.6 to ~0.8 at `-s 10` and ~6.0 to ~4.3 at `-s 1` (the threads'
/// counts in /proc).
#[derive(Default)]
struct Riders {
    queue: Mutex<Vec<Request>>,
    /// The writer has a batch open, so it takes another turn within `group_commit_delay`
    /// unasked: a rider need not wake it. Stored before the writer looks at the queue for the
    /// last time and sleeps, and read after a rider is queued, so one of the two sees the other.
    turn_coming: AtomicBool,
    /// Messages begun and not yet committed or abandoned, as their sessions count them. The
    /// writer syncs a batch once none is left (or at its deadline), so a commit wakes it only
    /// when it is the last, or when no turn is coming.
    receiving: AtomicUsize,
}

impl std::fmt::Debug for Riders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let queued = self.queue.lock().map_or(0, |q| q.len());
        f.debug_struct("Riders").field("queued", &queued).finish()
    }
}

/// Held by the writer thread: however the writer ends, a rider waiting for an answer gets
/// `Stopped` rather than waiting for ever, and later ones wake (and find) no writer.
struct RidersClosed(Arc<Riders>);

impl Drop for RidersClosed {
    fn drop(&mut self) {
        self.0.turn_coming.store(false, Ordering::SeqCst);
        drop(self.0.take());
    }
}

impl Riders {
    fn take(&self) -> Vec<Request> {
        match self.queue.lock() {
            Ok(mut q) if !q.is_empty() => std::mem::take(&mut *q),
            _ => Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.queue.lock().map_or(true, |q| q.is_empty())
    }
}

/// A message being received: body bytes stream to flash as they come, in bounded chunks.
/// Dropping it without [`Incoming::commit`] abandons the message.
#[derive(Debug)]
pub struct Incoming {
    handle: SpoolHandle,
    qid: QueueId,
    buf: Vec<u8>,
    /// The held start of the message, given by [`Incoming::write_head`]: it goes to the writer
    /// with the first full chunk or with the commit, so a message smaller than a chunk costs
    /// the session one wait for the writer (the commit; the begin is not waited for).
    head: Option<Vec<u8>>,
    /// Bytes went to the writer before the commit: the commit alone no longer holds the body.
    sent: bool,
    done: bool,
    /// Answers still to come for the chunks (and held head) sent to the writer, oldest first:
    /// see [`WRITES_AHEAD`].
    ahead: VecDeque<Answer<()>>,
}

/// Chunks of a message being received that may be unanswered by the writer when a write
/// returns; sending one more waits for the oldest. Waiting for each one made a big message a
/// ping-pong between the session and the writer thread, two wake-ups per 16 KiB chunk (a 5 MB
/// message cost ~660 context switches, ~330 with two ahead); with a few ahead, the session reads
/// the client's next bytes while the writer writes. RAM stays bounded: at most one chunk more
/// than this on its way (while the session waits) besides the one it fills. A write's error
/// reaches the session at its next write that waits, or at the commit, which waits for every
/// chunk first: the 250 still comes only after the sync that holds them all.
const WRITES_AHEAD: usize = 2;

/// A message on flash after its commit's sync.
#[derive(Debug)]
pub struct Committed {
    pub qid: QueueId,
    /// The body as stored, when the commit carried all of it and it was no bigger than asked
    /// ([`Incoming::commit_keeping`]): delivery sends it without reading it back.
    pub body: Option<Arc<[u8]>>,
}

/// Starts the writer thread. It syncs what is pending and ends when the last handle (and
/// `Incoming`) is dropped, giving the `Spool` back through the join handle (for a clean shutdown).
pub fn spawn<F: Flash + Send + 'static>(
    spool: Spool<F>,
) -> Result<(SpoolHandle, JoinHandle<Spool<F>>), SpoolError> {
    let (tx, rx) = mpsc::channel();
    let chunk_size = spool.settings().chunk_size as usize;
    let log = LogQueue::default();
    let lines = log.clone();
    let last_qid = Arc::new(AtomicU64::new(spool.last_qid()));
    let admission = Arc::new(AtomicU8::new(admission_code(spool.admission())));
    let seen = admission.clone();
    let riders = Arc::new(Riders::default());
    let taken = riders.clone();
    let thread = std::thread::Builder::new()
        .name("spool-writer".into())
        .spawn(move || {
            let _closed = RidersClosed(taken.clone());
            Writer::new(spool, lines, seen, taken).run(rx)
        })
        .map_err(|_| SpoolError::Stopped)?;
    Ok((
        SpoolHandle {
            tx,
            chunk_size,
            log,
            last_qid,
            admission,
            riders,
        },
        thread,
    ))
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl SpoolHandle {
    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, SpoolError> {
        answer(self.send(make)?).await
    }

    /// Sends a request through the channel; its answer comes on the receiver returned.
    fn send<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<Answer<T>, SpoolError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).map_err(|_| SpoolError::Stopped)?;
        Ok(rx)
    }

    /// Wakes the writer for what rode, unless a turn is sure to come.
    pub fn write_now(&self) -> Result<(), SpoolError> {
        if !self.riders.turn_coming.load(Ordering::SeqCst) {
            self.tx
                .send(Request::Wake)
                .map_err(|_| SpoolError::Stopped)?;
        }
        Ok(())
    }

    /// Queues `req` for the writer's next turn without waking it: for a request always followed
    /// by one through the channel. Returns how many requests wait.
    fn ride_quietly(&self, req: Request) -> Result<usize, SpoolError> {
        match self.riders.queue.lock() {
            Ok(mut q) => {
                q.push(req);
                Ok(q.len())
            }
            Err(_) => Err(SpoolError::Stopped),
        }
    }

    /// Starts a message: allocates its queue id and writes its envelope. `Full` when the spool
    /// is down to its reserve.
    pub async fn begin(&self, envelope: &Envelope) -> Result<Incoming, SpoolError> {
        self.start(envelope, false).await
    }

    /// [`SpoolHandle::begin`] with chunk 0 kept for the header section, as
    /// [`Incoming::hold_head`] would keep it, without a second trip to the writer.
    pub async fn begin_holding_head(&self, envelope: &Envelope) -> Result<Incoming, SpoolError> {
        self.start(envelope, true).await
    }

    async fn start(&self, envelope: &Envelope, hold_head: bool) -> Result<Incoming, SpoolError> {
        // Bounces may use room new mail may not: the writer alone judges those.
        match self.admission.load(Ordering::Acquire) {
            1 if !envelope.is_bounce() => return Err(SpoolError::Full),
            2 => return Err(SpoolError::Failed),
            _ => {}
        }
        // Encoded here, on the session's thread: see `Spool::begin_encoded`.
        let encoded = EncodedEnvelope::new(envelope)?;
        let qid = self.next_qid();
        // Not waited for, and the session's next request takes it to the writer.
        self.riders.receiving.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = self.ride_quietly(Request::Begin(qid, encoded, hold_head)) {
            self.riders.receiving.fetch_sub(1, Ordering::SeqCst);
            return Err(e);
        }
        Ok(Incoming {
            handle: self.clone(),
            qid,
            buf: Vec::with_capacity(self.chunk_size),
            head: None,
            sent: false,
            done: false,
            ahead: VecDeque::new(),
        })
    }

    /// The next queue id: above every id given, from the clock's millisecond when it can be.
    fn next_qid(&self) -> QueueId {
        let now = unix_millis();
        let mut last = self.last_qid.load(Ordering::Relaxed);
        loop {
            let qid = next_qid(last, now);
            match self.last_qid.compare_exchange_weak(
                last,
                qid.0,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return qid,
                Err(newer) => last = newer,
            }
        }
    }

    /// Records recipient `index`'s final outcome, reached at `at` (Unix seconds); resolves once
    /// it is synced.
    pub async fn mark_recipient(
        &self,
        qid: QueueId,
        index: usize,
        outcome: RecipientOutcome,
        at: u64,
    ) -> Result<(), SpoolError> {
        self.ask(|r| Request::Mark(qid, index, outcome, at, r))
            .await
    }

    /// Changes a message's queue state; resolves once it is synced.
    pub async fn set_state(&self, qid: QueueId, change: StateChange) -> Result<(), SpoolError> {
        self.ask(|r| Request::SetState(qid, change, r)).await
    }

    /// Removes a message; resolves once the removal is synced.
    pub async fn remove(&self, qid: QueueId) -> Result<(), SpoolError> {
        self.ask(|r| Request::Remove(qid, r)).await
    }

    /// Writes `updates` in their order and resolves, one result each, once they are written.
    /// They reach flash with the next commit's sync, or within a second (`LOG_TICK`) when no commit
    /// comes: as Postfix's queue manager marks a recipient done and unlinks a delivered
    /// message, and postsuper deletes and holds, without an fsync, a power cut can bring back
    /// the last second's deliveries (sent again: a duplicate) or an admin's last change, never
    /// lose a message. Waiting for a sync of their own held every
    /// queue turn for a batch's sync (up to `group_commit_delay`), and cost an idle box a sync
    /// per delivery.
    /// The request leaves when this is called, not when the future is first polled: whatever
    /// is asked of the spool after this call sees them (a queue turn hands its recipient
    /// outcomes over, reads the message for its DSN, then removes it, with one wait).
    pub fn apply(
        &self,
        updates: Vec<Update>,
    ) -> impl Future<Output = Vec<Result<(), SpoolError>>> + Send + 'static {
        self.apply_riding(updates, true)
    }

    /// [`SpoolHandle::apply`] without waking the writer: the updates are written at its next
    /// turn, which the next commit or read brings, or its idle tick (`LOG_TICK`), or
    /// [`SpoolHandle::write_now`]; so is the answer. For a caller that does not wait on it: the
    /// queue's turns, which a busy relay takes hundreds of times a second, then cost the writer
    /// no wake-up of their own. Durability is [`SpoolHandle::apply`]'s: synced within a second.
    pub fn apply_unhurried(
        &self,
        updates: Vec<Update>,
    ) -> impl Future<Output = Vec<Result<(), SpoolError>>> + Send + 'static {
        self.apply_riding(updates, false)
    }

    fn apply_riding(
        &self,
        updates: Vec<Update>,
        wake: bool,
    ) -> impl Future<Output = Vec<Result<(), SpoolError>>> + Send + 'static {
        let n = updates.len();
        let (tx, rx) = oneshot::channel();
        let sent = match self.ride_quietly(Request::Apply(updates, tx)) {
            // A long queue of them wakes the writer at once: a bound on RAM, as for log lines.
            Ok(waiting) if wake || waiting >= RIDERS_WAKE => self.write_now().is_ok(),
            Ok(_) => true,
            Err(_) => false,
        };
        async move {
            let answer = if sent { rx.await.ok() } else { None };
            answer.unwrap_or_else(|| (0..n).map(|_| Err(SpoolError::Stopped)).collect())
        }
    }

    /// Every committed message, oldest first.
    pub async fn list(&self) -> Result<Vec<MessageSummary>, SpoolError> {
        self.ask(Request::List).await
    }

    /// The envelopes of those of `qids` that are committed, in the order given. Ask for a few
    /// thousand at a time: the writer reads them between commits, not instead of them.
    pub async fn envelopes(
        &self,
        qids: Vec<QueueId>,
    ) -> Result<Vec<(QueueId, Envelope)>, SpoolError> {
        self.ask(|r| Request::Envelopes(qids, r)).await
    }

    /// Every committed message as the queue manager needs it (see [`Spool::take_recovered`]).
    pub async fn take_recovered(&self) -> Result<RecoveredQueue, SpoolError> {
        self.ask(Request::TakeRecovered).await
    }

    pub async fn get(&self, qid: QueueId) -> Result<Option<MessageSummary>, SpoolError> {
        self.ask(|r| Request::Get(qid, r)).await
    }

    /// One message with the times of its records (`postern queue show`).
    pub async fn history(&self, qid: QueueId) -> Result<Option<MessageHistory>, SpoolError> {
        self.ask(|r| Request::History(qid, r)).await
    }

    /// The body, read back from flash (CRC checked). Holds it whole in RAM: delivery reads it in
    /// pieces with [`SpoolHandle::read_body_part`].
    pub async fn read_body(&self, qid: QueueId) -> Result<Vec<u8>, SpoolError> {
        self.ask(|r| Request::ReadBody(qid, r)).await
    }

    /// Up to `max` bytes of the body from byte `offset` on, read back from flash (each chunk
    /// CRC checked; see [`Spool::read_body_part`]).
    pub async fn read_body_part(
        &self,
        qid: QueueId,
        offset: u64,
        max: usize,
    ) -> Result<Vec<u8>, SpoolError> {
        self.ask(|r| Request::ReadBodyPart(qid, offset, max, r))
            .await
    }

    pub async fn info(&self) -> Result<FlashInfo, SpoolError> {
        self.ask(Request::Info).await
    }

    /// Appends a mail log line to the ring on flash, without waiting: the line is durable with
    /// the spool's next sync, and a line that cannot be written never holds up mail.
    pub fn log_line(&self, line: &str) {
        let Ok(mut queued) = self.log.lock() else {
            return;
        };
        // A line is one line: a newline in it would split it in two on flash.
        match line.contains('\n') {
            false => queued.text.push_str(line),
            true => queued.text.push_str(&line.replace('\n', " ")),
        }
        queued.text.push('\n');
        queued.lines += 1;
        // The writer takes every queued line each turn: see `LogQueue`.
        let wake = queued.lines == LOG_WAKE_LINES;
        drop(queued);
        if wake {
            let _ = self.tx.send(Request::LogWake);
        }
    }

    /// The mail log lines numbered above `after` (the newest `limit` of them), with their
    /// numbers; `None` when this flash has no mail log region (formatted before it existed).
    pub async fn read_log(&self, after: u64, limit: usize) -> Result<Option<LogLines>, SpoolError> {
        self.ask(|r| Request::LogRead(after, limit, r)).await
    }

    pub async fn read_slot(&self, region: Region) -> Result<Option<Vec<u8>>, SpoolError> {
        self.ask(|r| Request::ReadSlot(region, r)).await
    }

    /// A slot's data with the journal records appended after it.
    pub async fn read_slot_journaled(
        &self,
        region: Region,
    ) -> Result<Option<super::Journaled>, SpoolError> {
        self.ask(|r| Request::ReadSlotJournaled(region, r)).await
    }

    /// Writes a config or directory slot; resolves once it is synced.
    pub async fn write_slot(&self, region: Region, data: Vec<u8>) -> Result<(), SpoolError> {
        self.ask(|r| Request::WriteSlot(region, data, r)).await
    }

    /// Starts writing `len` bytes of a slot's data in parts (see [`Spool::begin_slot`]); a
    /// part write begun before and not finished is given up.
    pub async fn begin_slot(&self, region: Region, len: usize) -> Result<(), SpoolError> {
        self.ask(|r| Request::BeginSlot(region, len, r)).await
    }

    /// The next part of the slot data begun with [`SpoolHandle::begin_slot`].
    pub async fn write_slot_part(&self, region: Region, data: Vec<u8>) -> Result<(), SpoolError> {
        self.ask(|r| Request::WriteSlotPart(region, data, r)).await
    }

    /// Ends the slot data begun with [`SpoolHandle::begin_slot`]; resolves once it is synced
    /// and in force.
    pub async fn finish_slot(&self, region: Region) -> Result<(), SpoolError> {
        self.ask(|r| Request::FinishSlot(region, r)).await
    }

    /// Appends a journal record to a slot; resolves once it is synced. `Ok(Err)`: the slot
    /// takes no more, nothing was written.
    pub async fn append_slot(
        &self,
        region: Region,
        data: Vec<u8>,
    ) -> Result<Result<(), super::AppendRefused>, SpoolError> {
        self.ask(|r| Request::AppendSlot(region, data, r)).await
    }
}

impl Incoming {
    /// The queue id the message will have.
    pub fn queue_id(&self) -> QueueId {
        self.qid
    }

    /// Adds body bytes. At most one chunk is held in RAM, and at most [`WRITES_AHEAD`] full
    /// ones are on their way to flash; an error writing one is returned by a later call.
    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), SpoolError> {
        let chunk = self.handle.chunk_size;
        while !data.is_empty() {
            let take = (chunk - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == chunk {
                self.flush().await?;
            }
        }
        Ok(())
    }

    /// Keeps the start of the message for [`Incoming::write_head`]: what [`Incoming::write`]
    /// adds from now on comes after it. Only before the first write.
    pub async fn hold_head(&mut self) -> Result<(), SpoolError> {
        let qid = self.qid;
        self.handle.ask(|r| Request::HoldHead(qid, r)).await
    }

    /// Writes the held start of the message (its header section, edited). It reaches flash
    /// with the next full chunk of the body or with the commit, whichever comes first; the
    /// header section is bounded, so RAM per session stays bounded.
    pub async fn write_head(&mut self, head: Vec<u8>) -> Result<(), SpoolError> {
        self.head = Some(head);
        Ok(())
    }

    /// Writes the bytes still buffered and waits until every byte is on flash (not synced), so
    /// that [`Incoming::read_part`] sees every byte written.
    pub async fn write_out(&mut self) -> Result<(), SpoolError> {
        self.write_held_head()?;
        if !self.buf.is_empty() {
            self.flush().await?;
        }
        self.written().await
    }

    fn write_held_head(&mut self) -> Result<(), SpoolError> {
        let Some(head) = self.head.take() else {
            return Ok(());
        };
        let qid = self.qid;
        self.sent = true;
        self.send_ahead(|r| Request::WriteHead(qid, head, r))
    }

    /// Sends a write without waiting for its answer (see [`WRITES_AHEAD`]).
    fn send_ahead(&mut self, make: impl FnOnce(Reply<()>) -> Request) -> Result<(), SpoolError> {
        let rx = self.handle.send(make)?;
        self.ahead.push_back(rx);
        Ok(())
    }

    /// Waits for the answers to the writes sent, oldest first, until at most `left` are
    /// outstanding; the first error is the message's.
    async fn settle(&mut self, left: usize) -> Result<(), SpoolError> {
        while self.ahead.len() > left {
            if let Some(rx) = self.ahead.pop_front() {
                answer(rx).await?;
            }
        }
        Ok(())
    }

    /// Every write sent is on flash (or its error returned).
    async fn written(&mut self) -> Result<(), SpoolError> {
        self.settle(0).await
    }

    /// Up to `max` bytes of what was written so far from byte `offset` on, read back from flash
    /// (CRC checked), without the held header section. Bytes still buffered are not seen: call
    /// [`Incoming::write_out`] first.
    pub async fn read_part(&self, offset: u64, max: usize) -> Result<Vec<u8>, SpoolError> {
        let qid = self.qid;
        self.handle
            .ask(|r| Request::ReadIncomingPart(qid, offset, max, r))
            .await
    }

    async fn flush(&mut self) -> Result<(), SpoolError> {
        self.write_held_head()?;
        let bytes = std::mem::replace(&mut self.buf, Vec::with_capacity(self.handle.chunk_size));
        let qid = self.qid;
        self.sent = true;
        self.send_ahead(|r| Request::Write(qid, bytes, r))?;
        self.settle(WRITES_AHEAD).await
    }

    /// Writes the rest of the body and the commit record; resolves only after the sync that
    /// holds the commit. Only then may the client be told 250.
    pub async fn commit(self) -> Result<QueueId, SpoolError> {
        self.finish(None).await
    }

    /// Writes the held start of the message (see [`Incoming::hold_head`]), the rest of the body
    /// and the commit record in one request; resolves only after the sync that holds the commit.
    pub async fn commit_with_head(self, head: Vec<u8>) -> Result<QueueId, SpoolError> {
        self.finish(Some(head)).await
    }

    /// [`Incoming::commit_with_head`] (or [`Incoming::commit`] with no head) that also gives
    /// back a copy of the body as stored when the commit holds all of it and it is at most
    /// `keep` bytes: the queue delivers a small new message without reading it back.
    pub async fn commit_keeping(
        mut self,
        head: Option<Vec<u8>>,
        keep: usize,
    ) -> Result<Committed, SpoolError> {
        let head = head.or_else(|| self.head.take());
        let held = head.as_ref().map_or(0, Vec::len);
        let body = (!self.sent && held + self.buf.len() <= keep).then(|| {
            let mut all = Vec::with_capacity(held + self.buf.len());
            all.extend_from_slice(head.as_deref().unwrap_or_default());
            all.extend_from_slice(&self.buf);
            Arc::<[u8]>::from(all)
        });
        let qid = self.finish(head).await?;
        Ok(Committed { qid, body })
    }

    async fn finish(mut self, head: Option<Vec<u8>>) -> Result<QueueId, SpoolError> {
        let qid = self.qid;
        // The commit rides, so the writer may take it before requests still in the channel:
        // the chunks sent ahead must be written first.
        self.written().await?;
        let head = head.or_else(|| self.head.take());
        let tail = std::mem::take(&mut self.buf);
        self.done = true;
        let (tx, rx) = oneshot::channel();
        let queued = self
            .handle
            .ride_quietly(Request::Commit(qid, head, tail, tx));
        // Counted down once queued: whoever finds none left, its commit and all the others are
        // queued, and the writer's waiting batch is complete.
        let riders = &self.handle.riders;
        let last = riders.receiving.fetch_sub(1, Ordering::SeqCst) == 1;
        queued?;
        if last {
            // The batch is complete: sync now, even if a turn is coming.
            self.handle
                .tx
                .send(Request::Wake)
                .map_err(|_| SpoolError::Stopped)?;
        } else {
            self.handle.write_now()?;
        }
        answer(rx).await
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if !self.done {
            self.handle.riders.receiving.fetch_sub(1, Ordering::SeqCst);
            let _ = self.handle.tx.send(Request::Abandon(self.qid));
        }
    }
}

/// A request that is answered after the next sync.
enum Waiter {
    Commit(QueueId, Reply<QueueId>),
    Done(Reply<()>),
}

struct Writer<F: Flash> {
    spool: Spool<F>,
    log: LogQueue,
    waiting: Vec<Waiter>,
    /// Messages begun and neither committed nor abandoned: their commits may join the batch.
    receiving: HashSet<QueueId>,
    batch_started: Option<Instant>,
    batch_bytes: u64,
    /// When the oldest record no one waits for (a mail log line, a queue update) was written
    /// since the last sync.
    unsynced_since: Option<Instant>,
    /// Messages whose begin the spool refused, with why: their next request gets the error.
    refused: HashMap<QueueId, SpoolError>,
    /// Where the sessions see whether the spool takes new mail.
    admission: Arc<AtomicU8>,
    /// A slot's data being written in parts.
    slot_writing: Option<super::SlotWriting>,
    riders: Arc<Riders>,
    /// The log text last swapped out of `log`, emptied: the next swap puts it back.
    log_text: String,
}

/// Writes one update (not synced yet).
fn apply<F: Flash>(s: &mut Spool<F>, u: Update) -> Result<(), SpoolError> {
    match u {
        Update::Mark {
            qid,
            index,
            outcome,
            at,
        } => s.mark_recipient(qid, index, outcome, at),
        Update::State(qid, change) => s.set_state(qid, change),
        Update::Remove(qid) => s.remove(qid),
    }
}

impl<F: Flash> Writer<F> {
    fn new(
        spool: Spool<F>,
        log: LogQueue,
        admission: Arc<AtomicU8>,
        riders: Arc<Riders>,
    ) -> Writer<F> {
        Writer {
            spool,
            log,
            waiting: Vec::new(),
            receiving: HashSet::new(),
            batch_started: None,
            batch_bytes: 0,
            unsynced_since: None,
            refused: HashMap::new(),
            admission,
            slot_writing: None,
            riders,
            log_text: String::new(),
        }
    }

    /// Handles the requests that rode (see [`Riders`]).
    fn take_riders(&mut self) {
        for req in self.riders.take() {
            self.handle(req);
        }
    }

    /// Handles `req`, after the riders queued before it was sent.
    fn handle_in_order(&mut self, req: Request) {
        self.take_riders();
        self.handle(req);
    }

    fn run(mut self, rx: mpsc::Receiver<Request>) -> Spool<F> {
        let delay = self.spool.settings().group_commit_delay;
        loop {
            // With a batch open the writer turns again by its deadline; without, a rider must
            // wake it, and one queued before this store was not told to: look once more.
            let open = self.batch_started.is_some();
            self.riders.turn_coming.store(open, Ordering::SeqCst);
            let next = match self.batch_started {
                None if !self.riders.is_empty() => Ok(Request::Wake),
                None => rx.recv_timeout(LOG_TICK),
                Some(t) => {
                    let left = (t + delay).saturating_duration_since(Instant::now());
                    rx.recv_timeout(left.max(Duration::from_micros(1)))
                }
            };
            match next {
                Ok(req) => {
                    self.handle_in_order(req);
                    // Take everything already queued before deciding to sync.
                    while let Ok(req) = rx.try_recv() {
                        self.handle_in_order(req);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) if self.batch_started.is_none() => {
                    // Quiet for a while: updates that rode without waking the writer, and
                    // lines logged since the last sync, go to flash now, not with the next
                    // mail, which may be long in coming.
                    self.take_riders();
                    if self.batch_started.is_none() {
                        self.append_log();
                        self.sync_unsynced();
                        continue;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.take_riders();
                    self.append_log();
                    self.flush();
                    self.sync_unsynced();
                    return self.spool;
                }
            }
            // Riders and lines logged so far go into this turn's sync.
            self.take_riders();
            self.append_log();
            let now = admission_code(self.spool.admission());
            self.admission.store(now, Ordering::Release);
            if self.should_sync(delay) {
                self.flush();
            } else if self.batch_started.is_none()
                && self.unsynced_since.is_some_and(|t| t.elapsed() >= LOG_TICK)
            {
                // No commit to ride with for a while, yet no quiet either (a queue flush
                // delivering without new mail): what was written goes to flash now.
                self.sync_unsynced();
            }
        }
    }

    /// Syncs the records no one waits for, if any were written since the last sync.
    fn sync_unsynced(&mut self) {
        if self.unsynced_since.take().is_some() {
            let _ = self.spool.sync();
        }
    }

    fn mark_unsynced(&mut self) {
        self.unsynced_since.get_or_insert_with(Instant::now);
    }

    fn append_log(&mut self) {
        match self.log.lock() {
            Ok(mut q) if q.lines > 0 => {
                std::mem::swap(&mut q.text, &mut self.log_text);
                q.lines = 0;
            }
            _ => return,
        }
        self.mark_unsynced();
        for line in self.log_text.split_terminator('\n') {
            // The log must never stop mail: a line that cannot be written is lost.
            let _ = self.spool.log_append(line);
        }
        self.log_text.clear();
        if self.log_text.capacity() > LOG_TEXT_KEPT {
            // A burst's room is not kept for the quiet that follows.
            self.log_text = String::new();
        }
    }

    fn should_sync(&self, delay: Duration) -> bool {
        let Some(t) = self.batch_started else {
            return false;
        };
        let waiting_commits = self
            .waiting
            .iter()
            .filter(|w| matches!(w, Waiter::Commit(..)))
            .count();
        self.receiving.len() <= waiting_commits
            || self.batch_bytes >= self.spool.settings().group_commit_bytes as u64
            || t.elapsed() >= delay
    }

    fn wait(&mut self, w: Waiter) {
        self.waiting.push(w);
        self.batch_started.get_or_insert_with(Instant::now);
    }

    fn flush(&mut self) {
        if self.waiting.is_empty() {
            return;
        }
        let result = crate::metrics::global().spool_sync(self.waiting.len(), || self.spool.sync());
        for w in self.waiting.drain(..) {
            match w {
                Waiter::Commit(qid, r) => {
                    self.receiving.remove(&qid);
                    let _ = r.send(result.clone().map(|()| qid));
                }
                Waiter::Done(r) => {
                    let _ = r.send(result.clone());
                }
            }
        }
        self.batch_started = None;
        self.batch_bytes = 0;
        self.unsynced_since = None;
    }

    /// The held head, the last body bytes, then the commit record.
    fn commit(
        &mut self,
        qid: QueueId,
        head: Option<Vec<u8>>,
        tail: &[u8],
    ) -> Result<(), SpoolError> {
        if let Some(head) = head {
            self.spool.write_head(qid, &head)?;
            self.batch_bytes += head.len() as u64;
        }
        if !tail.is_empty() {
            self.spool.append_body(qid, tail)?;
            self.batch_bytes += tail.len() as u64;
        }
        self.spool.commit(qid)
    }

    /// Answers a request about a message whose begin was refused with the refusal; gives back
    /// every other request.
    fn refuse(&mut self, req: Request) -> Option<Request> {
        let qid = match &req {
            Request::Write(q, ..)
            | Request::HoldHead(q, _)
            | Request::WriteHead(q, ..)
            | Request::Commit(q, ..)
            | Request::Abandon(q)
            | Request::ReadIncomingPart(q, ..) => *q,
            _ => return Some(req),
        };
        let Some(e) = self.refused.get(&qid).cloned() else {
            return Some(req);
        };
        match req {
            Request::Write(_, _, r) | Request::HoldHead(_, r) | Request::WriteHead(_, _, r) => {
                let _ = r.send(Err(e));
            }
            Request::ReadIncomingPart(_, _, _, r) => {
                let _ = r.send(Err(e));
            }
            Request::Commit(_, _, _, r) => {
                self.refused.remove(&qid);
                let _ = r.send(Err(e));
            }
            _ => {
                self.refused.remove(&qid);
            }
        }
        None
    }

    fn handle(&mut self, req: Request) {
        let Some(req) = self.refuse(req) else {
            return;
        };
        let s = &mut self.spool;
        match req {
            Request::Begin(qid, env, hold_head) => {
                let mut res = s.begin_encoded(qid, &env);
                if hold_head && res.is_ok() {
                    res = s.hold_head(qid).map(|()| qid);
                    if res.is_err() {
                        s.abandon(qid);
                    }
                }
                match res {
                    Ok(_) => {
                        self.receiving.insert(qid);
                    }
                    Err(e) => {
                        self.refused.insert(qid, e);
                    }
                }
            }
            Request::Write(qid, data, r) => {
                let res = s.append_body(qid, &data);
                self.batch_bytes += data.len() as u64;
                if res.is_err() {
                    // The session will answer 4xx; the partial message is garbage now.
                    s.abandon(qid);
                    self.receiving.remove(&qid);
                }
                let _ = r.send(res);
            }
            Request::HoldHead(qid, r) => {
                let _ = r.send(s.hold_head(qid));
            }
            Request::WriteHead(qid, data, r) => {
                let res = s.write_head(qid, &data);
                self.batch_bytes += data.len() as u64;
                if res.is_err() {
                    s.abandon(qid);
                    self.receiving.remove(&qid);
                }
                let _ = r.send(res);
            }
            Request::Commit(qid, head, tail, r) => match self.commit(qid, head, &tail) {
                Ok(()) => self.wait(Waiter::Commit(qid, r)),
                Err(e) => {
                    self.spool.abandon(qid);
                    self.receiving.remove(&qid);
                    let _ = r.send(Err(e));
                }
            },
            Request::Abandon(qid) => {
                s.abandon(qid);
                self.receiving.remove(&qid);
            }
            Request::Mark(qid, i, outcome, at, r) => match s.mark_recipient(qid, i, outcome, at) {
                Ok(()) => self.wait(Waiter::Done(r)),
                Err(e) => {
                    let _ = r.send(Err(e));
                }
            },
            Request::SetState(qid, change, r) => match s.set_state(qid, change) {
                Ok(()) => self.wait(Waiter::Done(r)),
                Err(e) => {
                    let _ = r.send(Err(e));
                }
            },
            Request::Remove(qid, r) => match s.remove(qid) {
                Ok(()) => self.wait(Waiter::Done(r)),
                Err(e) => {
                    let _ = r.send(Err(e));
                }
            },
            Request::Apply(updates, r) => {
                let written: Vec<_> = updates.into_iter().map(|u| apply(s, u)).collect();
                // Answered now, synced with the next commit or when the writer is idle: see
                // `SpoolHandle::apply`.
                if written.iter().any(Result::is_ok) {
                    self.mark_unsynced();
                }
                let _ = r.send(written);
            }
            Request::List(r) => {
                let _ = r.send(Ok(s.list()));
            }
            Request::Envelopes(qids, r) => {
                let _ = r.send(Ok(s.envelopes(&qids)));
            }
            Request::Get(qid, r) => {
                let _ = r.send(Ok(s.get(qid)));
            }
            Request::History(qid, r) => {
                let _ = r.send(Ok(s.history(qid)));
            }
            Request::TakeRecovered(r) => {
                let _ = r.send(Ok(s.take_recovered()));
            }
            Request::ReadBody(qid, r) => {
                let _ = r.send(s.read_body(qid));
            }
            Request::ReadBodyPart(qid, offset, max, r) => {
                let _ = r.send(s.read_body_part(qid, offset, max));
            }
            Request::ReadIncomingPart(qid, offset, max, r) => {
                let _ = r.send(s.read_incoming_part(qid, offset, max));
            }
            Request::Info(r) => {
                let _ = r.send(Ok(s.info()));
            }
            Request::ReadSlot(region, r) => {
                let _ = r.send(s.read_slot(region));
            }
            Request::ReadSlotJournaled(region, r) => {
                let _ = r.send(s.read_slot_journaled(region));
            }
            Request::AppendSlot(region, data, r) => {
                let _ = r.send(s.append_slot(region, &data));
            }
            Request::LogWake => self.append_log(),
            // The riders were taken before this request.
            Request::Wake => {}
            Request::LogRead(after, limit, r) => {
                // A reader sees every line logged before it asked.
                self.append_log();
                let s = &mut self.spool;
                let read = if s.has_log() {
                    s.log_read(after, limit).map(Some)
                } else {
                    Ok(None)
                };
                let _ = r.send(read);
            }
            Request::WriteSlot(region, data, r) => {
                let _ = r.send(s.write_slot(region, &data));
            }
            Request::BeginSlot(region, len, r) => {
                // One at a time: a begin gives up the one before, if it was not finished.
                let res = match s.begin_slot(region, len) {
                    Ok(w) => {
                        self.slot_writing = Some(w);
                        Ok(())
                    }
                    Err(e) => {
                        self.slot_writing = None;
                        Err(e)
                    }
                };
                let _ = r.send(res);
            }
            Request::WriteSlotPart(region, data, r) => {
                let res = match self.slot_writing.as_mut() {
                    Some(w) if w.region() == region => s.write_slot_part(w, &data),
                    _ => Err(SpoolError::SlotWriteBroken(region)),
                };
                // A part refused breaks the whole: the finish is refused too.
                if res.is_err() {
                    self.slot_writing = None;
                }
                let _ = r.send(res);
            }
            Request::FinishSlot(region, r) => {
                let res = match self.slot_writing.take() {
                    Some(w) if w.region() == region => s.finish_slot(w),
                    _ => Err(SpoolError::SlotWriteBroken(region)),
                };
                let _ = r.send(res);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::tests::{envelope, fresh};

    /// A begin the spool refuses is not answered (the session did not wait for it): the
    /// message's next requests get the refusal, and its commit or abandon forgets it.
    #[test]
    fn a_refused_begin_fails_the_messages_next_requests() {
        let mut spool = fresh();
        let taken = spool
            .begin(&envelope("a@example.com", 1), 1_795_000_000_000)
            .unwrap();
        let mut w = Writer::new(spool, LogQueue::default(), Arc::default(), Arc::default());
        // The same queue id twice: the spool refuses the second begin.
        w.handle(Request::Begin(
            taken,
            EncodedEnvelope::new(&envelope("b@example.com", 1)).unwrap(),
            false,
        ));
        assert!(w.refused.contains_key(&taken));
        let (tx, mut rx) = oneshot::channel();
        w.handle(Request::Write(taken, b"body".to_vec(), tx));
        assert!(matches!(rx.try_recv(), Ok(Err(SpoolError::Encode(_)))));
        let (tx, mut rx) = oneshot::channel();
        w.handle(Request::Commit(taken, None, Vec::new(), tx));
        assert!(matches!(rx.try_recv(), Ok(Err(SpoolError::Encode(_)))));
        assert!(w.refused.is_empty());
        assert!(w.waiting.is_empty(), "nothing waits for a sync");

        // One that begins is received as before.
        let qid = next_qid(w.spool.last_qid(), 1_795_000_000_001);
        w.handle(Request::Begin(
            qid,
            EncodedEnvelope::new(&envelope("c@example.com", 1)).unwrap(),
            false,
        ));
        assert!(w.receiving.contains(&qid) && w.refused.is_empty());
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// `n` small messages through the handle, committed.
    async fn committed(h: &SpoolHandle, n: usize) -> Vec<QueueId> {
        let mut qids = Vec::new();
        for _ in 0..n {
            let mut m = h.begin(&envelope("a@example.com", 1)).await.unwrap();
            m.write(b"Subject: x\r\n\r\nbody\r\n").await.unwrap();
            qids.push(m.commit().await.unwrap());
        }
        qids
    }

    /// The queue's updates ride to the writer without waking it when a turn is coming, yet
    /// whatever is asked after them sees them; an update alone, to an idle writer, is answered.
    #[test]
    fn updates_ride_to_the_writer_yet_later_requests_see_them() {
        runtime().block_on(async {
            let (h, writer) = spawn(fresh()).unwrap();
            let qids = committed(&h, 3).await;
            // The writer is idle: the update alone wakes it (a writer not woken would leave
            // it unanswered).
            let removed = tokio::time::timeout(
                Duration::from_secs(10),
                h.apply(vec![Update::Remove(qids[0])]),
            )
            .await
            .expect("an idle writer woken for an update");
            assert_eq!(removed, vec![Ok(())]);
            assert!(h.get(qids[0]).await.unwrap().is_none());
            // Asked right after, through the channel: the removal comes first.
            let pending = h.apply(vec![Update::Remove(qids[1])]);
            assert!(h.get(qids[1]).await.unwrap().is_none());
            assert_eq!(pending.await, vec![Ok(())]);
            // With a batch open (a message being received and another committed), an update
            // rides to the writer's next turn.
            let open = h.begin(&envelope("b@example.com", 1)).await.unwrap();
            let mut last = h.begin(&envelope("c@example.com", 1)).await.unwrap();
            last.write(b"Subject: y\r\n\r\nbody\r\n").await.unwrap();
            let committed = tokio::spawn(last.commit());
            let removed = h.apply(vec![Update::Remove(qids[2])]);
            drop(open);
            assert_eq!(removed.await, vec![Ok(())]);
            assert!(committed.await.unwrap().is_ok());
            assert!(h.get(qids[2]).await.unwrap().is_none());
            drop(h);
            let mut spool = writer.join().unwrap();
            assert_eq!(spool.list().len(), 1);
        });
    }

    /// A handle whose requests nobody takes: they wait in the channel (or ride) for the test.
    fn unattended() -> (SpoolHandle, mpsc::Receiver<Request>) {
        let (tx, rx) = mpsc::channel();
        let h = SpoolHandle {
            tx,
            chunk_size: 4096,
            log: LogQueue::default(),
            last_qid: Arc::default(),
            admission: Arc::default(),
            riders: Arc::default(),
        };
        (h, rx)
    }

    /// A session does not wait for each chunk it sends: up to [`WRITES_AHEAD`] go unanswered.
    /// A chunk the spool could not write fails the message at the session's next write that
    /// waits, or at its commit, which waits for them all before it goes to the writer: a
    /// message with a chunk missing is never committed.
    #[test]
    fn chunks_go_ahead_and_a_failed_one_fails_the_message() {
        let (h, rx) = unattended();
        let rt = runtime();
        let chunk = vec![b'x'; h.chunk_size];
        let writes = |of: QueueId| {
            std::iter::from_fn(|| rx.try_recv().ok())
                .filter_map(|r| match r {
                    Request::Write(qid, bytes, reply) if qid == of => Some((bytes.len(), reply)),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };

        // Failed at a later write.
        let mut m = rt.block_on(h.begin(&envelope("a@example.com", 1))).unwrap();
        for _ in 0..WRITES_AHEAD {
            // Nobody answers here: a write that waited would never end.
            let write =
                async { tokio::time::timeout(Duration::from_secs(5), m.write(&chunk)).await };
            let written = rt.block_on(write).expect("not waited for");
            assert_eq!(written, Ok(()));
        }
        let mut sent = writes(m.queue_id());
        assert_eq!(
            sent.len(),
            WRITES_AHEAD,
            "each full chunk went to the writer"
        );
        let (len, oldest) = sent.remove(0);
        assert_eq!(len, h.chunk_size);
        let _ = oldest.send(Err(SpoolError::Full));
        assert_eq!(
            rt.block_on(m.write(&chunk)),
            Err(SpoolError::Full),
            "one more ahead waits for the oldest, and its error is the message's"
        );
        drop(m);

        // Failed at the commit.
        let mut m = rt.block_on(h.begin(&envelope("b@example.com", 1))).unwrap();
        rt.block_on(m.write(&chunk)).unwrap();
        rt.block_on(m.write(&chunk)).unwrap();
        rt.block_on(m.write(b"the rest")).unwrap();
        let mut sent = writes(m.queue_id());
        assert_eq!(sent.len(), 2);
        let _ = sent.remove(0).1.send(Ok(()));
        let _ = sent.remove(0).1.send(Err(SpoolError::Full));
        assert_eq!(rt.block_on(m.commit()), Err(SpoolError::Full));
        assert!(
            !h.riders
                .take()
                .iter()
                .any(|r| matches!(r, Request::Commit(..))),
            "no commit went to the writer"
        );
    }

    /// A rider wakes the writer only when no turn is coming; a begin never does (the session's
    /// next request follows it through the channel).
    #[test]
    fn a_rider_wakes_the_writer_only_when_no_turn_is_coming() {
        let (h, rx) = unattended();
        let woken = || std::iter::from_fn(|| rx.try_recv().ok()).count();
        drop(h.apply(vec![Update::Remove(QueueId(1))]));
        assert_eq!(woken(), 1, "an idle writer is woken");
        h.riders.turn_coming.store(true, Ordering::SeqCst);
        drop(h.apply(vec![Update::Remove(QueueId(2))]));
        assert_eq!(woken(), 0, "a writer with a batch open is not");
        h.riders.turn_coming.store(false, Ordering::SeqCst);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let incoming = rt.block_on(h.begin(&envelope("a@example.com", 1))).unwrap();
        assert_eq!(woken(), 0, "a begin does not wake it");
        assert_eq!(h.riders.take().len(), 3);
        drop(incoming);
        assert_eq!(woken(), 1, "its abandon goes through the channel");
    }

    /// An unhurried update (a queue turn's) never wakes the writer, unless many requests wait.
    #[test]
    fn an_unhurried_update_wakes_the_writer_only_when_many_wait() {
        let (h, rx) = unattended();
        let woken = || std::iter::from_fn(|| rx.try_recv().ok()).count();
        for n in 1..RIDERS_WAKE {
            drop(h.apply_unhurried(vec![Update::Remove(QueueId(n as u64))]));
        }
        assert_eq!(woken(), 0, "an idle writer is left to its tick");
        drop(h.apply_unhurried(vec![Update::Remove(QueueId(0))]));
        assert_eq!(woken(), 1, "a long queue wakes it");
        assert_eq!(h.riders.take().len(), RIDERS_WAKE);
        drop(h.apply_unhurried(vec![Update::Remove(QueueId(0))]));
        h.write_now().unwrap();
        assert_eq!(woken(), 1, "asked to, it wakes the writer");
    }

    /// Left to the writer's idle tick, an unhurried update is written and synced at that tick,
    /// not one later.
    #[test]
    fn an_unhurried_update_is_written_and_synced_at_the_idle_tick() {
        runtime().block_on(async {
            let (h, _writer) = spawn(fresh()).unwrap();
            let qids = committed(&h, 1).await;
            let before = h.info().await.unwrap().syncs;
            // The writer asleep, waiting for its tick.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let removed = h.apply_unhurried(vec![Update::Remove(qids[0])]);
            let answer = tokio::time::timeout(3 * LOG_TICK, removed).await;
            assert_eq!(answer.ok(), Some(vec![Ok(())]), "written at the tick");
            // Asked nothing meanwhile: a question would end the quiet.
            tokio::time::sleep(LOG_TICK / 2).await;
            assert_eq!(
                h.info().await.unwrap().syncs,
                before + 1,
                "synced there too"
            );
            assert_eq!(h.get(qids[0]).await.unwrap(), None);
        });
    }

    /// A commit wakes the writer only when it completes the batch (no other message is being
    /// received) or when no turn is coming; the others ride to the writer's next turn.
    #[test]
    fn a_commit_wakes_the_writer_when_it_is_the_last_or_no_turn_is_coming() {
        use std::task::{Context, Waker};
        let (h, rx) = unattended();
        let woken = || {
            std::iter::from_fn(|| rx.try_recv().ok())
                .filter(|r| matches!(r, Request::Wake))
                .count()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let begin = || rt.block_on(h.begin(&envelope("a@example.com", 1))).unwrap();
        // Polled once: queued (and the writer woken or not); its answer never comes here.
        let commit = |m: Incoming| {
            let mut fut = Box::pin(m.commit());
            let pending = fut
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
                .is_pending();
            assert!(pending);
        };
        let (a, b) = (begin(), begin());
        h.riders.turn_coming.store(true, Ordering::SeqCst);
        commit(a);
        assert_eq!(
            woken(),
            0,
            "another message is being received and a turn is coming"
        );
        commit(b);
        assert_eq!(woken(), 1, "the last one completes the batch");
        h.riders.turn_coming.store(false, Ordering::SeqCst);
        let (c, d) = (begin(), begin());
        commit(c);
        assert_eq!(woken(), 1, "no turn is coming: it opens the batch");
        drop(d);
        assert_eq!(h.riders.receiving.load(Ordering::SeqCst), 0);
        let commits = h
            .riders
            .take()
            .iter()
            .filter(|r| matches!(r, Request::Commit(..)))
            .count();
        assert_eq!(commits, 3);
    }

    /// The queue's updates are answered once written, and reach flash within about a second
    /// even when no commit follows: on a quiet box, and on one that only delivers (a queue
    /// flush with no new mail), where the writer is never quiet for a second.
    #[test]
    fn updates_no_commit_follows_are_synced_within_a_second() {
        runtime().block_on(async {
            let (h, _writer) = spawn(fresh()).unwrap();
            let qids = committed(&h, 20).await;
            let syncs = || async { h.info().await.unwrap().syncs };
            let before = syncs().await;
            assert_eq!(h.apply(vec![Update::Remove(qids[0])]).await, vec![Ok(())]);
            assert_eq!(syncs().await, before, "answered before any sync");
            // Asked nothing (a question would end the quiet) for three times the second.
            tokio::time::sleep(3 * LOG_TICK).await;
            assert_eq!(
                syncs().await,
                before + 1,
                "synced once the writer was quiet"
            );

            // An update every 140 ms for 2.5 s at least: never a quiet second.
            let before = syncs().await;
            let started = Instant::now();
            for qid in &qids[1..] {
                assert_eq!(h.apply(vec![Update::Remove(*qid)]).await, vec![Ok(())]);
                tokio::time::sleep(Duration::from_millis(140)).await;
            }
            assert!(started.elapsed() >= Duration::from_millis(2500));
            assert!(
                syncs().await > before,
                "synced while the updates kept coming"
            );
        });
    }

    #[test]
    fn queue_ids_only_grow_whatever_the_clock_does() {
        let a = next_qid(0, 1_795_000_000_000);
        let b = next_qid(a.0, 1_795_000_000_000);
        let c = next_qid(b.0, 1_700_000_000_000);
        let d = next_qid(c.0, 1_795_000_000_005);
        assert!(a < b && b < c && c < d, "{a} {b} {c} {d}");
    }
}
