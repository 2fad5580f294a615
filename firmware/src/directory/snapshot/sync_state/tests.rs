//! The sync state through a snapshot: the model comes back entry for entry, the LDAP entries are
//! built from it, and what the records cannot hold leaves a snapshot without state.

use std::sync::Arc;

use crate::config::localconfig::LocalConfig;
use crate::directory::ldap::entry::{MalformedEntry, RawEntry};
use crate::directory::ldap::model::Model;
use crate::directory::ldap::object::{SkipReason, Skipped};
use crate::directory::ldap::state::{Origin, SyncState, Syncrepl};
use crate::directory::ldap::{build, zimbra};
use crate::directory::{Directory, Lookup, Source, prov};

const UUID: &str = "5f3c1122-3344-5566-7788-99aabbccddee";

fn account(dn: &str, extra: &[(&str, &[&str])]) -> RawEntry {
    let mut attrs: Vec<(&str, &[&str])> = vec![("objectClass", &["zimbraAccount"])];
    attrs.extend_from_slice(extra);
    RawEntry::new(dn, &attrs)
}

/// Every shape of entry the Zimbra mapping makes, keyed every way a model keys them.
fn entries() -> Vec<Result<RawEntry, MalformedEntry>> {
    let people = "ou=people,dc=example,dc=com";
    let dkim_key = crate::directory::domain_dkim::tests::ed25519_pem();
    vec![
        Ok(RawEntry::new(
            "dc=example,dc=com",
            &[
                ("objectClass", &["zimbraDomain"]),
                ("zimbraDomainName", &["example.com"]),
                ("zimbraId", &["d-1"]),
                ("zimbraAuthMech", &["ldap"]),
                // OpenDKIM's names, as zmdkimkeyutil writes them.
                ("DKIMSelector", &["zimbra1"]),
                ("DKIMKey", &[dkim_key.as_str()]),
                ("modifyTimestamp", &["20261201100000Z"]),
            ],
        )),
        // Keyed by its RFC 4533 UUID; its zimbraId is a UUID too.
        Ok(account(
            &format!("uid=alice,{people}"),
            &[
                ("entryUUID", &[UUID]),
                ("zimbraId", &["0a0b0c0d-0000-1111-2222-333344445555"]),
                ("zimbraMailDeliveryAddress", &["alice@example.com"]),
                ("zimbraMailAlias", &["al@example.com", "Alice@Example.COM"]),
                ("zimbraMailTransport", &["lmtp:mbox1.example.com:7025"]),
                ("userPassword", &["{SSHA512}c2VjcmV0c2FsdA=="]),
                ("zimbraMemberOf", &["g-1"]),
                ("modifyTimestamp", &["20261201110000Z"]),
            ],
        )),
        // Keyed by its zimbraId; a DN that is not uid=<local part>; a hash kept as text.
        Ok(account(
            &format!("uid=B0B,{people}"),
            &[
                ("zimbraId", &["ID-Bob"]),
                ("zimbraMailDeliveryAddress", &["bob@example.com"]),
                ("zimbraMailStatus", &["disabled"]),
                ("zimbraPrefMailForwardingAddress", &["b@elsewhere.org"]),
                ("zimbraPrefMailLocalDeliveryDisabled", &["TRUE"]),
                ("zimbraMailForwardingAddress", &["c@elsewhere.org"]),
                ("userPassword", &["{CRYPT}$6$salt$hash"]),
                ("zimbraMailCatchAllAddress", &["@example.com"]),
            ],
        )),
        // Keyed by its DN: an address that is not one, and no comma in the DN.
        Ok(account(
            "uid=odd",
            &[("zimbraMailDeliveryAddress", &["no-at-sign"])],
        )),
        Ok(RawEntry::new(
            &format!("uid=team,{people}"),
            &[
                ("objectClass", &["zimbraDistributionList"]),
                ("zimbraId", &["l-1"]),
                ("zimbraMailDeliveryAddress", &["team@example.com"]),
                ("zimbraMailForwardingAddress", &["alice@example.com"]),
            ],
        )),
        Ok(RawEntry::new(
            &format!("uid=empty,{people}"),
            &[
                ("objectClass", &["zimbraDistributionList"]),
                ("zimbraId", &["l-2"]),
                ("zimbraMailDeliveryAddress", &["empty@example.com"]),
            ],
        )),
        Ok(RawEntry::new(
            &format!("uid=nomail,{people}"),
            &[("objectClass", &["zimbraAccount"]), ("zimbraId", &["n-1"])],
        )),
        Ok(RawEntry::new(
            &format!("uid=a2,{people}"),
            &[
                ("objectClass", &["zimbraAlias"]),
                ("zimbraId", &["x-1"]),
                ("uid", &["a2"]),
                ("zimbraAliasTargetId", &["ID-Bob"]),
            ],
        )),
        Ok(RawEntry::new(
            "cn=config,cn=zimbra",
            &[
                ("objectClass", &["zimbraGlobalConfig"]),
                ("zimbraMtaMaxMessageSize", &["20480000"]),
            ],
        )),
        Err(MalformedEntry::NotUtf8),
    ]
}

