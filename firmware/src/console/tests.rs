//! The console driven through [`run`] with typed lines, as an admin at a serial line would, over
//! admin operations that keep the box config in memory and record every command.

use std::cell::RefCell;
use std::io::Cursor;

use super::*;
use crate::admin::setup::{self, BoxConfigError};
use std::time::Duration;

use crate::admin::{
    AdminCommand, DiagCommand, LdapCommand, QueueCommand, Reply, Secret, SetupCommand, TlsCommand,
};
use crate::config::box_settings::NetworkSettings;
use crate::config::localconfig::{self, LocalConfig};
use crate::config::stored::BoxConfig;
use crate::directory::password;
use crate::update::command::{DEFAULT_ESP, UpdateCommand, UpdateError};
use crate::update::{BundleError, InstallError};

#[derive(Default)]
struct Box_ {
    config: RefCell<BoxConfig>,
    done: RefCell<Vec<AdminCommand>>,
    applied: RefCell<Vec<NetworkSettings>>,
    echo: RefCell<Vec<bool>>,
    pauses: RefCell<Vec<Duration>>,
    /// The mail log: a line more each time it is read, as a busy box's grows.
    mail_log: RefCell<Vec<String>>,
    /// `log --follow` polls that find nothing typed before one does.
    quiet_polls: std::cell::Cell<u32>,
    /// `queue list` comes in parts, as a long one does.
    long_listings: std::cell::Cell<bool>,
}

/// The one LDAP password the fake directory takes.
const LDAP_PASSWORD: &str = "ldap-secret";

impl Operations for Box_ {
    fn execute(&self, cmd: AdminCommand) -> Reply {
        self.done.borrow_mut().push(cmd.clone());
        let mut c = self.config.borrow_mut();
        match cmd {
            AdminCommand::Setup(SetupCommand::Network {
                address,
                gateway,
                dns,
                ipv6,
                ipv6_gateway,
            }) => match setup::network(&address, gateway, dns, &ipv6, ipv6_gateway) {
                Ok(n) => c.network = Some(n),
                Err(e) => return Reply::failed(format!("not saved: {e}\n")),
            },
            AdminCommand::Setup(SetupCommand::Hostname { name }) => c.hostname = Some(name),
            AdminCommand::Setup(SetupCommand::ConsolePasswordHash { hash }) => {
                c.console_password = Some(hash)
            }
            AdminCommand::Prov { args } if args == ["cd", "taken.example"] => {
                return Reply::failed("ERROR: account.DOMAIN_EXISTS\n");
            }
            AdminCommand::Log(args) => {
                let mut log = self.mail_log.borrow_mut();
                let n = log.len() + 1;
                log.push(format!("postern/smtpd[1]: line {n}"));
                let after = args.after.unwrap_or(0) as usize;
                let text: String = log
                    .iter()
                    .enumerate()
                    .skip(after)
                    .map(|(i, l)| format!("{} {l}\n", i + 1))
                    .collect();
                return Reply::ok(text);
            }
            AdminCommand::Ldap(LdapCommand::Test { url, password, .. }) => {
                let url = url.unwrap_or_default();
                return match password {
                    Some(Secret(p)) if p == LDAP_PASSWORD => Reply::ok(format!("{url}: bind OK\n")),
                    _ => Reply::failed(format!("{url}: invalid credentials\n")),
                };
            }
            AdminCommand::Update(cmd) => return update(cmd),
            AdminCommand::Localconfig {
                edit: true, args, ..
            } => {
                let mut lc = LocalConfig::from_pairs(&c.localconfig).unwrap();
                lc.set_all(&localconfig::parse_assignments(&args).unwrap())
                    .unwrap();
                c.localconfig = lc.to_pairs();
                // As the real command: nothing to say when it worked.
                return Reply::ok("");
            }
            _ => {}
        }
        Reply::ok(format!("did {:?}", self.done.borrow().last()))
    }

