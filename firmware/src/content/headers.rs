//! Header edits of an accepted message (a spam tag in the Subject, `X-Spam-*` fields, a note that
//! it was not scanned) while its body is already on flash.
//!
//! The header section is held back from the spool ([`HeadSplit`]) into the message's reserved
//! first chunk, and written after the verdict, edited ([`edit`]); the body behind it streams to
//! flash as it arrives. The 250 still waits for the sync of the commit, which comes after the
//! head. A header section longer than [`HEAD_LIMIT`] is not held: it goes to flash as it is, and
//! that message gets no edits.

use super::Accepted;

/// The most header bytes held in RAM per message for editing.
pub const HEAD_LIMIT: usize = 64 * 1024;

/// Splits a message as it streams into its header section (held) and the body after it.
#[derive(Debug, Default)]
pub struct HeadSplit {
    held: Vec<u8>,
    state: State,
}

#[derive(Debug, Default, PartialEq, Eq)]
enum State {
    #[default]
    Holding,
    /// The empty line was seen: `held` is the header section, the empty line included.
    Complete,
    /// Past [`HEAD_LIMIT`]: released unedited.
    Released,
}

/// What to do with a chunk.
#[derive(Debug, PartialEq, Eq)]
pub enum Split<'a> {
    /// Body bytes for the spool (possibly none).
    Body(&'a [u8]),
    /// The header section was too long to hold: write this as the head now, then `rest`.
    Release { head: Vec<u8>, rest: &'a [u8] },
}

impl HeadSplit {
    pub fn feed<'a>(&mut self, chunk: &'a [u8]) -> Split<'a> {
        if self.state != State::Holding {
            return Split::Body(chunk);
        }
        let from = self.held.len().saturating_sub(3);
        let room = HEAD_LIMIT - self.held.len();
        let take = chunk.len().min(room);
        self.held.extend_from_slice(&chunk[..take]);
        if let Some(p) = self.held[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            let end = from + p + 4;
            // The bytes past the empty line came from this chunk: they are body.
            let overshoot = self.held.len() - end;
            self.held.truncate(end);
            self.state = State::Complete;
            return Split::Body(&chunk[take - overshoot..]);
        }
        if take < chunk.len() || self.held.len() == HEAD_LIMIT {
            self.state = State::Released;
            return Split::Release {
                head: std::mem::take(&mut self.held),
                rest: &chunk[take..],
            };
        }
        Split::Body(&[])
    }

    /// The held header section at the end of data, or `None` when it was released early.
    pub fn take_head(&mut self) -> Option<Vec<u8>> {
        match self.state {
            State::Released => None,
            _ => Some(std::mem::take(&mut self.held)),
        }
    }
}

