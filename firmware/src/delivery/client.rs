//! The delivery client: next hop in, per-recipient results out. Resolves the next hop, tries its
//! addresses in order, keeps idle connections per next hop for reuse, and times each phase for
//! the log's `delays=`.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::RootCertStore;
use tokio::time::Instant;

use super::open_error::{LOOPS_BACK, OpenError};
use super::resolve::{Dns, HickoryDns, Target, targets};
use super::session::{Connection, Timeouts, TlsSetup};
use super::tls::{TlsPolicy, connector};
use super::transaction::{Transaction, TxOutcome};
use crate::mail::Transport;
use crate::queue::{Attempt, AttemptReport, Deliverer, DeliveryRequest, RcptResult};
use crate::route::loops_back_to_myself;

/// Settings of the delivery client.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// This box's name, said in EHLO/LHLO (Postfix's smtp_helo_name, `myhostname`).
    pub helo_name: String,
    pub timeouts: Timeouts,
    /// smtp_tls_security_level.
    pub tls_policy: TlsPolicy,
    /// Roots for `TlsPolicy::Verify`.
    pub tls_roots: Option<Arc<RootCertStore>>,
    /// How long an idle connection is kept for reuse (smtp_connection_cache_time_limit).
    pub reuse_time_limit: Duration,
    /// Idle connections kept per next hop.
    pub reuse_per_destination: usize,
    /// This box's own SMTP listeners (as bound). A next hop address that is one of them is this
    /// box itself: "mail loops back to myself", bounced without connecting. A wildcard listener
    /// (`0.0.0.0:25`) stands for every local address on its port.
    pub own_listeners: Vec<SocketAddr>,
}

impl ClientSettings {
    pub fn new(helo_name: &str) -> ClientSettings {
        ClientSettings {
            helo_name: helo_name.to_string(),
            timeouts: Timeouts::default(),
            tls_policy: TlsPolicy::May,
            tls_roots: None,
            reuse_time_limit: Duration::from_secs(2),
            // As many as the queue runs in parallel to one next hop (Postfix's
            // default_destination_concurrency_limit): with fewer, a busy relay opens a new
            // connection for most messages and closes another one that was just freed.
            reuse_per_destination: 20,
            own_listeners: Vec::new(),
        }
    }
}

/// SMTP and LMTP delivery. Cheap to share (`Arc<Client>`) between concurrent jobs.
pub struct Client<D: Dns = HickoryDns> {
    settings: ClientSettings,
    dns: D,
    tls: TlsSetup,
    idle: Mutex<HashMap<Transport, Vec<Connection>>>,
}