    fn box_config(&self) -> Result<BoxConfig, BoxConfigError> {
        Ok(self.config.borrow().clone())
    }

    /// A listing comes in three parts and a rest without its line end, unless a part is told
    /// to stop.
    fn execute_in_parts(&self, cmd: AdminCommand, part: &mut dyn FnMut(String) -> bool) -> Reply {
        if !self.long_listings.get()
            || !matches!(cmd, AdminCommand::Queue(QueueCommand::List { .. }))
        {
            return self.execute(cmd);
        }
        self.done.borrow_mut().push(cmd);
        for n in 1..=3 {
            if !part(format!("part {n}\n")) {
                return Reply::ok("");
            }
        }
        Reply::ok("rest")
    }
}

/// The update commands' answers on a box running 0.1.0 from slot A. A source naming "bad" has a
/// bad signature; one naming "full" passes its check and fails to write.
fn update(cmd: UpdateCommand) -> Reply {
    let refused =
        |source: String, e| Reply::failed(format!("{}\n", UpdateError::Bundle(source, e)));
    match cmd {
        UpdateCommand::Status { .. } => Reply::ok(
            "running: postern 0.1.0 (x86_64)\nslot A: postern 0.1.0, good, booted\nslot B: empty\n",
        ),
        UpdateCommand::Check { bundle } if bundle.contains("bad") => {
            refused(bundle, InstallError::Refused(BundleError::BadSignature))
        }
        UpdateCommand::Check { bundle } => Reply::ok(format!(
            "{bundle}: good: signature by the update key, postern 0.2.0 for x86_64\n"
        )),
        UpdateCommand::Install { bundle, .. } if bundle.contains("full") => refused(
            bundle,
            InstallError::Write(std::io::Error::other("No space left on device")),
        ),
        UpdateCommand::Install { .. } => {
            Reply::ok("installed postern 0.2.0 into slot B (postern-0.2.0-b+1.efi)\n")
        }
    }
}

impl Platform for Box_ {
    fn apply_network(&self, network: &NetworkSettings) -> String {
        self.applied.borrow_mut().push(network.clone());
        format!("eth0: {network}\n")
    }
    fn set_echo(&self, on: bool) {
        self.echo.borrow_mut().push(on);
    }
    fn pause(&self, wait: Duration) {
        self.pauses.borrow_mut().push(wait);
    }
    fn network_status(&self) -> String {
        "eth0: link up\naddress: 10.0.2.15/24\n".into()
    }
    fn input_waiting(&self, _wait: Duration) -> bool {
        let left = self.quiet_polls.get();
        self.quiet_polls.set(left.saturating_sub(1));
        left == 0
    }
}

/// Runs the console over `input`; returns why it ended and everything it wrote.
fn console(b: &Box_, start: Start, input: &[u8]) -> (ConsoleExit, String) {
    let mut out = Vec::new();
    let exit = run(Cursor::new(input.to_vec()), &mut out, b, b, start);
    (exit, String::from_utf8(out).unwrap())
}

const WIZARD_STATIC: &str = "s3cret-pass\ns3cret-pass\nmx1.example.com\nstatic\n192.0.2.10/24\n\n192.0.2.53\n\n192.0.2.123\nnone\nnone\nexample.com\n";

#[test]
fn first_boot_wizard_applies_only_after_yes() {
    let b = Box_::default();
    let (exit, out) = console(
        &b,
        Start::FirstBoot,
        format!("{WIZARD_STATIC}yes\n").as_bytes(),
    );
    assert_eq!(exit, ConsoleExit::SetUp, "{out}");
    assert!(out.contains("Summary:"), "{out}");
    assert!(out.contains("Settings applied."), "{out}");
    assert!(!out.contains("s3cret"), "the password was shown: {out}");
    let c = b.config.borrow();
    assert_eq!(c.hostname.as_ref().unwrap().as_str(), "mx1.example.com");
    assert_eq!(
        c.network.as_ref().unwrap().to_string(),
        "static 192.0.2.10/24 gateway 192.0.2.1, DNS 192.0.2.53; IPv6 SLAAC (router advertisements)"
    );
    let hash = c.console_password.clone().unwrap();
    assert_eq!(password::verify("s3cret-pass", &hash), Ok(true));
    // The network was applied as it was stored; the password typed with echo off.
    assert_eq!(b.applied.borrow().len(), 1);
    assert_eq!(b.echo.borrow()[..4], [false, true, false, true]);
}

