//! Reading what the index does not hold back from flash: a message's envelope, its recipients'
//! outcomes and its queue state, each record checked against its CRC as at recovery.

use hal::flash::Flash;
use serde::de::DeserializeOwned;

use crate::mail::{Envelope, QueueId, QueueState, StateEvent};

use super::entry::EntryRef;
use super::index::{Loc, MessageHistory, MessageSummary, OutcomeTime};
use super::record::{self, HEADER, Kind, RecipientBody, StateBody};
use super::stamp::{self, RecipientStamp, StateStamp};
use super::{Spool, SpoolError};

/// The most bytes one read of [`Spool::read_envelopes`] takes.
const SPAN: u64 = 64 * 1024;
/// Records further apart are read apart: the bytes between would cost more than the call.
const SPAN_GAP: u64 = 4 * 1024;

impl<F: Flash> Spool<F> {
    /// The body of the record at `loc`, which must be a sound `kind` record of `qid`.
    pub(crate) fn read_record(
        &mut self,
        qid: QueueId,
        kind: Kind,
        loc: Loc,
        buf: &mut Vec<u8>,
    ) -> Result<(), SpoolError> {
        buf.resize((HEADER + loc.len) as usize, 0);
        self.flash.read(loc.addr, buf)?;
        self.body_of(qid, kind, loc, buf)?;
        buf.drain(..HEADER as usize);
        Ok(())
    }

