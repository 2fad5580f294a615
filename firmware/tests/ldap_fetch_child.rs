//! The LDAP client runs in a child of the `postern` binary: a sync through it reads the same
//! entries, and a server whose reply makes the LDAP library panic costs that sync, not the
//! process (in the release build a panic aborts; in the child it only ends the child).

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use common::slapd::{self, Slapd, account_ldif, base_ldif, domain_ldif, require_slapd};
use postern::config::localconfig::LocalConfig;
use postern::directory::SharedDirectory;
use postern::directory::ldap::{SaveError, SnapshotStore, SyncKind, Syncer, fetch};

struct Discard;

impl SnapshotStore for Discard {
    fn save(&self, _: Vec<u8>) -> Result<(), SaveError> {
        Ok(())
    }
}

fn settings(url: &str, bind: bool) -> LocalConfig {
    let mut c = LocalConfig::default();
    c.set("ldap_url", url).unwrap();
    c.set("ldap_connect_timeout", "2s").unwrap();
    c.set("ldap_read_timeout", "3s").unwrap();
    if bind {
        c.set("zimbra_ldap_userdn", slapd::ROOT_DN).unwrap();
        c.set("zimbra_ldap_password", slapd::ROOT_PW).unwrap();
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_read_ldap_in_a_child_and_survive_a_reply_that_panics_the_client() {
    if require_slapd().is_none() {
        return;
    }
    fetch::isolate_in_child(PathBuf::from(env!("CARGO_BIN_EXE_postern")));
    let shared = Arc::new(SharedDirectory::default());
    let store: Arc<dyn SnapshotStore> = Arc::new(Discard);
    let mut syncer = Syncer::default();

    // A server that answers with an empty LDAPMessage, which ldap3's decoder panics on.
    let evil = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = evil.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in evil.incoming().flatten() {
            let mut buf = [0u8; 512];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(&[0x30, 0x00]);
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    });
    let r = syncer
        .sync(
            SyncKind::Full,
            &settings(&format!("ldap://127.0.0.1:{port}"), false),
            &shared,
            &store,
            1,
        )
        .await;
    assert!(r.error.is_some(), "{r:?}");

    let ldap = Slapd::start(false);
    ldap.ldapmodify(&format!(
        "{}{}{}",
        base_ldif(),
        domain_ldif("example.com", "d-1", ""),
        account_ldif(
            "alice@example.com",
            "a-1",
            "zimbraMailAlias: al@example.com\n"
        )
    ));
    let r = syncer
        .sync(
            SyncKind::Full,
            &settings(&ldap.url(), true),
            &shared,
            &store,
            2,
        )
        .await;
    assert_eq!(r.error, None, "{r:?}");
    assert_eq!(r.server, ldap.url());
    let dir = shared.snapshot();
    assert!(dir.account("alice@example.com").is_some());
    assert!(matches!(
        dir.lookup("al@example.com"),
        postern::directory::Lookup::Account { .. }
    ));
    // A bad password is the child's error, reported as such.
    let mut wrong = settings(&ldap.url(), true);
    wrong.set("zimbra_ldap_password", "nope").unwrap();
    let r = syncer
        .sync(SyncKind::Full, &wrong, &shared, &store, 3)
        .await;
    let e = r.error.unwrap_or_default();
    assert!(e.contains("bind refused: result 49"), "{e}");
}
