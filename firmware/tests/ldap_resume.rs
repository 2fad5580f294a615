//! The LDAP sync across a restart, against a real slapd: the state a sync leaves is on flash with
//! its directory, so the first sync after the box starts again is a poll that goes on from it:
//! with syncprov, a refreshOnly from the stored cookie that sees what changed and what was deleted
//! while the box was down; without, a modifyTimestamp poll, the full sync keeping its schedule. A
//! cookie the server refuses falls back to a full refresh, and a power cut in the slot write
//! leaves the old directory with the state that goes with it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::ldap_store::{
    NextWrite, cut_power_in_next_slot_write, flash_store, now, restart, settings, sync,
};
use common::slapd::{Slapd, account_ldif, base_ldif, domain_ldif, require_slapd};
use postern::config::localconfig::LocalConfig;
use postern::directory::ldap::{Resumed, SyncKind, Syncer};
use postern::directory::{Directory, Lookup, SharedDirectory};

fn seed(ldap: &Slapd) {
    let mut ldif = base_ldif() + &domain_ldif("example.com", "d-1", "");
    ldif += &account_ldif(
        "alice@example.com",
        "a-1",
        "zimbraMailAlias: al@example.com\n",
    );
    ldif += &account_ldif("bob@example.com", "a-2", "");
    ldif += &account_ldif("twin@example.com", "a-4", "");
    ldap.ldapmodify(&ldif);
}

/// While the box is down: an account added, one modified, one deleted.
fn change_while_down(ldap: &Slapd) {
    ldap.ldapmodify(&format!(
        "{}\
         dn: uid=bob,ou=people,dc=example,dc=com\nchangetype: modify\n\
         add: zimbraMailAlias\nzimbraMailAlias: robert@example.com\n\n\
         dn: uid=twin,ou=people,dc=example,dc=com\nchangetype: delete\n\n",
        account_ldif("carol@example.com", "a-5", "")
    ));
}

fn account_of(dir: &Directory, address: &str) -> Option<String> {
    match dir.lookup(address) {
        Lookup::Account { account, .. } => Some(account.address().to_string()),
        _ => None,
    }
}

fn with_full_sync_every(ldap: &Slapd, interval: &str) -> LocalConfig {
    let mut s = settings(ldap);
    s.set("ldap_full_sync_interval", interval).unwrap();
    s
}

