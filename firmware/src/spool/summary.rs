//! Reading what the index does not hold back from flash: a message's envelope, its recipients'
//! outcomes and its queue state, each record checked against its CRC as at recovery.

use hal::flash::Flash;
use serde::de::DeserializeOwned;

use crate::mail::{Envelope, QueueId, QueueState};

use super::index::{Entry, Loc, MessageSummary};
use super::record::{self, HEADER, Kind, RecipientBody, StateBody};
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

    /// Everything known of one message, read back from flash.
    pub(crate) fn summarize(
        &mut self,
        qid: QueueId,
        e: &Entry,
    ) -> Result<MessageSummary, SpoolError> {
        let mut buf = Vec::new();
        let envelope: Envelope = self.read_decoded(qid, Kind::Begin, e.begin, &mut buf)?;
        let mut outcomes = Vec::with_capacity(e.recipients());
        for i in 0..e.recipients() {
            let outcome = match e.outcome(i) {
                Some(loc) => {
                    let r: RecipientBody =
                        self.read_decoded(qid, Kind::Recipient, loc, &mut buf)?;
                    Some(r.outcome)
                }
                None => None,
            };
            outcomes.push(outcome);
        }
        let state = match e.state_loc.get() {
            Some(loc) => {
                let s: StateBody = self.read_decoded(qid, Kind::State, loc, &mut buf)?;
                s.state
            }
            None => QueueState::Active,
        };
        Ok(MessageSummary {
            qid,
            envelope,
            outcomes,
            state,
            size: e.size(),
        })
    }
}
