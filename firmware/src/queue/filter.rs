//! Which queued messages an admin means: by queue, sender, recipient, recipient domain, age and
//! the reason they wait. What `postqueue -p | grep`, `postqueue -j | jq` and qshape's domains do
//! on a Postfix box, as one typed selection that list, shape and the bulk actions share.
//!
//! Addresses are not in the queue manager's index, so a filter looks at a [`MessageView`] and the
//! message's [`Envelope`] (which the spool has) together. Only recipients still to deliver count,
//! as in `postqueue -p`: a message whose mail to `a.example` went out is not "mail for a.example".

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::manager::MessageView;
use crate::mail::{Envelope, QueueState};

/// One of Postfix's queues, as an admin names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum QueueName {
    Active,
    Deferred,
    Hold,
}

impl QueueName {
    pub fn of(state: &QueueState) -> QueueName {
        match state {
            QueueState::Active => QueueName::Active,
            QueueState::Deferred { .. } => QueueName::Deferred,
            QueueState::Hold => QueueName::Hold,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::Active => "active",
            QueueName::Deferred => "deferred",
            QueueName::Hold => "hold",
        }
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A queue name that is none of Postern's queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownQueue(pub String);

impl fmt::Display for UnknownQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a queue (active, deferred or hold; incoming mail is not listed until it is committed)",
            self.0
        )
    }
}

impl std::error::Error for UnknownQueue {}

impl FromStr for QueueName {
    type Err = UnknownQueue;
    fn from_str(s: &str) -> Result<QueueName, UnknownQueue> {
        match s.to_ascii_lowercase().as_str() {
            "active" => Ok(QueueName::Active),
            "deferred" => Ok(QueueName::Deferred),
            "hold" => Ok(QueueName::Hold),
            _ => Err(UnknownQueue(s.to_string())),
        }
    }
}

/// A selection of queued messages. Every given criterion must hold; an empty filter selects all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// In one of these queues (none given: any).
    pub queues: Vec<QueueName>,
    /// The sender: an address, or a pattern with `*` (`*@example.com`); `<>` is the null sender.
    pub sender: Option<String>,
    /// A recipient still to deliver: an address or a pattern with `*`.
    pub recipient: Option<String>,
    /// A recipient still to deliver is in this domain or below it.
    pub domain: Option<String>,
    /// At least this old (seconds since arrival).
    pub older_than: Option<u64>,
    /// At most this old.
    pub younger_than: Option<u64>,
    /// Words of the reason it waits (the message's or a recipient's), case-insensitive.
    pub reason: Option<String>,
}

impl Filter {
    /// No criterion at all: every message.
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// Whether the message is selected at `now` (Unix seconds): the whole test on one view, the
    /// reference the batched selection (the manager's candidates, then envelopes) is tested
    /// against.
    #[cfg(test)]
    pub fn matches(&self, view: &MessageView, envelope: &Envelope, now: u64) -> bool {
        self.matches_view(view, now) && self.matches_envelope(view, envelope)
    }

    /// The criteria the queue manager can judge alone (queue, age, reason), on a view: what
    /// [`QueueManager::candidates`](super::QueueManager::candidates) judges on its own entries.
    #[cfg(test)]
    pub fn matches_view(&self, view: &MessageView, now: u64) -> bool {
        self.admits(QueueName::of(&view.state), view.arrival, now)
            && self.reason.as_ref().is_none_or(|_| {
                self.reason_in(view.last_reason.as_deref())
                    || view
                        .recipients
                        .iter()
                        .any(|r| self.reason_in(r.last_reason.as_deref()))
            })
    }

    /// The queue and age criteria, for a message in `queue` that arrived at `arrival`.
    pub fn admits(&self, queue: QueueName, arrival: u64, now: u64) -> bool {
        if !self.queues.is_empty() && !self.queues.contains(&queue) {
            return false;
        }
        let age = now.saturating_sub(arrival);
        !(self.older_than.is_some_and(|t| age < t) || self.younger_than.is_some_and(|t| age > t))
    }

    /// Whether a reason holds the words of `--reason` (true without that criterion).
    pub fn reason_in(&self, reason: Option<&str>) -> bool {
        match &self.reason {
            None => true,
            Some(words) => reason.is_some_and(|r| contains_ignoring_case(r, words)),
        }
    }

    /// Whether only messages with a recipient still to deliver can match.
    pub fn needs_pending(&self) -> bool {
        self.recipient.is_some() || self.domain.is_some()
    }

