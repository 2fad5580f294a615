//! `postern localconfig` and `postern ldap`: the LDAP connection settings (stored in the config
//! slot, as `zmlocalconfig` keeps Zimbra's), a sync on request, and the sync's status. The
//! operations take only the handles they need.

use std::sync::Arc;

use super::{Handles, Reply};
use crate::config::localconfig::{self, LocalConfig};
use crate::config::stored::BoxConfig;
use crate::directory::SharedDirectory;
use crate::directory::ldap::fetch;
use crate::directory::ldap::probe::ServerResult;
use crate::directory::ldap::status::show_age;
use crate::directory::ldap::{
    AppendRefused, LdapHandle, SaveError, SnapshotParts, SnapshotStore, SyncKind, SyncReport,
    Syncer,
};
use crate::mail::unix_now;
use crate::spool::{Region, SlotWriting, Spool, SpoolHandle};

/// The LDAP sync's handles. Offline (`--flash FILE`) there is no service: a sync then runs
/// once, in the command.
#[derive(Clone)]
pub struct LdapContext {
    /// Where a sync's snapshot goes before it is served (the flash's directory slot).
    pub store: Arc<dyn SnapshotStore>,
    pub service: Option<LdapHandle>,
}

impl LdapContext {
    /// No sync service, and snapshots written to the spool's directory slot through its handle
    /// (for tools and tests that build [`Handles`] themselves).
    pub fn offline(spool: &SpoolHandle) -> LdapContext {
        LdapContext {
            store: Arc::new(SpoolSlot(spool.clone())),
            service: None,
        }
    }
}

/// The directory slot through a spool handle; blocks, so it is only called off the runtime's
/// workers (the sync runs its save in `spawn_blocking`).
struct SpoolSlot(SpoolHandle);

impl SnapshotStore for SpoolSlot {
    fn begin(&self, len: usize) -> Result<Box<dyn SnapshotParts + '_>, SaveError> {
        let slot = SlotParts(&self.0);
        slot.wait(self.0.begin_slot(Region::Directory, len))?;
        Ok(Box::new(slot))
    }

    fn append(&self, record: Vec<u8>) -> Result<Result<(), AppendRefused>, SaveError> {
        tokio::runtime::Handle::current()
            .block_on(self.0.append_slot(Region::Directory, record))
            .map(|appended| appended.map_err(|why| AppendRefused(why.to_string())))
            .map_err(|e| SaveError(Box::new(e)))
    }
}

/// A snapshot written part by part into the directory slot of a spool held locked: for tools,
/// tests and benchmarks that own a [`Spool`] (the daemon's goes through its writer).
pub struct LockedSlot<'a, F: hal::flash::Flash> {
    spool: std::sync::MutexGuard<'a, Spool<F>>,
    writing: SlotWriting,
}

impl<'a, F: hal::flash::Flash> LockedSlot<'a, F> {
    pub fn begin(
        mut spool: std::sync::MutexGuard<'a, Spool<F>>,
        len: usize,
    ) -> Result<Box<LockedSlot<'a, F>>, SaveError> {
        let writing = spool
            .begin_slot(Region::Directory, len)
            .map_err(|e| SaveError(Box::new(e)))?;
        Ok(Box::new(LockedSlot { spool, writing }))
    }
}

impl<F: hal::flash::Flash> SnapshotParts for LockedSlot<'_, F> {
    fn part(&mut self, bytes: &[u8]) -> Result<(), SaveError> {
        self.spool
            .write_slot_part(&mut self.writing, bytes)
            .map_err(|e| SaveError(Box::new(e)))
    }

    fn finish(self: Box<Self>) -> Result<(), SaveError> {
        let LockedSlot { mut spool, writing } = *self;
        spool
            .finish_slot(writing)
            .map_err(|e| SaveError(Box::new(e)))
    }
}

/// A snapshot written into the directory slot part by part, each a trip to the spool writer.
struct SlotParts<'a>(&'a SpoolHandle);

impl SlotParts<'_> {
    fn wait(
        &self,
        asked: impl std::future::Future<Output = Result<(), crate::spool::SpoolError>>,
    ) -> Result<(), SaveError> {
        tokio::runtime::Handle::current()
            .block_on(asked)
            .map_err(|e| SaveError(Box::new(e)))
    }
}

impl SnapshotParts for SlotParts<'_> {
    fn part(&mut self, bytes: &[u8]) -> Result<(), SaveError> {
        self.wait(self.0.write_slot_part(Region::Directory, bytes.to_vec()))
    }

    fn finish(self: Box<Self>) -> Result<(), SaveError> {
        self.wait(self.0.finish_slot(Region::Directory))
    }
}

