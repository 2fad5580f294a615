//! What a queue turn wrote, and the log lines its results make once the spool answers: the
//! runner does not wait for them (see `Runner::execute_all`).

use std::sync::{Arc, Mutex};

use crate::log::{self, LogSink, Program};
use crate::mail::QueueId;
use crate::metrics;
use crate::spool::Update;

/// What a turn wrote, kept to log the results when they come (see `Runner::execute_all`).
pub(super) struct Settled {
    pub(super) marks: Vec<Written>,
    pub(super) writes: Vec<Written>,
    pub(super) log: LogSink,
    /// Where a failed mark's queue id goes (see `Runner::forget_unmarked`).
    pub(super) unmarked: Arc<Mutex<Vec<QueueId>>>,
}

/// One update of a turn, as its result is logged.
pub(super) enum Written {
    Mark(QueueId, usize),
    State(QueueId),
    Removal(QueueId),
}

impl Written {
    pub(super) fn of(u: &Update) -> Written {
        match u {
            Update::Mark { qid, index, .. } => Written::Mark(*qid, *index),
            Update::State(qid, _) => Written::State(*qid),
            Update::Remove(qid) => Written::Removal(*qid),
        }
    }
}

impl Settled {
    /// Logs a removal once written, as Postfix's queue manager does after the unlink, and
    /// every update that failed.
    pub(super) fn report<E: std::fmt::Display>(
        self,
        marked: Vec<Result<(), E>>,
        written: Vec<Result<(), E>>,
    ) {
        let done = self.marks.iter().zip(marked);
        for (w, res) in done.chain(self.writes.iter().zip(written)) {
            let line = match (w, res) {
                (Written::Removal(qid), Ok(())) => {
                    metrics::global().qmgr_removed();
                    log::removed_line(*qid)
                }
                (_, Ok(())) => continue,
                (Written::Mark(qid, index), Err(e)) => {
                    if let Ok(mut u) = self.unmarked.lock() {
                        u.push(*qid);
                    }
                    format!("{qid}: warning: cannot mark recipient {index}: {e}")
                }
                (Written::State(qid), Err(e)) => {
                    format!("{qid}: warning: cannot set state: {e}")
                }
                (Written::Removal(qid), Err(e)) => format!("{qid}: warning: cannot remove: {e}"),
            };
            self.log.line(Program::Qmgr, &line);
        }
    }
}