#[test]
fn nothing_is_applied_when_the_console_goes_away_before_yes() {
    let b = Box_::default();
    let (exit, out) = console(&b, Start::FirstBoot, WIZARD_STATIC.as_bytes());
    assert_eq!(exit, ConsoleExit::Eof, "{out}");
    assert!(
        out.ends_with("Apply these settings? (yes: apply, no: answer the questions again) [no]: ")
    );
    assert!(b.done.borrow().is_empty());
    assert_eq!(*b.config.borrow(), BoxConfig::default());
}

#[test]
fn wrong_answers_noise_and_long_lines_are_asked_again() {
    let b = Box_::default();
    let long = "a".repeat(5000);
    let input = format!(
        "short\n\x1b[A\n{long}\n\u{fffd}\ns3cret-pass\ns3cret-pass\npostern\nmx1.example.com\nstatic\n\
         192.0.2.10/24\n10.0.0.1\n\n\n\n\n\n\n\nyes\n"
    );
    let mut bytes = input.into_bytes();
    // A byte that is not UTF-8 on its own line.
    bytes.splice(0..0, b"\xc3\x28\n".iter().copied());
    let (exit, out) = console(&b, Start::FirstBoot, &bytes);
    assert_eq!(exit, ConsoleExit::SetUp, "{out}");
    assert!(
        out.contains("the password is too short: at least 8 characters"),
        "{out}"
    );
    assert!(out.contains("control characters"), "{out}");
    assert!(out.contains("that line has 5000 characters"), "{out}");
    assert!(
        out.contains("\"postern\" is not a fully qualified host name"),
        "{out}"
    );
    assert!(
        out.contains("gateway 10.0.0.1 is outside the network 192.0.2.0/24"),
        "{out}"
    );
    assert_eq!(
        b.config.borrow().network.as_ref().unwrap().to_string(),
        "static 192.0.2.10/24 gateway 192.0.2.1, DNS 192.0.2.1; IPv6 SLAAC (router advertisements)"
    );
}

#[test]
fn a_domain_that_cannot_be_made_sends_the_wizard_back_without_a_password() {
    let b = Box_::default();
    let input = "s3cret-pass\ns3cret-pass\nmx1.example.com\n\n\n\n\n\n\ntaken.example\nyes\n";
    let (exit, out) = console(&b, Start::FirstBoot, input.as_bytes());
    assert_eq!(exit, ConsoleExit::Eof, "{out}");
    assert!(out.contains("DOMAIN_EXISTS"), "{out}");
    assert!(out.contains("the questions again"), "{out}");
    // The password is stored last: without it the next boot runs the wizard again.
    assert_eq!(b.config.borrow().console_password, None);
}

fn set_up_box() -> Box_ {
    let b = Box_::default();
    let (exit, _) = console(
        &b,
        Start::FirstBoot,
        format!("{WIZARD_STATIC}yes\n").as_bytes(),
    );
    assert_eq!(exit, ConsoleExit::SetUp);
    b.done.borrow_mut().clear();
    b.applied.borrow_mut().clear();
    b
}

