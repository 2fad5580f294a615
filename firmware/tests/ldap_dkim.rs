//! A domain's DKIM key from a real OpenLDAP slapd, where `zmdkimkeyutil` keeps it on Zimbra's
//! domain entry (OpenDKIM's `DKIM` class: `DKIMSelector`, `DKIMKey`): the sync reads it into
//! the domain, a key that does not load is skipped for its domain only, and the key survives the
//! snapshot on flash.

mod common;

use std::sync::Arc;

use base64::Engine;
use common::ldap_store::{flash_store, restart, settings, sync};
use common::slapd::{Slapd, base_ldif, domain_ldif, require_slapd};
use postern::directory::ldap::{SyncKind, Syncer};
use postern::directory::{Directory, SharedDirectory};

/// An RSA key in PKCS#1 PEM, as `opendkim-genkey` writes it.
fn pkcs1_pem() -> String {
    let out = std::process::Command::new("openssl")
        .args(["genrsa", "-traditional", "2048"])
        .stderr(std::process::Stdio::null())
        .output()
        .expect("openssl genrsa");
    let pem = String::from_utf8(out.stdout).expect("PEM text");
    assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"), "{pem}");
    pem
}

fn selector(dir: &Directory, domain: &str) -> Option<String> {
    let dkim = dir.domain(domain)?.dkim()?;
    dkim.signing().map(|(s, _)| s.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zmdkimkeyutils_key_on_the_domain_entry_signs_for_it() {
    if require_slapd().is_none() {
        return;
    }
    let ldap = Slapd::start(false);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let key = pkcs1_pem();
    let broken = "-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0\n-----END RSA PRIVATE KEY-----\n";
    let mut ldif = base_ldif();
    // A multi-line PEM goes into LDIF base64-encoded (`::`).
    ldif += &domain_ldif(
        "example.com",
        "d-1",
        &format!(
            "objectClass: DKIM\nDKIMSelector: zimbra1\nDKIMKey:: {}\nDKIMIdentity: @example.com\n",
            b64(&key)
        ),
    );
    ldif += &domain_ldif(
        "bad.org",
        "d-2",
        &format!(
            "objectClass: DKIM\nDKIMSelector: s1\nDKIMKey:: {}\n",
            b64(broken)
        ),
    );
    ldap.ldapmodify(&ldif);

    let shared = Arc::new(SharedDirectory::default());
    let store = flash_store();
    let r = sync(
        &mut Syncer::default(),
        SyncKind::Full,
        &settings(&ldap),
        &shared,
        &store,
    )
    .await;
    assert_eq!(r.error, None, "{r:?}");
    let dir = shared.snapshot();
    assert_eq!(selector(&dir, "example.com").as_deref(), Some("zimbra1"));
    let identity = dir
        .domain("example.com")
        .and_then(|d| d.dkim())
        .and_then(|k| k.identity());
    assert_eq!(identity, Some("@example.com"));
    // The bad key costs its domain the signature, not its mail.
    assert!(dir.domain("bad.org").is_some());
    assert_eq!(selector(&dir, "bad.org"), None);
    // Named in the sync's skipped entries, the value never repeated.
    let skipped: Vec<String> = dir
        .ldap_sync_state()
        .expect("a sync state")
        .skipped
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(
        skipped[0].starts_with("dc=bad,dc=org: ") && skipped[0].contains("zimbraDKIMPrivateKey"),
        "{skipped:?}"
    );
    assert!(!skipped[0].contains("c2VjcmV0"), "{skipped:?}");

    // From flash after a restart, before LDAP answers again.
    let (_, back) = restart(store);
    assert_eq!(selector(&back, "example.com").as_deref(), Some("zimbra1"));
}
