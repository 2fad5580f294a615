//! One sync: read LDAP, update the model, build a new directory off to the side, store it on
//! flash, then swap it in. Until the swap the old directory is served whole; if reading,
//! storing or anything else fails, it stays. A poll that finds nothing changed writes nothing
//! (flash wear), it only records that LDAP confirmed the cache.
//!
//! Polls ask for entries whose `modifyTimestamp` is after the newest one seen (at or after, while
//! that second may still be current: see [`stamp`]); deletions
//! are invisible to that, so a full sync runs every `ldap_full_sync_interval` (and on request,
//! at the first start, and whenever the server does not show modifyTimestamp to this bind).
//!
//! What a sync leaves for the next ([`SyncState`]) is attached to the directory it built and
//! stored with it, so after a restart [`Syncer::resume`] carries on from the flash: the first
//! sync is then a poll like any other.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use super::build::build;
use super::client::ClientError;
use super::diff::diff;
use super::fetch::{self, Search};
use super::locate::ServerNames;
use super::model::{Changes, Model, Schema, Touched};
use super::object::SkipReason;
use super::patch::patch;
use super::plain;
use super::stamp;
use super::state::{Origin, SyncState, Syncrepl};
use super::status::{LdapStatus, SyncKind, SyncReport};
use super::syncrepl::{self, SyncOutcome};
use super::zimbra;
use crate::config::localconfig::{LdapSchema, LocalConfig};
use crate::directory::{Directory, SharedDirectory, Source};

/// Called as each phase of a sync ends (read, model, build, encode, save, swap, trim) with its
/// name: benchmarks set it to see where time and memory go. Unset, a sync pays one atomic load a
/// phase.
static PHASE_PROBE: OnceLock<fn(&'static str)> = OnceLock::new();

/// Sets the phase probe (once per process; a second call is ignored).
pub fn set_phase_probe(probe: fn(&'static str)) {
    let _ = PHASE_PROBE.set(probe);
}

fn phase(name: &'static str) {
    if let Some(probe) = PHASE_PROBE.get() {
        probe(name);
    }
}

/// Where a new snapshot goes before it is served (the flash's directory slot). Blocking: it is
/// called off the runtime's workers.
pub trait SnapshotStore: Send + Sync {
    /// Starts saving a snapshot of `len` bytes, given in parts: it is never whole in RAM. It
    /// is in force once [`SnapshotParts::finish`] returns; until then, or if anything fails,
    /// the one saved before is.
    fn begin(&self, len: usize) -> Result<Box<dyn SnapshotParts + '_>, SaveError>;

    /// Appends a poll's journal record after the snapshot saved last (and the records after
    /// it); `Ok(Err(_))`: the store takes no more, nothing was written, save the whole snapshot.
    fn append(&self, record: Vec<u8>) -> Result<Result<(), AppendRefused>, SaveError>;
}

/// A snapshot being saved ([`SnapshotStore::begin`]).
pub trait SnapshotParts {
    fn part(&mut self, bytes: &[u8]) -> Result<(), SaveError>;
    fn finish(self: Box<Self>) -> Result<(), SaveError>;
}

/// Parts gathered into one buffer, then saved whole by a function: for a store that writes a
/// snapshot at once.
pub struct Gathered<'a> {
    bytes: Vec<u8>,
    save: Box<dyn FnOnce(Vec<u8>) -> Result<(), SaveError> + 'a>,
}

impl<'a> Gathered<'a> {
    pub fn new(
        len: usize,
        save: impl FnOnce(Vec<u8>) -> Result<(), SaveError> + 'a,
    ) -> Box<Gathered<'a>> {
        Box::new(Gathered {
            bytes: Vec::with_capacity(len),
            save: Box::new(save),
        })
    }
}

impl SnapshotParts for Gathered<'_> {
    fn part(&mut self, bytes: &[u8]) -> Result<(), SaveError> {
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<(), SaveError> {
        (self.save)(self.bytes)
    }
}

