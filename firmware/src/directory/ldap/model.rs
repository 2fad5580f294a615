//! The sync's picture of LDAP: every entry read, mapped, keyed by a name that survives renames
//! (`entryUUID`, else `zimbraId`, else the DN). A full sync replaces it; a poll updates the
//! entries that changed. The directory is rebuilt from it, and comparing it before and after a
//! sync says what changed.

use std::collections::HashMap;
use std::fmt;

use super::entry::{MalformedEntry, RawEntry};
use super::entry_map::{EntryMap, Shard};
use super::key::Key;
use super::object::{LdapObject, SkipReason, Skipped};
use super::packed::{Blocks, Flags, Packed, Record, Table, Written};
use super::syncrepl::{EntryState, SyncInfo, SyncOutcome};

/// How an entry maps: the schema's function.
pub type MapFn = fn(&RawEntry) -> Result<Option<LdapObject>, SkipReason>;

/// A directory schema: what to ask LDAP for, and what its entries mean.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    pub filter: &'static str,
    pub attrs: &'static [&'static str],
    pub map: MapFn,
}

/// One entry as mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    pub dn: String,
    pub object: Result<LdapObject, SkipReason>,
}

impl Mapped {
    fn describe(&self) -> String {
        match &self.object {
            Ok(o) => o.describe(),
            Err(_) => self.dn.clone(),
        }
    }
}

/// What a sync changed, as `postern ldap sync` prints it. Each list keeps the first names in
/// order that a listing prints, and counts the rest: a full sync at 100 000 accounts changes
/// 200 000 names (~16 MB as strings) and only the first few are ever shown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<String>,
    pub modified: Vec<String>,
    pub deleted: Vec<String>,
    /// MTA settings changed (`config ATTR: "old" -> "new"`), all of them: each is logged.
    /// They count as modified.
    pub settings: Vec<String>,
    /// Added, modified and deleted beyond the lists.
    omitted: [usize; 3],
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    pub fn added_count(&self) -> usize {
        self.added.len() + self.omitted[0]
    }

    pub fn modified_count(&self) -> usize {
        self.modified.len() + self.settings.len() + self.omitted[1]
    }

    pub fn deleted_count(&self) -> usize {
        self.deleted.len() + self.omitted[2]
    }

    pub fn total(&self) -> usize {
        self.added_count() + self.modified_count() + self.deleted_count()
    }

    pub fn add(&mut self, name: String) {
        keep(&mut self.added, &mut self.omitted[0], name);
    }

    pub fn modify(&mut self, name: String) {
        keep(&mut self.modified, &mut self.omitted[1], name);
    }

    pub fn delete(&mut self, name: String) {
        keep(&mut self.deleted, &mut self.omitted[2], name);
    }

    /// Adds `other`'s changes to these.
    pub fn append(&mut self, other: Changes) {
        other.added.into_iter().for_each(|n| self.add(n));
        other.modified.into_iter().for_each(|n| self.modify(n));
        other.deleted.into_iter().for_each(|n| self.delete(n));
        self.settings.extend(other.settings);
        for (mine, theirs) in self.omitted.iter_mut().zip(other.omitted) {
            *mine += theirs;
        }
    }

    /// Sorts each list, keeping the names a listing prints.
    pub fn sort(&mut self) {
        self.each_list(cut);
        self.settings.sort();
    }

    /// `f` on added, modified and deleted, each with its count of names beyond the list.
    fn each_list(&mut self, f: fn(&mut Vec<String>, &mut usize)) {
        let lists = [&mut self.added, &mut self.modified, &mut self.deleted];
        for (list, omitted) in lists.into_iter().zip(&mut self.omitted) {
            f(list, omitted);
        }
    }

    /// The same counts and printed form with only the names that are printed: what `ldap
    /// status` keeps, as the status is copied at every `ldap status` and metrics scrape.
    pub fn summary(&self) -> Changes {
        let mut s = self.clone();
        s.each_list(truncate);
        s
    }
}

/// Adds `name` to a list; past a bound, the list is sorted and cut back to what a listing
/// prints (the cost of sorting is then spread over many names).
fn keep(list: &mut Vec<String>, omitted: &mut usize, name: String) {
    list.push(name);
    if list.len() >= 4 * SHOWN_CHANGES {
        cut(list, omitted);
    }
}

/// Sorts a list and keeps what a listing prints.
fn cut(list: &mut Vec<String>, omitted: &mut usize) {
    list.sort_unstable();
    truncate(list, omitted);
}

