//! Why messages and recipients wait, each distinct text kept once. A next hop that is down gives
//! the same answer for every message queued for it: a million deferred messages share one string
//! and each holds a 4-byte number, counted so that a text no one holds any more is freed.

use std::collections::HashMap;
use std::sync::Arc;

/// A reason's number; [`ReasonId::NONE`] stands for no reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct ReasonId(u32);

impl ReasonId {
    pub const NONE: ReasonId = ReasonId(0);
}

struct Slot {
    text: Arc<str>,
    holders: u32,
}

/// The interned reasons. Number 0 is no reason; the others index `slots` (minus one).
#[derive(Default)]
pub(super) struct Reasons {
    slots: Vec<Option<Slot>>,
    ids: HashMap<Arc<str>, u32>,
    free: Vec<u32>,
}

impl Reasons {
    pub fn text(&self, id: ReasonId) -> Option<&str> {
        let i = id.0.checked_sub(1)?;
        self.slots
            .get(i as usize)?
            .as_ref()
            .map(|s| s.text.as_ref())
    }

    /// Sets `*slot` to the reason `text` (None: no reason), counting holders.
    pub fn set(&mut self, slot: &mut ReasonId, text: Option<&str>) {
        let new = match text {
            Some(t) => self.intern(t),
            None => ReasonId::NONE,
        };
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

    /// Distinct texts held now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    fn intern(&mut self, text: &str) -> ReasonId {
        if let Some(&i) = self.ids.get(text) {
            return ReasonId(i + 1);
        }
        let text: Arc<str> = Arc::from(text);
        let slot = Some(Slot {
            text: text.clone(),
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
        self.ids.insert(text, i);
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
            self.ids.remove(&s.text);
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
}
