//! The directory cache synced from a real OpenLDAP slapd with a Zimbra-like schema: full sync,
//! polls that see adds and modifies, full syncs that see deletes, alias domains and lists, bad
//! entries skipped with reasons, LDAP down (the cache keeps answering) and back (it catches up),
//! and a power cut during a sync (the last good snapshot stays on flash).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::ldap_store::{
    FlashStore, NextWrite, cut_power_in_next_slot_write, flash_store, flash_store_with, load, now,
    settings, sync,
};
use common::slapd::{Slapd, account_ldif, base_ldif, domain_ldif, require_slapd};
use postern::directory::ldap::{SyncKind, Syncer};
use postern::directory::{Directory, Lookup, SharedDirectory, Source, password};
use postern::route::{Decision, Reject, Relay, route};
use postern::spool::{Spool, SpoolSettings};

/// A Zimbra-like DIT: example.com (accounts, a list, a bad transport, a duplicate address), an
/// alias domain alias.example.net → example.com.
fn seed(ldap: &Slapd) {
    let mut ldif = base_ldif();
    ldif += &domain_ldif("example.com", "d-1", "");
    ldif += &domain_ldif(
        "alias.example.net",
        "d-2",
        "zimbraDomainType: alias\nzimbraMailCatchAllAddress: @alias.example.net\n\
         zimbraMailCatchAllForwardingAddress: @example.com\n",
    )
    .replace("zimbraDomainType: local\n", "");
    ldif += &account_ldif(
        "alice@example.com",
        "a-1",
        "zimbraMailAlias: al@example.com\nzimbraMailTransport: lmtp:mail.example.com:7025\n\
         userPassword: {SSHA}gVK8WC9YyFT1gMsQHTGCgT3sSv5zYWx0\n",
    );
    ldif += &account_ldif(
        "bob@example.com",
        "a-2",
        "zimbraMailTransport: smtp:other.example.com:25\nuserPassword: {PBKDF2-SHA512}10000$c2FsdHNhbHQxMjM0NTY3OA$5tivGB9FFDinnO9ADzHNQnCJgjopn8LRHkP2kmunTgZAU9ehDR9/jOxGHYDHgHW45vmtm9Bnq8CxVnNrZ5EJww\n",
    );
    ldif += &account_ldif("broken@example.com", "a-3", "zimbraMailTransport: smtp:\n");
    ldif += &account_ldif(
        "twin@example.com",
        "a-4",
        "zimbraMailAlias: alice@example.com\n",
    );
    ldif += "dn: uid=team,ou=people,dc=example,dc=com\nobjectClass: zimbraDistributionList\n\
             objectClass: zimbraMailRecipient\nuid: team\ncn: team\nzimbraId: l-1\n\
             zimbraMailDeliveryAddress: team@example.com\nzimbraMailStatus: enabled\n\
             zimbraMailForwardingAddress: alice@example.com\n\
             zimbraMailForwardingAddress: bob@example.com\n\n";
    ldap.ldapmodify(&ldif);
}

fn account_of(dir: &Directory, address: &str) -> Option<String> {
    match dir.lookup(address) {
        Lookup::Account { account, .. } => Some(account.address().to_string()),
        _ => None,
    }
}