/// Keeps what a listing prints of a list, in its order, and counts the rest.
fn truncate(list: &mut Vec<String>, omitted: &mut usize) {
    *omitted += list.len().saturating_sub(SHOWN_CHANGES);
    list.truncate(SHOWN_CHANGES);
}

/// Lines printed before "... and N more".
const SHOWN_CHANGES: usize = 50;

impl fmt::Display for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "no changes");
        }
        let lines = self
            .settings
            .iter()
            .map(|s| ('~', s))
            .chain(self.added.iter().map(|s| ('+', s)))
            .chain(self.modified.iter().map(|s| ('~', s)))
            .chain(self.deleted.iter().map(|s| ('-', s)));
        for (mark, what) in lines.clone().take(SHOWN_CHANGES) {
            writeln!(f, "{mark} {what}")?;
        }
        let total = self.total();
        if total > SHOWN_CHANGES {
            writeln!(f, "... and {} more", total - SHOWN_CHANGES)?;
        }
        writeln!(
            f,
            "{} added, {} modified, {} deleted",
            self.added_count(),
            self.modified_count(),
            self.deleted_count()
        )
    }
}

/// All entries read from LDAP, packed ([`Packed`]). Entries are shared, in shards that are
/// shared too, so a copy for the next poll (the directory served keeps this one, see
/// [`SyncState`](super::state::SyncState)) copies a thousand pointers, and then the shards the
/// poll writes to (see [`EntryMap`]).
#[derive(Debug, Clone, Default)]
pub struct Model {
    entries: EntryMap,
    /// The strings the entries' records name by number.
    table: Table,
    /// Entries the server sent that could not even be read (no DN to key them by).
    unreadable: Vec<Skipped>,
    /// The newest `modifyTimestamp` seen; `None` if the server never showed one (then every poll
    /// has to be a full sync).
    newest_stamp: Option<String>,
    /// While a poll is applied: each entry it changed, as (before, after).
    journal: Option<Vec<Touched>>,
    /// Entries that name other entries (alias entries, groups by member DN): while there are
    /// none, a poll's accounts need no walk to find who names them.
    referrers: usize,
    /// Domain entries, counted as the referrers are (a full sync that finds none is refused).
    domains: usize,
}

/// The entries of a new model as [`Model::merge`] reads them, taken in at the end. Records
/// are written one after another into [`Blocks`] and shared from there: allocated one by one
/// as each entry was read, they sat among what reading the next one allocated and freed, and
/// those holes (~5 MB at 100 000 accounts) stayed resident.
#[derive(Default)]
struct Whole {
    entries: Vec<(Key, Staged)>,
    blocks: Blocks,
    scratch: Vec<u8>,
}

enum Staged {
    /// An entry with no record form, or the one `reuse` had.
    Kept(Packed),
    Written(Written),
}

impl Whole {
    /// Takes `m`, keyed `key` (`text`), or the same entry from `reuse`.
    fn take(&mut self, table: &mut Table, key: Key, text: &str, m: &Mapped, reuse: Option<&Model>) {
        if !table.pack_in(text, m, &mut self.scratch) {
            self.entries.push((key, Staged::Kept(table.pack(text, m))));
            return;
        }
        // This table began as `reuse`'s: the same entry is the same bytes.
        let was = reuse.and_then(|r| r.entries.get(&key));
        let staged = match was {
            Some(p) if p.bytes() == Some(&self.scratch[..]) => Staged::Kept(p.clone()),
            _ => Staged::Written(self.blocks.write(&self.scratch)),
        };
        self.entries.push((key, staged));
    }

    /// The entries, their records in the blocks written. A record kept from `reuse` keeps its
    /// block too, unless the records kept use less than half of it (the others changed or
    /// went: blocks mostly dead would pile up over the syncs) or it is the record's alone (a
    /// poll's: two allocations a record, were they all made so): then it is copied into the
    /// new blocks.
    fn entries(mut self) -> Vec<(Key, Packed)> {
        // Per block: bytes kept, records kept, bytes written.
        let mut used: HashMap<*const Vec<u8>, (usize, usize, usize)> = HashMap::new();
        for (_, s) in &self.entries {
            if let Staged::Kept(Packed::Record(r)) = s {
                let (block, size) = r.block();
                let u = used.entry(block).or_insert((0, 0, size));
                u.0 += r.bytes().len();
                u.1 += 1;
            }
        }
        let sparse = |r: &Record| {
            used.get(&r.block().0)
                .is_some_and(|(n, records, size)| n * 2 < *size || *records == 1)
        };
        for (_, s) in &mut self.entries {
            if let Staged::Kept(Packed::Record(r)) = s
                && sparse(r)
            {
                *s = Staged::Written(self.blocks.write(r.bytes()));
            }
        }
        let sealed = self.blocks.seal();
        self.entries
            .into_iter()
            .map(|(k, s)| match s {
                Staged::Kept(p) => (k, p),
                Staged::Written(w) => (k, Packed::Record(sealed.record(w))),
            })
            .collect()
    }
}