/// Writes `dir`'s snapshot into the directory slot part by part (a `prov` change on a box of
/// 100 000 accounts is a 13 MiB snapshot); it is in force once this returns `Ok`.
pub(super) fn write_snapshot(
    spool: &SpoolHandle,
    runtime: &tokio::runtime::Handle,
    dir: &crate::directory::Directory,
) -> Result<(), crate::spool::SpoolError> {
    struct Sink<'a>(&'a SpoolHandle, &'a tokio::runtime::Handle);
    impl crate::directory::PartSink<crate::spool::SpoolError> for Sink<'_> {
        fn begin(&mut self, len: usize) -> Result<(), crate::spool::SpoolError> {
            self.1.block_on(self.0.begin_slot(Region::Directory, len))
        }
        fn part(&mut self, bytes: &[u8]) -> Result<(), crate::spool::SpoolError> {
            self.1
                .block_on(self.0.write_slot_part(Region::Directory, bytes.to_vec()))
        }
    }
    dir.encode_with_state_into(&mut Sink(spool, runtime)).0?;
    runtime.block_on(spool.finish_slot(Region::Directory))
}

async fn box_config(spool: &SpoolHandle) -> Result<BoxConfig, String> {
    match spool.read_slot(Region::Config).await {
        Ok(Some(bytes)) => BoxConfig::decode(&bytes).map_err(|e| e.to_string()),
        Ok(None) => Ok(BoxConfig::default()),
        Err(e) => Err(e.to_string()),
    }
}

/// The stored settings.
pub async fn load(spool: &SpoolHandle) -> Result<LocalConfig, String> {
    let stored = box_config(spool).await?;
    LocalConfig::from_pairs(&stored.localconfig).map_err(|e| e.to_string())
}

/// `KEY=@FILE` reads the value from a file where the command runs (a CA bundle is many lines);
/// `KEY=@@...` is the value `@...` (a password may begin with `@`).
fn read_values(pairs: Vec<(String, String)>) -> Result<Vec<(String, String)>, String> {
    pairs
        .into_iter()
        .map(|(k, v)| match v.strip_prefix('@') {
            Some(literal) if literal.starts_with('@') => Ok((k, literal.to_string())),
            Some(path) => std::fs::read_to_string(path)
                .map(|text| (k, text))
                .map_err(|e| format!("cannot read {path}: {e}")),
            None => Ok((k, v)),
        })
        .collect()
}

/// `postern localconfig [-s] [KEY...]` and `postern localconfig -e KEY=VALUE...`.
pub async fn localconfig(h: &Handles, secrets: bool, edit: bool, args: &[String]) -> Reply {
    let mut stored = match box_config(&h.spool).await {
        Ok(c) => c,
        Err(e) => return Reply::failed(format!("{e}\n")),
    };
    let mut current = match LocalConfig::from_pairs(&stored.localconfig) {
        Ok(c) => c,
        Err(e) => return Reply::failed(format!("stored localconfig: {e}\n")),
    };
    if !edit {
        return match current.show(args, secrets) {
            Ok(text) => Reply::ok(text),
            Err(e) => Reply::failed(format!("{e}\n")),
        };
    }
    if args.is_empty() {
        return Reply::failed("usage: postern localconfig -e KEY=VALUE [KEY=VALUE...]\n");
    }
    let pairs = match localconfig::parse_assignments(args).map_err(|e| e.to_string()) {
        Ok(p) => read_values(p),
        Err(e) => Err(e),
    };
    if let Err(e) = pairs.and_then(|p| current.set_all(&p).map_err(|e| e.to_string())) {
        return Reply::failed(format!("ERROR: {e}; nothing changed\n"));
    }
    stored.localconfig = current.to_pairs();
    if let Err(e) = h.spool.write_slot(Region::Config, stored.encode()).await {
        return Reply::failed(format!("ERROR: not saved to flash, nothing changed: {e}\n"));
    }
    if let Some(service) = &h.ldap.service {
        service.set_settings(current);
    }
    Reply::ok("")
}

fn render_sync(report: &SyncReport) -> Reply {
    match &report.error {
        None => Reply::ok(format!(
            "{} sync from {} in {} ms, {} entries read\n{}{}",
            report.kind_text(),
            report.server,
            report.duration.as_millis(),
            report.read,
            report.changes,
            report
                .journal_refused
                .as_ref()
                .map_or_else(String::new, |why| format!(
                    "written to flash as a whole snapshot: {why}\n"
                ))
        )),
        Some(e) => Reply::failed(format!(
            "{} sync failed: {e}\nthe directory served is unchanged\n",
            report.kind
        )),
    }
}

