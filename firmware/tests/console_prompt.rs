//! The serial console against a real daemon: the command line takes the same commands as the
//! command line, and the wizard and menu store what they ask through the same admin commands.

mod common;

use std::cell::RefCell;
use std::io::Cursor;
use std::path::PathBuf;
use std::time::Duration;

use common::slapd::{self, Slapd, require_slapd};
use postern::admin::{AdminCommand, Reply};
use postern::directory::ldap::fetch;

use postern::config::box_settings::NetworkSettings;
use postern::console::{self, ConsoleExit, Platform, Start};
use postern::daemon::{Daemon, FlashSpec, Options};

/// A machine whose network changes are only written down.
#[derive(Default)]
struct Machine {
    applied: RefCell<Vec<String>>,
    pauses: RefCell<Vec<Duration>>,
}

impl Platform for Machine {
    fn apply_network(&self, network: &NetworkSettings) -> String {
        self.applied.borrow_mut().push(network.to_string());
        String::new()
    }
    fn pause(&self, wait: Duration) {
        self.pauses.borrow_mut().push(wait);
    }
}

fn start(dir: &std::path::Path) -> (tokio::runtime::Runtime, Daemon) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let opts = Options {
        flash: FlashSpec {
            path: dir.join("flash"),
            size: Some(4 << 20),
        },
        smtp: vec!["127.0.0.1:0".parse().unwrap()],
        submission: vec![],
        smtps: vec![],
        control: dir.join("control.sock"),
        hostname: "mx.console.test".into(),
        dns_servers: vec![],
        dns_timeout: std::time::Duration::from_secs(10),
        metrics: None,
    };
    let daemon = rt.block_on(Daemon::start(opts)).unwrap();
    (rt, daemon)
}

#[test]
fn status_at_the_prompt_then_poweroff() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, daemon) = start(dir.path());
    let mut out = Vec::new();
    let exit = console::run(
        Cursor::new("status\r\n\r\nfrobnicate\r\npoweroff\r\nstatus\r\n"),
        &mut out,
        daemon.admin(),
        &Machine::default(),
        Start::CommandLine,
    );
    let out = String::from_utf8(out).unwrap();
    assert_eq!(exit, ConsoleExit::Poweroff);
    assert!(out.contains("hostname: mx.console.test"), "{out}");
    assert!(out.contains("listener: smtp 127.0.0.1:"), "{out}");
    assert!(
        out.contains("unrecognized subcommand 'frobnicate'"),
        "{out}"
    );
    // Nothing after poweroff is read.
    assert_eq!(out.matches("hostname:").count(), 1, "{out}");
    rt.block_on(daemon.shutdown());
}

#[test]
fn end_of_input_and_broken_quotes() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, daemon) = start(dir.path());
    let mut out = Vec::new();
    let exit = console::run(
        Cursor::new("status 'unclosed\nhelp\n"),
        &mut out,
        daemon.admin(),
        &Machine::default(),
        Start::CommandLine,
    );
    let out = String::from_utf8(out).unwrap();
    assert_eq!(exit, ConsoleExit::Eof);
    assert!(out.contains("error: unclosed ' quote"), "{out}");
    assert!(
        out.contains("poweroff"),
        "help lists the console's own commands: {out}"
    );
    rt.block_on(daemon.shutdown());
}

/// Runs the console on the daemon from a thread outside the runtime, as the appliance does.
fn console(daemon: &Daemon, machine: &Machine, start: Start, input: &str) -> (ConsoleExit, String) {
    let admin = daemon.admin().clone();
    let mut out = Vec::new();
    let exit = console::run(
        Cursor::new(input.to_string()),
        &mut out,
        &admin,
        machine,
        start,
    );
    (exit, String::from_utf8(out).unwrap())
}