/// Past this many strings, a full sync starts its table anew (see [`Model::replace_after`]).
const MAX_SHARED_STRINGS: usize = 4096;

/// What an entry the server sent unreadable is listed as.
pub const UNREADABLE: &str = "(unreadable entry)";

/// An entry a poll changed: what it was (`None`: new) and what it is (`None`: deleted).
pub type Touched = (Option<Mapped>, Option<Mapped>);

fn key_of(e: &RawEntry) -> String {
    match e.first("entryUUID").or_else(|| e.first("zimbraId")) {
        Some(id) => format!("id:{}", id.to_ascii_lowercase()),
        None => format!("dn:{}", e.dn.to_ascii_lowercase()),
    }
}

impl Model {
    /// Every entry, unpacked one at a time.
    pub fn entries(&self) -> impl Iterator<Item = Mapped> + '_ {
        self.entries.values().map(|p| self.table.unpack(p))
    }

    /// Each entry with the key it is known by (`id:` and its UUID or id, else `dn:` and its DN).
    pub fn keyed(&self) -> impl Iterator<Item = (String, Mapped)> + '_ {
        self.entries
            .iter()
            .map(|(k, p)| (k.to_string(), self.table.unpack(p)))
    }

    /// Each entry as kept, with its key: a build unpacks them as it goes.
    pub(crate) fn packed(&self) -> impl Iterator<Item = (&Key, &Packed)> {
        self.entries.iter()
    }

    /// An entry as mapped.
    pub(crate) fn unpack(&self, p: &Packed) -> Mapped {
        self.table.unpack(p)
    }

    pub(crate) fn table(&self) -> &Table {
        &self.table
    }

    /// A model as a snapshot stored it.
    pub fn from_parts(
        keyed: impl IntoIterator<Item = (String, Mapped)>,
        unreadable: Vec<Skipped>,
        newest_stamp: Option<String>,
    ) -> Model {
        let mut model = Model {
            unreadable,
            newest_stamp,
            ..Model::default()
        };
        let entries = keyed
            .into_iter()
            .map(|(k, m)| {
                let p = model.table.pack(&k, &m);
                (Key::of(&k), p)
            })
            .collect();
        model.fill(entries);
        model
    }

    /// A model of records as a snapshot stored them, with the table they were written with:
    /// kept as read, not mapped and packed again.
    pub(crate) fn from_records(
        table: Table,
        records: impl IntoIterator<Item = (String, Packed)>,
        unreadable: Vec<Skipped>,
        newest_stamp: Option<String>,
    ) -> Model {
        let mut model = Model {
            table,
            unreadable,
            newest_stamp,
            ..Model::default()
        };
        model.fill(records.into_iter().map(|(k, p)| (Key::of(&k), p)).collect());
        model
    }

    /// How many entries name other entries (alias entries, groups by member DN).
    pub fn referrers(&self) -> usize {
        self.referrers
    }

    /// How many domain entries there are.
    pub fn domains(&self) -> usize {
        self.domains
    }

    fn count(&mut self, f: Flags, add: bool) {
        for (n, yes) in [
            (&mut self.referrers, f.refers),
            (&mut self.domains, f.domain),
        ] {
            if yes {
                *n = if add { *n + 1 } else { n.saturating_sub(1) };
            }
        }
    }

    /// Every change of `entries` goes through here, [`Model::put_packed`] and [`Model::take`],
    /// which keep the counts.
    fn put(&mut self, key: Key, m: &Mapped) -> Option<Packed> {
        let p = self.table.pack(&key.to_string(), m);
        self.put_packed(key, p)
    }

    fn put_packed(&mut self, key: Key, p: Packed) -> Option<Packed> {
        self.count(p.flags(), true);
        let old = self.entries.insert(key, p);
        if let Some(o) = &old {
            self.count(o.flags(), false);
        }
        old
    }

    /// Takes `entries`, in place of any it had, in one go (see [`EntryMap::from_entries`]).
    fn fill(&mut self, entries: Vec<(Key, Packed)>) {
        self.entries = EntryMap::from_entries(entries);
        let (mut referrers, mut domains) = (0, 0);
        for f in self.entries.values().map(Packed::flags) {
            referrers += usize::from(f.refers);
            domains += usize::from(f.domain);
        }
        (self.referrers, self.domains) = (referrers, domains);
    }

    fn take(&mut self, key: &Key) -> Option<Packed> {
        let old = self.entries.remove(key);
        if let Some(o) = &old {
            self.count(o.flags(), false);
        }
        old
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn unreadable(&self) -> &[Skipped] {
        &self.unreadable
    }

    pub fn newest_stamp(&self) -> Option<&str> {
        self.newest_stamp.as_deref()
    }

    fn note_stamp(&mut self, e: &RawEntry) {
        // GeneralizedTime in one server's own format compares as text.
        if let Some(s) = e.first("modifyTimestamp")
            && self.newest_stamp.as_deref().is_none_or(|n| s > n)
        {
            self.newest_stamp = Some(s.to_string());
        }
    }

    /// Maps entries into `self`, recording in `changes` what changed; returns the keys seen if
    /// `seen` (a full sync over entries already there needs them to find the deleted).
    ///
    /// Without `changes`, `self` is a new model that takes every entry read, all at once at
    /// the end (see [`Whole`]); an entry that `reuse` holds the same is taken from it (see
    /// [`Model::replace_after`]).
    fn merge(
        &mut self,
        read: impl IntoIterator<Item = Result<RawEntry, MalformedEntry>>,
        map: MapFn,
        mut changes: Option<&mut Changes>,
        seen: bool,
        reuse: Option<&Model>,
    ) -> Vec<Key> {
        let read = read.into_iter();
        let mut keys = Vec::with_capacity(if seen { read.size_hint().0 } else { 0 });
        let mut whole = Whole::default();
        for r in read {
            let e = match r {
                Ok(e) => e,
                Err(m) => {
                    self.unreadable.push(Skipped {
                        dn: UNREADABLE.into(),
                        reason: SkipReason::Malformed(m),
                    });
                    continue;
                }
            };
            self.note_stamp(&e);
            let text = key_of(&e);
            let key = Key::of(&text);
            let object = match map(&e) {
                Ok(Some(o)) => Ok(o),
                Ok(None) => continue,
                Err(why) => Err(why),
            };
            let mapped = Mapped { dn: e.dn, object };
            let Some(changes) = changes.as_deref_mut() else {
                whole.take(&mut self.table, key, &text, &mapped, reuse);
                continue;
            };
            let packed = self.table.pack(&text, &mapped);
            // One table packed both: the same entry is the same bytes.
            let old = self.entries.get(&key);
            let same = old.is_some_and(|o| self.table.same(o, &self.table, &packed, true));
            if !same {
                match old {
                    None => changes.add(mapped.describe()),
                    Some(_) => changes.modify(mapped.describe()),
                }
                if self.journal.is_some() {
                    let before = old.map(|o| self.table.unpack(o));
                    if let Some(j) = self.journal.as_mut() {
                        j.push((before, Some(mapped)));
                    }
                }
            }
            if seen {
                keys.push(key.clone());
            }
            self.put_packed(key, packed);
        }
        if changes.is_none() {
            self.fill(whole.entries());
        }
        keys
    }

    /// A full sync: the entries read are all there is; the rest were deleted.
    pub fn replace(
        &mut self,
        read: impl IntoIterator<Item = Result<RawEntry, MalformedEntry>>,
        map: MapFn,
    ) -> Changes {
        let mut changes = Changes::default();
        self.unreadable.clear();
        let had = !self.entries.is_empty();
        let seen = self.merge(read, map, Some(&mut changes), had, None);
        if !had {
            return changes;
        }
        let seen: std::collections::HashSet<Key> = seen.into_iter().collect();
        let gone: Vec<Key> = self
            .entries
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        for k in gone {
            if let Some(old) = self.take(&k) {
                changes.delete(self.table.unpack(&old).describe());
            }
        }
        changes
    }

    /// A poll: the entries read changed; the others stay as they were.
    pub fn update(
        &mut self,
        read: impl IntoIterator<Item = Result<RawEntry, MalformedEntry>>,
        map: MapFn,
    ) -> Changes {
        let mut changes = Changes::default();
        self.merge(read, map, Some(&mut changes), false, None);
        changes
    }

    /// A full sync into a new model, `before` the model it replaces: the new one numbers
    /// strings as `before` did and takes from it every entry that did not change. Both are
    /// held until the sync is served, and this way they share all but what changed; and the
    /// accounts built from the two share their hashes ([`SyncedHash`](super::SyncedHash)), so
    /// comparing the directories compares pointers.
    pub fn replace_after(
        before: &Model,
        read: impl IntoIterator<Item = Result<RawEntry, MalformedEntry>>,
        map: MapFn,
    ) -> Model {
        // A table that only grows is started anew now and then (a directory that renamed its
        // way through many DN parents); the records are then new too.
        let shared = before.table.strings().len() <= MAX_SHARED_STRINGS;
        let mut next = Model {
            table: if shared {
                before.table.clone()
            } else {
                Table::default()
            },
            ..Model::default()
        };
        next.merge(read, map, None, false, shared.then_some(before));
        next
    }

    /// Whether every entry is keyed by a UUID (RFC 4533 names entries by UUID only).
    pub fn keyed_by_uuid(&self) -> bool {
        self.entries.keys().all(Key::is_id)
    }

    fn remove_uuid(&mut self, u: &[u8; 16], changes: &mut Changes) {
        self.remove_key(&Key::Uuid(*u), changes);
    }

    fn remove_key(&mut self, key: &Key, changes: &mut Changes) {
        if let Some(old) = self.take(key) {
            let old = self.table.unpack(&old);
            changes.delete(old.describe());
            if let Some(j) = self.journal.as_mut() {
                j.push((Some(old), None));
            }
        }
    }

    /// What differs from `before`: entries added or changed (with their keys) and the keys of
    /// entries gone, found by one walk of both in key order, shard by shard. A poll's copy
    /// shares every shard it did not write to with the model it was copied from, and every
    /// entry it did not touch, so most is skipped or compared by pointer.
    pub fn changed_since(&self, before: &Model) -> (Vec<(String, Mapped)>, Vec<String>) {
        let (mut upserts, mut deletes) = (Vec::new(), Vec::new());
        let tables = (&self.table, &before.table, self.table.agrees(&before.table));
        for (now, was) in self.entries.differing(&before.entries) {
            changed_in(now, was, tables, &mut upserts, &mut deletes);
        }
        (upserts, deletes)
    }

    /// Applies changes as [`Model::changed_since`] found them.
    pub fn apply_changes(
        &mut self,
        upserts: impl IntoIterator<Item = (String, Mapped)>,
        deletes: &[String],
    ) {
        for k in deletes {
            self.take(&Key::of(k));
        }
        for (k, m) in upserts {
            self.put(Key::of(&k), &m);
        }
    }

    /// Sets what the model holds besides its entries, as stored.
    pub fn set_progress(&mut self, unreadable: Vec<Skipped>, newest_stamp: Option<String>) {
        self.unreadable = unreadable;
        self.newest_stamp = newest_stamp;
    }

    /// Starts recording what changes (for [`Model::take_journal`]).
    pub fn start_journal(&mut self) {
        self.journal = Some(Vec::new());
    }

    /// What changed since [`Model::start_journal`]; stops recording.
    pub fn take_journal(&mut self) -> Vec<Touched> {
        self.journal.take().unwrap_or_default()
    }

    /// Applies an RFC 4533 refresh that started from a cookie: entries added or modified,
    /// deletes by UUID, and, after a present phase, everything not reported present is gone.
    pub fn apply_sync(
        &mut self,
        read: impl IntoIterator<Item = Result<RawEntry, MalformedEntry>>,
        outcome: &SyncOutcome,
        map: MapFn,
    ) -> Changes {
        let mut changes = Changes::default();
        // The UUIDs reported present: a present phase names every entry (100 000 at a time), so
        // they stay bytes, sorted once, and each key is read as a UUID to look it up.
        let mut present: Vec<[u8; 16]> = Vec::new();
        let mut changed = Vec::new();
        for (entry, state) in read.into_iter().zip(outcome.states.iter()) {
            match state {
                None => changed.push(entry),
                Some(st) => match st.state {
                    EntryState::Delete => self.remove_uuid(&st.uuid, &mut changes),
                    EntryState::Present => present.push(st.uuid),
                    EntryState::Add | EntryState::Modify => {
                        present.push(st.uuid);
                        changed.push(entry);
                    }
                },
            }
        }
        let mut present_phase = false;
        for info in &outcome.infos {
            match info {
                SyncInfo::IdSet {
                    refresh_deletes: true,
                    uuids,
                    ..
                } => uuids.iter().for_each(|u| self.remove_uuid(u, &mut changes)),
                SyncInfo::IdSet { uuids, .. } => present.extend(uuids.iter().copied()),
                SyncInfo::RefreshPhase { present: true, .. } => present_phase = true,
                _ => {}
            }
        }
        let mut merged = Changes::default();
        self.merge(changed, map, Some(&mut merged), false, None);
        changes.append(merged);
        let done_present = outcome.done.as_ref().is_some_and(|d| !d.refresh_deletes);
        if present_phase || done_present {
            present.sort_unstable();
            let is_present =
                |key: &Key| key.uuid().is_some_and(|u| present.binary_search(u).is_ok());
            let gone: Vec<Key> = self
                .entries
                .keys()
                .filter(|k| !is_present(k))
                .cloned()
                .collect();
            for k in gone {
                self.remove_key(&k, &mut changes);
            }
        }
        changes
    }
}