#[test]
fn login_asks_the_password_then_draws_the_menu() {
    let b = set_up_box();
    let (exit, out) = console(&b, Start::Login, b"nope\ns3cret-pass\n13\n");
    assert_eq!(exit, ConsoleExit::Poweroff, "{out}");
    assert!(out.contains("Wrong password."), "{out}");
    assert!(
        out.contains("Postern ") && out.contains("on mx1.example.com"),
        "{out}"
    );
    assert!(out.contains("10) Command line"), "{out}");
    assert!(out.contains(" 8) Firmware update"), "{out}");
    assert!(out.ends_with(MENU_PROMPT), "{out}");
    let (exit, out) = console(&b, Start::Login, b"nope\n");
    assert_eq!(exit, ConsoleExit::Eof);
    assert!(
        !out.contains("1) Status"),
        "menu shown without the password: {out}"
    );
}

#[test]
fn the_menu_changes_the_network_through_setup_and_applies_it() {
    let b = set_up_box();
    let (exit, out) = console(
        &b,
        Start::Menu,
        b"2\nstatic\n198.51.100.7/24\n198.51.100.1\n198.51.100.53\nstatic\n2001:db8::7/64\n2001:db9::1\nfe80::1\n12\n",
    );
    assert_eq!(exit, ConsoleExit::Reboot, "{out}");
    // The current network is the default.
    assert!(
        out.contains("IPv4 network: dhcp or static [static]: "),
        "{out}"
    );
    assert!(out.contains("192.0.2.10/24]: "), "{out}");
    assert_eq!(
        b.done.borrow()[..],
        [AdminCommand::Setup(SetupCommand::Network {
            address: "198.51.100.7/24".into(),
            gateway: Some([198, 51, 100, 1].into()),
            dns: vec![[198, 51, 100, 53].into()],
            ipv6: "2001:db8::7/64".into(),
            ipv6_gateway: Some("fe80::1".parse().unwrap()),
        })]
    );
    // A gateway outside the prefix is refused and asked again.
    assert!(
        out.contains(
            "IPv6 gateway 2001:db9::1 is neither link-local (fe80::/10) nor inside 2001:db8::/64"
        ),
        "{out}"
    );
    assert!(
        out.contains("IPv6: slaac (router advertisements), static or off [slaac]: "),
        "{out}"
    );
    assert_eq!(b.applied.borrow().len(), 1);
    assert!(out.contains("eth0: static 198.51.100.7/24"), "{out}");
    // Redrawn after the action.
    assert_eq!(out.matches("1) Status").count(), 2, "{out}");
}

#[test]
fn the_menu_runs_the_admin_commands() {
    let b = set_up_box();
    let (_, out) = console(
        &b,
        Start::Menu,
        b"1\n6\nl\nh ABC123\nx\n\n7\n\n42\n3\nmx2.example.com\nntp_1.example.net\nntp1.example.net\n5\n[relay.example.net]:25\nnone\n10.0.0.1/8\n\n",
    );
    let done = b.done.borrow();
    let names: Vec<String> = done.iter().map(|c| format!("{c:?}")).collect();
    assert!(names[0].starts_with("Status"), "{names:?}");
    assert!(names[1].starts_with("Setup(Show"), "{names:?}");
    assert!(names[2].starts_with("Queue(List"), "{names:?}");
    assert!(names[3].starts_with("Queue(List"), "{names:?}");
    assert!(
        names[4].contains("Hold") && names[4].contains("ABC123"),
        "{names:?}"
    );
    assert!(names[5].starts_with("Tls(Show"), "{names:?}");
    assert!(names[6].contains("mx2.example.com"), "{names:?}");
    assert_eq!(
        done[7],
        AdminCommand::Setup(SetupCommand::Ntp {
            servers: vec!["ntp1.example.net".into()]
        })
    );
    assert!(
        out.contains("\"ntp_1.example.net\" is not a host name or address"),
        "{out}"
    );
    // The current relay host and mynetworks are read first, as the defaults.
    assert!(names[8].contains("gacf"), "{names:?} {out}");
    assert_eq!(
        done[9],
        crate::console::wizard::prov(&[
            "mcf",
            "zimbraMtaRelayHost",
            "[relay.example.net]:25",
            "zimbraMtaMyNetworks",
            "127.0.0.0/8 [::1]/128"
        ])
    );
    assert_eq!(names.len(), 10, "{names:?}");
    assert!(
        out.contains("10.0.0.1/8"),
        "a network with host bits is refused: {out}"
    );
    assert!(
        out.contains("type l, f, or s, h, r, d followed by a queue id"),
        "{out}"
    );
    assert!(out.contains("\"42\" is not on the menu"), "{out}");
    assert!(
        out.contains("eth0: link up"),
        "status shows the machine's network: {out}"
    );
}