fn settings() -> LocalConfig {
    let mut c = LocalConfig::default();
    c.set("ldap_url", "ldap://127.0.0.1:389").unwrap();
    c.set("zimbra_ldap_userdn", "uid=zmpostfix,cn=appaccts,cn=zimbra")
        .unwrap();
    c.server_hostname = "mx.example.com".into();
    c
}

/// A directory as a sync leaves it: a local domain and account, the LDAP entries built from
/// the model, and the state attached.
fn synced(model: Model) -> Directory {
    let args = |line: &str| line.split(' ').map(str::to_string).collect::<Vec<_>>();
    let mut local = Directory::default();
    for line in ["cd local.org", "ca me@local.org pw"] {
        local = prov::execute(&local, &args(line))
            .unwrap()
            .directory
            .unwrap();
    }
    let built = build(&local, &model, 1_796_000_000, "mx.example.com");
    let mut dir = built.directory;
    dir.set_ldap_sync_state(Some(Arc::new(SyncState {
        model: Arc::new(model),
        cookie: Some(b"rid=000,csn=20261201110000.000000Z#000000#000#000000".to_vec()),
        syncrepl: Syncrepl::Yes,
        last_full: Some(1_795_990_000),
        origin: Origin::of(&settings()),
        skipped: built.skipped,
        counts: built.counts,
    })));
    dir
}

fn model() -> Model {
    let mut m = Model::default();
    m.replace(entries(), zimbra::map);
    m
}