/// [`Model::changed_since`] for one shard: `now` against `was`, both in key order; `tables`
/// are theirs and whether they agree.
fn changed_in(
    now: &Shard,
    was: &Shard,
    (now_table, was_table, agree): (&Table, &Table, bool),
    upserts: &mut Vec<(String, Mapped)>,
    deletes: &mut Vec<String>,
) {
    use std::cmp::Ordering;
    let mut old = was.iter().peekable();
    for (k, m) in now {
        loop {
            match old.peek() {
                Some((ok, _)) if *ok < k => {
                    deletes.push(ok.to_string());
                    old.next();
                }
                _ => break,
            }
        }
        match old.peek() {
            Some((ok, om)) if (*ok).cmp(k) == Ordering::Equal => {
                if !now_table.same(m, was_table, om, agree) {
                    upserts.push((k.to_string(), now_table.unpack(m)));
                }
                old.next();
            }
            _ => upserts.push((k.to_string(), now_table.unpack(m))),
        }
    }
    deletes.extend(old.map(|(k, _)| k.to_string()));
}

#[cfg(test)]
mod tests {
    use super::super::zimbra;
    use super::*;

    fn account(uuid: &str, dn: &str, addr: &str, stamp: &str) -> Result<RawEntry, MalformedEntry> {
        Ok(RawEntry::new(
            dn,
            &[
                ("objectClass", &["zimbraAccount"]),
                ("entryUUID", &[uuid]),
                ("zimbraMailDeliveryAddress", &[addr]),
                ("modifyTimestamp", &[stamp]),
            ],
        ))
    }

