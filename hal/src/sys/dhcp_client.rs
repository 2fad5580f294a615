//! The DHCPv4 client's states (RFC 2131 4.4), sans-IO: the caller passes the time and the frames
//! that arrived, sends the frames this returns, and applies the events. It never reads a clock,
//! so tests drive a lease's whole life (renewal, rebinding, expiry) in microseconds.
//!
//! SELECTING broadcasts DISCOVERs (4 s, doubling to 64 s) until an OFFER comes; REQUESTING
//! broadcasts the REQUEST for it (three retransmissions, then SELECTING again); BOUND waits for
//! T1; RENEWING unicasts REQUESTs with `ciaddr` to the server that gave the lease; at T2
//! REBINDING broadcasts them to any server; at the lease's end the address is lost and the client
//! is back in SELECTING. Retransmissions in RENEWING and REBINDING come after half the time left
//! until T2 or the end, at least 60 s apart (4.4.5). A NAK while renewing loses the lease at once.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::dhcp::{Destination, Lease, MessageType, Outgoing, Reply, parse};

/// The first wait for an answer in SELECTING and REQUESTING, doubled after each try (RFC 2131
/// 4.1), up to [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_secs(4);
const MAX_WAIT: Duration = Duration::from_secs(64);
/// REQUESTs sent for one OFFER before starting over with a DISCOVER.
const REQUEST_TRIES: u32 = 4;
/// The least time between two REQUESTs when renewing or rebinding (RFC 2131 4.4.5).
const MIN_RENEW_WAIT: Duration = Duration::from_secs(60);

/// Where the client is, for the status screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Selecting,
    Requesting,
    Bound,
    Renewing,
    Rebinding,
}

/// Why a lease was lost (its address must come off the interface).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// It ran out with no server renewing it.
    Expired,
    /// The server refused to renew it (DHCPNAK).
    Refused,
}

/// What the caller has to do besides sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A lease is new, or a renewal changed its address, prefix, gateway or DNS: apply it.
    Bound(Lease),
    /// A renewal only extended the lease.
    Extended(Lease),
    /// The lease is gone: remove its address.
    Lost(Loss),
}

/// The result of a poll or a received frame.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// An Ethernet frame to send.
    pub frame: Option<Vec<u8>>,
    pub event: Option<Event>,
}

/// A lease being kept, with what renewing it needs.
#[derive(Debug, Clone)]
struct Held {
    lease: Lease,
    /// Where the ACK came from: renewals are unicast there.
    server_mac: [u8; 6],
    /// When the REQUEST that got it was first sent: the lease's times count from there.
    start: Instant,
}

impl Held {
    fn at(&self, after: Option<Duration>) -> Option<Instant> {
        after.and_then(|d| self.start.checked_add(d))
    }
    fn t1(&self) -> Option<Instant> {
        self.at(self.lease.renew_after())
    }
    fn t2(&self) -> Option<Instant> {
        self.at(self.lease.rebind_after())
    }
    fn end(&self) -> Option<Instant> {
        self.at(self.lease.duration())
    }
}

#[derive(Debug, Clone)]
enum State {
    Selecting {
        tries: u32,
    },
    Requesting {
        offered: Ipv4Addr,
        server: Ipv4Addr,
        asked_at: Instant,
        tries: u32,
    },
    Bound(Held),
    Renewing {
        held: Held,
        asked_at: Instant,
    },
    Rebinding {
        held: Held,
        asked_at: Instant,
    },
}

/// The DHCP client of one interface.
#[derive(Debug, Clone)]
pub struct DhcpClient {
    mac: [u8; 6],
    /// The state of the transaction-id generator (xorshift).
    xid_state: u32,
    xid: u32,
    /// An address to ask for in DISCOVERs (the last lease's).
    wanted: Option<Ipv4Addr>,
    state: State,
    /// When the next (re)transmission is due.
    next_send: Instant,
}

impl DhcpClient {
    /// A client in SELECTING that sends its first DISCOVER at the first poll. `seed` makes the
    /// transaction ids (random, so two boxes booting together do not take each other's replies).
    pub fn new(mac: [u8; 6], seed: u32, wanted: Option<Ipv4Addr>, now: Instant) -> DhcpClient {
        let mut c = DhcpClient {
            mac,
            xid_state: seed | 1,
            xid: 0,
            wanted,
            state: State::Selecting { tries: 0 },
            next_send: now,
        };
        c.new_xid();
        c
    }

