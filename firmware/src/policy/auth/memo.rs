//! SPF answers kept for a few minutes per (client address, HELO, sender): a transaction asks at
//! every RCPT and again at the end of data, and must get one answer, with one set of lookups.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::spf::SpfCheck;

/// How long an answer is reused: longer than any transaction the session timeouts allow.
const KEEP: Duration = Duration::from_secs(600);
/// At most this many answers are kept; past it the expired go, then all.
const MAX: usize = 4096;

pub type Key = (IpAddr, String, String);

#[derive(Default)]
pub struct SpfMemo {
    answers: HashMap<Key, (Instant, Arc<SpfCheck>)>,
}

impl SpfMemo {
    pub fn get(&self, key: &Key, now: Instant) -> Option<Arc<SpfCheck>> {
        let (at, check) = self.answers.get(key)?;
        (now.duration_since(*at) < KEEP).then(|| check.clone())
    }

    pub fn put(&mut self, key: Key, check: Arc<SpfCheck>, now: Instant) {
        if self.answers.len() >= MAX {
            self.answers
                .retain(|_, (at, _)| now.duration_since(*at) < KEEP);
            if self.answers.len() >= MAX {
                self.answers.clear();
            }
        }
        self.answers.insert(key, (now, check));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_auth::{SpfOutput, SpfResult};

    #[test]
    fn answers_expire_and_the_memo_stays_bounded() {
        let check = Arc::new(SpfCheck::new(
            SpfOutput::new("example.com".into()).with_result(SpfResult::Pass),
            false,
        ));
        let mut m = SpfMemo::default();
        let t0 = Instant::now();
        let key = |i: usize| -> Key { ("192.0.2.1".parse().unwrap(), "h".into(), i.to_string()) };
        m.put(key(0), check.clone(), t0);
        assert!(m.get(&key(0), t0 + Duration::from_secs(5)).is_some());
        assert!(m.get(&key(0), t0 + KEEP).is_none());
        for i in 1..=MAX + 10 {
            m.put(key(i), check.clone(), t0);
        }
        assert!(m.answers.len() <= MAX);
    }
}