    #[test]
    fn full_sync_finds_deletes_and_polls_find_changes() {
        let mut m = Model::default();
        let c = m.replace(
            vec![
                account("1", "uid=a,dc=e,dc=com", "a@e.com", "20261201100000Z"),
                account("2", "uid=b,dc=e,dc=com", "b@e.com", "20261201100500Z"),
                Err(MalformedEntry::Shape),
            ],
            zimbra::map,
        );
        assert_eq!(c.added, ["account a@e.com", "account b@e.com"]);
        assert_eq!(m.len(), 2);
        assert_eq!(m.unreadable().len(), 1);
        assert_eq!(m.newest_stamp(), Some("20261201100500Z"));
        // A rename keeps the entryUUID: a modification, not an add and a delete.
        let c = m.update(
            vec![account(
                "1",
                "uid=a2,dc=e,dc=com",
                "a2@e.com",
                "20261201110000Z",
            )],
            zimbra::map,
        );
        assert_eq!(c.modified, ["account a2@e.com"]);
        assert_eq!(m.len(), 2);
        let c = m.replace(
            vec![account(
                "1",
                "uid=a2,dc=e,dc=com",
                "a2@e.com",
                "20261201110000Z",
            )],
            zimbra::map,
        );
        assert_eq!(c.deleted, ["account b@e.com"]);
        assert!(c.added.is_empty() && c.modified.is_empty());
        assert!(m.unreadable().is_empty());
        assert!(c.to_string().contains("- account b@e.com"));
    }