    pub fn phase(&self) -> Phase {
        match self.state {
            State::Selecting { .. } => Phase::Selecting,
            State::Requesting { .. } => Phase::Requesting,
            State::Bound(_) => Phase::Bound,
            State::Renewing { .. } => Phase::Renewing,
            State::Rebinding { .. } => Phase::Rebinding,
        }
    }

    /// The lease held (bound, renewing or rebinding).
    pub fn lease(&self) -> Option<&Lease> {
        self.held().map(|h| &h.lease)
    }

    /// When the lease is next renewed (T1) or, once renewing, rebound (T2) or lost.
    pub fn next_deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Bound(h) => h.t1(),
            State::Renewing { held, .. } => held.t2(),
            State::Rebinding { held, .. } => held.end(),
            _ => None,
        }
    }

    /// When [`poll`](Self::poll) has something to do; None: only a frame can change anything
    /// (an infinite lease).
    pub fn poll_at(&self) -> Option<Instant> {
        match &self.state {
            State::Selecting { .. } | State::Requesting { .. } => Some(self.next_send),
            State::Bound(h) => h.t1(),
            State::Renewing { .. } | State::Rebinding { .. } => {
                let deadline = self.next_deadline();
                Some(deadline.map_or(self.next_send, |d| d.min(self.next_send)))
            }
        }
    }

    /// Does what is due at `now`: a (re)transmission, or moving on at T1, T2 or the lease's end.
    pub fn poll(&mut self, now: Instant) -> Output {
        if let Some(held) = self.held().cloned()
            && held.end().is_some_and(|end| now >= end)
        {
            self.wanted = Some(held.lease.address);
            self.restart(now);
            return Output {
                frame: Some(self.discover(now)),
                event: Some(Event::Lost(Loss::Expired)),
            };
        }
        let state = self.state.clone();
        let frame = match state {
            State::Selecting { .. } if now >= self.next_send => self.discover(now),
            State::Requesting { tries, .. } if now >= self.next_send && tries >= REQUEST_TRIES => {
                self.restart(now);
                self.discover(now)
            }
            State::Requesting {
                offered,
                server,
                asked_at,
                tries,
            } if now >= self.next_send => {
                self.state = State::Requesting {
                    offered,
                    server,
                    asked_at,
                    tries: tries + 1,
                };
                self.next_send = now + backoff(tries);
                self.select_request(offered, server)
            }
            State::Bound(held) if held.t1().is_some_and(|t1| now >= t1) => {
                self.new_xid();
                self.state = State::Renewing {
                    held: held.clone(),
                    asked_at: now,
                };
                self.renew_request(&held, now)
            }
            State::Renewing { held, .. } if held.t2().is_some_and(|t2| now >= t2) => {
                self.new_xid();
                self.state = State::Rebinding {
                    held: held.clone(),
                    asked_at: now,
                };
                self.renew_request(&held, now)
            }
            State::Renewing { held, .. } | State::Rebinding { held, .. }
                if now >= self.next_send =>
            {
                self.renew_request(&held, now)
            }
            _ => return Output::default(),
        };
        Output {
            frame: Some(frame),
            event: None,
        }
    }

    /// Reads one received Ethernet frame.
    pub fn receive(&mut self, now: Instant, frame: &[u8]) -> Output {
        let Some(reply) = parse(frame) else {
            return Output::default();
        };
        if reply.xid != self.xid || reply.client_mac != self.mac {
            return Output::default();
        }
        let state = self.state.clone();
        match (state, reply.kind) {
            (State::Selecting { .. }, MessageType::Offer) => {
                let (Some(server), offered) = (reply.server_id, reply.your_ip) else {
                    return Output::default();
                };
                if offered.is_unspecified() {
                    return Output::default();
                }
                self.state = State::Requesting {
                    offered,
                    server,
                    asked_at: now,
                    tries: 1,
                };
                self.next_send = now + FIRST_WAIT;
                Output {
                    frame: Some(self.select_request(offered, server)),
                    event: None,
                }
            }
            (
                State::Requesting {
                    offered,
                    server,
                    asked_at,
                    ..
                },
                MessageType::Ack,
            ) if reply.your_ip == offered => match reply.lease(offered, server, None) {
                Some(lease) => self.bind(&reply, lease, asked_at, Event::Bound),
                None => Output::default(),
            },
            (State::Requesting { .. }, MessageType::Nak) => {
                self.wanted = None;
                self.restart(now);
                Output::default()
            }
            (
                State::Renewing { held, asked_at } | State::Rebinding { held, asked_at },
                MessageType::Ack,
            ) => {
                let old = &held.lease;
                // Servers echo ciaddr in yiaddr or leave it empty; another address is a change.
                let address = Some(reply.your_ip)
                    .filter(|a| !a.is_unspecified())
                    .unwrap_or(old.address);
                match reply.lease(address, old.server, Some(old.prefix_len)) {
                    Some(lease) if lease.same_network(old) => {
                        self.bind(&reply, lease, asked_at, Event::Extended)
                    }
                    Some(lease) => self.bind(&reply, lease, asked_at, Event::Bound),
                    None => Output::default(),
                }
            }
            (State::Renewing { .. } | State::Rebinding { .. }, MessageType::Nak) => {
                self.wanted = None;
                self.restart(now);
                Output {
                    frame: None,
                    event: Some(Event::Lost(Loss::Refused)),
                }
            }
            _ => Output::default(),
        }
    }

    fn held(&self) -> Option<&Held> {
        match &self.state {
            State::Bound(h)
            | State::Renewing { held: h, .. }
            | State::Rebinding { held: h, .. } => Some(h),
            _ => None,
        }
    }

    fn bind(
        &mut self,
        reply: &Reply,
        lease: Lease,
        start: Instant,
        event: fn(Lease) -> Event,
    ) -> Output {
        self.wanted = Some(lease.address);
        self.state = State::Bound(Held {
            lease: lease.clone(),
            server_mac: reply.source_mac,
            start,
        });
        Output {
            frame: None,
            event: Some(event(lease)),
        }
    }

    /// Back to SELECTING with a new transaction, its DISCOVER due now.
    fn restart(&mut self, now: Instant) {
        self.new_xid();
        self.state = State::Selecting { tries: 0 };
        self.next_send = now;
    }

    fn discover(&mut self, now: Instant) -> Vec<u8> {
        let tries = match self.state {
            State::Selecting { tries } => tries,
            _ => 0,
        };
        self.state = State::Selecting { tries: tries + 1 };
        self.next_send = now + backoff(tries);
        self.message(MessageType::Discover, self.wanted, None)
    }

    /// The REQUEST for an offer (SELECTING's, broadcast so every server learns which offer won).
    fn select_request(&self, offered: Ipv4Addr, server: Ipv4Addr) -> Vec<u8> {
        self.message(MessageType::Request, Some(offered), Some(server))
    }

    /// The REQUEST of RENEWING (unicast to the lease's server) or REBINDING (broadcast): ciaddr
    /// set, no requested address or server identifier (RFC 2131 table 5), and the next try after
    /// half the time left until T2 or the end, at least a minute later.
    fn renew_request(&mut self, held: &Held, now: Instant) -> Vec<u8> {
        let (to, until) = match self.state {
            State::Renewing { .. } => (
                Destination::Unicast {
                    ip: held.lease.server,
                    mac: held.server_mac,
                },
                held.t2(),
            ),
            _ => (Destination::Broadcast, held.end()),
        };
        let half_left = until.map_or(MIN_RENEW_WAIT, |u| u.saturating_duration_since(now) / 2);
        let next = now + half_left.max(MIN_RENEW_WAIT);
        self.next_send = until.map_or(next, |u| next.min(u));
        Outgoing {
            kind: MessageType::Request,
            xid: self.xid,
            client_ip: held.lease.address,
            requested_ip: None,
            server_id: None,
            broadcast_reply: false,
            to,
        }
        .frame(self.mac)
    }

    fn message(
        &self,
        kind: MessageType,
        requested_ip: Option<Ipv4Addr>,
        server_id: Option<Ipv4Addr>,
    ) -> Vec<u8> {
        Outgoing {
            kind,
            xid: self.xid,
            client_ip: Ipv4Addr::UNSPECIFIED,
            requested_ip,
            server_id,
            broadcast_reply: true,
            to: Destination::Broadcast,
        }
        .frame(self.mac)
    }

    fn new_xid(&mut self) {
        let mut x = self.xid_state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.xid_state = x;
        self.xid = x;
    }
}

/// The wait after the `tries`-th transmission (counting from 0): 4, 8, 16, 32, 64, 64 ... s.
fn backoff(tries: u32) -> Duration {
    FIRST_WAIT.saturating_mul(1 << tries.min(4)).min(MAX_WAIT)
}

#[cfg(test)]
#[path = "dhcp_client_tests.rs"]
mod tests;
