//! The directory as the running daemon shares it: sessions take an `Arc<Directory>` when they
//! start and keep it; a change builds a new directory and swaps it in, so it applies at once to
//! new sessions and never to a session half-way through a message.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use super::Directory;
use super::ldap::locate::ServerNames;
use crate::config::localconfig::{LdapUrl, LocalConfig};

/// The current directory, and one writer at a time.
#[derive(Debug, Default)]
pub struct SharedDirectory {
    current: RwLock<Arc<Directory>>,
    /// Held for a whole change, so two admins' changes never overwrite each other.
    writer: Mutex<()>,
    /// Unix seconds when LDAP last confirmed the cache (a sync that found nothing to change does
    /// not rewrite the snapshot); 0: not since start.
    ldap_confirmed: AtomicU64,
    /// `ldap_cache_max_age` in seconds; 0: serve the cache however old (or no LDAP).
    ldap_max_age: AtomicU64,
    /// The LDAP connection settings (CA, timeouts) AUTH binds use.
    ldap_settings: RwLock<Arc<LocalConfig>>,
    /// The DNS servers LDAP server names are looked up with; empty: /etc/resolv.conf's.
    dns_servers: RwLock<Vec<SocketAddr>>,
    /// Counts the changes that brought other MTA settings: the services that copy settings
    /// (session and connection limits, queue timing, remote syslog) follow it.
    settings: watch::Sender<u64>,
}

impl SharedDirectory {
    pub fn new(dir: Directory) -> SharedDirectory {
        SharedDirectory {
            current: RwLock::new(Arc::new(dir)),
            writer: Mutex::new(()),
            ldap_confirmed: AtomicU64::new(0),
            ldap_max_age: AtomicU64::new(0),
            ldap_settings: RwLock::new(Arc::default()),
            dns_servers: RwLock::default(),
            settings: watch::Sender::new(0),
        }
    }

    /// The settings AUTH binds to another LDAP server with (its CA, its timeouts).
    pub fn set_ldap_settings(&self, settings: Arc<LocalConfig>) {
        *self
            .ldap_settings
            .write()
            .unwrap_or_else(|e| e.into_inner()) = settings;
    }

