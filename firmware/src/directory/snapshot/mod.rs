//! The directory's flash snapshot: a version number, then the domains, accounts, aliases and MTA
//! config in postcard. Values are stored as the strings an admin typed and go through the same
//! checks as `zmprov` when read back, so a snapshot can never put into RAM what could not be set.
//! Bytes that are not a valid snapshot give a [`DecodeError`], never a panic. The flash layer
//! adds the CRC and keeps the previous snapshot in the other slot until the new one is whole.
//!
//! This firmware writes the compact version 4 ([`compact`]) with the LDAP sync's state
//! ([`sync_state`]), whose model the LDAP entries are built from when read; versions 1 to 3 are
//! still read (1 and 2: [`legacy`]), so an update keeps the directory (the first sync after it
//! is then a full one, as there is no state to resume from).

mod compact;
mod legacy;
mod sync_state;

pub use compact::PartSink;
pub(crate) use compact::Strings;
pub(crate) use sync_state::{pack_entry, pack_entry_in, unpack_entry};

use std::fmt;
use std::sync::Arc;

use super::{Directory, DirectoryError, Domain, Source};
use crate::config::MtaConfig;

/// The snapshot format written by this firmware.
pub const SNAPSHOT_VERSION: u32 = compact::VERSION;

/// Why snapshot bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Written by a firmware with another format.
    Version(u32),
    /// Not postcard of the expected shape (truncated, corrupt, or bytes left over).
    Corrupt,
    /// Well-formed, but a value fails the directory's checks.
    Invalid(DirectoryError),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Version(v) => write!(
                f,
                "directory snapshot version {v}, this firmware reads 1 to {SNAPSHOT_VERSION}"
            ),
            DecodeError::Corrupt => f.write_str("directory snapshot is corrupt"),
            DecodeError::Invalid(e) => write!(f, "directory snapshot holds a bad value: {e}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Attribute name and values, as `gd`/`ga`/`gacf` show them.
type Attrs = Vec<(String, Vec<String>)>;

fn attrs_of(names: &[&str], values: impl Fn(&str) -> Vec<String>) -> Attrs {
    names
        .iter()
        .map(|n| (n.to_string(), values(n)))
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

fn config_attrs(dir: &Directory) -> Attrs {
    attrs_of(MtaConfig::ATTRS, |n| {
        dir.config.stored_values(n).unwrap_or_default()
    })
}

fn domain_attrs(d: &Domain) -> Attrs {
    attrs_of(&Domain::ATTRS[1..], |n| d.values(n).unwrap_or_default())
}

fn load_config(attrs: &Attrs) -> Result<MtaConfig, DirectoryError> {
    let mut config = MtaConfig::default();
    for (attr, values) in attrs {
        config.load(attr, values)?;
    }
    Ok(config)
}

fn ldap_config_names(names: &[String]) -> Result<Vec<&'static str>, DirectoryError> {
    names
        .iter()
        .map(|a| MtaConfig::attr_name(a).map_err(DirectoryError::from))
        .collect()
}

fn load_domain(name: &str, attrs: &Attrs, source: Source) -> Result<Domain, DirectoryError> {
    let mut d = Domain::new(name)?;
    d.set_source(source);
    for (attr, values) in attrs {
        d.set(attr, values)?;
    }
    Ok(d)
}

impl Directory {
    /// The snapshot bytes (deterministic: sorted by name).
    pub fn encode(&self) -> Vec<u8> {
        compact::encode(self).0
    }

    /// The snapshot bytes, and whether they hold the LDAP sync's state (a poll's journal
    /// records may follow only such a snapshot).
    pub fn encode_with_state(&self) -> (Vec<u8>, bool) {
        compact::encode(self)
    }

    /// The same, given to `sink` in parts after its length (see [`compact::encode_parts`]):
    /// the sink's first error, and whether the LDAP sync state went in.
    pub fn encode_with_state_into<E>(&self, sink: &mut dyn PartSink<E>) -> (Result<(), E>, bool) {
        compact::encode_parts(self, sink)
    }

    /// Reads snapshot bytes back, checking every value.
    pub fn decode(bytes: &[u8]) -> Result<Directory, DecodeError> {
        let (version, rest) =
            postcard::take_from_bytes::<u32>(bytes).map_err(|_| DecodeError::Corrupt)?;
        match version {
            1 | 2 => legacy::decode(version, rest),
            compact::VERSION_3 | compact::VERSION => match compact::decode(version, rest)? {
                (dir, None) => Ok(dir),
                (dir, Some(state)) => Ok(with_ldap_entries(dir, state)),
            },
            other => Err(DecodeError::Version(other)),
        }
    }
}

/// What reading a directory slot's journal did: records after the first that does not apply are
/// left out (the directory is then as it was before that record, which is what a power cut just
/// before it would have left), and the sync state loses its cookie and full-sync time, so the
/// first sync is a full one and writes the whole snapshot again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replayed {
    pub records: usize,
    pub applied: usize,
    pub error: Option<DecodeError>,
}