/// Why a store took no journal record, in its own words (the journal is full, the slot's tail
/// is torn...): the sync then writes the whole snapshot, and the log says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendRefused(pub String);

impl fmt::Display for AppendRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The store's own error, kept whole.
#[derive(Debug)]
pub struct SaveError(pub Box<dyn std::error::Error + Send + Sync>);

impl fmt::Display for SaveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for SaveError {}

/// Why a sync changed nothing.
#[derive(Debug)]
pub enum SyncError {
    Client(ClientError),
    /// The new snapshot could not be stored, so it was not served.
    Save(SaveError),
    /// A full sync found no domain where the cache has some: a wrong search base or lost read
    /// rights look like that, and applying it would empty the directory.
    NoDomains {
        had: usize,
    },
    /// A full sync found nothing where the cache has entries (the same suspicion).
    NoEntries {
        had: usize,
    },
    /// The building step stopped (a bug); the directory served is unchanged.
    Aborted,
    /// RFC 4533 messages that did not decode; the next sync refreshes everything.
    BadSyncMessages(usize),
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncError::Client(e) => write!(f, "{e}"),
            SyncError::Save(e) => write!(f, "snapshot not saved to flash, not applied: {e}"),
            SyncError::NoDomains { had } => write!(
                f,
                "full sync found no domains (the cache has {had}); not applied: check \
                 ldap_search_base and the bind's read rights"
            ),
            SyncError::NoEntries { had } => write!(
                f,
                "full sync found no entries (the cache has {had}); not applied: check \
                 ldap_search_base and the bind's read rights"
            ),
            SyncError::Aborted => f.write_str("sync aborted while building; nothing changed"),
            SyncError::BadSyncMessages(n) => write!(
                f,
                "{n} RFC 4533 sync messages did not decode; nothing applied, the next sync \
                 refreshes everything"
            ),
        }
    }
}

impl std::error::Error for SyncError {}

/// Where a sync reads its settings and puts its result.
struct Target<'a> {
    settings: &'a LocalConfig,
    shared: &'a Arc<SharedDirectory>,
    store: &'a Arc<dyn SnapshotStore>,
    now: u64,
}

/// The sync's memory between runs.
pub struct Syncer {
    /// Shared with the directory served (its [`SyncState`]); a poll copies it before changing it.
    model: Arc<Model>,
    schema: Schema,
    /// Unix seconds of the last full sync applied (since start, or as the flash recorded).
    last_full: Option<u64>,
    status: LdapStatus,
    syncrepl: Syncrepl,
    /// The RFC 4533 cookie of the last sync applied.
    cookie: Option<Vec<u8>>,
    /// Carrying on from the state on flash: no sync has succeeded since.
    resumed: bool,
    /// Whether the snapshot stored last holds this sync's state, so a poll's changes may be
    /// appended to it as a journal record.
    journal_ok: bool,
}

/// What [`Syncer::resume`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resumed {
    /// The state of the last sync before the restart: the next sync goes on from it.
    Yes { entries: usize, cookie: bool },
    /// None on flash: never synced, or a snapshot from a firmware that did not store it.
    NoState,
    /// The state was read with other LDAP settings (server, base, bind, schema, server entry).
    OtherSettings,
}

impl fmt::Display for Resumed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resumed::Yes {
                entries,
                cookie: true,
            } => write!(
                f,
                "resuming from the sync state on flash ({entries} entries, RFC 4533 cookie)"
            ),
            Resumed::Yes { entries, .. } => write!(
                f,
                "resuming from the sync state on flash ({entries} entries, modifyTimestamp mark)"
            ),
            Resumed::NoState => f.write_str(
                "no sync state on flash (never synced, or saved by an older firmware): the \
                 first sync is a full one",
            ),
            Resumed::OtherSettings => f.write_str(
                "the sync state on flash was read with other LDAP settings: the first sync is \
                 a full one",
            ),
        }
    }
}

impl Default for Syncer {
    fn default() -> Syncer {
        Syncer::new(zimbra::SCHEMA)
    }
}