fn rcpt(dir: &Directory, address: &str) -> Result<Vec<String>, Reject> {
    match route(address, dir, dir.config(), Relay::Denied) {
        Decision::Accept(t) => Ok(t.iter().map(|t| t.address.to_string()).collect()),
        Decision::Reject(r) => Err(r),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_then_polls_see_adds_and_modifies_and_full_syncs_see_deletes() {
    if require_slapd().is_none() {
        return;
    }
    let ldap = Slapd::start(false);
    seed(&ldap);
    let mut settings = settings(&ldap);
    settings.set("ldap_full_sync_interval", "1h").unwrap();
    let shared = Arc::new(SharedDirectory::default());
    let store = flash_store();
    let mut syncer = Syncer::default();

    let r = sync(
        &mut syncer,
        SyncKind::Incremental,
        &settings,
        &shared,
        &store,
    )
    .await;
    assert_eq!(r.error, None, "{r:?}");
    assert_eq!(r.kind, SyncKind::Full, "the first sync is full");
    let dir = shared.snapshot();
    assert_eq!(
        account_of(&dir, "AL@example.com").as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(
        dir.account("alice@example.com").unwrap().source(),
        Source::Ldap
    );
    // AUTH checks the synced userPassword hashes (both say "secret"), LDAP up or down.
    for user in ["alice@example.com", "bob@example.com"] {
        let hash = dir.account(user).unwrap().password().unwrap();
        assert_eq!(password::verify("secret", &hash), Ok(true), "{user}");
        assert_eq!(password::verify("wrong", &hash), Ok(false), "{user}");
    }
    // The alias domain forwards to the same local part in example.com.
    assert_eq!(
        rcpt(&dir, "alice@alias.example.net"),
        Ok(vec!["alice@example.com".into()])
    );
    // The list expands to its members.
    assert_eq!(
        rcpt(&dir, "team@example.com"),
        Ok(vec!["alice@example.com".into(), "bob@example.com".into()])
    );
    assert_eq!(rcpt(&dir, "nobody@example.com"), Err(Reject::UserUnknown));
    // Bad entries are skipped and reported; the rest of the sync stands.
    let status = syncer.status().render(now());
    assert!(
        status.contains("uid=broken,ou=people,dc=example,dc=com: invalid value \"smtp:\""),
        "{status}"
    );
    assert!(
        status.contains(
            "duplicate address alice@example.com (also on uid=alice,ou=people,dc=example,dc=com)"
        ),
        "{status}"
    );
    assert!(account_of(&dir, "twin@example.com").is_some());
    assert!(account_of(&dir, "broken@example.com").is_none());
    // What is served was on flash first.
    assert_eq!(store.loaded().encode(), dir.encode());

    // Add, modify and delete in LDAP; a poll sees the add and the modify.
    ldap.ldapmodify(&format!(
        "{}\
         dn: uid=bob,ou=people,dc=example,dc=com\nchangetype: modify\n\
         replace: zimbraMailTransport\nzimbraMailTransport: lmtp:new.example.com:7025\n\
         -\nadd: zimbraMailAlias\nzimbraMailAlias: robert@example.com\n\n\
         dn: uid=twin,ou=people,dc=example,dc=com\nchangetype: delete\n\n",
        account_ldif("carol@example.com", "a-5", "")
    ));
    let r = sync(
        &mut syncer,
        SyncKind::Incremental,
        &settings,
        &shared,
        &store,
    )
    .await;
    assert_eq!(
        (r.kind, r.error.as_deref()),
        (SyncKind::Incremental, None),
        "{r:?}"
    );
    assert!(
        r.changes
            .added
            .contains(&"account carol@example.com".to_string()),
        "{r:?}"
    );
    assert!(
        r.changes
            .modified
            .contains(&"account bob@example.com".to_string()),
        "{r:?}"
    );
    assert!(
        r.changes
            .added
            .contains(&"alias robert@example.com -> bob@example.com".to_string())
    );
    let dir = shared.snapshot();
    assert_eq!(
        account_of(&dir, "carol@example.com").as_deref(),
        Some("carol@example.com")
    );
    assert_eq!(
        account_of(&dir, "robert@example.com").as_deref(),
        Some("bob@example.com")
    );
    assert_eq!(
        dir.account("bob@example.com")
            .unwrap()
            .transport()
            .map(|t| t.to_string()),
        Some("lmtp:new.example.com:7025".into())
    );
    assert!(
        account_of(&dir, "twin@example.com").is_some(),
        "a poll cannot see deletes"
    );

    // A full sync (asked for, or when ldap_full_sync_interval is up) sees the delete.
    let r = sync(&mut syncer, SyncKind::Full, &settings, &shared, &store).await;
    assert_eq!(r.error, None);
    assert_eq!(
        r.changes.deleted,
        vec!["account twin@example.com".to_string()],
        "{r:?}"
    );
    // Only that: what the poll saw (bob's new transport, his hash now kept as text) is the
    // same to the full sync (which keeps it in the model).
    assert_eq!(
        (r.changes.added_count(), r.changes.modified_count()),
        (0, 0),
        "{r:?}"
    );
    assert!(account_of(&shared.snapshot(), "twin@example.com").is_none());
    ldap.ldapmodify("dn: uid=carol,ou=people,dc=example,dc=com\nchangetype: delete\n\n");
    settings.set("ldap_full_sync_interval", "1s").unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = sync(
        &mut syncer,
        SyncKind::Incremental,
        &settings,
        &shared,
        &store,
    )
    .await;
    assert_eq!(
        (r.kind, r.error.as_deref()),
        (SyncKind::Full, None),
        "{r:?}"
    );
    assert!(account_of(&shared.snapshot(), "carol@example.com").is_none());
    // Nothing changed: nothing is rewritten, and the poll says so.
    settings.set("ldap_full_sync_interval", "1h").unwrap();
    let r = sync(
        &mut syncer,
        SyncKind::Incremental,
        &settings,
        &shared,
        &store,
    )
    .await;
    assert_eq!(
        (r.kind, r.error.as_deref()),
        (SyncKind::Incremental, None),
        "{r:?}"
    );
    assert!(r.changes.is_empty(), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_down_keeps_the_cache_answering_and_back_it_catches_up() {
    if require_slapd().is_none() {
        return;
    }
    let mut ldap = Slapd::start(false);
    seed(&ldap);
    let settings = settings(&ldap);
    let shared = Arc::new(SharedDirectory::default());
    let store = flash_store();
    let mut syncer = Syncer::default();
    let r = sync(&mut syncer, SyncKind::Full, &settings, &shared, &store).await;
    assert_eq!(r.error, None);

    ldap.stop();
    let r = sync(
        &mut syncer,
        SyncKind::Incremental,
        &settings,
        &shared,
        &store,
    )
    .await;
    let error = r.error.clone().expect("LDAP is down");
    assert!(
        error.contains(&ldap.url().replace("ldap://", "")),
        "{error}"
    );
    let dir = shared.snapshot();
    assert_eq!(
        rcpt(&dir, "alice@example.com"),
        Ok(vec!["alice@example.com".into()])
    );
    assert_eq!(rcpt(&dir, "stranger@example.com"), Err(Reject::UserUnknown));
    let status = syncer.status().render(now());
    assert!(
        status.contains("last error:") && status.contains("last success:"),
        "{status}"
    );
    // Past ldap_cache_max_age, the cache is stale: unknown recipients wait (451), not 550.
    shared.set_ldap_max_age(Duration::from_secs(60));
    assert!(!shared.ldap_cache_stale(now()));
    assert!(shared.ldap_cache_stale(now() + 120));

    ldap.restart();
    ldap.ldapmodify(&account_ldif("dave@example.com", "a-9", ""));
    let r = sync(
        &mut syncer,
        SyncKind::Incremental,
        &settings,
        &shared,
        &store,
    )
    .await;
    assert_eq!(r.error, None, "{r:?}");
    assert_eq!(
        account_of(&shared.snapshot(), "dave@example.com").as_deref(),
        Some("dave@example.com")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_cut_during_a_sync_leaves_the_last_good_snapshot() {
    if require_slapd().is_none() {
        return;
    }
    let ldap = Slapd::start(false);
    seed(&ldap);
    let settings = settings(&ldap);
    let shared = Arc::new(SharedDirectory::default());
    let store = flash_store();
    let mut syncer = Syncer::default();
    let r = sync(&mut syncer, SyncKind::Full, &settings, &shared, &store).await;
    assert_eq!(r.error, None);
    let good = shared.snapshot().encode();

    ldap.ldapmodify(&account_ldif("erin@example.com", "a-7", ""));
    // A poll's change is appended to the slot's journal: tear that.
    let store = cut_power_in_next_slot_write(store, NextWrite::Append);
    let r = sync(
        &mut syncer,
        SyncKind::Incremental,
        &settings,
        &shared,
        &store,
    )
    .await;
    let error = r
        .error
        .clone()
        .unwrap_or_else(|| panic!("the write was cut: {r:?}"));
    assert!(error.contains("not saved"), "{error}");
    assert_eq!(
        shared.snapshot().encode(),
        good,
        "nothing half-applied is served"
    );
    assert!(account_of(&shared.snapshot(), "erin@example.com").is_none());

    // Power comes back: the flash holds the last good snapshot.
    let spool = Arc::try_unwrap(store).ok().unwrap().0.into_inner().unwrap();
    let mut flash = spool.into_flash();
    flash.power_cycle();
    let (mut spool, _) = Spool::open(flash, SpoolSettings::default()).unwrap();
    assert_eq!(load(&mut spool).encode(), good);
    // ...and the next sync, on the reopened flash, applies the change.
    let store = Arc::new(FlashStore(Mutex::new(spool)));
    let r = sync(
        &mut syncer,
        SyncKind::Incremental,
        &settings,
        &shared,
        &store,
    )
    .await;
    assert_eq!(r.error, None, "{r:?}");
    assert!(account_of(&shared.snapshot(), "erin@example.com").is_some());
}

/// A directory imported long ago (every entry in one second, as after a bulk load): a poll
/// reads only the entries changed since, not every entry of that second again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_reads_only_what_changed_since_an_old_mark() {
    if require_slapd().is_none() {
        return;
    }
    let mut ldap = Slapd::start(false);
    let old = "modifyTimestamp: 20250101000000Z\ncreateTimestamp: 20250101000000Z\n";
    let mut ldif = base_ldif() + &domain_ldif("example.com", "d-1", "");
    for i in 0..50 {
        ldif += &account_ldif(&format!("user{i}@example.com"), &format!("a-{i}"), "");
    }
    // Every entry stamped then.
    ldap.slapadd(&ldif.replace("\n\n", &format!("\n{old}\n")));
    let settings = settings(&ldap);
    let shared = Arc::new(SharedDirectory::default());
    let store = flash_store();
    let mut syncer = Syncer::default();
    let r = sync(&mut syncer, SyncKind::Full, &settings, &shared, &store).await;
    assert_eq!(r.error, None, "{r:?}");
    assert_eq!(shared.snapshot().counts().0, 50);

    ldap.ldapmodify(
        "dn: uid=user7,ou=people,dc=example,dc=com\nchangetype: modify\n\
         replace: zimbraMailTransport\nzimbraMailTransport: smtp:moved.example.com:25\n\n",
    );
    let r = sync(
        &mut syncer,
        SyncKind::Incremental,
        &settings,
        &shared,
        &store,
    )
    .await;
    assert_eq!(r.error, None, "{r:?}");
    assert_eq!((r.kind, r.read), (SyncKind::Incremental, 1), "{r:?}");
    assert_eq!(r.changes.modified, ["account user7@example.com"]);
    let dir = shared.snapshot();
    assert_eq!(
        dir.account("user7@example.com")
            .unwrap()
            .transport()
            .map(|t| t.to_string()),
        Some("smtp:moved.example.com".to_string())
    );
    // The patched directory is the one on flash: the full sync's snapshot and the poll's
    // journal record.
    assert_eq!(store.loaded().encode(), dir.encode());
    assert_eq!(store.journal_records(), 1);
}

/// A directory that outgrows its flash slot is not applied: the error names both sizes, the
/// last good snapshot stays served and on flash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_too_large_for_its_slot_keeps_the_last_good_one() {
    if require_slapd().is_none() {
        return;
    }
    let ldap = Slapd::start(false);
    seed(&ldap);
    let settings = settings(&ldap);
    let shared = Arc::new(SharedDirectory::default());
    let store = flash_store_with(1);
    let mut syncer = Syncer::default();
    let r = sync(&mut syncer, SyncKind::Full, &settings, &shared, &store).await;
    assert_eq!(r.error, None, "{r:?}");
    let good = shared.snapshot().encode();

    let mut more = String::new();
    for i in 0..1000 {
        more += &account_ldif(&format!("bulk{i}@example.com"), &format!("b-{i}"), "");
    }
    ldap.ldapmodify(&more);
    let r = sync(&mut syncer, SyncKind::Full, &settings, &shared, &store).await;
    let error = r
        .error
        .clone()
        .unwrap_or_else(|| panic!("too large: {r:?}"));
    assert!(
        error.contains("not saved") && error.contains("directory slot's 4076 bytes"),
        "{error}"
    );
    assert_eq!(
        shared.snapshot().encode(),
        good,
        "the last good one is served"
    );
    assert!(account_of(&shared.snapshot(), "bulk7@example.com").is_none());
    let mut spool = Arc::try_unwrap(store).ok().unwrap().0.into_inner().unwrap();
    assert_eq!(load(&mut spool).encode(), good);
}

/// Polls append their changes to the slot's journal until it is full; the poll that finds it
/// full writes the whole snapshot, and its report says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_journal_writes_the_whole_snapshot_and_says_why() {
    if require_slapd().is_none() {
        return;
    }
    let ldap = Slapd::start(false);
    seed(&ldap);
    let settings = settings(&ldap);
    let shared = Arc::new(SharedDirectory::default());
    let store = flash_store_with(1);
    let mut syncer = Syncer::default();
    let r = sync(&mut syncer, SyncKind::Full, &settings, &shared, &store).await;
    assert_eq!(r.error, None, "{r:?}");
    let mut appended = 0;
    let mut refused = None;
    for i in 0..200 {
        ldap.ldapmodify(&format!(
            "dn: uid=alice,ou=people,dc=example,dc=com\nchangetype: modify\n\
             replace: zimbraMailTransport\nzimbraMailTransport: smtp:mail{i}.example.com:25\n\n"
        ));
        let r = sync(
            &mut syncer,
            SyncKind::Incremental,
            &settings,
            &shared,
            &store,
        )
        .await;
        assert_eq!(r.error, None, "{r:?}");
        assert_eq!(r.changes.modified, ["account alice@example.com"], "{r:?}");
        assert_eq!(store.loaded().encode(), shared.snapshot().encode());
        match r.journal_refused {
            None => {
                appended += 1;
                assert_eq!(store.journal_records(), appended);
            }
            Some(why) => {
                refused = Some(why);
                break;
            }
        }
    }
    let why = refused.unwrap_or_else(|| panic!("the journal never filled: {appended} appended"));
    assert!(appended >= 2, "{appended} records before it filled");
    assert_eq!(why, "the slot's journal is full");
    assert_eq!(store.journal_records(), 0, "the whole snapshot starts anew");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mta_settings_come_from_the_global_config_and_this_servers_entry() {
    if require_slapd().is_none() {
        return;
    }
    let ldap = Slapd::start(false);
    seed(&ldap);
    ldap.ldapmodify(
        "dn: cn=config,cn=zimbra\nchangetype: modify\n\
         add: zimbraMtaRelayHost\nzimbraMtaRelayHost: [relay.example.net]:587\n-\n\
         add: zimbraMtaMaxMessageSize\nzimbraMtaMaxMessageSize: 20480000\n-\n\
         add: zimbraMtaMyNetworks\nzimbraMtaMyNetworks: not-a-network\n\n\
         dn: cn=mx.test.example,cn=servers,cn=zimbra\nobjectClass: zimbraServer\n\
         cn: mx.test.example\nzimbraServiceHostname: mx.test.example\n\
         zimbraMtaRelayHost: [mx-relay.example.net]:25\n\n\
         dn: cn=other.test.example,cn=servers,cn=zimbra\nobjectClass: zimbraServer\n\
         cn: other.test.example\nzimbraServiceHostname: other.test.example\n\
         zimbraMtaRelayHost: [not-ours.example.net]:25\n\n",
    );
    let mut settings = settings(&ldap);
    settings
        .set("zimbra_server_hostname", "MX.test.example")
        .unwrap();
    settings.set("ldap_full_sync_interval", "1h").unwrap();
    let shared = Arc::new(SharedDirectory::default());
    let store = flash_store();
    let mut syncer = Syncer::default();
    let r = sync(&mut syncer, SyncKind::Full, &settings, &shared, &store).await;
    assert_eq!(r.error, None, "{r:?}");
    let relay = |d: &Directory| d.config().values("zimbraMtaRelayHost").unwrap();
    let dir = shared.snapshot();
    // This server's entry wins over the global config; other servers' do not count.
    assert_eq!(relay(&dir), ["[mx-relay.example.net]:25"]);
    assert_eq!(dir.config().max_message_size, 20_480_000);
    // The router uses it at once: mail to other domains goes to the relay host.
    match route("x@elsewhere.org", &dir, dir.config(), Relay::Permitted) {
        Decision::Accept(t) => assert_eq!(
            t.first().next_hop.transport().map(|t| t.to_string()),
            Some("smtp:[mx-relay.example.net]:25".into())
        ),
        other => panic!("{other:?}"),
    }
    // A value the box refuses is skipped with its reason; the setting keeps its value.
    let status = syncer.status().render(now());
    assert!(
        status.contains("cn=config,cn=zimbra: invalid value") && status.contains("not-a-network"),
        "{status}"
    );
    assert_eq!(
        dir.config().values("zimbraMtaMyNetworks").unwrap(),
        ["127.0.0.0/8 [::1]/128"]
    );
    // LDAP's settings are read-only for mcf; the others are not.
    let mcf = |line: &str| {
        let args: Vec<String> = line.split(' ').map(String::from).collect();
        postern::directory::prov::execute(&shared.snapshot(), &args).map(|_| ())
    };
    let e = mcf("mcf zimbraMtaRelayHost [x.example]:25")
        .unwrap_err()
        .to_string();
    assert!(e.contains("LDAP"), "{e}");
    mcf("mcf hopcount_limit 30").unwrap();

    // Changed in LDAP: the next poll applies it and says what it was and is, and wakes the
    // services that copy settings (the daemon's limits and queue timing follow them).
    let mut changes = shared.settings_changes();
    changes.mark_unchanged();
    ldap.ldapmodify(
        "dn: cn=mx.test.example,cn=servers,cn=zimbra\nchangetype: modify\n\
         delete: zimbraMtaRelayHost\n\n",
    );
    let r = sync(
        &mut syncer,
        SyncKind::Incremental,
        &settings,
        &shared,
        &store,
    )
    .await;
    assert_eq!(r.error, None, "{r:?}");
    assert!(
        r.changes.settings.contains(
            &"config zimbraMtaRelayHost: \"[mx-relay.example.net]:25\" -> \"[relay.example.net]:587\""
                .to_string()
        ),
        "{r:?}"
    );
    assert_eq!(relay(&shared.snapshot()), ["[relay.example.net]:587"]);
    assert!(changes.has_changed().unwrap());
    // Gone from LDAP altogether: back to the default, and mcf may set it again.
    ldap.ldapmodify("dn: cn=config,cn=zimbra\nchangetype: modify\ndelete: zimbraMtaRelayHost\n\n");
    let r = sync(
        &mut syncer,
        SyncKind::Incremental,
        &settings,
        &shared,
        &store,
    )
    .await;
    assert_eq!(r.error, None, "{r:?}");
    assert!(relay(&shared.snapshot()).is_empty());
    assert!(
        !shared
            .snapshot()
            .ldap_config()
            .contains(&"zimbraMtaRelayHost")
    );
}

/// With syncprov (RFC 4533), a poll is a refreshOnly from the last cookie: adds, modifies and
/// deletes are all seen at the next poll, with no full sync in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_syncprov_polls_use_the_cookie_and_see_deletes_at_once() {
    if require_slapd().is_none() {
        return;
    }
    polls_by_cookie(Slapd::start(true)).await;
}

/// With a session log the server names the deleted entries (refreshDeletes) instead of every
/// entry still there (the present phase).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_syncprov_session_log_polls_see_deletes_at_once_too() {
    if require_slapd().is_none() {
        return;
    }
    polls_by_cookie(Slapd::start_with_sessionlog(100)).await;
}

async fn polls_by_cookie(ldap: Slapd) {
    seed(&ldap);
    let mut settings = settings(&ldap);
    settings.set("ldap_full_sync_interval", "1h").unwrap();
    let shared = Arc::new(SharedDirectory::default());
    let store = flash_store();
    let mut syncer = Syncer::default();
    let r = sync(
        &mut syncer,
        SyncKind::Incremental,
        &settings,
        &shared,
        &store,
    )
    .await;
    assert_eq!(
        (r.kind, r.error.as_deref()),
        (SyncKind::Full, None),
        "{r:?}"
    );
    assert!(account_of(&shared.snapshot(), "twin@example.com").is_some());

    ldap.ldapmodify(&format!(
        "{}\
         dn: uid=bob,ou=people,dc=example,dc=com\nchangetype: modify\n\
         add: zimbraMailAlias\nzimbraMailAlias: robert@example.com\n\n\
         dn: uid=twin,ou=people,dc=example,dc=com\nchangetype: delete\n\n",
        account_ldif("carol@example.com", "a-5", "")
    ));
    let r = sync(
        &mut syncer,
        SyncKind::Incremental,
        &settings,
        &shared,
        &store,
    )
    .await;
    assert_eq!(
        (r.kind, r.error.as_deref()),
        (SyncKind::Incremental, None),
        "{r:?}"
    );
    assert!(
        r.changes
            .added
            .contains(&"account carol@example.com".to_string()),
        "{r:?}"
    );
    assert!(
        r.changes
            .deleted
            .contains(&"account twin@example.com".to_string()),
        "{r:?}"
    );
    let dir = shared.snapshot();
    assert!(account_of(&dir, "twin@example.com").is_none());
    assert_eq!(
        account_of(&dir, "robert@example.com").as_deref(),
        Some("bob@example.com")
    );
    assert_eq!(
        account_of(&dir, "carol@example.com").as_deref(),
        Some("carol@example.com")
    );
    // The rest is untouched.
    assert_eq!(
        account_of(&dir, "al@example.com").as_deref(),
        Some("alice@example.com")
    );
    let r = sync(
        &mut syncer,
        SyncKind::Incremental,
        &settings,
        &shared,
        &store,
    )
    .await;
    assert_eq!(
        (r.kind, r.error.as_deref()),
        (SyncKind::Incremental, None),
        "{r:?}"
    );
    assert!(r.changes.is_empty(), "{r:?}");
    assert_eq!(shared.snapshot().encode(), dir.encode());
}

/// A plain directory (`ldap_schema inetorgperson`): accounts by `mail` and `mailLocalAddress`,
/// groups by `member`, in the domains made with prov.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inetorgperson_directory_fills_the_local_domains() {
    if require_slapd().is_none() {
        return;
    }
    let ldap = Slapd::start(false);
    let people = "ou=people,dc=example,dc=com";
    ldap.ldapmodify(&format!(
        "{}dn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\n\
         dc: example\no: example\n\n\
         dn: {people}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: uid=ann,{people}\nobjectClass: inetOrgPerson\nobjectClass: inetLocalMailRecipient\n\
         uid: ann\ncn: Ann\nsn: A\nmail: ann@example.com\nmailLocalAddress: a@example.com\n\
         userPassword: {{SSHA}}gVK8WC9YyFT1gMsQHTGCgT3sSv5zYWx0\n\n\
         dn: uid=ben,{people}\nobjectClass: inetOrgPerson\nuid: ben\ncn: Ben\nsn: B\n\
         mail: ben@example.com\n\n\
         dn: uid=ext,{people}\nobjectClass: inetOrgPerson\nuid: ext\ncn: Ext\nsn: E\n\
         mail: someone@elsewhere.org\n\n\
         dn: cn=team,{people}\nobjectClass: groupOfNames\nobjectClass: extensibleObject\n\
         cn: team\nmail: team@example.com\nmember: uid=ann,{people}\nmember: uid=ben,{people}\n\n",
        base_ldif()
    ));
    let mut settings = settings(&ldap);
    settings.set("ldap_schema", "inetorgperson").unwrap();
    let line = "cd example.com zimbraMailTransport lmtp:mail.example.com:7025";
    let args: Vec<String> = line.split(' ').map(String::from).collect();
    let local = postern::directory::prov::execute(&Directory::default(), &args)
        .unwrap()
        .directory
        .unwrap();
    let shared = Arc::new(SharedDirectory::new(local));
    let store = flash_store();
    let mut syncer = Syncer::for_settings(&settings);
    let r = sync(&mut syncer, SyncKind::Full, &settings, &shared, &store).await;
    assert_eq!(r.error, None, "{r:?}");
    let dir = shared.snapshot();
    assert_eq!(
        account_of(&dir, "A@example.com").as_deref(),
        Some("ann@example.com")
    );
    let hash = dir.account("ann@example.com").unwrap().password().unwrap();
    assert_eq!(password::verify("secret", &hash), Ok(true));
    assert_eq!(
        rcpt(&dir, "team@example.com"),
        Ok(vec!["ann@example.com".into(), "ben@example.com".into()])
    );
    let status = syncer.status().render(now());
    assert!(
        status.contains("uid=ext,ou=people,dc=example,dc=com: elsewhere.org is not in a domain"),
        "{status}"
    );
}