impl Directory {
    /// The journal record that takes `before`, the directory the slot holds, to `self`, a
    /// poll's directory built from the same local entries: `None` when either has no LDAP sync
    /// state or the change has no record form (then the whole snapshot is written).
    pub fn encode_change(&self, before: &Directory) -> Option<Vec<u8>> {
        let (b, a) = (before.ldap_sync.as_deref()?, self.ldap_sync.as_deref()?);
        sync_state::delta::encode(b, a, self.ldap_synced)
    }

    /// Reads snapshot bytes and the journal records after them back, checking every value.
    pub fn decode_journaled(
        bytes: &[u8],
        journal: &[Vec<u8>],
    ) -> Result<(Directory, Replayed), DecodeError> {
        let mut replayed = Replayed {
            records: journal.len(),
            ..Replayed::default()
        };
        if journal.is_empty() {
            return Ok((Directory::decode(bytes)?, replayed));
        }
        let (version, rest) =
            postcard::take_from_bytes::<u32>(bytes).map_err(|_| DecodeError::Corrupt)?;
        let (mut stored, state) = match version {
            compact::VERSION => compact::decode(version, rest)?,
            _ => (Directory::decode(bytes)?, None),
        };
        let Some(mut state) = state else {
            // Records only ever follow a snapshot with a sync state.
            replayed.error = Some(DecodeError::Corrupt);
            return Ok((stored, replayed));
        };
        for record in journal {
            match sync_state::delta::apply(&mut state, record) {
                Ok(synced) => {
                    stored.ldap_synced = synced;
                    replayed.applied += 1;
                }
                Err(e) => {
                    state.cookie = None;
                    state.last_full = None;
                    replayed.error = Some(e);
                    break;
                }
            }
        }
        Ok((with_ldap_entries(stored, state), replayed))
    }
}

/// The stored directory with its LDAP entries built from the state's model, as the sync that
/// saved it built them; the state goes with it, for the next sync to resume from.
fn with_ldap_entries(stored: Directory, mut state: super::ldap::state::SyncState) -> Directory {
    let synced = stored.ldap_synced.unwrap_or(0);
    let built = super::ldap::build(&stored, &state.model, synced, &state.origin.server);
    state.skipped = built.skipped;
    state.counts = built.counts;
    let mut dir = built.directory;
    dir.ldap_sync = Some(Arc::new(state));
    dir
}

#[cfg(test)]
mod tests {
    use super::legacy::Snapshot;
    use super::*;
    use crate::directory::Account;
    use proptest::prelude::*;

    fn sample() -> Directory {
        let mut d = Directory::default();
        d.config_mut()
            .set("zimbraMtaRelayHost", &["[relay.example.net]:587".into()])
            .unwrap();
        let mut dom = Domain::new("example.com").unwrap();
        dom.set("zimbraMailCatchAllAddress", &["@example.com".into()])
            .unwrap();
        dom.set(
            "zimbraMailCatchAllForwardingAddress",
            &["@example.com".into()],
        )
        .unwrap();
        dom.set("zimbraMailTransport", &["smtp:mail.example.com:25".into()])
            .unwrap();
        d.add_domain(dom).unwrap();
        let mut a = Account::new("foo@example.com").unwrap();
        a.set(
            "zimbraMailTransport",
            &["lmtp:zimbra.example.com:7025".into()],
        )
        .unwrap();
        a.set(
            "zimbraPrefMailForwardingAddress",
            &["foo@elsewhere.org".into()],
        )
        .unwrap();
        a.set_password_hash(Some("{SSHA512}abc".into()));
        d.add_account(a).unwrap();
        let mut b = Account::new("bar@example.com").unwrap();
        b.set("zimbraMailStatus", &["disabled".into()]).unwrap();
        d.add_account(b).unwrap();
        d.add_alias("foo@example.com", "f@example.com").unwrap();
        d
    }