/// `postern ldap sync [--incremental]`.
pub async fn sync(h: &Handles, incremental: bool) -> Reply {
    let kind = match incremental {
        true => SyncKind::Incremental,
        false => SyncKind::Full,
    };
    if let Some(service) = &h.ldap.service {
        return match service.sync(kind).await {
            Ok(report) => render_sync(&report),
            Err(e) => Reply::failed(format!("{e}\n")),
        };
    }
    let mut settings = match load(&h.spool).await {
        Ok(s) if s.ldap_enabled() => s,
        Ok(_) => {
            return Reply::failed(
                "LDAP sync is not configured: set ldap_url with postern localconfig -e\n",
            );
        }
        Err(e) => return Reply::failed(format!("{e}\n")),
    };
    if settings.server_hostname.is_empty() {
        settings.server_hostname = h.facts.hostname.to_ascii_lowercase();
    }
    // Offline, a poll goes on from the state the last sync left on flash.
    let mut syncer = Syncer::for_settings(&settings);
    syncer.resume(&h.directory.snapshot(), &settings);
    let report = syncer
        .sync(kind, &settings, &h.directory, &h.ldap.store, unix_now())
        .await;
    render_sync(&report)
}

/// `postern ldap test`: the stored settings with what was given instead, a test bind to each
/// server (through the fetch child, as a sync), the result per server. Stores nothing.
pub async fn test(
    h: &Handles,
    url: Option<String>,
    binddn: Option<String>,
    password: Option<String>,
) -> Reply {
    let mut settings = match load(&h.spool).await {
        Ok(s) => s,
        Err(e) => return Reply::failed(format!("{e}\n")),
    };
    let given = [
        (localconfig::LDAP_URL, url),
        (localconfig::USER_DN, binddn),
        (localconfig::PASSWORD, password),
    ];
    for (key, value) in given {
        if let Some(value) = value
            && let Err(e) = settings.set(key, &value)
        {
            return Reply::failed(format!("{e}\n"));
        }
    }
    if !settings.ldap_enabled() {
        return Reply::failed(
            "no LDAP server to test: give --url, or set ldap_url with postern localconfig -e\n",
        );
    }
    let who = match settings.user_dn.as_str() {
        "" => "anonymously".to_string(),
        dn => format!("as {dn}"),
    };
    let names = h.directory.ldap_server_names(&settings.ldap_urls);
    match fetch::test_bind(&settings, &names).await {
        Ok(results) => {
            let mut text = String::new();
            for r in &results {
                match r.ok() {
                    true => text += &format!("{} {who}\n", r),
                    false => text += &format!("{r}\n"),
                }
            }
            match results.iter().all(ServerResult::ok) {
                true => Reply::ok(text),
                false => Reply::failed(text),
            }
        }
        Err(e) => Reply::failed(format!("test bind failed: {e}\n")),
    }
}

/// `postern ldap status`.
pub async fn status(h: &Handles) -> Reply {
    let now = unix_now();
    let mut out = String::new();
    match &h.ldap.service {
        Some(service) if service.settings().ldap_enabled() => {
            let s = service.settings();
            let urls: Vec<String> = s.ldap_urls.iter().map(|u| u.to_string()).collect();
            out.push_str(&format!(
                "ldap_url: {}\nsync every {}s, full sync every {}s\n",
                urls.join(" "),
                s.sync_interval.as_secs(),
                s.full_sync_interval.as_secs()
            ));
            out.push_str(&service.status().render(now));
        }
        Some(_) => out.push_str("LDAP sync is not configured (ldap_url is empty)\n"),
        None => out.push_str("no sync service: the daemon is not running on this flash\n"),
    }
    out.push_str(&format!("{}\n", cache_line(&h.directory, now)));
    Reply::ok(out)
}

/// The `directory cache:` line of `postern status`.
pub fn cache_line(directory: &SharedDirectory, now: u64) -> String {
    match directory.ldap_cache_age(now) {
        Some(age) => format!(
            "directory cache: synced from LDAP {} ago{}",
            show_age(age),
            if directory.ldap_cache_stale(now) {
                " (past ldap_cache_max_age: unknown recipients get 451)"
            } else {
                ""
            }
        ),
        None => "directory cache: never synced from LDAP".to_string(),
    }
}