    /// The body of `bytes`, the record at `loc` as read, if it is a sound `kind` record of
    /// `qid`.
    fn body_of<'a>(
        &self,
        qid: QueueId,
        kind: Kind,
        loc: Loc,
        bytes: &'a [u8],
    ) -> Result<&'a [u8], SpoolError> {
        let h = record::decode_header(self.layout.nonce, bytes, loc.len as usize)
            .filter(|h| h.kind == kind && h.qid == qid.0 && h.len == loc.len)
            .ok_or(SpoolError::Damaged(qid))?;
        let body = (bytes.get(HEADER as usize..(HEADER + loc.len) as usize))
            .filter(|b| record::body_ok(self.layout.nonce, &h, b))
            .ok_or(SpoolError::Damaged(qid))?;
        Ok(body)
    }

    /// The envelopes in the begin records at `wanted` (each with the caller's tag), those that
    /// read back sound, in no particular order. Records close together on flash are read
    /// together: one read for a run of them, not a system call each.
    pub(crate) fn read_envelopes<T>(
        &mut self,
        mut wanted: Vec<(T, QueueId, Loc)>,
    ) -> Vec<(T, QueueId, Envelope)> {
        wanted.sort_by_key(|(_, _, loc)| loc.addr);
        let mut out = Vec::with_capacity(wanted.len());
        let mut span = Vec::new();
        let mut rest = wanted.into_iter().peekable();
        while let Some(first) = rest.next() {
            let start = first.2.addr;
            let mut end = u64::from(start) + u64::from(HEADER + first.2.len);
            let mut run = vec![first];
            while let Some(next) = rest.next_if(|(_, _, l)| {
                let to = u64::from(l.addr) + u64::from(HEADER + l.len);
                u64::from(l.addr) <= end + SPAN_GAP && to - u64::from(start) <= SPAN
            }) {
                end = end.max(u64::from(next.2.addr) + u64::from(HEADER + next.2.len));
                run.push(next);
            }
            span.resize((end - u64::from(start)) as usize, 0);
            let together = self.flash.read(start, &mut span).is_ok();
            let mut one = Vec::new();
            for (tag, qid, loc) in run {
                // A run that failed to read is read a record at a time: one bad place on the
                // flash loses no more than its own message.
                let envelope = if together {
                    let at = (loc.addr - start) as usize;
                    (span.get(at..))
                        .ok_or(SpoolError::Damaged(qid))
                        .and_then(|b| self.body_of(qid, Kind::Begin, loc, b))
                        .and_then(|b| postcard::from_bytes(b).map_err(|_| SpoolError::Damaged(qid)))
                } else {
                    self.read_decoded(qid, Kind::Begin, loc, &mut one)
                };
                if let Ok(envelope) = envelope {
                    out.push((tag, qid, envelope));
                }
            }
        }
        out
    }

    fn read_decoded<T: DeserializeOwned>(
        &mut self,
        qid: QueueId,
        kind: Kind,
        loc: Loc,
        buf: &mut Vec<u8>,
    ) -> Result<T, SpoolError> {
        self.read_record(qid, kind, loc, buf)?;
        postcard::from_bytes(buf).map_err(|_| SpoolError::Damaged(qid))
    }

    /// The state record at `loc` as an event, with its stamp if it has one.
    pub(crate) fn read_state(
        &mut self,
        qid: QueueId,
        loc: Loc,
    ) -> Result<(StateEvent, Option<StateStamp>), SpoolError> {
        let mut buf = Vec::new();
        self.read_record(qid, Kind::State, loc, &mut buf)?;
        let (body, stamp): (StateBody, Option<StateStamp>) =
            stamp::decode(&buf).map_err(|_| SpoolError::Damaged(qid))?;
        let mut event = StateEvent {
            at: stamp.as_ref().map(|s| s.at),
            state: body.state,
            waiting: stamp
                .as_ref()
                .map(|s| s.waiting.clone())
                .unwrap_or_default(),
            flushed: stamp.as_ref().is_some_and(|s| s.flushed),
        };
        stamp::expand(&event.state, &mut event.waiting);
        Ok((event, stamp))
    }

    /// Everything known of one message, read back from flash.
    pub(crate) fn summarize(
        &mut self,
        qid: QueueId,
        e: EntryRef<'_>,
    ) -> Result<MessageSummary, SpoolError> {
        self.read_message(qid, e).map(|h| h.summary)
    }

    /// One durable message with the times of its records, for `postern queue show`.
    pub fn history(&mut self, qid: QueueId) -> Option<MessageHistory> {
        let m = self.index.get(&qid).filter(|e| e.durable())?.to_message();
        self.read_message(qid, m.as_ref()).ok()
    }

    fn read_message(
        &mut self,
        qid: QueueId,
        e: EntryRef<'_>,
    ) -> Result<MessageHistory, SpoolError> {
        let mut buf = Vec::new();
        let envelope: Envelope = self.read_decoded(qid, Kind::Begin, e.begin(), &mut buf)?;
        let mut outcomes = Vec::with_capacity(e.recipients());
        let mut outcome_times = Vec::with_capacity(e.recipients());
        for i in 0..e.recipients() {
            let (outcome, at) = match e.outcome(i) {
                Some(loc) => {
                    self.read_record(qid, Kind::Recipient, loc, &mut buf)?;
                    let (r, s): (RecipientBody, Option<RecipientStamp>) =
                        stamp::decode(&buf).map_err(|_| SpoolError::Damaged(qid))?;
                    let at = s.map(|s| OutcomeTime {
                        at: s.at,
                        after_changes: s.after_changes,
                    });
                    (Some(r.outcome), at)
                }
                None => (None, None),
            };
            outcomes.push(outcome);
            outcome_times.push(at);
        }
        let (state, changes) = match e.state_loc().get() {
            Some(loc) => {
                let (now, stamp) = self.read_state(qid, loc)?;
                let mut changes = stamp.map_or_else(Vec::new, |s| s.earlier);
                for c in &mut changes {
                    stamp::expand(&c.state, &mut c.waiting);
                }
                let state = now.state.clone();
                changes.push(now);
                (state, changes)
            }
            None => (QueueState::Active, Vec::new()),
        };
        // The version counts every change, the ones no longer carried too.
        let changes_before = e.state_version().saturating_sub(changes.len() as u32);
        Ok(MessageHistory {
            summary: MessageSummary {
                qid,
                envelope,
                outcomes,
                state,
                size: e.size(),
            },
            outcome_times,
            changes,
            changes_before,
        })
    }
}