    #[test]
    fn round_trips() {
        let d = sample();
        let bytes = d.encode();
        let back = Directory::decode(&bytes).unwrap();
        assert_eq!(back.encode(), bytes);
        assert_eq!(back.config(), d.config());
        assert_eq!(
            back.account("foo@example.com"),
            d.account("foo@example.com")
        );
        assert_eq!(back.domain("example.com"), d.domain("example.com"));
        assert!(matches!(
            back.lookup("f@example.com"),
            super::super::Lookup::Account { .. }
        ));
    }

    /// What a sink is given in parts, after the length, is the snapshot encoded whole; a
    /// sink that fails stops the encode with its error.
    #[test]
    fn a_snapshot_in_parts_is_the_snapshot_whole() {
        struct Collect {
            len: Option<usize>,
            parts: Vec<Vec<u8>>,
            fail_at: Option<usize>,
        }
        impl PartSink<String> for Collect {
            fn begin(&mut self, len: usize) -> Result<(), String> {
                self.len = Some(len);
                Ok(())
            }
            fn part(&mut self, bytes: &[u8]) -> Result<(), String> {
                if self.fail_at == Some(self.parts.len()) {
                    return Err("flash gone".into());
                }
                self.parts.push(bytes.to_vec());
                Ok(())
            }
        }
        let mut d = sample();
        // Enough accounts for several parts.
        for i in 0..30_000 {
            d.add_account(Account::new(&format!("user{i}@example.com")).unwrap())
                .unwrap();
        }
        let (whole, _) = d.encode_with_state();
        let mut sink = Collect {
            len: None,
            parts: Vec::new(),
            fail_at: None,
        };
        let (res, _) = d.encode_with_state_into(&mut sink);
        assert_eq!(res, Ok(()));
        assert!(sink.parts.len() > 1);
        assert_eq!(sink.len, Some(whole.len()));
        assert_eq!(sink.parts.concat(), whole);
        let mut failing = Collect {
            len: None,
            parts: Vec::new(),
            fail_at: Some(1),
        };
        let (res, _) = d.encode_with_state_into(&mut failing);
        assert_eq!(res, Err("flash gone".to_string()));
        assert_eq!(failing.parts.len(), 1);
    }

    /// Flash keeps what the admin typed, so `ga`/`gd`/`gacf` show it after a restart; the
    /// strings are the ones an older firmware stored too (they parse to the same values).
    #[test]
    fn typed_values_survive_the_snapshot() {
        let back = Directory::decode(&sample().encode()).unwrap();
        let shown = |v: Vec<String>| v.join(",");
        assert_eq!(
            shown(back.config().values("zimbraMtaRelayHost").unwrap()),
            "[relay.example.net]:587"
        );
        let dom = back.domain("example.com").unwrap();
        assert_eq!(
            shown(dom.values("zimbraMailTransport").unwrap()),
            "smtp:mail.example.com:25"
        );
        let foo = back.account("foo@example.com").unwrap();
        assert_eq!(
            shown(foo.values("zimbraMailTransport").unwrap()),
            "lmtp:zimbra.example.com:7025"
        );
        // What an older firmware wrote: the normalised spelling of every config value.
        let older = Snapshot {
            config: vec![
                (
                    "zimbraMtaRelayHost".into(),
                    vec!["smtp:[relay.example.net]:587".into()],
                ),
                ("zimbraMtaDnsLookupsEnabled".into(), vec!["FALSE".into()]),
                ("zimbraMtaMaximalQueueLifetime".into(), vec!["5d".into()]),
            ],
            domains: vec![],
            accounts: vec![],
            aliases: vec![],
        };
        // That firmware wrote version 1 (no origins).
        let bytes = postcard::to_allocvec(&(1u32, older)).unwrap();
        let d = Directory::decode(&bytes).unwrap();
        assert_eq!(d.config().relay_host, sample().config().relay_host);
        assert!(!d.config().dns_lookups_enabled);
        assert_eq!(Directory::decode(&d.encode()).unwrap().config(), d.config());
    }