    /// The criteria on the envelope alone, any recipient counting: a message that fails this
    /// fails [`matches_envelope`](Self::matches_envelope) too, whatever is still to deliver, so
    /// only the others need the queue manager's view.
    pub fn may_match_envelope(&self, envelope: &Envelope) -> bool {
        self.sender_matches(envelope)
            && (!self.needs_pending()
                || (envelope.recipients.iter()).any(|r| self.address_matches(&r.address)))
    }

    fn sender_matches(&self, envelope: &Envelope) -> bool {
        let sender = if envelope.sender.is_empty() {
            "<>"
        } else {
            envelope.sender.as_str()
        };
        self.sender.as_deref().is_none_or(|p| glob(p, sender))
    }

    fn address_matches(&self, addr: &str) -> bool {
        self.recipient.as_deref().is_none_or(|p| glob(p, addr))
            && (self.domain.as_deref()).is_none_or(|d| in_domain(domain_of(addr), d))
    }

    /// The criteria on the envelope: the sender, and a recipient still to deliver.
    pub fn matches_envelope(&self, view: &MessageView, envelope: &Envelope) -> bool {
        self.sender_matches(envelope)
            && (!self.needs_pending()
                || pending_addresses(view, envelope).any(|addr| self.address_matches(addr)))
    }
}

/// Whether `hay` holds `needle`, ASCII case ignored, without lower-casing copies: the queue
/// manager asks this of every message's reasons.
fn contains_ignoring_case(hay: &str, needle: &str) -> bool {
    needle.is_empty()
        || (hay.as_bytes().windows(needle.len())).any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// The addresses of the recipients that are not done yet.
pub fn pending_addresses<'a>(
    view: &'a MessageView,
    envelope: &'a Envelope,
) -> impl Iterator<Item = &'a str> + 'a {
    view.recipients
        .iter()
        .filter(|r| !r.state.is_final())
        .filter_map(|r| envelope.recipients.get(r.index))
        .map(|r| r.address.as_str())
}

/// The domain of an address, lower-case as given (qshape's unit); the whole address when it has
/// no `@` (`postmaster`).
pub fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or(address, |(_, d)| d)
}

fn in_domain(domain: &str, wanted: &str) -> bool {
    let wanted = wanted.trim_start_matches('.').trim_end_matches('.');
    let domain = domain.trim_end_matches('.');
    if domain.eq_ignore_ascii_case(wanted) {
        return true;
    }
    domain.len() > wanted.len()
        && domain
            .get(domain.len() - wanted.len() - 1..)
            .is_some_and(|tail| tail.starts_with('.') && tail[1..].eq_ignore_ascii_case(wanted))
}

