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
        let h = record::decode_header(self.layout.nonce, buf, loc.len as usize)
            .filter(|h| h.kind == kind && h.qid == qid.0 && h.len == loc.len)
            .ok_or(SpoolError::Damaged(qid))?;
        if !record::body_ok(self.layout.nonce, &h, &buf[HEADER as usize..]) {
            return Err(SpoolError::Damaged(qid));
        }
        buf.drain(..HEADER as usize);
        Ok(())
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

    /// The envelope in the begin record at `loc`.
    pub(crate) fn read_envelope(
        &mut self,
        qid: QueueId,
        loc: Loc,
        buf: &mut Vec<u8>,
    ) -> Result<Envelope, SpoolError> {
        self.read_decoded(qid, Kind::Begin, loc, buf)
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