impl<D: Dns> Client<D> {
    pub fn new(settings: ClientSettings, dns: D) -> Client<D> {
        let tls = TlsSetup {
            policy: settings.tls_policy,
            connector: connector(settings.tls_policy, settings.tls_roots.clone()),
        };
        Client {
            settings,
            dns,
            tls,
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// Idle connections held now (all next hops).
    pub fn idle_connections(&self) -> usize {
        self.idle
            .lock()
            .map(|m| m.values().map(Vec::len).sum())
            .unwrap_or(0)
    }

    /// Deliver one job. Never fails as a whole: every recipient gets a result.
    pub async fn deliver(&self, req: DeliveryRequest<'_>) -> Attempt {
        let started = Instant::now();
        let addrs = addresses(&req);
        let tx = Transaction {
            sender: &req.envelope.sender,
            recipients: &addrs,
            body: req.body,
            body_type: req.envelope.body_type,
            smtputf8: req.envelope.smtputf8,
            dsn: Some(req.envelope),
        };
        let t = &self.settings.timeouts;

        // A cached connection first; if it went stale, fall through to a fresh one.
        if let Some(mut conn) = self.take_idle(req.next_hop) {
            let setup = started.elapsed();
            if let Some(out) = conn.send_mail_reused(&tx, t).await {
                return self.finish(req, conn, out, setup, started, &addrs);
            }
        }
        let targets = match targets(&self.dns, req.next_hop).await {
            Ok(ts) => ts,
            Err(e) => {
                let result = if e.permanent() {
                    RcptResult::Bounced {
                        status: e.status(),
                        diagnostic: format!("X-Postern; {e}"),
                        remote_mta: None,
                    }
                } else {
                    RcptResult::Deferred {
                        status: e.status(),
                        reason: e.to_string(),
                    }
                };
                return no_conversation(&req, &addrs, result, !e.permanent(), started);
            }
        };
        // Postfix's smtp_truncate_self: addresses from the first one that is this box on are no
        // better than this box, so handing the mail to them could only bring it back here. Better
        // preferred ones before it are still tried; if this box is the best, the mail loops.
        let targets = match targets.iter().position(|t| self.is_myself(t)) {
            Some(0) => return self.loops_back(req, &addrs, started),
            Some(n) => targets.get(..n).unwrap_or_default().to_vec(),
            None => targets,
        };
        self.try_targets(req, &targets, &tx, started).await
    }

    /// Each address in turn until one takes a conversation; under `may`, one whose TLS
    /// handshake failed is tried again in clear.
    async fn try_targets(
        &self,
        req: DeliveryRequest<'_>,
        targets: &[Target],
        tx: &Transaction<'_>,
        started: Instant,
    ) -> Attempt {
        let t = &self.settings.timeouts;
        let clear = TlsSetup {
            policy: TlsPolicy::None,
            connector: None,
        };
        let mut last = OpenError::NoAddress;
        for target in targets {
            let mut opened = self.open(req, target, &self.tls).await;
            if matches!(&opened, Err(e) if e.tls_failed() && self.tls.policy == TlsPolicy::May) {
                opened = self.open(req, target, &clear).await;
            }
            match opened {
                Ok(mut conn) => {
                    let setup = started.elapsed();
                    let out = conn.send_mail(tx, t).await;
                    return self.finish(req, conn, out, setup, started, tx.recipients);
                }
                Err(e) if e.loops_back() => return self.loops_back(req, tx.recipients, started),
                Err(e) => last = e,
            }
        }
        // No address would take a conversation: the whole destination is down.
        let result = RcptResult::Deferred {
            status: last.status(),
            reason: last.to_string(),
        };
        no_conversation(&req, tx.recipients, result, true, started)
    }

    async fn open(
        &self,
        req: DeliveryRequest<'_>,
        target: &Target,
        tls: &TlsSetup,
    ) -> Result<Connection, OpenError> {
        let helo = &self.settings.helo_name;
        let t = &self.settings.timeouts;
        Connection::open(target, req.next_hop.protocol, helo, tls, t).await
    }

    /// Whether `target` is one of this box's own listeners.
    fn is_myself(&self, target: &Target) -> bool {
        let peer = SocketAddr::new(target.ip, target.port);
        let listeners = &self.settings.own_listeners;
        let wildcard = listeners
            .iter()
            .any(|l| l.port() == peer.port() && l.ip().is_unspecified());
        let own: Vec<IpAddr> = if wildcard && is_local_address(target.ip) {
            vec![target.ip]
        } else {
            Vec::new()
        };
        loops_back_to_myself(peer, listeners, &own)
    }

    /// Every recipient bounces with 5.4.6: the next hop is this box (Postfix: "mail for ...
    /// loops back to myself"). Retrying cannot help until the configuration changes.
    fn loops_back(
        &self,
        req: DeliveryRequest<'_>,
        addrs: &[(usize, &str)],
        started: Instant,
    ) -> Attempt {
        let host = &req.next_hop.host;
        let result = RcptResult::Bounced {
            status: LOOPS_BACK,
            diagnostic: format!("X-Postern; mail for {host} loops back to myself"),
            remote_mta: None,
        };
        no_conversation(&req, addrs, result, false, started)
    }

    fn finish(
        &self,
        req: DeliveryRequest<'_>,
        conn: Connection,
        out: TxOutcome,
        setup: Duration,
        started: Instant,
        addrs: &[(usize, &str)],
    ) -> Attempt {
        let relay = conn.relay();
        let mut results = match out {
            Ok(r) => {
                self.put_idle(req.next_hop, conn);
                r
            }
            Err((e, mut done)) => {
                let reason = e.to_string();
                for (i, _) in addrs {
                    if !done.iter().any(|(d, _)| d == i) {
                        done.push((
                            *i,
                            RcptResult::Deferred {
                                status: e.status(),
                                reason: reason.clone(),
                            },
                        ));
                    }
                }
                done
            }
        };
        results.sort_by_key(|(i, _)| *i);
        Attempt {
            report: AttemptReport {
                qid: req.qid,
                next_hop: req.next_hop.clone(),
                results,
                destination_failed: false,
            },
            relay: Some(relay),
            connection_time: setup,
            transmission_time: started.elapsed().saturating_sub(setup),
        }
    }

    /// Say QUIT on cached connections idle longer than `reuse_time_limit` and drop them, so
    /// remote servers are not held open by a quiet queue. Call now and then.
    pub async fn close_idle(&self) {
        let limit = self.settings.reuse_time_limit;
        let now = Instant::now();
        let stale: Vec<Connection> = match self.idle.lock() {
            Ok(mut map) => {
                let mut out = Vec::new();
                for list in map.values_mut() {
                    let (old, keep): (Vec<Connection>, Vec<Connection>) = list
                        .drain(..)
                        .partition(|c| now.duration_since(c.idle_since) >= limit);
                    *list = keep;
                    out.extend(old);
                }
                map.retain(|_, l| !l.is_empty());
                out
            }
            Err(_) => Vec::new(),
        };
        for mut c in stale {
            c.quit(&self.settings.timeouts).await;
        }
    }

    fn take_idle(&self, hop: &Transport) -> Option<Connection> {
        let limit = self.settings.reuse_time_limit;
        let now = Instant::now();
        let mut map = self.idle.lock().ok()?;
        let list = map.get_mut(hop)?;
        list.retain(|c| now.duration_since(c.idle_since) < limit);
        let c = list.pop();
        if list.is_empty() {
            map.remove(hop);
        }
        c
    }

    fn put_idle(&self, hop: &Transport, mut conn: Connection) {
        if self.settings.reuse_time_limit.is_zero() {
            return;
        }
        // One reading of the clock for the whole list: a busy hop keeps up to
        // `reuse_per_destination` connections, each looked at on every put and take.
        let now = Instant::now();
        conn.idle_since = now;
        if let Ok(mut map) = self.idle.lock() {
            let limit = self.settings.reuse_time_limit;
            map.retain(|_, l| {
                l.retain(|c| now.duration_since(c.idle_since) < limit);
                !l.is_empty()
            });
            let list = map.entry(hop.clone()).or_default();
            if list.len() < self.settings.reuse_per_destination {
                list.push(conn);
            }
        }
    }
}

impl<D: Dns + 'static> Deliverer for Client<D> {
    fn deliver(&self, req: DeliveryRequest<'_>) -> impl Future<Output = Attempt> + Send {
        Client::deliver(self, req)
    }

    fn idle(&self) -> impl Future<Output = ()> + Send {
        self.close_idle()
    }
}

/// The job's recipients by envelope index, with their addresses.
fn addresses<'a>(req: &DeliveryRequest<'a>) -> Vec<(usize, &'a str)> {
    req.recipients
        .iter()
        .filter_map(|&i| {
            req.envelope
                .recipients
                .get(i)
                .map(|r| (i, r.address.as_str()))
        })
        .collect()
}

/// Every recipient gets the same `result`: nothing was said to any server.
fn no_conversation(
    req: &DeliveryRequest<'_>,
    addrs: &[(usize, &str)],
    result: RcptResult,
    destination_failed: bool,
    started: Instant,
) -> Attempt {
    Attempt {
        report: AttemptReport {
            qid: req.qid,
            next_hop: req.next_hop.clone(),
            results: addrs.iter().map(|(i, _)| (*i, result.clone())).collect(),
            destination_failed,
        },
        relay: None,
        connection_time: started.elapsed(),
        transmission_time: Duration::ZERO,
    }
}

/// Whether `ip` is an address of this host: the kernel lets a socket bind only to its own
/// addresses, which needs no interface listing (and no `unsafe`).
fn is_local_address(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    ip.is_loopback() || ip.is_unspecified() || UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}
