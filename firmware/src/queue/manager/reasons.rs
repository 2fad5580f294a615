//! Why messages and recipients wait, each distinct answer kept once. A next hop that is down gives
//! the same answer for every message queued for it: a million deferred messages share one string
//! and each holds a 4-byte number, counted so that an answer no one holds any more is freed. An
//! answer is its text and the server that gave it (the mail log's `relay=`), if one did.

use std::collections::HashMap;
use std::sync::Arc;

/// A reason's number; [`ReasonId::NONE`] stands for no reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct ReasonId(u32);

impl ReasonId {
    pub const NONE: ReasonId = ReasonId(0);
}

/// The relay (None: no server answered) and the text.
type Answer = (Option<Arc<str>>, Arc<str>);

struct Slot {
    answer: Answer,
    holders: u32,
}

/// The interned reasons. Number 0 is no reason; the others index `slots` (minus one).
#[derive(Default)]
pub(super) struct Reasons {
    slots: Vec<Option<Slot>>,
    ids: HashMap<Answer, u32>,
    free: Vec<u32>,
}

impl Reasons {
    pub fn text(&self, id: ReasonId) -> Option<&str> {
        self.slot(id).map(|s| s.answer.1.as_ref())
    }

    /// The server that gave the answer; None if none did (or for no reason).
    pub fn relay(&self, id: ReasonId) -> Option<&str> {
        self.slot(id).and_then(|s| s.answer.0.as_deref())
    }

    fn slot(&self, id: ReasonId) -> Option<&Slot> {
        let i = id.0.checked_sub(1)?;
        self.slots.get(i as usize)?.as_ref()
    }

    /// Sets `*slot` to the reason `text` (None: no reason) that no server gave, counting holders.
    pub fn set(&mut self, slot: &mut ReasonId, text: Option<&str>) {
        let new = match text {
            Some(t) => self.intern(None, t),
            None => ReasonId::NONE,
        };
        self.assign(slot, new);
    }

    /// Sets `*slot` to the answer `text` from `relay` (None: no server answered).
    pub fn set_answer(&mut self, slot: &mut ReasonId, relay: Option<&str>, text: &str) {
        let new = self.intern(relay, text);
        self.assign(slot, new);
    }

    /// Sets `*slot` to `new`, a reason already held elsewhere (or NONE).
    pub fn assign(&mut self, slot: &mut ReasonId, new: ReasonId) {
        if *slot == new {
            return;
        }
        self.hold(new);
        self.release(*slot);
        *slot = new;
    }

    /// Lets go of `*slot` (its message left the queue).
    pub fn clear(&mut self, slot: &mut ReasonId) {
        self.release(*slot);
        *slot = ReasonId::NONE;
    }

    /// Distinct answers held now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    fn intern(&mut self, relay: Option<&str>, text: &str) -> ReasonId {
        let answer: Answer = (relay.map(Arc::from), Arc::from(text));
        if let Some(&i) = self.ids.get(&answer) {
            return ReasonId(i + 1);
        }
        let slot = Some(Slot {
            answer: answer.clone(),
            holders: 0,
        });
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.ids.insert(answer, i);
        // Held by no one yet: the caller assigns it at once.
        ReasonId(i + 1)
    }

    fn hold(&mut self, id: ReasonId) {
        if let Some(Some(s)) =
            id.0.checked_sub(1)
                .and_then(|i| self.slots.get_mut(i as usize))
        {
            s.holders += 1;
        }
    }

    fn release(&mut self, id: ReasonId) {
        let Some(i) = id.0.checked_sub(1) else {
            return;
        };
        let Some(entry) = self.slots.get_mut(i as usize) else {
            return;
        };
        let gone = match entry {
            Some(s) => {
                s.holders = s.holders.saturating_sub(1);
                s.holders == 0
            }
            None => false,
        };
        if gone && let Some(s) = entry.take() {
            self.ids.remove(&s.answer);
            self.free.push(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_is_kept_while_held_and_freed_after() {
        let mut r = Reasons::default();
        let (mut a, mut b) = (ReasonId::NONE, ReasonId::NONE);
        r.set(&mut a, Some("connection refused"));
        r.set(&mut b, Some("connection refused"));
        assert_eq!(a, b, "one text, one number");
        assert_eq!(r.len(), 1);
        r.set(&mut a, Some("timed out"));
        assert_eq!(r.text(a), Some("timed out"));
        assert_eq!(r.text(b), Some("connection refused"));
        r.clear(&mut b);
        assert_eq!(r.len(), 1, "no one holds the first text any more");
        r.clear(&mut a);
        assert_eq!(r.len(), 0);
        assert_eq!(r.text(a), None);
    }

    #[test]
    fn one_text_from_two_servers_is_two_answers() {
        let mut r = Reasons::default();
        let (mut a, mut b, mut c) = (ReasonId::NONE, ReasonId::NONE, ReasonId::NONE);
        r.set_answer(&mut a, Some("mx1[192.0.2.1]:25"), "451 try later");
        r.set_answer(&mut b, Some("mx2[192.0.2.2]:25"), "451 try later");
        r.set_answer(&mut c, Some("mx1[192.0.2.1]:25"), "451 try later");
        assert_ne!(a, b);
        assert_eq!(a, c);
        assert_eq!(r.relay(b), Some("mx2[192.0.2.2]:25"));
        assert_eq!(r.text(b), Some("451 try later"));
        r.set(&mut c, Some("451 try later"));
        assert_eq!(r.relay(c), None, "no server gave it");
        assert_eq!(r.len(), 3);
    }
}