#[test]
fn the_queue_menu_shows_one_message() {
    let b = set_up_box();
    let (_, out) = console(&b, Start::Menu, b"6\ns ABC123\ns\n\n");
    let done = b.done.borrow();
    assert!(
        done.contains(&AdminCommand::Queue(QueueCommand::Show {
            qid: "ABC123".into(),
            body: false,
            json: false,
        })),
        "{done:?}"
    );
    assert!(out.contains("s QID show"), "{out}");
    assert!(
        out.contains("type l, f, or s, h, r, d followed by a queue id"),
        "s alone names no message: {out}"
    );
}

/// `queue list` (the menu's and the command line's) is written part by part as the admin
/// commands make it, then the rest, then the prompt.
#[test]
fn the_queue_listing_is_written_as_it_is_made() {
    let b = set_up_box();
    b.long_listings.set(true);
    // Nothing typed while it is written.
    b.quiet_polls.set(100);
    let (_, out) = console(&b, Start::Menu, b"6\nl\n\n10\nqueue list\nmenu\n");
    let listing = "part 1\npart 2\npart 3\nrest\n";
    assert_eq!(out.matches(listing).count(), 3, "{out}");
    assert!(out.contains(&format!("{listing}Queue: l list")), "{out}");
    assert!(out.contains(&format!("{listing}{PROMPT}")), "{out}");
    let lists = b
        .done
        .borrow()
        .iter()
        .filter(|c| matches!(c, AdminCommand::Queue(QueueCommand::List { .. })))
        .count();
    assert_eq!(lists, 3);
}

/// Enter typed while a long listing is written stops it after the part being written; the line
/// is not taken as a command.
#[test]
fn enter_stops_a_long_listing() {
    let b = set_up_box();
    b.long_listings.set(true);
    b.quiet_polls.set(1);
    let (_, out) = console(&b, Start::CommandLine, b"queue list\n\nstatus\n");
    assert!(out.contains("part 1\npart 2\n(listing stopped)\n"), "{out}");
    assert!(!out.contains("part 3") && !out.contains("rest"), "{out}");
    let done = b.done.borrow();
    assert!(
        matches!(done.last(), Some(AdminCommand::Status)),
        "{done:?}"
    );
}

#[test]
fn factory_reset_asks_twice() {
    let b = set_up_box();
    let (exit, out) = console(&b, Start::Menu, b"11\nyes\nno\n11\nno\n11\nyes\nerase\n");
    assert_eq!(exit, ConsoleExit::FactoryReset, "{out}");
    assert_eq!(out.matches("Nothing erased.").count(), 2, "{out}");
    assert!(b.done.borrow().is_empty());
}

#[test]
fn log_follow_shows_new_lines_until_a_key() {
    let b = set_up_box();
    b.quiet_polls.set(2);
    // The empty line stops the follow; the next line is a command again.
    let (exit, out) = console(&b, Start::CommandLine, b"log --follow\n\nreboot\n");
    assert_eq!(exit, ConsoleExit::Reboot, "{out}");
    let shown: Vec<&str> = out.lines().filter(|l| l.contains("line ")).collect();
    assert_eq!(
        shown,
        [
            "postern/smtpd[1]: line 1",
            "postern/smtpd[1]: line 2",
            "postern/smtpd[1]: line 3"
        ],
        "{out}"
    );
    let asks: Vec<Option<u64>> = b
        .done
        .borrow()
        .iter()
        .filter_map(|c| match c {
            AdminCommand::Log(a) => Some(a.after),
            _ => None,
        })
        .collect();
    // Each ask goes on from the last line it got.
    assert_eq!(asks, [Some(0), Some(1), Some(2)]);
}