    /// A full sync's new model shares with the one it replaces every entry that did not change.
    #[test]
    fn a_full_sync_takes_the_unchanged_entries_of_the_model_before() {
        let d = || account("4", "uid=d,dc=e,dc=com", "d@e.com", "20261201100000Z");
        let before = Model::replace_after(
            &Model::default(),
            vec![
                account("1", "uid=a,dc=e,dc=com", "a@e.com", "20261201100000Z"),
                account("2", "uid=b,dc=e,dc=com", "b@e.com", "20261201100000Z"),
                d(),
            ],
            zimbra::map,
        );
        let next = Model::replace_after(
            &before,
            vec![
                account("1", "uid=a,dc=e,dc=com", "a@e.com", "20261201100000Z"),
                account("2", "uid=b,ou=x,dc=e,dc=com", "b@e.com", "20261201120000Z"),
                account("3", "uid=c,dc=e,dc=com", "c@e.com", "20261201120000Z"),
                d(),
            ],
            zimbra::map,
        );
        let is = |k: &str| {
            next.entries
                .get(&Key::of(k))
                .zip(before.entries.get(&Key::of(k)))
                .is_some_and(|(n, b)| n.is(b))
        };
        assert!(is("id:1") && is("id:4"), "unchanged: the same record");
        assert!(!is("id:2"), "moved: a new one");
        assert_eq!(next.len(), 4);
        assert_eq!(next.newest_stamp(), Some("20261201120000Z"));
        let (changed, gone) = next.changed_since(&before);
        let keys: Vec<&str> = changed.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!((keys, gone.len()), (vec!["id:2", "id:3"], 0));
        assert_eq!(changed[0].1.dn, "uid=b,ou=x,dc=e,dc=com");
    }

