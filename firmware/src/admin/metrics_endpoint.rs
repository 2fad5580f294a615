//! The running Prometheus endpoint, changed while the services run: `postern metrics set|off`
//! takes effect at once, as every setting does. `--metrics` on the command line pins it: the
//! stored setting is still written, and served from the next start without the flag.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::Handles;
use crate::config::NetworkList;

/// The endpoint the daemon serves now.
#[derive(Default)]
pub struct Endpoint {
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Given by `--metrics`: stored changes wait for a start without it.
    pinned: Option<SocketAddr>,
    running: Option<Running>,
}

struct Running {
    addr: SocketAddr,
    allow: Arc<RwLock<NetworkList>>,
    task: JoinHandle<()>,
}

/// A listener bound for a new address, before the setting is stored; `Same` when the address is
/// the one served now (only the allow-list changes) or `--metrics` holds the endpoint.
pub enum Prepared {
    Same,
    New(TcpListener),
}

impl Endpoint {
    /// Starts serving `listener` (at the daemon's start); `pinned` when it came from `--metrics`.
    pub async fn start(&self, listener: TcpListener, allow: NetworkList, pinned: bool, h: Handles) {
        let mut state = self.state.lock().await;
        let addr = listener.local_addr().ok();
        if pinned {
            state.pinned = addr;
        }
        state.running = addr.map(|addr| spawn(addr, listener, allow, h));
    }

    /// Binds `addr` unless it is served already; an address that cannot be bound is refused here,
    /// before anything is stored.
    pub async fn prepare(&self, addr: SocketAddr) -> std::io::Result<Prepared> {
        let state = self.state.lock().await;
        // Pinned: nothing is bound now, [`Endpoint::apply`] says so.
        if state.pinned.is_some() || state.running.as_ref().is_some_and(|r| r.addr == addr) {
            return Ok(Prepared::Same);
        }
        TcpListener::bind(addr).await.map(Prepared::New)
    }

    /// Serves the stored setting from now on (`None`: off). Returns the pinned address instead
    /// when `--metrics` holds the endpoint.
    pub async fn apply(
        &self,
        prepared: Option<(Prepared, NetworkList)>,
        h: &Handles,
    ) -> Option<SocketAddr> {
        let mut state = self.state.lock().await;
        if let Some(pinned) = state.pinned {
            return Some(pinned);
        }
        match prepared {
            Some((Prepared::Same, allow)) => {
                if let Some(r) = &state.running
                    && let Ok(mut a) = r.allow.write()
                {
                    *a = allow;
                }
            }
            Some((Prepared::New(listener), allow)) => {
                stop(state.running.take()).await;
                state.running = listener
                    .local_addr()
                    .ok()
                    .map(|addr| spawn(addr, listener, allow, h.clone()));
            }
            None => stop(state.running.take()).await,
        }
        None
    }
}

fn spawn(addr: SocketAddr, listener: TcpListener, allow: NetworkList, h: Handles) -> Running {
    let allow = Arc::new(RwLock::new(allow));
    let task = tokio::spawn(super::metrics::serve(listener, allow.clone(), h));
    Running { addr, allow, task }
}

async fn stop(running: Option<Running>) {
    if let Some(r) = running {
        r.task.abort();
        // The listener is closed once the task is gone: its port is free for the next start.
        let _ = r.task.await;
    }
}