#[test]
fn the_command_line_is_the_old_prompt_and_menu_goes_back() {
    let b = set_up_box();
    let (exit, out) = console(
        &b,
        Start::CommandLine,
        b"status\nqueue delete ALL\nn\nbogus\nmenu\n10\nreboot\n",
    );
    assert_eq!(exit, ConsoleExit::Reboot, "{out}");
    assert!(out.contains(PROMPT));
    assert!(out.contains("[y/N] not done"), "{out}");
    assert!(out.contains("unrecognized subcommand"), "{out}");
    assert!(out.contains("1) Status"), "{out}");
    let done = b.done.borrow();
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0], AdminCommand::Status);
}

#[test]
fn wrong_console_passwords_make_the_console_wait_longer_each_time() {
    let b = set_up_box();
    let (exit, out) = console(&b, Start::Login, b"nope\nnope\nnope\ns3cret-pass\n13\n");
    assert_eq!(exit, ConsoleExit::Poweroff, "{out}");
    assert_eq!(out.matches("Wrong password.").count(), 3, "{out}");
    assert_eq!(
        b.pauses.borrow()[..],
        [2, 4, 8].map(Duration::from_secs),
        "login(1) waits after a failure, longer after more"
    );
    // A new login starts again at the first wait, and it never grows past the cap.
    b.pauses.borrow_mut().clear();
    let (_, _) = console(&b, Start::Login, "nope\n".repeat(10).as_bytes());
    let pauses = b.pauses.borrow();
    assert_eq!(pauses[0], Duration::from_secs(2));
    assert_eq!(*pauses.last().unwrap(), super::session::LOGIN_DELAY_MAX);
}

fn stored_ldap(b: &Box_) -> LocalConfig {
    LocalConfig::from_pairs(&b.config.borrow().localconfig).unwrap()
}

#[test]
fn the_wizard_tests_the_directory_bind_before_the_summary_and_stores_it_on_yes() {
    let b = Box_::default();
    let input = format!(
        "s3cret-pass\ns3cret-pass\nmx1.example.com\n\n\n\n\nldap://ldap.example.com ldaps://ldap2.example.com\n\
         uid=zmpostfix,cn=appaccts,cn=zimbra\n{LDAP_PASSWORD}\n\nnone\n\nyes\n"
    );
    let (exit, out) = console(&b, Start::FirstBoot, input.as_bytes());
    assert_eq!(exit, ConsoleExit::SetUp, "{out}");
    let test = out.find("ldap://ldap.example.com ldaps://ldap2.example.com: bind OK");
    let summary = out.find("Summary:");
    // The answered network is not applied yet: the bind says which one it went over.
    assert!(
        out.contains(
            "Test bind to the directory (over the network the box has now, 10.0.2.15/24):"
        ),
        "{out}"
    );
    assert!(
        test.is_some() && test < summary,
        "the test bind comes first: {out}"
    );
    assert!(
        out.contains("directory (LDAP): ldap://ldap.example.com ldaps://ldap2.example.com as uid=zmpostfix,cn=appaccts,cn=zimbra, schema zimbra"),
        "{out}"
    );
    assert!(
        !out.contains(LDAP_PASSWORD),
        "the LDAP password was shown: {out}"
    );
    let lc = stored_ldap(&b);
    assert_eq!(lc.ldap_urls.len(), 2);
    assert_eq!(lc.user_dn, "uid=zmpostfix,cn=appaccts,cn=zimbra");
    assert_eq!(lc.password, LDAP_PASSWORD);
    // Both passwords were typed with echo off.
    assert_eq!(
        b.echo.borrow()[..6],
        [false, true, false, true, false, true]
    );
}

