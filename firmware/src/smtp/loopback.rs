//! A scripted peer for the server session that plays router, spool and authenticator in memory:
//! the one harness behind the unit tests, the proptests, the fuzz targets and the benchmark.
//!
//! Its rules: recipients starting with `nobody` are refused with `550 5.1.1`, every other gets an
//! LMTP next hop; the password `secret` is right for every user; messages are kept in RAM and get
//! queue ids 1, 2, 3... A STARTTLS succeeds at once, as if a handshake had run.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use super::{Config, Event, Session, TlsInfo};
use crate::mail::{Envelope, Host, Protocol, QueueId, Reply, Transport};

/// A session and the in-memory world around it.
#[derive(Debug)]
pub struct Loopback {
    pub session: Session,
    /// The time given to the session; tests move it forward.
    pub now: Instant,
    /// Everything written to the client.
    pub wire: Vec<u8>,
    /// Events in order, adjacent data chunks merged (their split depends on how the input was
    /// chunked, not on what it meant).
    pub events: Vec<Event>,
    /// The message being received.
    pub open: Option<(Envelope, Vec<u8>)>,
    /// Committed messages: the spool.
    pub stored: Vec<(Envelope, Vec<u8>)>,
    /// The answer to the next begin, when it should fail (e.g. a full spool).
    pub begin_error: Option<Reply>,
    /// Record events (off for benchmarks).
    pub record: bool,
}

/// The TLS parameters the loopback claims.
pub fn tls13() -> TlsInfo {
    TlsInfo {
        version: "TLSv1.3".into(),
        cipher: "TLS_AES_256_GCM_SHA384".into(),
        bits: 256,
    }
}

impl Loopback {
    /// A session from 192.0.2.7, encrypted from the start when `tls` is given (port 465).
    pub fn new(config: Config, tls: Option<TlsInfo>) -> Loopback {
        let now = Instant::now();
        let addr: IpAddr = IpAddr::from([192, 0, 2, 7]);
        let session = Session::new(Arc::new(config), Some(addr), tls, now);
        let mut l = Loopback {
            session,
            now,
            wire: Vec::new(),
            events: Vec::new(),
            open: None,
            stored: Vec::new(),
            begin_error: None,
            record: true,
        };
        l.pump();
        l
    }

    /// Feeds `bytes`, answers every question, and returns what the server wrote meanwhile.
    pub fn send(&mut self, bytes: &[u8]) -> String {
        let before = self.wire.len();
        self.session.feed(bytes, self.now);
        self.pump();
        String::from_utf8_lossy(self.wire.get(before..).unwrap_or_default()).into_owned()
    }

    /// Feeds `input` split at the given offsets (taken modulo its length, in any order).
    pub fn send_chunked(&mut self, input: &[u8], cuts: &[usize]) {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut start = 0;
        for cut in cuts.into_iter().chain([input.len()]) {
            if cut > start {
                self.send(input.get(start..cut).unwrap_or_default());
                start = cut;
            }
        }
    }

    /// The events with the data of aborted messages left out: what a spool keeps of them. How
    /// much of a refused message was streamed before its abort depends on how the input was
    /// chunked (see [`Event`]); nothing else in the event stream may.
    pub fn kept_events(&self) -> Vec<Event> {
        let mut kept: Vec<Event> = Vec::with_capacity(self.events.len());
        let mut begun = 0;
        for ev in &self.events {
            match ev {
                Event::MessageBegin(_) => begun = kept.len(),
                Event::MessageAbort => {
                    let message = kept.split_off(begun.min(kept.len()));
                    kept.extend(
                        message
                            .into_iter()
                            .filter(|e| !matches!(e, Event::MessageData(_))),
                    );
                }
                _ => {}
            }
            kept.push(ev.clone());
        }
        kept
    }

    /// Panics unless the events keep the contract documented on [`Event`]: data only inside an
    /// open message, each message ended or aborted once, and never more data than `max_size`.
    /// Assumes every begin was answered Ok (no `begin_error`).
    pub fn assert_event_contract(&self, max_size: u64) {
        let mut open: Option<u64> = None;
        for (n, ev) in self.events.iter().enumerate() {
            match (ev, open.as_mut()) {
                (Event::MessageBegin(_), None) => open = Some(0),
                (Event::MessageData(d), Some(size)) => {
                    *size += d.len() as u64;
                    assert!(*size <= max_size, "event {n}: {size} bytes over {max_size}");
                }
                (Event::MessageEnd | Event::MessageAbort, Some(_)) => open = None,
                (
                    Event::MessageBegin(_)
                    | Event::MessageData(_)
                    | Event::MessageEnd
                    | Event::MessageAbort,
                    _,
                ) => panic!("event {n} out of order: {ev:?}"),
                _ => {}
            }
        }
    }

    /// Everything written so far, as text.
    pub fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.wire).into_owned()
    }

    /// Answers events until the session has no more questions.
    pub fn pump(&mut self) {
        loop {
            self.wire.extend(self.session.take_output());
            let Some(ev) = self.session.poll_event() else {
                break;
            };
            if self.record {
                match (&ev, self.events.last_mut()) {
                    (Event::MessageData(more), Some(Event::MessageData(prev))) => {
                        prev.extend_from_slice(more)
                    }
                    _ => self.events.push(ev.clone()),
                }
            }
            self.answer(ev);
        }
    }

    fn answer(&mut self, ev: Event) {
        let now = self.now;
        match ev {
            Event::CheckSender => self.session.answer_sender(Ok(()), now),
            Event::CheckRecipient(q) => {
                let verdict = if q.address.starts_with("nobody") {
                    Err(Reply::new(550, [5, 1, 1], "User unknown"))
                } else {
                    Ok(Transport {
                        protocol: Protocol::Lmtp,
                        host: Host::Name("mailbox.example.com".into()),
                        port: 7025,
                        mx: false,
                    })
                };
                self.session.answer_recipient(verdict, now);
            }
            Event::Authenticate { password, .. } => {
                self.session.answer_auth(password.expose() == "secret", now)
            }
            Event::StartTls => {
                self.wire.extend(self.session.take_output());
                self.session.tls_established(tls13(), now);
            }
            Event::MessageBegin(env) => match self.begin_error.take() {
                Some(r) => self.session.answer_begin(Err(r), now),
                None => {
                    self.open = Some((*env, Vec::new()));
                    self.session.answer_begin(Ok(()), now);
                }
            },
            Event::MessageData(d) => {
                if let Some((_, body)) = self.open.as_mut() {
                    body.extend_from_slice(&d);
                }
            }
            Event::MessageEnd => match self.open.take() {
                Some(msg) => {
                    self.stored.push(msg);
                    let qid = QueueId(self.stored.len() as u64);
                    self.session.answer_commit(Ok(qid), now);
                }
                None => self.session.answer_commit(
                    Err(Reply::new(451, [4, 3, 0], "Error: no message open")),
                    now,
                ),
            },
            Event::MessageAbort => self.open = None,
        }
    }
}