/// What a read brought.
struct Read {
    kind: SyncKind,
    server: String,
    entries: super::entries::Entries,
    /// For an RFC 4533 read: the states, messages and new cookie.
    sync: Option<SyncOutcome>,
}

/// A sync applied.
struct Applied {
    /// What it turned out to be (a refused cookie makes a poll a full refresh).
    kind: SyncKind,
    server: String,
    read: usize,
    saved: Saved,
}

/// What [`Syncer::apply`] served and stored.
#[derive(Default)]
struct Saved {
    changes: Changes,
    /// Two entries claim one address that did not before (see [`Syncer::sync`]).
    dups_grew: bool,
    /// Why the poll's journal record was refused (the whole snapshot was written instead).
    journal_refused: Option<AppendRefused>,
}

impl Syncer {
    /// A syncer for the schema `ldap_schema` names.
    pub fn for_settings(settings: &LocalConfig) -> Syncer {
        Syncer::new(match settings.schema {
            LdapSchema::Zimbra => zimbra::SCHEMA,
            LdapSchema::InetOrgPerson => plain::INET_ORG_PERSON,
            LdapSchema::ActiveDirectory => plain::ACTIVE_DIRECTORY,
        })
    }

    pub fn new(schema: Schema) -> Syncer {
        Syncer {
            model: Arc::default(),
            schema,
            last_full: None,
            status: LdapStatus::default(),
            syncrepl: Syncrepl::Unknown,
            cookie: None,
            resumed: false,
            journal_ok: false,
        }
    }

    /// Takes up the state of the sync that built `dir` (as loaded from flash), if it was read
    /// with these `settings` (their server entry named): the next sync goes on from it.
    pub fn resume(&mut self, dir: &Directory, settings: &LocalConfig) -> Resumed {
        let Some(state) = dir.ldap_sync_state() else {
            return Resumed::NoState;
        };
        if state.origin != Origin::of(settings) {
            return Resumed::OtherSettings;
        }
        self.model = Arc::clone(&state.model);
        self.cookie = state.cookie.clone();
        self.syncrepl = state.syncrepl;
        self.last_full = state.last_full;
        self.status.counts = state.counts;
        self.status.skipped = state.skipped.clone();
        self.resumed = true;
        // Decoded from flash, so the snapshot there holds it.
        self.journal_ok = true;
        Resumed::Yes {
            entries: self.model.len(),
            cookie: self.cookie.is_some(),
        }
    }

    pub fn status(&self) -> &LdapStatus {
        &self.status
    }

    fn kind_for(&self, want: SyncKind, settings: &LocalConfig, now: u64) -> SyncKind {
        // With a cookie, deletions are reported: no periodic full sync is needed.
        let cookie_ok = self.syncrepl == Syncrepl::Yes
            && self.cookie.is_some()
            && !self.model.is_empty()
            && self.model.keyed_by_uuid();
        if want == SyncKind::Incremental && cookie_ok {
            return SyncKind::Incremental;
        }
        let full_due = self
            .last_full
            .is_none_or(|t| now.saturating_sub(t) >= settings.full_sync_interval.as_secs());
        let can_poll = self.model.newest_stamp().is_some_and(stamp::is_plain);
        match want {
            SyncKind::Incremental if !full_due && can_poll && !self.model.is_empty() => {
                SyncKind::Incremental
            }
            _ => SyncKind::Full,
        }
    }