#[test]
fn the_directory_menu_shows_a_failed_bind_and_stores_only_on_yes() {
    let b = set_up_box();
    // A bad URL asked again; a wrong password fails the test: Enter (default no) stores nothing.
    let (_, out) = console(
        &b,
        Start::Menu,
        b"4\nhttp://ldap.example.com\nldap://127.0.0.1:3890\nnot a dn\ncn=admin,dc=example,dc=com\nwrong\ninetorgperson\n\n",
    );
    assert!(
        out.contains("invalid value \"http://ldap.example.com\" for ldap_url"),
        "{out}"
    );
    assert!(out.contains("not a DN"), "{out}");
    assert!(
        out.contains("ldap://127.0.0.1:3890: invalid credentials"),
        "{out}"
    );
    assert!(
        out.contains("Store these settings? (yes/no) [no]: Nothing stored."),
        "{out}"
    );
    assert!(!stored_ldap(&b).ldap_enabled());
    // Again with the right password: the default is yes now.
    let input = format!(
        "4\nldap://127.0.0.1:3890\ncn=admin,dc=example,dc=com\n{LDAP_PASSWORD}\ninetorgperson\n\n"
    );
    let (_, out) = console(&b, Start::Menu, input.as_bytes());
    assert!(
        out.contains("Store these settings? (yes/no) [yes]: "),
        "{out}"
    );
    let lc = stored_ldap(&b);
    assert_eq!(lc.ldap_urls[0].to_string(), "ldap://127.0.0.1:3890");
    assert_eq!(lc.get("ldap_schema").unwrap(), "inetorgperson");
    // Asked again, the stored settings are the defaults and the password is kept.
    b.done.borrow_mut().clear();
    let (_, out) = console(&b, Start::Menu, b"4\n\n\n\n\nyes\n");
    assert!(out.contains("[ldap://127.0.0.1:3890]: "), "{out}");
    assert!(out.contains("LDAP bind password [keep]: "), "{out}");
    assert!(out.contains("ldap://127.0.0.1:3890: bind OK"), "{out}");
    assert_eq!(stored_ldap(&b).password, LDAP_PASSWORD);
    // none turns the sync off.
    let (_, out) = console(&b, Start::Menu, b"4\nnone\n\n");
    assert!(out.contains("LDAP sync is turned off"), "{out}");
    assert!(!stored_ldap(&b).ldap_enabled());
}

#[test]
fn the_diagnostics_screen_runs_diag_commands() {
    let b = set_up_box();
    let (_, out) = console(
        &b,
        Start::Menu,
        b"9\nn\np 192.0.2.1\nd example.com\ns mx.example.com:587\nx y z\n\n",
    );
    assert_eq!(
        b.done.borrow()[..],
        [
            AdminCommand::Diag(DiagCommand::Ping {
                host: "192.0.2.1".into(),
                count: 4
            }),
            AdminCommand::Diag(DiagCommand::Dns {
                name: "example.com".into()
            }),
            AdminCommand::Diag(DiagCommand::Smtp {
                target: "mx.example.com:587".into()
            }),
        ]
    );
    assert!(out.contains("type n, p and a host, d and a name"), "{out}");
    assert!(out.contains("eth0: link up"), "the network's status: {out}");
    assert_eq!(
        out.matches("1) Status").count(),
        2,
        "back to the menu: {out}"
    );
}

