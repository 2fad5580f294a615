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
use postern::directory::ldap::{
    AppendRefused, Gathered, SaveError, SnapshotParts, SnapshotStore, SyncKind, Syncer, fetch,
};

struct Discard;

impl SnapshotStore for Discard {
    fn begin(&self, len: usize) -> Result<Box<dyn SnapshotParts + '_>, SaveError> {
        Ok(Gathered::new(len, |_| Ok(())))
    }

    fn append(&self, _: Vec<u8>) -> Result<Result<(), AppendRefused>, SaveError> {
        Ok(Ok(()))
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

/// AUTH in a domain with `zimbraAuthMech ldap`: a simple bind as the user, over StartTLS,
/// through the child; with the synced hash for the other domains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_binds_as_the_user_over_starttls_where_the_domain_says_so() {
    if require_slapd().is_none() {
        return;
    }
    fetch::isolate_in_child(PathBuf::from(env!("CARGO_BIN_EXE_postern")));
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let (cert, key) = (ck.cert.pem(), ck.signing_key.serialize_pem());
    let ldap = Slapd::start_with(false, Some((&cert, &key)));
    let bind_dn = "uid=%u,ou=people,%D";
    ldap.ldapmodify(&format!(
        "{}{}{}{}{}",
        base_ldif(),
        domain_ldif(
            "example.com",
            "d-1",
            &format!(
                "zimbraAuthMech: ldap\nzimbraAuthLdapURL: {}\nzimbraAuthLdapBindDn: {bind_dn}\n",
                ldap.url()
            )
        ),
        // slapd checks {SSHA} itself; the box never sees this hash used.
        account_ldif(
            "alice@example.com",
            "a-1",
            "userPassword: {SSHA}gVK8WC9YyFT1gMsQHTGCgT3sSv5zYWx0\n"
        ),
        domain_ldif("example.org", "d-2", ""),
        account_ldif(
            "bob@example.org",
            "a-2",
            "userPassword: {SSHA}gVK8WC9YyFT1gMsQHTGCgT3sSv5zYWx0\n"
        ),
    ));
    let mut s = settings(&ldap.url(), true);
    s.set("ldap_ca_cert", &cert).unwrap();
    let shared = Arc::new(SharedDirectory::default());
    shared.set_ldap_settings(Arc::new(s.clone()));
    let store: Arc<dyn SnapshotStore> = Arc::new(Discard);
    let r = Syncer::default()
        .sync(SyncKind::Full, &s, &shared, &store, 1)
        .await;
    assert_eq!(r.error, None, "{r:?}");
    let domain = shared.snapshot().domain("example.com").unwrap().clone();
    assert_eq!(
        domain.values("zimbraAuthMech").unwrap(),
        vec!["ldap".to_string()]
    );
    // By bind (example.com) and by the synced hash (example.org): both say "secret".
    for user in ["alice@example.com", "bob@example.org"] {
        assert!(shared.verify_password(user, "secret").await, "{user}");
        assert!(!shared.verify_password(user, "wrong").await, "{user}");
        assert!(!shared.verify_password(user, "").await, "{user}");
    }
    assert!(!shared.verify_password("nobody@example.com", "secret").await);
    // The bind goes over TLS or not at all: a CA that does not match fails it.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let mut untrusted = s.clone();
    untrusted.set("ldap_ca_cert", &other.cert.pem()).unwrap();
    shared.set_ldap_settings(Arc::new(untrusted));
    assert!(!shared.verify_password("alice@example.com", "secret").await);
}