    /// A new model takes a full sync whole, at the end: the same model as one filled an entry
    /// at a time, the later of two entries with one key kept as there.
    #[test]
    fn a_sync_taken_whole_is_the_sync_taken_entry_by_entry() {
        let alias = Ok(RawEntry::new(
            "uid=x,ou=people,dc=e,dc=com",
            &[
                ("objectClass", &["zimbraAlias"]),
                ("entryUUID", &["x-1"]),
                ("uid", &["x"]),
                ("zimbraAliasTargetId", &["1"]),
            ],
        ));
        let read = || {
            let mut r: Vec<_> = (0..3000)
                .map(|i| {
                    let dn = format!("uid=u{i},dc=e,dc=com");
                    account(
                        &format!("{i}"),
                        &dn,
                        &format!("u{i}@e.com"),
                        "20261201100000Z",
                    )
                })
                .collect();
            r.push(alias.clone());
            r.push(Err(MalformedEntry::Shape));
            r.push(account(
                "7",
                "uid=again,dc=e,dc=com",
                "again@e.com",
                "20261201120000Z",
            ));
            r
        };
        let mut one_by_one = Model::default();
        one_by_one.replace(read(), zimbra::map);
        let whole = Model::replace_after(&Model::default(), read(), zimbra::map);
        let entries = |m: &Model| m.keyed().collect::<Vec<_>>();
        assert_eq!(whole.len(), 3001);
        assert_eq!(entries(&whole), entries(&one_by_one));
        assert_eq!(whole.referrers(), 1);
        assert_eq!(whole.unreadable().len(), 1);
        assert_eq!(whole.newest_stamp(), Some("20261201120000Z"));
        let again = whole
            .entries
            .get(&Key::of("id:7"))
            .map(|p| whole.unpack(p).dn);
        assert_eq!(again.as_deref(), Some("uid=again,dc=e,dc=com"));
        // Read again whole after itself: every entry is the one before.
        let next = Model::replace_after(&whole, read(), zimbra::map);
        assert!(
            next.entries
                .iter()
                .all(|(k, p)| whole.entries.get(k).is_some_and(|w| w.is(p)))
        );
    }

    /// A full sync keeps the records that did not change where they are, unless what it
    /// keeps of their blocks is less than half: then they are copied into its own.
    #[test]
    fn records_kept_from_blocks_mostly_dead_are_copied_out() {
        // Entries `changed` of each hundred, so every block has some.
        let read = |changed: u32| {
            (0..4000u32)
                .map(|i| {
                    let address = match i % 100 < changed {
                        true => format!("u{i}-moved@e.com"),
                        false => format!("u{i}@e.com"),
                    };
                    let dn = format!("uid=u{i},dc=e,dc=com");
                    account(&format!("{i}"), &dn, &address, "20261201100000Z")
                })
                .collect::<Vec<_>>()
        };
        let first = Model::replace_after(&Model::default(), read(0), zimbra::map);
        // A few changed: the rest stay in their blocks.
        let few = Model::replace_after(&first, read(1), zimbra::map);
        let kept = |m: &Model| {
            (m.entries.iter())
                .filter(|(k, p)| first.entries.get(k).is_some_and(|f| f.is(p)))
                .count()
        };
        assert_eq!(kept(&few), 3960);
        // Most changed: the rest are copied, the same bytes in a new place.
        let most = Model::replace_after(&first, read(75), zimbra::map);
        assert_eq!(kept(&most), 0);
        let same = |k: &Key, p: &Packed| first.entries.get(k).map(Packed::bytes) == Some(p.bytes());
        let unchanged = most.entries.iter().filter(|(k, p)| same(k, p)).count();
        assert_eq!(unchanged, 1000);
        assert_eq!(most.keyed().count(), 4000);
        // A poll's record is its block's alone: a full sync that keeps it moves it into a block.
        let mut polled = first.clone();
        let moved = || {
            account(
                "5",
                "uid=u5,dc=e,dc=com",
                "u5-polled@e.com",
                "20261202100000Z",
            )
        };
        polled.update(vec![moved()], zimbra::map);
        let mut again = read(0);
        again[5] = moved();
        let after = Model::replace_after(&polled, again, zimbra::map);
        let (k5, was) = (Key::of("id:5"), polled.entries.get(&Key::of("id:5")));
        let now = after.entries.get(&k5);
        assert!(
            now.zip(was)
                .is_some_and(|(n, w)| !n.is(w) && n.bytes() == w.bytes())
        );
        assert_eq!(kept(&after), 3999);
    }

