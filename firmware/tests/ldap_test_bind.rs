//! `postern ldap test` against a real slapd, through the binary (so the bind runs in the fetch
//! child, as a sync's does): a good bind, a wrong password, a port nobody listens on, and a
//! StartTLS server whose certificate the box does not trust, each named as such; servers named
//! by host name, resolved by the box (not the C library) and verified by that name.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::slapd::{self, Slapd, free_port, require_slapd};
use postern::directory::ldap::fetch;
use postern::directory::ldap::locate::ServerNames;
use postern::directory::ldap::probe::BindProblem;

/// Runs `postern --flash FLASH ARGS...` with `stdin`; exit code and the command's answer (stdout
/// when it succeeded, else stderr: the flash's start-up lines go to stderr too, so only its lines
/// that name a server are kept).
fn postern(flash: &Path, args: &[&str], stdin: &str) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_postern"))
        .arg("--flash")
        .arg(flash)
        .args(["--flash-size", "4M"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned()
        + &String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| !l.starts_with("postern: "))
            .map(|l| format!("{l}\n"))
            .collect::<String>();
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn ldap_test_names_a_good_bind_a_wrong_password_and_a_dead_server() {
    if require_slapd().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("flash");
    let ldap = Slapd::start(false);
    let url = ldap.url();

    let (code, out) = postern(
        &flash,
        &[
            "ldap",
            "test",
            "--url",
            &url,
            "--binddn",
            slapd::ROOT_DN,
            "--password-stdin",
        ],
        &format!("{}\n", slapd::ROOT_PW),
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, format!("{url}: bind OK as {}\n", slapd::ROOT_DN));

    let (code, out) = postern(
        &flash,
        &[
            "ldap",
            "test",
            "--url",
            &url,
            "--binddn",
            slapd::ROOT_DN,
            "--password-stdin",
        ],
        "not-the-password\n",
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with(&format!(
            "{url}: invalid credentials (wrong bind DN or password)"
        )),
        "{out}"
    );

    // Stored settings are what is tested when nothing is given; the dead server first.
    let dead = format!("ldap://127.0.0.1:{}", free_port());
    let (code, out) = postern(
        &flash,
        &[
            "localconfig",
            "-e",
            &format!("ldap_url={dead} {url}"),
            &format!("zimbra_ldap_userdn={}", slapd::ROOT_DN),
            &format!("zimbra_ldap_password={}", slapd::ROOT_PW),
            "ldap_connect_timeout=2s",
        ],
        "",
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = postern(&flash, &["ldap", "test"], "");
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with(&format!("{dead}: cannot connect: ")),
        "{out}"
    );
    assert_eq!(lines[1], format!("{url}: bind OK as {}", slapd::ROOT_DN));
}

/// Settings for a bind as the test's admin to `url` over StartTLS, trusting the CA `ca` (PEM).
fn starttls_settings(url: &str, ca: &str) -> postern::config::localconfig::LocalConfig {
    let mut s = postern::config::localconfig::LocalConfig::default();
    s.set("ldap_url", url).unwrap();
    s.set("ldap_starttls_supported", "1").unwrap();
    s.set("zimbra_ldap_userdn", slapd::ROOT_DN).unwrap();
    s.set("zimbra_ldap_password", slapd::ROOT_PW).unwrap();
    s.set("ldap_ca_cert", ca).unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_the_box_does_not_trust_is_a_tls_failure() {
    if require_slapd().is_none() {
        return;
    }
    fetch::isolate_in_child(PathBuf::from(env!("CARGO_BIN_EXE_postern")));
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let (cert, key) = (ck.cert.pem(), ck.signing_key.serialize_pem());
    let ldap = Slapd::start_with(false, Some((&cert, &key)));
    let mut s = starttls_settings(&ldap.url(), &cert);
    let r = fetch::test_bind(&s, &ServerNames::default()).await.unwrap();
    assert!(r[0].ok(), "{}", r[0]);

    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    s.set("ldap_ca_cert", &other.cert.pem()).unwrap();
    let r = fetch::test_bind(&s, &ServerNames::default()).await.unwrap();
    let Err((problem, detail)) = &r[0].outcome else {
        panic!("{}", r[0])
    };
    assert_eq!(*problem, BindProblem::Tls, "{detail}");
}

/// A StartTLS server named in `ldap_url` by its IPv6 address (`ldap://[::1]:PORT`): its
/// certificate is checked against that address (ldap3 alone cannot name such a server for TLS),
/// and one that does not name it is a TLS failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_by_ipv6_address_is_verified_against_that_address() {
    if require_slapd().is_none() {
        return;
    }
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        // Not a missing peer: this machine has no IPv6 loopback to test over.
        println!("no IPv6 loopback here: the IPv6 TLS test cannot run");
        return;
    }
    fetch::isolate_in_child(PathBuf::from(env!("CARGO_BIN_EXE_postern")));
    let ck = rcgen::generate_simple_self_signed(vec!["::1".into()]).unwrap();
    let (cert, key) = (ck.cert.pem(), ck.signing_key.serialize_pem());
    let ldap = Slapd::start_on("::1".parse().unwrap(), false, Some((&cert, &key)));
    assert!(ldap.url().starts_with("ldap://[::1]:"), "{}", ldap.url());
    let mut s = starttls_settings(&ldap.url(), &cert);
    s.set("ldap_connect_timeout", "2s").unwrap();
    let r = fetch::test_bind(&s, &ServerNames::default()).await.unwrap();
    assert!(r[0].ok(), "{}", r[0]);

    // A certificate for another address is refused, though the same CA signed it.
    let other = rcgen::generate_simple_self_signed(vec!["::2".into()]).unwrap();
    let ldap = Slapd::start_on(
        "::1".parse().unwrap(),
        false,
        Some((&other.cert.pem(), &other.signing_key.serialize_pem())),
    );
    s.set("ldap_url", &ldap.url()).unwrap();
    s.set("ldap_ca_cert", &other.cert.pem()).unwrap();
    let r = fetch::test_bind(&s, &ServerNames::default()).await.unwrap();
    let Err((problem, detail)) = &r[0].outcome else {
        panic!("{}", r[0])
    };
    assert_eq!(*problem, BindProblem::Tls, "{detail}");
}