/// `head` (a header section) with the content stage's edits: forged Authentication-Results
/// fields out, new fields on top, the spam tag before the Subject's text (a Subject field is
/// added when there is none).
pub fn edit(head: &[u8], accepted: &Accepted) -> Vec<u8> {
    let stripped;
    let head = match &accepted.strip_auth_results {
        Some(id) => {
            stripped = crate::policy::auth::results::strip_forged(head, id);
            &stripped[..]
        }
        None => head,
    };
    let mut out = Vec::with_capacity(head.len() + 256);
    for field in &accepted.headers {
        out.extend_from_slice(field.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let Some(tag) = &accepted.subject_tag else {
        out.extend_from_slice(head);
        return out;
    };
    match subject_value_at(head) {
        Some(at) => {
            out.extend_from_slice(&head[..at]);
            out.extend_from_slice(tag.as_bytes());
            out.push(b' ');
            out.extend_from_slice(&head[at..]);
        }
        None => {
            out.extend_from_slice(format!("Subject: {tag}\r\n").as_bytes());
            out.extend_from_slice(head);
        }
    }
    out
}

/// Where the text of the first Subject field starts (after `Subject:` and its blanks).
fn subject_value_at(head: &[u8]) -> Option<usize> {
    const NAME: &[u8] = b"subject:";
    let mut start = 0;
    while start < head.len() {
        let line_end = head[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(head.len(), |p| start + p + 1);
        let line = &head[start..line_end];
        if matches!(line, b"\r\n" | b"\n") {
            return None;
        }
        if line.len() >= NAME.len() && line[..NAME.len()].eq_ignore_ascii_case(NAME) {
            let blanks = line[NAME.len()..]
                .iter()
                .take_while(|&&b| b == b' ' || b == b'\t')
                .count();
            return Some(start + NAME.len() + blanks);
        }
        start = line_end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split_all(msg: &[u8], at: usize) -> (Option<Vec<u8>>, Vec<u8>) {
        let mut s = HeadSplit::default();
        let mut body = Vec::new();
        let mut released = None;
        for piece in [&msg[..at], &msg[at..]] {
            match s.feed(piece) {
                Split::Body(b) => body.extend_from_slice(b),
                Split::Release { head, rest } => {
                    released = Some(head);
                    body.extend_from_slice(rest);
                }
            }
        }
        (released.or_else(|| s.take_head()), body)
    }

    #[test]
    fn the_header_section_is_held_wherever_the_chunks_split() {
        let msg = b"Received: x\r\nSubject: hi\r\n\r\nbody\r\n\r\nmore\r\n";
        for at in 0..=msg.len() {
            let (head, body) = split_all(msg, at);
            assert_eq!(head.as_deref(), Some(&msg[..28]), "split at {at}");
            assert_eq!(body, &msg[28..], "split at {at}");
        }
        let (head, body) = split_all(b"Subject: no body", 5);
        assert_eq!(
            (head.as_deref(), body.len()),
            (Some(&b"Subject: no body"[..]), 0)
        );
    }

    #[test]
    fn a_huge_header_section_is_released_unedited() {
        let mut msg = b"X-Long: ".to_vec();
        msg.extend(vec![b'a'; HEAD_LIMIT + 10]);
        msg.extend_from_slice(b"\r\n\r\nbody");
        let mut s = HeadSplit::default();
        let Split::Release { head, rest } = s.feed(&msg) else {
            panic!("not released");
        };
        assert_eq!(head.len(), HEAD_LIMIT);
        assert_eq!([&head[..], rest].concat(), msg);
        assert_eq!(s.feed(b"x"), Split::Body(b"x"));
        assert_eq!(s.take_head(), None);
    }

    #[test]
    fn edits_add_fields_and_tag_the_subject() {
        let accepted = Accepted {
            headers: vec!["X-Spam-Flag: YES".into()],
            subject_tag: Some("[SPAM]".into()),
            ..Accepted::default()
        };
        let head = b"From: a\r\nsubject:   Cheap pills\r\n\r\n";
        assert_eq!(
            edit(head, &accepted),
            b"X-Spam-Flag: YES\r\nFrom: a\r\nsubject:   [SPAM] Cheap pills\r\n\r\n"
        );
        assert_eq!(
            edit(b"From: a\r\n\r\n", &accepted),
            b"X-Spam-Flag: YES\r\nSubject: [SPAM]\r\nFrom: a\r\n\r\n"
        );
        // A Subject in the body is not the message's.
        let body_subject = b"From: a\r\n\r\nSubject: x\r\n";
        assert!(
            edit(body_subject, &accepted).starts_with(b"X-Spam-Flag: YES\r\nSubject: [SPAM]\r\n")
        );
        assert_eq!(edit(head, &Accepted::default()), head);
    }

    proptest! {
        #[test]
        fn splitting_never_loses_or_reorders_bytes(
            msg in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..400),
            at in 0usize..400,
        ) {
            let at = at.min(msg.len());
            let (head, body) = split_all(&msg, at);
            prop_assert_eq!([head.unwrap_or_default(), body].concat(), msg);
        }
    }
}