#[test]
fn the_wizard_sets_the_box_up_on_flash_and_the_password_guards_the_menu_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, daemon) = start(dir.path());
    let machine = Machine::default();
    let (exit, out) = console(
        &daemon,
        &machine,
        Start::FirstBoot,
        "s3cret-pass\ns3cret-pass\nmx1.example.com\nstatic\n192.0.2.10/24\n\n192.0.2.53\n\n127.0.0.1\nnone\n         [relay.example.net]:25\nexample.com\nyes\n",
    );
    assert_eq!(exit, ConsoleExit::SetUp, "{out}");
    assert!(out.contains("Settings applied."), "{out}");
    assert_eq!(
        machine.applied.borrow()[..],
        [
            "static 192.0.2.10/24 gateway 192.0.2.1, DNS 192.0.2.53; IPv6 SLAAC (router advertisements)"
        ]
    );
    rt.block_on(daemon.shutdown());
    drop(rt);

    // The settings are on flash: a new start asks the password, then shows them.
    let (rt, daemon) = start(dir.path());
    let (exit, out) = console(
        &daemon,
        &machine,
        Start::Login,
        "wrong-pass\ns3cret-pass\n1\n10\nprov gacf zimbraMtaRelayHost\nprov gad\nmenu\n13\n",
    );
    assert_eq!(exit, ConsoleExit::Poweroff, "{out}");
    assert!(out.contains("Wrong password."), "{out}");
    assert_eq!(machine.pauses.borrow()[..], [Duration::from_secs(2)]);
    assert!(out.contains("on mx1.example.com"), "{out}");
    assert!(out.contains("hostname: mx1.example.com"), "{out}");
    assert!(
        out.contains("network: static 192.0.2.10/24 gateway 192.0.2.1, DNS 192.0.2.53"),
        "{out}"
    );
    assert!(out.contains("console password: set"), "{out}");
    assert!(out.contains("ntp servers: 127.0.0.1"), "{out}");
    assert!(out.contains("[relay.example.net]:25"), "{out}");
    assert!(out.contains("example.com"), "{out}");
    rt.block_on(daemon.shutdown());
}

#[test]
fn a_network_the_setup_command_refuses_is_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, daemon) = start(dir.path());
    let machine = Machine::default();
    let (_, out) = console(
        &daemon,
        &machine,
        Start::CommandLine,
        "setup network 192.0.2.10/24 --gateway 10.0.0.1\nsetup network dhcp\nsetup show\n",
    );
    assert!(
        out.contains("not saved: gateway 10.0.0.1 is outside the network 192.0.2.0/24"),
        "{out}"
    );
    assert!(out.contains("network: DHCP, DNS from DHCP"), "{out}");
    assert_eq!(
        machine.applied.borrow()[..],
        ["DHCP, DNS from DHCP; IPv6 SLAAC (router advertisements)"]
    );
    rt.block_on(daemon.shutdown());
}

#[test]
fn queue_views_metrics_and_the_mail_log_at_the_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, daemon) = start(dir.path());
    let machine = Machine::default();
    let (_, out) = console(
        &daemon,
        &machine,
        Start::CommandLine,
        "queue shape deferred\nqueue hold --sender '*@x.example'\nmetrics scrape\nlog -n 5\n",
    );
    assert!(out.contains("TOTAL 0"), "qshape's table, empty: {out}");
    assert!(out.contains("no queued message matches"), "{out}");
    assert!(out.contains("postfix_smtpd_connects_total 0"), "{out}");
    // A new flash keeps a mail log (which lines are in it depends on the other tests'
    // daemons in this process: the keeper is per process).
    assert!(!out.contains("keeps no mail log"), "{out}");
    rt.block_on(daemon.shutdown());
}

fn localconfig(daemon: &Daemon, rt: &tokio::runtime::Runtime) -> Reply {
    rt.block_on(daemon.admin().execute(AdminCommand::Localconfig {
        show_secrets: true,
        edit: false,
        args: vec![
            "ldap_url".into(),
            "zimbra_ldap_userdn".into(),
            "zimbra_ldap_password".into(),
        ],
    }))
}