    #[test]
    fn a_large_sync_keeps_the_names_printed_and_counts_the_rest() {
        let mut c = Changes::default();
        // Out of order, as a hash map gives them.
        for i in (0..1000).map(|i| (i * 7919) % 1000) {
            c.add(format!("account u{i:04}@e.com"));
        }
        c.delete("account gone@e.com".into());
        c.settings
            .push("config zimbraMtaRelayHost: \"\" -> \"[r]:25\"".into());
        c.sort();
        assert_eq!(c.added.len(), SHOWN_CHANGES);
        assert_eq!(
            c.added.first().map(String::as_str),
            Some("account u0000@e.com")
        );
        assert_eq!(
            c.added.last().map(String::as_str),
            Some("account u0049@e.com")
        );
        assert_eq!(
            (c.added_count(), c.modified_count(), c.deleted_count()),
            (1000, 1, 1)
        );
        let printed = c.to_string();
        assert!(
            printed.starts_with("~ config zimbraMtaRelayHost"),
            "{printed}"
        );
        assert!(
            printed.contains("+ account u0048@e.com\n... and 952 more\n"),
            "{printed}"
        );
        assert!(
            printed.ends_with("1000 added, 1 modified, 1 deleted\n"),
            "{printed}"
        );
        let mut more = Changes::default();
        more.modify("account x@e.com".into());
        c.append(more);
        assert_eq!(
            (c.added_count(), c.modified_count(), c.total()),
            (1000, 2, 1003)
        );
    }

    #[test]
    fn referrers_are_counted_through_every_change() {
        let alias = |uuid: &str, uid: &str| {
            Ok(RawEntry::new(
                &format!("uid={uid},ou=people,dc=e,dc=com"),
                &[
                    ("objectClass", &["zimbraAlias"]),
                    ("entryUUID", &[uuid]),
                    ("uid", &[uid]),
                    ("zimbraAliasTargetId", &["1"]),
                ],
            ))
        };
        let mut m = Model::default();
        m.replace(
            vec![
                account("1", "uid=a,dc=e,dc=com", "a@e.com", "20261201100000Z"),
                alias("2", "x"),
                alias("3", "y"),
            ],
            zimbra::map,
        );
        assert_eq!(m.referrers(), 2);
        // An alias entry that becomes an account no longer names another entry.
        m.update(
            vec![account(
                "2",
                "uid=x,dc=e,dc=com",
                "x@e.com",
                "20261201110000Z",
            )],
            zimbra::map,
        );
        assert_eq!(m.referrers(), 1);
        // A full sync without it: deleted, and uncounted.
        m.replace(
            vec![account(
                "1",
                "uid=a,dc=e,dc=com",
                "a@e.com",
                "20261201100000Z",
            )],
            zimbra::map,
        );
        assert_eq!(m.referrers(), 0);
        m.update(vec![alias("3", "y")], zimbra::map);
        assert_eq!(m.referrers(), 1);
        // A model as a snapshot gives it back counts them anew.
        let copy = Model::from_parts(m.keyed(), Vec::new(), None);
        assert_eq!(copy.referrers(), 1);
    }

    #[test]
    fn a_summary_prints_as_the_whole_and_keeps_only_what_is_printed() {
        let c = Changes {
            added: (0..120).map(|i| format!("account a{i}@e.com")).collect(),
            deleted: (0..70).map(|i| format!("account d{i}@e.com")).collect(),
            ..Changes::default()
        };
        let s = c.summary();
        assert_eq!(s.to_string(), c.to_string());
        assert!(s.to_string().contains("... and 140 more"));
        assert_eq!(
            (s.added.len(), s.added_count(), s.deleted_count()),
            (SHOWN_CHANGES, 120, 70)
        );
        assert_eq!(s.total(), 190);
        assert!(!s.is_empty() && Changes::default().summary().is_empty());
    }
}