    pub fn ldap_settings(&self) -> Arc<LocalConfig> {
        Arc::clone(&self.ldap_settings.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The DNS servers the box asks (the daemon's); LDAP server names are resolved with them.
    pub fn set_dns_servers(&self, servers: &[SocketAddr]) {
        *self.dns_servers.write().unwrap_or_else(|e| e.into_inner()) = servers.to_vec();
    }

    /// How to find the servers of `urls`: the box's DNS servers, and its hosts table as the
    /// directory's config has it now.
    pub fn ldap_server_names(&self, urls: &[LdapUrl]) -> ServerNames {
        let servers = self.dns_servers.read().unwrap_or_else(|e| e.into_inner());
        ServerNames::new(&servers, &self.snapshot().config().hosts, urls)
    }

    /// Records that LDAP confirmed the cache at `unix` seconds.
    pub fn ldap_confirmed(&self, unix: u64) {
        self.ldap_confirmed.fetch_max(unix, Ordering::Relaxed);
    }

    /// Sets `ldap_cache_max_age` (zero: never stale).
    pub fn set_ldap_max_age(&self, max_age: Duration) {
        self.ldap_max_age
            .store(max_age.as_secs(), Ordering::Relaxed);
    }

    /// Seconds since LDAP last confirmed the cache, if it ever did (since this start, or as the
    /// snapshot on flash records).
    pub fn ldap_cache_age(&self, now: u64) -> Option<u64> {
        let confirmed = self.ldap_confirmed.load(Ordering::Relaxed);
        let synced = self.snapshot().ldap_synced().unwrap_or(0).max(confirmed);
        (synced > 0).then(|| now.saturating_sub(synced))
    }

    /// Past `ldap_cache_max_age`: an unknown recipient may be one the cache has not seen yet, so
    /// it gets a temporary failure, not a 550.
    pub fn ldap_cache_stale(&self, now: u64) -> bool {
        let max = self.ldap_max_age.load(Ordering::Relaxed);
        max > 0 && self.ldap_cache_age(now).is_none_or(|age| age > max)
    }

    /// The directory as it is now (a session keeps this for its life).
    pub fn snapshot(&self) -> Arc<Directory> {
        // A poisoned lock still holds a whole Arc: a panic elsewhere cannot tear it.
        let guard = self.current.read().unwrap_or_else(|e| e.into_inner());
        Arc::clone(&guard)
    }

    /// Runs `change` on the current directory. If it returns a new directory, that one becomes
    /// current; `change` is where the caller persists it first (flash), so a directory that did
    /// not reach flash is never served. Changes run one at a time.
    pub fn update<T, E>(
        &self,
        change: impl FnOnce(&Directory) -> Result<(T, Option<Directory>), E>,
    ) -> Result<T, E> {
        let _one_writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.snapshot();
        let (out, next) = change(&now)?;
        if let Some(next) = next {
            let settings_changed = next.config() != now.config();
            let mut guard = self.current.write().unwrap_or_else(|e| e.into_inner());
            *guard = Arc::new(next);
            drop(guard);
            if settings_changed {
                self.settings.send_modify(|n| *n += 1);
            }
        }
        Ok(out)
    }

    /// Wakes on every change that brings other MTA settings (read them from [`snapshot`]).
    ///
    /// [`snapshot`]: Self::snapshot
    pub fn settings_changes(&self) -> watch::Receiver<u64> {
        self.settings.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::prov;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn sessions_keep_their_snapshot_and_new_ones_see_changes() {
        let shared = SharedDirectory::default();
        let old_session = shared.snapshot();
        let run = |line: &str| {
            shared.update(|d| {
                let out = prov::execute(d, &args(line))?;
                Ok::<_, prov::ProvError>((out.output, out.directory))
            })
        };
        run("cd example.com").unwrap();
        run("ca foo@example.com pw").unwrap();
        assert!(old_session.account("foo@example.com").is_none());
        assert!(shared.snapshot().account("foo@example.com").is_some());
        assert!(run("ca foo@example.com pw").is_err());
        // A change that fails to persist is not served.
        let failed: Result<(), &str> = shared.update(|d| {
            let out = prov::execute(d, &args("da foo@example.com")).map_err(|_| "prov")?;
            assert!(out.directory.is_some());
            Err("flash write failed")
        });
        assert_eq!(failed, Err("flash write failed"));
        assert!(shared.snapshot().account("foo@example.com").is_some());
    }

    #[test]
    fn only_a_change_of_the_mta_settings_wakes_their_followers() {
        let shared = SharedDirectory::default();
        let changes = shared.settings_changes();
        let run = |line: &str| {
            shared
                .update(|d| {
                    let out = prov::execute(d, &args(line))?;
                    Ok::<_, prov::ProvError>((out.output, out.directory))
                })
                .unwrap()
        };
        run("cd example.com");
        run("ca foo@example.com pw");
        assert!(!changes.has_changed().unwrap());
        run("mcf zimbraMtaMaxMessageSize 2000");
        assert!(changes.has_changed().unwrap());
        assert_eq!(shared.snapshot().config().max_message_size, 2000);
    }

    #[test]
    fn the_cache_goes_stale_only_past_its_max_age() {
        let shared = SharedDirectory::default();
        assert!(!shared.ldap_cache_stale(1000));
        shared.set_ldap_max_age(Duration::from_secs(60));
        // Configured but never synced: nothing vouches for the cache.
        assert!(shared.ldap_cache_stale(1000));
        shared.ldap_confirmed(1000);
        assert_eq!(shared.ldap_cache_age(1030), Some(30));
        assert!(!shared.ldap_cache_stale(1060));
        assert!(shared.ldap_cache_stale(1061));
        shared.set_ldap_max_age(Duration::ZERO);
        assert!(!shared.ldap_cache_stale(5000));
    }
}