/// The menu's directory entry against a real slapd: the test bind (in the fetch child, as a
/// sync's) shows a wrong password as such and nothing is stored; the right one is stored with
/// `localconfig -e`, where the sync finds it.
#[test]
fn the_directory_menu_test_binds_to_slapd_before_storing() {
    if require_slapd().is_none() {
        return;
    }
    fetch::isolate_in_child(PathBuf::from(env!("CARGO_BIN_EXE_postern")));
    let ldap = Slapd::start(false);
    let url = ldap.url();
    let dir = tempfile::tempdir().unwrap();
    let (rt, daemon) = start(dir.path());
    let machine = Machine::default();
    let dn = slapd::ROOT_DN;
    let (_, out) = console(
        &daemon,
        &machine,
        Start::Menu,
        &format!("4\n{url}\n{dn}\nwrong-password\n\n\n"),
    );
    assert!(
        out.contains(&format!(
            "{url}: invalid credentials (wrong bind DN or password)"
        )),
        "{out}"
    );
    assert!(out.contains("[no]: Nothing stored."), "{out}");
    assert!(localconfig(&daemon, &rt).text.contains("ldap_url = \n"));

    let (_, out) = console(
        &daemon,
        &machine,
        Start::Menu,
        &format!("4\n{url}\n{dn}\n{}\n\n\n", slapd::ROOT_PW),
    );
    assert!(out.contains(&format!("{url}: bind OK as {dn}")), "{out}");
    let stored = localconfig(&daemon, &rt).text;
    assert!(stored.contains(&format!("ldap_url = {url}\n")), "{stored}");
    assert!(
        stored.contains(&format!("zimbra_ldap_password = {}\n", slapd::ROOT_PW)),
        "{stored}"
    );
    rt.block_on(daemon.shutdown());
}

fn tls_show(daemon: &Daemon, rt: &tokio::runtime::Runtime) -> String {
    rt.block_on(
        daemon
            .admin()
            .execute(AdminCommand::Tls(postern::admin::TlsCommand::Show)),
    )
    .text
}

/// The TLS screen on a real daemon: a key that belongs to another certificate is refused and
/// nothing changes; a matching pair is stored; a new self-signed one replaces it when asked.
#[test]
fn a_pasted_certificate_is_checked_against_its_key_before_it_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, daemon) = start(dir.path());
    let machine = Machine::default();
    let before = tls_show(&daemon, &rt);
    assert!(before.contains("BEGIN CERTIFICATE"), "{before}");
    let one = rcgen::generate_simple_self_signed(vec!["mx.console.test".into()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["mx.console.test".into()]).unwrap();
    let mismatched = format!("{}{}", one.cert.pem(), other.signing_key.serialize_pem());
    let (_, out) = console(
        &daemon,
        &machine,
        Start::Menu,
        &format!("7\ni\n{mismatched}\n\n"),
    );
    assert!(
        out.contains(
            "not installed: the private key does not belong to the certificate; nothing changed"
        ),
        "{out}"
    );
    assert_eq!(tls_show(&daemon, &rt), before);

    let matching = format!("{}{}", one.cert.pem(), one.signing_key.serialize_pem());
    let (_, out) = console(
        &daemon,
        &machine,
        Start::Menu,
        &format!("7\ni\n{matching}\n\n"),
    );
    assert!(out.contains("certificate installed"), "{out}");
    assert_eq!(tls_show(&daemon, &rt), one.cert.pem());

    let (_, out) = console(&daemon, &machine, Start::Menu, "7\nn\nyes\n");
    assert!(
        out.contains("self-signed certificate for mx.console.test installed"),
        "{out}"
    );
    let now = tls_show(&daemon, &rt);
    assert!(
        now != one.cert.pem() && now.contains("BEGIN CERTIFICATE"),
        "{now}"
    );
    rt.block_on(daemon.shutdown());
}