/// A syncer as the daemon makes one at start, on the directory loaded from flash.
fn resume(dir: Directory, settings: &LocalConfig) -> (Syncer, Arc<SharedDirectory>, Resumed) {
    let mut syncer = Syncer::for_settings(settings);
    let resumed = syncer.resume(&dir, settings);
    (syncer, Arc::new(SharedDirectory::new(dir)), resumed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_syncprov_a_restart_resumes_from_the_stored_cookie() {
    if require_slapd().is_none() {
        return;
    }
    let ldap = Slapd::start(true);
    seed(&ldap);
    let settings = with_full_sync_every(&ldap, "1h");
    let (shared, store) = (Arc::new(SharedDirectory::default()), flash_store());
    let mut syncer = Syncer::for_settings(&settings);
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
    let served = shared.snapshot();
    drop((syncer, shared));

    // Down; LDAP changes; up again on the same flash.
    change_while_down(&ldap);
    let (store, dir) = restart(store);
    assert_eq!(
        dir.encode(),
        served.encode(),
        "the directory served comes back"
    );
    let (mut syncer, shared, resumed) = resume(dir, &settings);
    assert!(
        matches!(resumed, Resumed::Yes { entries, cookie: true } if entries > 3),
        "{resumed:?}"
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
        (r.kind, r.resumed, r.error.as_deref()),
        (SyncKind::Incremental, true, None),
        "{r:?}"
    );
    assert!(
        r.changes
            .added
            .contains(&"account carol@example.com".into()),
        "{r:?}"
    );
    assert!(
        r.changes
            .deleted
            .contains(&"account twin@example.com".into()),
        "{r:?}"
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
    assert_eq!(account_of(&dir, "twin@example.com"), None);
    assert_eq!(
        account_of(&dir, "al@example.com").as_deref(),
        Some("alice@example.com")
    );
    let status = syncer.status().render(now());
    assert!(
        status.contains("incremental (resumed from flash)"),
        "{status}"
    );
    assert!(
        status.contains("from LDAP: 1 domains, 3 accounts"),
        "{status}"
    );
    // What is served is on flash, with the state the next restart resumes from.
    assert_eq!(store.loaded().encode(), dir.encode());

    // Only the first sync after the restart is the resumed one.
    let r = sync(
        &mut syncer,
        SyncKind::Incremental,
        &settings,
        &shared,
        &store,
    )
    .await;
    assert_eq!(
        (r.kind, r.resumed, r.error.as_deref()),
        (SyncKind::Incremental, false, None)
    );
    assert!(r.changes.is_empty(), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_syncprov_a_restart_resumes_by_modify_timestamp() {
    if require_slapd().is_none() {
        return;
    }
    let ldap = Slapd::start(false);
    seed(&ldap);
    let mut settings = with_full_sync_every(&ldap, "1h");
    let (shared, store) = (Arc::new(SharedDirectory::default()), flash_store());
    let mut syncer = Syncer::for_settings(&settings);
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
    drop((syncer, shared));

    change_while_down(&ldap);
    let (store, dir) = restart(store);
    let (mut syncer, shared, resumed) = resume(dir, &settings);
    assert!(
        matches!(resumed, Resumed::Yes { cookie: false, .. }),
        "{resumed:?}"
    );
    // The full sync of an hour's schedule ran just now, before the restart: this is a poll.
    let r = sync(
        &mut syncer,
        SyncKind::Incremental,
        &settings,
        &shared,
        &store,
    )
    .await;
    assert_eq!(
        (r.kind, r.resumed, r.error.as_deref()),
        (SyncKind::Incremental, true, None),
        "{r:?}"
    );
    assert!(
        r.changes
            .added
            .contains(&"account carol@example.com".into()),
        "{r:?}"
    );
    assert!(
        r.changes
            .added
            .contains(&"alias robert@example.com -> bob@example.com".into()),
        "{r:?}"
    );
    let dir = shared.snapshot();
    assert_eq!(
        account_of(&dir, "robert@example.com").as_deref(),
        Some("bob@example.com")
    );
    assert!(
        account_of(&dir, "twin@example.com").is_some(),
        "a poll cannot see deletes"
    );

    // The full sync that finds deletes comes on its own schedule, counted from before the
    // restart.
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
    assert_eq!(r.changes.deleted, ["account twin@example.com"], "{r:?}");
    assert_eq!(account_of(&shared.snapshot(), "twin@example.com"), None);
}

/// The LDAP server was restored from a backup while the box was down: the cookie on flash is
/// newer than the server's state, and it refuses it. The sync falls back to a full refresh
/// rather than failing on that cookie at every poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_refused_after_a_restart_falls_back_to_a_full_refresh() {
    if require_slapd().is_none() {
        return;
    }
    let ldap = Slapd::start(true);
    seed(&ldap);
    let settings = with_full_sync_every(&ldap, "1h");
    let (shared, store) = (Arc::new(SharedDirectory::default()), flash_store());
    let mut syncer = Syncer::for_settings(&settings);
    let r = sync(&mut syncer, SyncKind::Full, &settings, &shared, &store).await;
    assert_eq!(r.error, None, "{r:?}");
    // The state on flash as a provider that lost its last years sees it: a CSN in its future.
    let mut dir = (*shared.snapshot()).clone();
    let mut state = (**dir.ldap_sync_state().unwrap()).clone();
    let cookie = String::from_utf8(state.cookie.clone().unwrap()).unwrap();
    let (rid, _) = cookie.split_once("csn=").unwrap();
    state.cookie = Some(format!("{rid}csn=20991231000000.000000Z#000000#000#000000").into_bytes());
    dir.set_ldap_sync_state(Some(Arc::new(state)));
    let bytes = dir.encode();
    store
        .0
        .lock()
        .unwrap()
        .write_slot(postern::spool::Region::Directory, &bytes)
        .unwrap();
    drop((syncer, shared));

    change_while_down(&ldap);
    let (store, dir) = restart(store);
    let (mut syncer, shared, resumed) = resume(dir, &settings);
    assert!(
        matches!(resumed, Resumed::Yes { cookie: true, .. }),
        "{resumed:?}"
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
        (SyncKind::Full, None),
        "{r:?}"
    );
    assert!(
        r.changes
            .added
            .contains(&"account carol@example.com".into()),
        "{r:?}"
    );
    assert!(
        r.changes
            .deleted
            .contains(&"account twin@example.com".into()),
        "{r:?}"
    );
    // The server's own cookie replaced the refused one: polls are incremental again, also after
    // the next restart.
    let (store, dir) = restart(store);
    let (mut syncer, shared, _) = resume(dir, &settings);
    let r = sync(
        &mut syncer,
        SyncKind::Incremental,
        &settings,
        &shared,
        &store,
    )
    .await;
    assert_eq!(
        (r.kind, r.resumed, r.error.as_deref()),
        (SyncKind::Incremental, true, None),
        "{r:?}"
    );
}

/// A power cut while the slot is written leaves the directory before it and the state that goes
/// with it, never a cookie newer than the entries: the next sync, from that state, brings the
/// change that was being written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_cut_in_the_slot_write_keeps_the_old_directory_and_its_state() {
    if require_slapd().is_none() {
        return;
    }
    let ldap = Slapd::start(true);
    seed(&ldap);
    let settings = with_full_sync_every(&ldap, "1h");
    let (shared, store) = (Arc::new(SharedDirectory::default()), flash_store());
    let mut syncer = Syncer::for_settings(&settings);
    let r = sync(&mut syncer, SyncKind::Full, &settings, &shared, &store).await;
    assert_eq!(r.error, None, "{r:?}");
    let good = shared.snapshot();
    let good_cookie = good.ldap_sync_state().unwrap().cookie.clone();
    assert!(good_cookie.is_some());

    ldap.ldapmodify(&account_ldif("erin@example.com", "a-7", ""));
    let store = cut_power_in_next_slot_write(store, NextWrite::Append);
    let r = sync(
        &mut syncer,
        SyncKind::Incremental,
        &settings,
        &shared,
        &store,
    )
    .await;
    assert!(
        r.error.as_deref().is_some_and(|e| e.contains("not saved")),
        "{r:?}"
    );
    drop((syncer, shared));

    let (store, dir) = restart(store);
    assert_eq!(dir.encode(), good.encode());
    let state = dir.ldap_sync_state().unwrap();
    assert_eq!(
        state.cookie, good_cookie,
        "the cookie that goes with these entries"
    );
    assert!(
        state
            .model
            .entries()
            .all(|e| !e.dn.starts_with("uid=erin,"))
    );
    let (mut syncer, shared, _) = resume(dir, &settings);
    let r = sync(
        &mut syncer,
        SyncKind::Incremental,
        &settings,
        &shared,
        &store,
    )
    .await;
    assert_eq!(
        (r.kind, r.resumed, r.error.as_deref()),
        (SyncKind::Incremental, true, None),
        "{r:?}"
    );
    assert_eq!(r.changes.added, ["account erin@example.com"], "{r:?}");
    assert!(account_of(&shared.snapshot(), "erin@example.com").is_some());
}

/// Other LDAP settings than the state was read with: nothing of it is taken up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_read_with_other_settings_is_not_resumed() {
    if require_slapd().is_none() {
        return;
    }
    let ldap = Slapd::start(true);
    seed(&ldap);
    let settings = with_full_sync_every(&ldap, "1h");
    let (shared, store) = (Arc::new(SharedDirectory::default()), flash_store());
    let mut syncer = Syncer::for_settings(&settings);
    let r = sync(&mut syncer, SyncKind::Full, &settings, &shared, &store).await;
    assert_eq!(r.error, None, "{r:?}");
    let (store, dir) = restart(store);
    let mut other = settings.clone();
    other
        .set("zimbra_server_hostname", "other.example.com")
        .unwrap();
    let (mut syncer, shared, resumed) = resume(dir, &other);
    assert_eq!(resumed, Resumed::OtherSettings);
    let r = sync(&mut syncer, SyncKind::Incremental, &other, &shared, &store).await;
    assert_eq!(
        (r.kind, r.resumed, r.error.as_deref()),
        (SyncKind::Full, false, None)
    );
}