#[test]
fn the_model_and_the_cookie_come_back_as_saved() {
    let dir = synced(model());
    let bytes = dir.encode();
    let back = Directory::decode(&bytes).unwrap();
    let (saved, read) = (
        dir.ldap_sync_state().unwrap(),
        back.ldap_sync_state().unwrap(),
    );
    let keyed = |m: &Model| {
        m.keyed()
            .map(|(k, e)| (k.to_string(), e.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(keyed(&read.model), keyed(&saved.model));
    assert_eq!(read.model.unreadable(), saved.model.unreadable());
    assert_eq!(read.model.newest_stamp(), Some("20261201110000Z"));
    assert_eq!(read.cookie, saved.cookie);
    assert_eq!(
        (read.syncrepl, read.last_full, &read.origin),
        (Syncrepl::Yes, Some(1_795_990_000), &Origin::of(&settings()))
    );
    assert_eq!((&read.skipped, read.counts), (&saved.skipped, saved.counts));
    assert!(
        read.skipped
            .iter()
            .any(|s| s.reason == SkipReason::MissingAttribute("zimbraMailDeliveryAddress"))
    );
    // The LDAP entries are built again from it, beside the local ones.
    assert_eq!(back.encode(), bytes);
    assert_eq!(back.counts(), dir.counts());
    match back.lookup("AL@example.com") {
        Lookup::Account { account, .. } => {
            assert_eq!(account.address(), "alice@example.com");
            assert_eq!(account.source(), Source::Ldap);
            assert_eq!(
                account.password().as_deref(),
                Some("{SSHA512}c2VjcmV0c2FsdA==")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        back.lookup("a2@example.com"),
        Lookup::Account { account, .. } if account.address() == "bob@example.com"
    ));
    assert_eq!(back.config().max_message_size, 20_480_000);
    assert_eq!(
        back.account("me@local.org").unwrap().source(),
        Source::Local
    );
    // The domain's DKIM key from LDAP comes back with it.
    let dkim = |d: &Directory| d.domain("example.com").and_then(|x| x.dkim()).cloned();
    assert_eq!(dkim(&back), dkim(&dir));
    assert!(dkim(&back).is_some_and(|k| k.signing().map(|(s, _)| s) == Some("zimbra1")));
}

/// Two copies of 100 000 accounts would not fit the 16 MiB slot: with a state, the accounts from
/// LDAP are stored once, as the model (Zimbra-like: an alias, a mailbox server, a salted
/// SHA-512, a zimbraId and an entryUUID each).
#[test]
fn a_hundred_thousand_synced_accounts_fit_a_16_mib_slot() {
    let n = 20_000;
    let hash = format!("{{SSHA512}}{}", "c2VjcmV0".repeat(12));
    let uuid = |i: usize, tag: u8| format!("{i:08x}-{tag:04x}-4000-8000-00000000{i:04x}");
    let mut raw = vec![Ok(RawEntry::new(
        "dc=example,dc=com",
        &[
            ("objectClass", &["zimbraDomain"]),
            ("zimbraDomainName", &["example.com"]),
        ],
    ))];
    for i in 0..n {
        let (addr, alias) = (
            format!("user{i}@example.com"),
            format!("alias{i}@example.com"),
        );
        let transport = format!("lmtp:mbox{}.example.com:7025", i % 8);
        let (id, entry_uuid) = (uuid(i, 1), uuid(i, 2));
        raw.push(Ok(account(
            &format!("uid=user{i},ou=people,dc=example,dc=com"),
            &[
                ("entryUUID", &[entry_uuid.as_str()]),
                ("zimbraId", &[id.as_str()]),
                ("zimbraMailDeliveryAddress", &[addr.as_str()]),
                ("zimbraMailAlias", &[alias.as_str()]),
                ("zimbraMailTransport", &[transport.as_str()]),
                ("userPassword", &[hash.as_str()]),
                ("modifyTimestamp", &["20261201110000Z"]),
            ],
        )));
    }
    let mut m = Model::default();
    m.replace(raw, zimbra::map);
    let dir = synced(m);
    let mut without = dir.clone();
    without.set_ldap_sync_state(None);
    let (with_state, plain) = (dir.encode().len(), without.encode().len());
    let per_account = with_state / n;
    assert!(per_account <= 150, "{per_account} bytes per account");
    assert!(per_account * 100_000 < 16 << 20);
    assert!(with_state < plain + plain / 2, "{with_state} vs {plain}");
    let back = Directory::decode(&dir.encode()).unwrap();
    assert_eq!(back.counts(), dir.counts());
    assert_eq!(back.ldap_sync_state().unwrap().model.len(), n + 1);
    // A snapshot without the state loads as before: nothing to resume from.
    let back = Directory::decode(&without.encode()).unwrap();
    assert!(back.ldap_sync_state().is_none());
    assert_eq!(back.counts(), dir.counts());
}

/// What the firmware before the state wrote (version 3) still loads, LDAP accounts and all;
/// there is nothing to resume from, so the first sync is a full one.
#[test]
fn a_version_3_snapshot_loads_without_a_state() {
    let mut dir = synced(model());
    dir.set_ldap_sync_state(None);
    let v4 = dir.encode();
    // Version 3 is version 4 without the trailing state (here `None`, one byte).
    assert_eq!((v4[0], v4.last()), (4, Some(&0)));
    let mut v3 = v4[..v4.len() - 1].to_vec();
    v3[0] = 3;
    let back = Directory::decode(&v3).unwrap();
    assert!(back.ldap_sync_state().is_none());
    assert_eq!(back.counts(), dir.counts());
    assert_eq!(back.encode(), v4);
    let mut syncer = crate::directory::ldap::Syncer::for_settings(&settings());
    assert_eq!(
        syncer.resume(&back, &settings()),
        crate::directory::ldap::Resumed::NoState
    );
    // With the state, the same settings resume; others do not.
    let mut syncer = crate::directory::ldap::Syncer::for_settings(&settings());
    let resumed = syncer.resume(&synced(model()), &settings());
    assert!(matches!(
        resumed,
        crate::directory::ldap::Resumed::Yes { cookie: true, .. }
    ));
    let mut other = settings();
    other.server_hostname = "other.example.com".into();
    assert_eq!(
        syncer.resume(&synced(model()), &other),
        crate::directory::ldap::Resumed::OtherSettings
    );
}

#[test]
fn a_state_the_records_cannot_hold_is_left_out_not_half_stored() {
    let mut m = model();
    m = Model::from_parts(
        m.keyed().map(|(k, e)| (k.to_string(), e.clone())).chain([(
            "dn:uid=x".to_string(),
            crate::directory::ldap::model::Mapped {
                dn: "uid=x".into(),
                object: Err(SkipReason::LocalDomain("local.org".into())),
            },
        )]),
        vec![Skipped {
            dn: "(unreadable entry)".into(),
            reason: SkipReason::Malformed(MalformedEntry::Shape),
        }],
        None,
    );
    let dir = synced(m);
    let back = Directory::decode(&dir.encode()).unwrap();
    assert!(back.ldap_sync_state().is_none());
    // The LDAP accounts are stored as accounts then.
    assert!(back.account("alice@example.com").is_some());
    assert_eq!(back.counts(), dir.counts());
}

/// A few KiB that name one long string thousands of times are refused, not spelled out: what a
/// snapshot may expand to is bounded by its size.
#[test]
fn a_short_snapshot_cannot_expand_without_bound() {
    use super::*;
    let alias = AddressRecord {
        local: Cow::Borrowed("a"),
        domain: 1,
    };
    let record = |aliases: usize| StateRecord {
        urls: vec![],
        search_base: String::new(),
        schema: 0,
        bind_dn: String::new(),
        server: String::new(),
        progress: Progress {
            cookie: None,
            syncrepl: 0,
            last_full: None,
            newest_stamp: None,
            unreadable: vec![],
        },
        strings: vec!["d".repeat(4000)],
        entries: vec![EntryRecord {
            rdn: Some(Cow::Borrowed("uid=x")),
            parent: 0,
            key: KeyRecord::Dn,
            object: ObjectRecord::Mailbox(Box::new(MailboxRecord {
                kind: 0,
                flags: ENABLED,
                id: None,
                address: AddressRecord {
                    local: Cow::Borrowed("x"),
                    domain: 1,
                },
                aliases: (0..aliases)
                    .map(|_| AddressRecord {
                        local: alias.local.clone(),
                        domain: alias.domain,
                    })
                    .collect(),
                transport: 0,
                forwarding: vec![],
                pref_forwarding: None,
                password: None,
                catch_all: None,
                member_of: vec![],
                member_dns: vec![],
            })),
        }],
    };
    let snapshot = |aliases: usize| {
        let mut bytes = Directory::default().encode();
        // The empty state's `None` is the last byte: put this state there instead.
        bytes.pop();
        bytes.extend(postcard::to_allocvec(&Some(record(aliases))).unwrap());
        bytes
    };
    let few = snapshot(10);
    let back = Directory::decode(&few).unwrap();
    assert_eq!(back.ldap_sync_state().unwrap().model.len(), 1);
    let many = snapshot(5000);
    assert!(many.len() < 20_000, "{}", many.len());
    assert_eq!(
        Directory::decode(&many).unwrap_err(),
        super::super::DecodeError::Corrupt
    );
}

proptest::proptest! {
    /// What the directory_snapshot fuzz target checks, from a snapshot with a state: corrupt
    /// bytes give an error, never a panic, and what is accepted is written back readable.
    #[test]
    fn corrupt_states_are_refused_or_written_back_readable(
        flips in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 1..6),
        cut in proptest::prelude::any::<usize>(),
    ) {
        let mut bytes = synced(model()).encode();
        for (at, x) in flips {
            let n = bytes.len();
            if let Some(b) = bytes.get_mut(at % n) {
                *b ^= x;
            }
        }
        let cut = cut % (bytes.len() + 1);
        for input in [&bytes[..], &bytes[..cut]] {
            if let Ok(dir) = Directory::decode(input) {
                let again = dir.encode();
                let back = Directory::decode(&again).expect("own snapshot refused");
                proptest::prop_assert_eq!(back.encode(), again);
            }
        }
    }
}

proptest::proptest! {
    /// A UUID is stored as bytes only when they give back the very text the entry had, so what
    /// the snapshot reads is what was written; any other id stays text.
    #[test]
    fn uuids_are_packed_only_when_they_read_back_the_same(
        bytes in proptest::array::uniform16(proptest::prelude::any::<u8>()),
        at in 0usize..36,
    ) {
        let text = crate::directory::ldap::syncrepl::uuid_text(&bytes);
        proptest::prop_assert_eq!(text.len(), 36);
        proptest::prop_assert_eq!(super::uuid_bytes(&text), Some(bytes));
        let upper = text.to_ascii_uppercase();
        proptest::prop_assert_eq!(super::uuid_bytes(&upper).is_some(), upper == text);
        let mut changed = text.clone().into_bytes();
        changed[at] = match changed[at] { b'-' => b'0', _ => b'-' };
        let changed = String::from_utf8(changed).unwrap_or_default();
        proptest::prop_assert_eq!(super::uuid_bytes(&changed), None);
    }
}

#[test]
fn uuid_text_is_the_usual_spelling() {
    let u = [
        0x5f, 0x3c, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
        0xee,
    ];
    assert_eq!(crate::directory::ldap::syncrepl::uuid_text(&u), UUID);
    assert_eq!(super::uuid_bytes(UUID), Some(u));
    assert_eq!(super::uuid_bytes("id-17"), None);
}

/// The directory as a poll left it on `before` (its local entries kept), with its cookie: what a
/// journal record must bring back.
fn polled(before: &Directory, model: Model, cookie: &[u8]) -> Directory {
    let built = build(before, &model, 1_796_000_000, "mx.example.com");
    let mut dir = built.directory;
    let mut state = (**before.ldap_sync_state().unwrap()).clone();
    state.model = Arc::new(model);
    state.cookie = Some(cookie.to_vec());
    state.skipped = built.skipped;
    state.counts = built.counts;
    dir.set_ldap_sync_state(Some(Arc::new(state)));
    dir
}

fn carol(address: &str, stamp: &str) -> Result<RawEntry, MalformedEntry> {
    Ok(account(
        "uid=carol,ou=people,dc=example,dc=com",
        &[
            ("zimbraId", &["c-1"]),
            ("zimbraMailDeliveryAddress", &[address]),
            ("modifyTimestamp", &[stamp]),
        ],
    ))
}

/// The model's table keeps what its entries no longer name (it only grows between full syncs);
/// the snapshot holds only what they name, in the order first named, so a model that went
/// another way to the same entries writes the same bytes.
#[test]
fn a_snapshot_numbers_only_the_strings_its_entries_name() {
    let renamed = |domain: &str| {
        Ok(account(
            "uid=carol,ou=staff,dc=example,dc=com",
            &[
                ("zimbraId", &["c-1"]),
                ("zimbraMailDeliveryAddress", &[&format!("carol@{domain}")]),
                ("zimbraMailTransport", &[&format!("smtp:mx.{domain}:25")]),
            ],
        ))
    };
    // One model: its domain's DKIM key is made anew each time.
    let base = model();
    let mut m = base.clone();
    m.update([renamed("gone.example")], zimbra::map);
    m.update([renamed("example.com")], zimbra::map);
    assert!(m.table().strings().iter().any(|s| s == "gone.example"));
    let mut direct = base;
    direct.update([renamed("example.com")], zimbra::map);
    // One directory (its local account's hash is salted anew each time), two states.
    let one = synced(m);
    let mut other = one.clone();
    let state = one.ldap_sync_state().unwrap();
    other.set_ldap_sync_state(Some(Arc::new(SyncState {
        model: Arc::new(direct),
        ..(**state).clone()
    })));
    let (a, b) = (one.encode(), other.encode());
    assert!(a == b, "the same entries, the same snapshot");
    assert!(!a.windows(12).any(|w| w == b"gone.example"));
}

/// A poll's journal records after the snapshot load as the directory the polls left: an add, a
/// modify and a delete, with the cookie and mark that go with them.
#[test]
fn journal_records_bring_back_what_each_poll_left() {
    // One model: its domain's DKIM key is made anew each time.
    let m0 = model();
    let base = synced(m0.clone());
    let bytes = base.encode();
    let mut m1 = m0.clone();
    m1.update([carol("carol@example.com", "20261201120000Z")], zimbra::map);
    let first = polled(&base, m1.clone(), b"cookie-1");
    let r1 = first.encode_change(&base).unwrap();
    let (changed, gone) = m1.changed_since(&base.ldap_sync_state().unwrap().model);
    assert_eq!((changed.len(), gone.len()), (1, 0), "only carol is new");
    // Alice gone (a full read without her), carol renamed.
    let mut m2 = m1.clone();
    let mut rest: Vec<_> = entries()
        .into_iter()
        // The DKIM key is new in these: the domain changes too.
        .filter(|e| !e.as_ref().is_ok_and(|e| e.dn.starts_with("uid=alice,")))
        .collect();
    rest.push(carol("caroline@example.com", "20261201130000Z"));
    m2.replace(rest, zimbra::map);
    let second = polled(&first, m2, b"cookie-2");
    let r2 = second.encode_change(&first).unwrap();

    let (one, replayed) = Directory::decode_journaled(&bytes, std::slice::from_ref(&r1)).unwrap();
    assert_eq!((replayed.applied, replayed.error), (1, None));
    assert!(one.encode() == first.encode());
    let (two, _) = Directory::decode_journaled(&bytes, &[r1.clone(), r2.clone()]).unwrap();
    assert!(two.encode() == second.encode());
    assert!(two.account("alice@example.com").is_none());
    assert!(two.account("caroline@example.com").is_some());
    let state = two.ldap_sync_state().unwrap();
    assert_eq!(state.cookie.as_deref(), Some(&b"cookie-2"[..]));
    assert_eq!(state.model.newest_stamp(), Some("20261201130000Z"));

    // A record that does not read ends the replay there: the directory before it, and no
    // cookie or full-sync time, so the first sync is a full one and writes it all again.
    let (cut, replayed) =
        Directory::decode_journaled(&bytes, &[r1, b"not a record".to_vec(), r2]).unwrap();
    assert_eq!((replayed.records, replayed.applied), (3, 1));
    assert_eq!(replayed.error, Some(super::super::DecodeError::Corrupt));
    assert!(cut.account("carol@example.com").is_some());
    let state = cut.ldap_sync_state().unwrap();
    assert_eq!((state.cookie.as_ref(), state.last_full), (None, None));
}

/// Another server or bind is another state: its change is written whole, never as a record.
#[test]
fn a_change_read_with_other_settings_is_not_a_journal_record() {
    let base = synced(model());
    let mut other = (**base.ldap_sync_state().unwrap()).clone();
    other.origin.bind_dn = "uid=someone,cn=appaccts,cn=zimbra".into();
    let mut next = base.clone();
    next.set_ldap_sync_state(Some(Arc::new(other)));
    assert!(next.encode_change(&base).is_none());
    assert!(base.encode_change(&Directory::default()).is_none());
}

proptest::proptest! {
    #[test]
    fn any_journal_record_reads_or_is_refused(record in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
        let bytes = synced(model()).encode();
        let (dir, replayed) = Directory::decode_journaled(&bytes, &[record]).unwrap();
        if replayed.applied == 1 {
            let again = Directory::decode(&dir.encode()).unwrap();
            proptest::prop_assert_eq!(again.encode(), dir.encode());
        }
    }
}