#[test]
fn a_certificate_is_pasted_or_made_through_the_tls_commands() {
    let b = set_up_box();
    let ck = rcgen::generate_simple_self_signed(vec!["mx1.example.com".into()]).unwrap();
    let pasted = format!("{}{}", ck.cert.pem(), ck.signing_key.serialize_pem());
    let input = format!("7\ni\n{pasted}\nn\n\n7\nn\nyes\n");
    let (_, out) = console(&b, Start::Menu, input.as_bytes());
    let done = b.done.borrow();
    assert_eq!(done[0], AdminCommand::Tls(TlsCommand::Show));
    assert_eq!(
        done[1],
        AdminCommand::Tls(TlsCommand::InstallPem {
            pem: Some(Secret(pasted.clone()))
        })
    );
    // The new self-signed one is asked first: Enter (no) does nothing, yes does it.
    assert_eq!(done[2], AdminCommand::Tls(TlsCommand::Show));
    assert_eq!(done[3], AdminCommand::Tls(TlsCommand::SelfSigned));
    assert_eq!(done.len(), 4, "{done:?}");
    assert_eq!(out.matches("Nothing stored.").count(), 1, "{out}");
    assert!(!out.contains("PRIVATE KEY"), "the key was shown: {out}");
    // Echo was off while the PEM was pasted.
    assert!(b.echo.borrow().iter().filter(|on| !**on).count() >= pasted.lines().count());
}

fn check(bundle: &str) -> AdminCommand {
    AdminCommand::Update(UpdateCommand::Check {
        bundle: bundle.into(),
    })
}

fn update_status() -> AdminCommand {
    AdminCommand::Update(UpdateCommand::Status {
        esp: DEFAULT_ESP.into(),
    })
}

#[test]
fn the_firmware_update_entry_shows_the_slots_checks_asks_then_installs_and_reboots() {
    let b = set_up_box();
    let good = "https://updates.example/postern-0.2.0.bundle";
    let input = format!("8\nhttps://updates.example/bad.bundle\n{good}\nyes\n");
    let (exit, out) = console(&b, Start::Menu, input.as_bytes());
    assert_eq!(exit, ConsoleExit::Reboot, "{out}");
    assert_eq!(
        b.done.borrow()[..],
        [
            update_status(),
            check("https://updates.example/bad.bundle"),
            check(good),
            AdminCommand::Update(UpdateCommand::Install {
                bundle: good.into(),
                esp: DEFAULT_ESP.into(),
            }),
        ]
    );
    assert!(out.contains("slot A: postern 0.1.0, good, booted"), "{out}");
    // A refused bundle: the command's own message, and the question again.
    assert!(
        out.contains("bad.bundle: refused, nothing written: "),
        "{out}"
    );
    assert_eq!(out.matches("Update bundle: a file").count(), 2, "{out}");
    assert!(
        out.contains("good: signature by the update key, postern 0.2.0"),
        "{out}"
    );
    assert!(out.contains("(yes/no) [no]: "), "{out}");
    assert!(out.contains("installed postern 0.2.0 into slot B"), "{out}");
    assert!(
        out.ends_with("the next boot goes back to this one.\n"),
        "{out}"
    );
}

#[test]
fn a_firmware_update_installs_nothing_without_yes_and_shows_a_failed_write() {
    let b = set_up_box();
    let (exit, out) = console(
        &b,
        Start::Menu,
        b"8\n\n8\n/tmp/postern.bundle\n\n8\n/full/postern.bundle\ny\n",
    );
    assert_eq!(exit, ConsoleExit::Eof, "{out}");
    assert_eq!(
        b.done.borrow()[..],
        [
            update_status(),
            update_status(),
            check("/tmp/postern.bundle"),
            update_status(),
            check("/full/postern.bundle"),
            AdminCommand::Update(UpdateCommand::Install {
                bundle: "/full/postern.bundle".into(),
                esp: DEFAULT_ESP.into(),
            }),
        ]
    );
    assert!(
        out.contains("writing the new slot failed (the running slot is untouched)"),
        "{out}"
    );
    assert_eq!(out.matches("Nothing installed.").count(), 2, "{out}");
    // Enter, no and the failed write each went back to the menu.
    assert_eq!(out.matches(" 1) Status").count(), 4, "{out}");
    assert!(out.ends_with(MENU_PROMPT), "{out}");
}