    /// The older firmware stored restrictions it did not apply. Its flash still loads, and
    /// they apply now.
    #[test]
    fn restrictions_from_an_older_firmware_still_load() {
        let older = Snapshot {
            config: vec![(
                "zimbraMtaRestriction".to_string(),
                vec!["reject_rbl_client zen.spamhaus.org".to_string()],
            )],
            domains: vec![],
            accounts: vec![],
            aliases: vec![],
        };
        // That firmware wrote version 1 (no origins).
        let bytes = postcard::to_allocvec(&(1u32, older)).unwrap();
        let d = Directory::decode(&bytes).unwrap();
        assert_eq!(d.config().restrictions.len(), 1);
        assert!(d.config().unenforced().is_empty());
        let again = Directory::decode(&d.encode()).unwrap();
        assert_eq!(again.config(), d.config());
    }

    #[test]
    fn origins_round_trip_and_version_1_reads_as_local() {
        let mut d = sample();
        d.ldap_synced = Some(1_700_000_000);
        let name = "foo@example.com";
        let mut a = d.account(name).unwrap().clone();
        a.set_source(Source::Ldap);
        d.remove_account(name).unwrap();
        d.add_account(a).unwrap();
        let back = Directory::decode(&d.encode()).unwrap();
        assert_eq!(back.ldap_synced(), Some(1_700_000_000));
        assert_eq!(back.account(name).unwrap().source(), Source::Ldap);
        assert_eq!(
            back.account("bar@example.com").unwrap().source(),
            Source::Local
        );
        // What the firmware before the compact format wrote still loads, origins and all.
        let v2 = legacy::encode_v2(&d);
        let back = Directory::decode(&v2).unwrap();
        assert_eq!(back.encode(), d.encode());
        assert_eq!(back.account(name).unwrap().source(), Source::Ldap);
        // A version 1 snapshot is the version 2 bytes without the origins.
        let (_, body) = postcard::take_from_bytes::<u32>(&v2).unwrap();
        let (snap, _) = postcard::take_from_bytes::<Snapshot>(body).unwrap();
        let v1 = postcard::to_allocvec(&(1u32, snap)).unwrap();
        let old = Directory::decode(&v1).unwrap();
        assert_eq!(old.account(name).unwrap().source(), Source::Local);
        assert_eq!(old.ldap_synced(), None);
        assert_eq!(old.counts(), d.counts());
    }

    #[test]
    fn wrong_version_and_trailing_bytes_are_refused() {
        let mut bytes = d_bytes();
        bytes[0] = 7;
        assert_eq!(
            Directory::decode(&bytes).unwrap_err(),
            DecodeError::Version(7)
        );
        let mut bytes = d_bytes();
        bytes.push(0);
        assert_eq!(Directory::decode(&bytes).unwrap_err(), DecodeError::Corrupt);
        assert_eq!(Directory::decode(&[]).unwrap_err(), DecodeError::Corrupt);
    }

    /// Found by the directory_snapshot fuzz target: a domain `0A0n.` was accepted and written
    /// back as `0a0n`, which the next read refused, so a reboot would have lost the directory.
    #[test]
    fn what_is_read_is_written_back_readable() {
        let bytes = [1, 0, 1, 5, b'0', b'A', b'0', b'n', b'.', 0, 0, 0];
        match Directory::decode(&bytes) {
            Ok(d) => assert!(Directory::decode(&d.encode()).is_ok()),
            Err(e) => assert!(matches!(e, DecodeError::Invalid(_)), "{e:?}"),
        }
    }

    fn d_bytes() -> Vec<u8> {
        sample().encode()
    }

    proptest! {
        #[test]
        fn corrupt_bytes_give_an_error_not_a_panic(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            let mut bytes = d_bytes();
            for (at, x) in flips {
                let n = bytes.len();
                if let Some(b) = bytes.get_mut(at % n) {
                    *b ^= x;
                }
            }
            let _ = Directory::decode(&bytes);
            let cut = cut % (bytes.len() + 1);
            let _ = Directory::decode(&bytes[..cut]);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Directory::decode(&bytes);
        }
    }
}