    async fn read(
        &mut self,
        kind: SyncKind,
        settings: &LocalConfig,
        names: &ServerNames,
        now: u64,
    ) -> Result<Read, ClientError> {
        let (base, attrs) = (settings.search_base.as_str(), self.schema.attrs);
        // A full sync asks again: syncprov may have been added since.
        if self.syncrepl != Syncrepl::No || kind == SyncKind::Full {
            let mut cookie = match kind {
                SyncKind::Incremental => self.cookie.clone(),
                SyncKind::Full => None,
            };
            loop {
                let filter = self.schema.filter;
                let search = Search {
                    base,
                    filter,
                    attrs,
                    sync: Some(cookie.as_deref()),
                };
                let (server, entries, outcome) = fetch::fetch(settings, names, search).await?;
                match outcome {
                    Some(o) if o.unsupported => {
                        self.syncrepl = Syncrepl::No;
                        break;
                    }
                    // The server cannot go on from this cookie: everything again.
                    Some(o) if o.refresh_required && cookie.is_some() => {
                        self.cookie = None;
                        cookie = None;
                    }
                    Some(o) => {
                        self.syncrepl = Syncrepl::Yes;
                        let kind = match cookie {
                            Some(_) => SyncKind::Incremental,
                            None => SyncKind::Full,
                        };
                        return Ok(Read {
                            kind,
                            server,
                            entries,
                            sync: Some(o),
                        });
                    }
                    None => break,
                }
            }
        }
        let filter = match (kind, self.model.newest_stamp()) {
            (SyncKind::Incremental, Some(mark)) => {
                stamp::poll_filter(self.schema.filter, mark, now)
            }
            _ => self.schema.filter.to_string(),
        };
        let search = Search {
            base,
            filter: &filter,
            attrs,
            sync: None,
        };
        let (server, entries, _) = fetch::fetch(settings, names, search).await?;
        Ok(Read {
            kind,
            server,
            entries,
            sync: None,
        })
    }

    /// Runs one sync of kind `want` (a poll may become a full sync, see the module doc) and
    /// returns its report; `now` is Unix seconds.
    pub async fn sync(
        &mut self,
        want: SyncKind,
        settings: &LocalConfig,
        shared: &Arc<SharedDirectory>,
        store: &Arc<dyn SnapshotStore>,
        now: u64,
    ) -> SyncReport {
        let started = Instant::now();
        shared.set_ldap_max_age(settings.cache_max_age);
        let kind = self.kind_for(want, settings, now);
        let to = Target {
            settings,
            shared,
            store,
            now,
        };
        let mut outcome = self.run(kind, &to).await;
        // A poll that made two entries claim one address may be a rename seen half (the old
        // entry is gone only to a full sync): look at everything before reporting it.
        if let Ok(a) = &outcome
            && a.kind == SyncKind::Incremental
            && a.saved.dups_grew
        {
            outcome = self.run(SyncKind::Full, &to).await;
        }
        let resumed = self.resumed;
        let report = |kind: SyncKind, server: String, read, changes, error| SyncReport {
            kind,
            resumed: resumed && kind == SyncKind::Incremental,
            started: now,
            duration: started.elapsed(),
            server,
            read,
            changes,
            error,
            journal_refused: None,
        };
        let mut report = match outcome {
            Ok(a) => {
                shared.ldap_confirmed(now);
                self.status.last_success = Some(now);
                self.resumed = false;
                let mut r = report(a.kind, a.server, a.read, a.saved.changes, None);
                r.journal_refused = a.saved.journal_refused.map(|why| why.0);
                r
            }
            Err(e) => report(
                kind,
                String::new(),
                0,
                Changes::default(),
                Some(e.to_string()),
            ),
        };
        // The status keeps the counts and the names it prints, not every change.
        let summary = report.changes.summary();
        let all = std::mem::replace(&mut report.changes, summary);
        self.status.last = Some(report.clone());
        report.changes = all;
        crate::metrics::global().directory_sync(&report.kind.to_string(), report.error.is_none());
        if report.kind == SyncKind::Full {
            // A full sync frees what it read, mapped and encoded (as much again as the
            // directory at 100 000 accounts); without this the box keeps it resident until
            // the allocator happens to reuse it.
            let trim = tokio::task::spawn_blocking(hal::sys::memory::release_free_memory);
            let _ = trim.await;
            phase("trim");
        }
        report
    }