/// A StartTLS server named in `ldap_url` by a name only the box's hosts table knows: the box
/// finds its address itself, and TLS checks the certificate against the name, not the address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_by_name_is_found_by_the_box_and_verified_by_that_name() {
    if require_slapd().is_none() {
        return;
    }
    fetch::isolate_in_child(PathBuf::from(env!("CARGO_BIN_EXE_postern")));
    let name = "directory.postern.test";
    let ck = rcgen::generate_simple_self_signed(vec![name.into()]).unwrap();
    let (cert, key) = (ck.cert.pem(), ck.signing_key.serialize_pem());
    let ldap = Slapd::start_with(false, Some((&cert, &key)));
    let mut hosts = postern::config::HostsTable::default();
    hosts.add(&format!("{name}=127.0.0.1")).unwrap();
    let mut s = starttls_settings(&format!("ldap://{name}:{}", ldap.port), &cert);
    s.set("ldap_connect_timeout", "2s").unwrap();
    // DNS on loopback where nobody answers: nothing of this test leaves the machine.
    let dns: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let names = ServerNames::new(&[dns], &hosts, &s.ldap_urls);
    let r = fetch::test_bind(&s, &names).await.unwrap();
    assert!(r[0].ok(), "{}", r[0]);

    // The same server by its address: the certificate does not name it.
    s.set("ldap_url", &ldap.url()).unwrap();
    let r = fetch::test_bind(&s, &names).await.unwrap();
    let Err((problem, detail)) = &r[0].outcome else {
        panic!("{}", r[0])
    };
    assert_eq!(*problem, BindProblem::Tls, "{detail}");

    // A name nobody knows cannot be connected to, and says so.
    s.set("ldap_url", &format!("ldap://nowhere.invalid:{}", ldap.port))
        .unwrap();
    let r = fetch::test_bind(&s, &names).await.unwrap();
    let Err((problem, detail)) = &r[0].outcome else {
        panic!("{}", r[0])
    };
    assert_eq!(*problem, BindProblem::CannotConnect, "{detail}");
    assert!(detail.contains("nowhere.invalid"), "{detail}");
}

/// `ldap://localhost:PORT` in the static binary: answered by the box's resolver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn localhost_resolves_in_the_fetch_child() {
    if require_slapd().is_none() {
        return;
    }
    fetch::isolate_in_child(PathBuf::from(env!("CARGO_BIN_EXE_postern")));
    let ldap = Slapd::start(false);
    let mut s = postern::config::localconfig::LocalConfig::default();
    s.set("ldap_url", &format!("ldap://localhost:{}", ldap.port))
        .unwrap();
    s.set("zimbra_ldap_userdn", slapd::ROOT_DN).unwrap();
    s.set("zimbra_ldap_password", slapd::ROOT_PW).unwrap();
    s.set("ldap_connect_timeout", "2s").unwrap();
    let r = fetch::test_bind(&s, &ServerNames::default()).await.unwrap();
    assert!(r[0].ok(), "{}", r[0]);
}