/// Case-insensitive match where `*` stands for any run of characters; without `*` the whole
/// text must be equal (an address means that address, not every address containing it).
fn glob(pattern: &str, text: &str) -> bool {
    let p = pattern.to_ascii_lowercase();
    let t = text.to_ascii_lowercase();
    let mut parts = p.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = t.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for m in middle {
        match rest.find(m) {
            Some(i) => rest = &rest[i + m.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::{ClientInfo, Notify, QueueId, Recipient, Transport};
    use crate::queue::{RcptState, RcptView};

    fn envelope(sender: &str, rcpts: &[&str]) -> Envelope {
        let hop: Transport = "smtp:[127.0.0.1]:25".parse().unwrap();
        Envelope {
            sender: sender.into(),
            recipients: rcpts
                .iter()
                .map(|a| Recipient {
                    address: (*a).into(),
                    original: None,
                    orcpt: None,
                    notify: Notify::DEFAULT,
                    next_hop: hop.clone(),
                })
                .collect(),
            ret: None,
            envid: None,
            body_type: Default::default(),
            smtputf8: false,
            arrival: 1000,
            client: ClientInfo::default(),
        }
    }

    fn view(env: &Envelope, state: QueueState, states: &[RcptState]) -> MessageView {
        MessageView {
            qid: QueueId(1),
            arrival: env.arrival,
            size: 10,
            null_sender: env.sender.is_empty(),
            state,
            next_attempt: None,
            attempts: 1,
            last_reason: Some("connect to mx.b.example[192.0.2.1]:25: Connection refused".into()),
            recipients: env
                .recipients
                .iter()
                .enumerate()
                .map(|(index, r)| RcptView {
                    index,
                    next_hop: r.next_hop.clone(),
                    state: states.get(index).copied().unwrap_or(RcptState::Pending),
                    last_reason: None,
                    last_relay: None,
                })
                .collect(),
        }
    }

    #[test]
    fn globs_match_whole_addresses() {
        assert!(glob("Bob@Example.com", "bob@example.com"));
        assert!(!glob("bob@example.com", "jimbob@example.com"));
        assert!(glob("*@example.com", "jimbob@example.com"));
        assert!(glob("*bob*", "jimbob@example.com"));
        assert!(glob("b*@*.com", "bob@example.com"));
        assert!(!glob("b*@*.org", "bob@example.com"));
        assert!(glob("*", ""));
        assert!(!glob("a*a", "a"));
    }

    #[test]
    fn domains_include_subdomains_only_at_a_dot() {
        assert!(in_domain("example.com", "example.com"));
        assert!(in_domain("mx.Example.com", "example.com"));
        assert!(!in_domain("badexample.com", "example.com"));
        assert!(in_domain("example.com.", ".example.com"));
    }

    #[test]
    fn each_criterion_narrows() {
        let env = envelope("alice@a.example", &["x@b.example", "y@c.example"]);
        let deferred = QueueState::Deferred {
            until: 2000,
            reason: "r".into(),
        };
        let v = view(&env, deferred, &[RcptState::Deferred, RcptState::Delivered]);
        let now = 1000 + 3600;
        let all = Filter::default();
        assert!(all.is_empty() && all.matches(&v, &env, now));
        // What the envelope alone rules out, the whole test rules out too.
        let f = |f: Filter| {
            let m = f.matches(&v, &env, now);
            assert!(!m || f.may_match_envelope(&env), "{f:?}");
            m
        };
        assert!(f(Filter {
            queues: vec![QueueName::Deferred],
            ..Filter::default()
        }));
        assert!(!f(Filter {
            queues: vec![QueueName::Hold, QueueName::Active],
            ..Filter::default()
        }));
        assert!(f(Filter {
            sender: Some("*@a.example".into()),
            ..Filter::default()
        }));
        assert!(!f(Filter {
            sender: Some("<>".into()),
            ..Filter::default()
        }));
        assert!(f(Filter {
            domain: Some("b.example".into()),
            ..Filter::default()
        }));
        // c.example's recipient was delivered: the message no longer waits for c.example
        // (though its envelope alone cannot tell).
        let c = Filter {
            domain: Some("c.example".into()),
            ..Filter::default()
        };
        assert!(c.may_match_envelope(&env) && !f(c));
        assert!(
            !Filter {
                domain: Some("d.example".into()),
                sender: Some("*@a.example".into()),
                ..Filter::default()
            }
            .may_match_envelope(&env)
        );
        assert!(!f(Filter {
            recipient: Some("y@c.example".into()),
            ..Filter::default()
        }));
        assert!(!f(Filter {
            recipient: Some("x@b.example".into()),
            domain: Some("c.example".into()),
            ..Filter::default()
        }));
        assert!(f(Filter {
            older_than: Some(3600),
            younger_than: Some(7200),
            ..Filter::default()
        }));
        assert!(!f(Filter {
            older_than: Some(3601),
            ..Filter::default()
        }));
        assert!(!f(Filter {
            younger_than: Some(60),
            ..Filter::default()
        }));
        assert!(f(Filter {
            reason: Some("CONNECTION REFUSED".into()),
            ..Filter::default()
        }));
        assert!(!f(Filter {
            reason: Some("greylisted".into()),
            ..Filter::default()
        }));
    }

    /// The reason match is `to_ascii_lowercase().contains()` without the copies.
    #[test]
    fn reasons_match_ignoring_ascii_case_as_lowercased_copies_would() {
        let cases = [
            ("451 4.7.1 Greylisted", "greylisted"),
            ("451 4.7.1 Greylisted", "GREY"),
            ("connect: Connection refused", "refused x"),
            ("Ünïcode Zeit überschritten", "ZEIT Ü"),
            ("Ünïcode Zeit überschritten", "zeit ü"),
            ("short", "much longer than it"),
            ("anything", ""),
            ("", ""),
        ];
        for (hay, needle) in cases {
            let copies = hay
                .to_ascii_lowercase()
                .contains(&needle.to_ascii_lowercase());
            assert_eq!(
                contains_ignoring_case(hay, needle),
                copies,
                "{hay:?} {needle:?}"
            );
        }
    }

    #[test]
    fn null_sender_is_angle_brackets() {
        let env = envelope("", &["x@b.example"]);
        let v = view(&env, QueueState::Active, &[]);
        let f = Filter {
            sender: Some("<>".into()),
            ..Filter::default()
        };
        assert!(f.matches(&v, &env, 1000));
    }

    #[test]
    fn queue_names_parse_as_admins_write_them() {
        assert_eq!("Deferred".parse(), Ok(QueueName::Deferred));
        assert!("incoming".parse::<QueueName>().is_err());
    }
}