    /// Reads and applies.
    async fn run(&mut self, kind: SyncKind, to: &Target<'_>) -> Result<Applied, SyncError> {
        let names = to.shared.ldap_server_names(&to.settings.ldap_urls);
        let mut read = self
            .read(kind, to.settings, &names, to.now)
            .await
            .map_err(SyncError::Client)?;
        phase("read");
        let n = read.entries.len();
        // A plain read leaves the cookie as it was (none, without syncprov).
        let cookie = match &read.sync {
            Some(o) => o.cookie(),
            None => self.cookie.clone(),
        };
        if let Some(o) = &read.sync
            && o.bad_infos > 0
        {
            self.cookie = None;
            return Err(SyncError::BadSyncMessages(o.bad_infos));
        }
        // Key entries by the UUID their Sync State names, as deletes will name them.
        let uuids: Vec<Option<[u8; 16]>> = read.sync.as_ref().map_or_else(Vec::new, |o| {
            o.states
                .iter()
                .map(|s| s.as_ref().map(|st| st.uuid))
                .collect()
        });
        let entries = read.entries.into_iter().enumerate().map(move |(i, e)| {
            e.map(|mut e| {
                if let Some(Some(u)) = uuids.get(i) {
                    e.ensure_uuid(&syncrepl::uuid_text(u));
                }
                e
            })
        });
        let applied = |server, saved: Saved| Applied {
            kind: read.kind,
            server,
            read: n,
            saved,
        };
        let outcome = if read.kind == SyncKind::Full {
            let domains_in = |m: &Model| m.domains();
            let served = to.shared.snapshot();
            let had = domains_in(&self.model).max(
                served
                    .domains()
                    .filter(|d| d.source() == Source::Ldap)
                    .count(),
            );
            let next = Model::replace_after(&self.model, entries, self.schema.map);
            // Each entry's Sync State (~8 MB at 100 000) is not needed past the model: freed
            // here, not held through the build.
            read.sync = None;
            if had > 0 && domains_in(&next) == 0 {
                return Err(SyncError::NoDomains { had });
            }
            // Directories without domain entries: the same guard on the entries themselves.
            let had_entries = self.model.len().max(
                served
                    .accounts()
                    .filter(|a| a.source() == Source::Ldap)
                    .count(),
            );
            if had_entries > 0 && next.is_empty() {
                return Err(SyncError::NoEntries { had: had_entries });
            }
            self.model = Arc::new(next);
            phase("model");
            // What was read is freed now, on this thread; the build allocates on a blocking
            // thread, which glibc serves from another arena: without this both stay resident.
            let _ = tokio::task::spawn_blocking(hal::sys::memory::release_free_memory).await;
            self.apply(to, None, cookie.clone())
                .await
                .map(|saved| applied(read.server, saved))
        } else {
            // The directory served keeps the model it was built from; this poll changes a copy.
            let model = Arc::make_mut(&mut self.model);
            model.start_journal();
            let changes = match &read.sync {
                Some(o) => model.apply_sync(entries, o, self.schema.map),
                None => model.update(entries, self.schema.map),
            };
            let touched = model.take_journal();
            phase("model");
            if changes.is_empty() {
                Ok(applied(read.server, Saved::default()))
            } else {
                self.apply(to, Some(touched), cookie.clone())
                    .await
                    .map(|saved| applied(read.server, saved))
            }
        };
        if outcome.is_ok() {
            self.cookie = cookie;
        }
        outcome
    }

    /// Builds, stores and serves the directory from the model, with the state that goes with
    /// it (`cookie` the new one); a poll's `touched` entries patch the directory served instead,
    /// when that gives what a build would.
    async fn apply(
        &mut self,
        to: &Target<'_>,
        touched: Option<Vec<Touched>>,
        cookie: Option<Vec<u8>>,
    ) -> Result<Saved, SyncError> {
        let full = touched.is_none();
        let dups_before = count_dups(&self.status.skipped);
        let model = Arc::clone(&self.model);
        let (shared2, store2) = (Arc::clone(to.shared), Arc::clone(to.store));
        let server_name = to.settings.server_hostname.clone();
        let now = to.now;
        let journal_ok = self.journal_ok;
        let last_full = if full { Some(now) } else { self.last_full };
        let mut state = SyncState {
            model: Arc::clone(&model),
            cookie,
            syncrepl: self.syncrepl,
            last_full,
            origin: Origin::of(to.settings),
            skipped: Vec::new(),
            counts: Default::default(),
        };
        let (skipped_before, counts_before) = (self.status.skipped.clone(), self.status.counts);
        // Building 100 000 entries and writing flash is blocking work.
        let joined = tokio::task::spawn_blocking(move || {
            shared2.update(|current| {
                let patched = touched
                    .as_deref()
                    .and_then(|t| patch(current, &model, t, &skipped_before, counts_before, now));
                let was_patched = patched.is_some();
                let (mut directory, skipped, counts, changes) = match patched {
                    Some(p) => (p.directory, skipped_before, p.counts, p.changes),
                    None => {
                        let built = build(current, &model, now, &server_name);
                        phase("build");
                        let changes = diff(current, &built.directory);
                        phase("diff");
                        (built.directory, built.skipped, built.counts, changes)
                    }
                };
                if was_patched {
                    phase("patch");
                }
                // The state goes to flash in the same write as the entries built from it.
                state.skipped = skipped.clone();
                state.counts = counts;
                directory.set_ldap_sync_state(Some(Arc::new(state)));
                // A poll's changes follow the stored snapshot as a journal record, when the
                // store takes one; else the whole snapshot is written.
                let record = (!full && journal_ok)
                    .then(|| directory.encode_change(current))
                    .flatten();
                let appended = match record {
                    Some(record) => {
                        phase("encode");
                        Some(store2.append(record).map_err(SyncError::Save)?)
                    }
                    None => None,
                };
                let journal_next = if let Some(Ok(())) = appended {
                    true
                } else {
                    // Encoded straight into the store, part by part.
                    let mut sink = Sink {
                        store: &*store2,
                        parts: None,
                    };
                    let (written, with_state) = directory.encode_with_state_into(&mut sink);
                    written.map_err(SyncError::Save)?;
                    let parts = sink.parts.ok_or_else(|| {
                        SyncError::Save(SaveError("the snapshot did not encode".into()))
                    })?;
                    parts.finish().map_err(SyncError::Save)?;
                    phase("encode");
                    with_state
                };
                phase("save");
                let refused = appended.and_then(Result::err);
                Ok((
                    (skipped, counts, changes, journal_next, refused),
                    Some(directory),
                ))
            })
        })
        .await;
        let result = joined.map_err(|_| SyncError::Aborted).and_then(|r| r);
        phase("swap");
        let (skipped, counts, changes, journal_next, journal_refused) = match result {
            Ok(v) => v,
            Err(e) => {
                // The model is ahead of what is served: start over with a full sync.
                self.model = Arc::default();
                self.last_full = None;
                self.cookie = None;
                self.journal_ok = false;
                return Err(e);
            }
        };
        self.journal_ok = journal_next;
        self.last_full = last_full;
        let dups_grew = !full && count_dups(&skipped) > dups_before;
        self.status.counts = counts;
        self.status.skipped = skipped;
        Ok(Saved {
            changes,
            dups_grew,
            journal_refused,
        })
    }
}

/// A snapshot's parts on their way to the store.
struct Sink<'a> {
    store: &'a dyn SnapshotStore,
    parts: Option<Box<dyn SnapshotParts + 'a>>,
}

impl crate::directory::PartSink<SaveError> for Sink<'_> {
    fn begin(&mut self, len: usize) -> Result<(), SaveError> {
        self.parts = Some(self.store.begin(len)?);
        Ok(())
    }

    fn part(&mut self, bytes: &[u8]) -> Result<(), SaveError> {
        match self.parts.as_mut() {
            Some(p) => p.part(bytes),
            None => Err(SaveError("a snapshot part before its length".into())),
        }
    }
}

fn count_dups(skipped: &[super::Skipped]) -> usize {
    skipped
        .iter()
        .filter(|s| matches!(s.reason, SkipReason::DuplicateAddress { .. }))
        .count()
}
