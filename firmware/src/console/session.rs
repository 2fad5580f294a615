//! One console session, sans-IO: a typed line goes in, the text to show comes out, then
//! [`Session::prompt`]. It holds where the admin is (login, wizard, menu, a menu entry's
//! questions, the command line) and carries out each action through [`Operations`]: the admin
//! commands the command line and control socket run, nothing of its own.

use std::time::Duration;

use clap::{Parser, Subcommand};

use super::form::{Answers, Form, FormStep, Question};
use super::line;
use super::wizard::{self, Wizard, WizardStep};
use crate::admin::Secret;
use crate::admin::maillog;
use crate::admin::setup::BoxConfigError;
use crate::admin::{
    Admin, AdminCommand, BulkArgs, DiagCommand, FilterArgs, LogArgs, QueueCommand, Reply,
    SetupCommand, TlsCommand, words,
};
use crate::config::box_settings::{Ipv4Method, NetworkSettings};
use crate::config::localconfig::LocalConfig;
use crate::config::stored::BoxConfig;
use crate::directory::password;
use crate::update::command::{DEFAULT_ESP, UpdateCommand};

/// The command line's prompt, also what tests wait for.
pub const PROMPT: &str = "postern> ";
/// The main menu's prompt.
pub const MENU_PROMPT: &str = "Choose 1-13: ";

/// The main menu's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Status,
    Network,
    Hostname,
    Directory,
    MailRouting,
    Queue,
    Tls,
    FirmwareUpdate,
    Diagnostics,
    CommandLine,
    FactoryReset,
    Reboot,
    PowerOff,
}

/// The main menu as drawn: an entry's number is its place here.
const MENU: [(Entry, &str); 13] = [
    (Entry::Status, "Status"),
    (Entry::Network, "Network"),
    (Entry::Hostname, "Host name and time"),
    (Entry::Directory, "Directory (LDAP)"),
    (
        Entry::MailRouting,
        "Mail routing (relay host, domains, mynetworks)",
    ),
    (Entry::Queue, "Mail queue"),
    (Entry::Tls, "TLS certificate"),
    (Entry::FirmwareUpdate, "Firmware update"),
    (
        Entry::Diagnostics,
        "Diagnostics (ping, DNS lookup, SMTP test)",
    ),
    (Entry::CommandLine, "Command line"),
    (Entry::FactoryReset, "Factory reset"),
    (Entry::Reboot, "Reboot"),
    (Entry::PowerOff, "Power off"),
];

/// The wait after the first wrong console password, doubled after each further one up to
/// [`LOGIN_DELAY_MAX`] (login(1) waits ~3 s): guessing over a serial line stays slow.
pub const LOGIN_DELAY: Duration = Duration::from_secs(2);
pub const LOGIN_DELAY_MAX: Duration = Duration::from_secs(32);
/// Most bytes a pasted PEM may have (as `tls install-pem` takes).
const PASTE_MAX: usize = 64 << 10;

/// The admin operations a session carries out.
pub trait Operations {
    fn execute(&self, cmd: AdminCommand) -> Reply;
    /// As `execute`, but a long listing (`queue list`) is handed to `part` as it is made, until
    /// `part` says false; the reply carries the rest. A million queued messages are never one
    /// string in RAM.
    fn execute_in_parts(&self, cmd: AdminCommand, part: &mut dyn FnMut(String) -> bool) -> Reply {
        let _ = part;
        self.execute(cmd)
    }
    fn box_config(&self) -> Result<BoxConfig, BoxConfigError>;
}

impl Operations for Admin {
    fn execute(&self, cmd: AdminCommand) -> Reply {
        self.execute_blocking(cmd)
    }
    fn execute_in_parts(&self, cmd: AdminCommand, part: &mut dyn FnMut(String) -> bool) -> Reply {
        self.execute_in_parts_blocking(cmd, part)
    }
    fn box_config(&self) -> Result<BoxConfig, BoxConfigError> {
        self.box_config_blocking()
    }
}

/// What the machine under the console does that no admin command does.
pub trait Platform {
    /// Applies a network just stored to eth0; returns what it did, to show.
    fn apply_network(&self, network: &NetworkSettings) -> String;
    /// Stops the services' heartbeat so the watchdog resets the box (`debug-stall-services`, a
    /// test of the watchdog).
    fn stall_services(&self) -> String {
        "no watchdog here\n".into()
    }
    /// eth0 as it is (link, address, gateway, resolvers), for the status screen.
    fn network_status(&self) -> String {
        String::new()
    }
    /// Turns the terminal's echo off while a password is typed (nothing to do on a pipe).
    fn set_echo(&self, _on: bool) {}
    /// Waits before the next line is read (after a wrong password).
    fn pause(&self, wait: Duration) {
        std::thread::sleep(wait);
    }
    /// Waits up to `wait` for the admin to type something (ending `log --follow`); true when
    /// something came. A console that cannot tell (a pipe in tests) says so at once, and the
    /// follow ends after its first lines.
    fn input_waiting(&self, _wait: Duration) -> bool {
        true
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleExit {
    Poweroff,
    Reboot,
    /// The console went away (end of input).
    Eof,
    /// The admin confirmed a factory reset twice: erase the flash, then reboot.
    FactoryReset,
    /// The first-boot wizard applied its settings: start the services.
    SetUp,
}

/// Where a session begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A box never set up: the wizard, ending with [`ConsoleExit::SetUp`].
    FirstBoot,
    /// The console password first, then the menu.
    Login,
    /// The menu, no password (just after the wizard).
    Menu,
    /// The command line (`postern.console=prompt`, for tests and recovery).
    CommandLine,
}

/// What a line did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub text: String,
    pub exit: Option<ConsoleExit>,
    /// Wait this long before reading the next line.
    pub pause: Option<Duration>,
    /// A listing to write after the text as it is made
    /// ([`Operations::execute_in_parts`]): the queue's can be any size.
    pub listing: Option<AdminCommand>,
}

/// A menu entry's questions, and what their answers change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Network,
    Hostname,
    Directory,
    MailRouting,
}

#[derive(Debug, Clone)]
enum State {
    /// `failures`: wrong passwords typed so far.
    Login {
        failures: u32,
    },
    Wizard(Box<Wizard>),
    Menu,
    Form(Box<Form>, Purpose),
    Queue,
    Diagnostics,
    Tls,
    /// A PEM being pasted, line by line, until an empty line.
    PastePem(String),
    FactoryReset {
        second: bool,
    },
    CommandLine,
    Confirm(AdminCommand),
    /// Firmware update: waiting for the bundle's file or URL.
    UpdateSource,
    /// Firmware update: the bundle checked, waiting for yes to install it and reboot.
    UpdateConfirm(String),
    /// Settings shown (with a test's result) and waiting for yes before they are stored.
    Store {
        cmds: Vec<AdminCommand>,
        default_yes: bool,
    },
}

pub struct Session<'a, O, P> {
    ops: &'a O,
    platform: &'a P,
    state: State,
    /// `log --follow` at the command line: what it shows, from which line on.
    following: Option<LogArgs>,
}

/// The command line's words: the admin commands, plus the console's own.
#[derive(Debug, Parser)]
#[command(
    name = "",
    no_binary_name = true,
    disable_version_flag = true,
    help_template = "{subcommands}"
)]
struct Line {
    #[command(subcommand)]
    command: LineCommand,
}

#[derive(Debug, Subcommand)]
enum LineCommand {
    #[command(flatten)]
    Admin(AdminCommand),
    /// Back to the menu.
    Menu,
    /// Stop the services, flush the flash and power the box off.
    Poweroff,
    /// Stop the services, flush the flash and restart the box.
    Reboot,
    /// Stop the services' heartbeat: the watchdog resets the box (tests the watchdog).
    #[command(hide = true)]
    DebugStallServices,
}

fn show(text: impl Into<String>) -> Output {
    Output {
        text: text.into(),
        exit: None,
        pause: None,
        listing: None,
    }
}

fn exit(text: impl Into<String>, why: ConsoleExit) -> Output {
    Output {
        exit: Some(why),
        ..show(text)
    }
}

/// `queue list`, written by the console's driver as it is made.
fn listing(list: QueueCommand) -> Output {
    Output {
        listing: Some(AdminCommand::Queue(list)),
        ..show("")
    }
}

impl<'a, O: Operations, P: Platform> Session<'a, O, P> {
    /// A session and the text to show before its first prompt.
    pub fn start(ops: &'a O, platform: &'a P, start: Start) -> (Self, String) {
        let mut s = Session {
            ops,
            platform,
            state: State::Menu,
            following: None,
        };
        let banner = format!("Postern {}\n", env!("CARGO_PKG_VERSION"));
        let text = match start {
            Start::FirstBoot => {
                s.state = State::Wizard(Box::new(Wizard::new(Answers::default())));
                format!("{banner}{}", Wizard::greeting())
            }
            Start::Login => {
                s.state = State::Login { failures: 0 };
                banner
            }
            Start::Menu => s.menu(),
            Start::CommandLine => {
                s.state = State::CommandLine;
                format!("{banner}Type 'help' for the commands, 'menu' for the menu.\n")
            }
        };
        (s, text)
    }

    pub fn prompt(&self) -> String {
        match &self.state {
            State::Login { .. } => "Console password: ".into(),
            State::Wizard(w) => w.prompt(),
            State::Menu => MENU_PROMPT.into(),
            State::Form(f, _) => f.prompt(),
            State::Queue => {
                "Queue: l list (Enter stops it), s QID show, f flush, h QID hold, r QID release, d QID delete, Enter: menu > "
                    .into()
            }
            State::Tls => {
                "TLS: i install a certificate (paste PEM), n new self-signed, Enter: menu > ".into()
            }
            State::PastePem(_) => String::new(),
            State::Diagnostics => {
                "Diagnostics: n (network), p HOST (ping), d NAME (DNS lookup), s HOST[:PORT] (SMTP test), Enter: menu > "
                    .into()
            }
            State::FactoryReset { second: false } => {
                "Factory reset erases every setting, account, domain and queued message. Go on? [no]: "
                    .into()
            }
            State::FactoryReset { second: true } => {
                "Really erase everything and reboot? Type 'erase' to do it [no]: ".into()
            }
            State::CommandLine => PROMPT.into(),
            State::UpdateSource => {
                "Update bundle: a file on the box or an http(s):// URL (Enter: menu): ".into()
            }
            State::UpdateConfirm(_) => {
                "Install it into the other slot and reboot into it? (yes/no) [no]: ".into()
            }
            State::Confirm(cmd) => format!("{} [y/N] ", cmd.confirmation().unwrap_or("Sure?")),
            State::Store { default_yes, .. } => format!(
                "Store these settings? (yes/no) [{}]: ",
                if *default_yes { "yes" } else { "no" }
            ),
        }
    }

    /// Whether what is typed next must not be echoed.
    pub fn secret(&self) -> bool {
        match &self.state {
            State::Login { .. } => true,
            State::Wizard(w) => w.secret(),
            State::Form(f, _) => f.secret(),
            // The private key is pasted too.
            State::PastePem(_) => true,
            _ => false,
        }
    }

    /// Takes one line as read (line end and all).
    pub fn line(&mut self, raw: &str) -> Output {
        let line = match line::clean(raw) {
            Ok(l) => l,
            Err(e) => return show(format!("  {e}\n")),
        };
        match std::mem::replace(&mut self.state, State::Menu) {
            State::Login { failures } => self.login(line, failures),
            State::Wizard(mut w) => match w.answer(line) {
                WizardStep::Show(text) => {
                    self.state = State::Wizard(w);
                    show(text)
                }
                WizardStep::Test(test, summary) => {
                    let result = self.run(test);
                    self.state = State::Wizard(w);
                    // Nothing answered is applied before the summary: say which network the
                    // bind went over, so a failure there is not taken for the directory's.
                    let status = self.platform.network_status();
                    let over = status
                        .lines()
                        .find_map(|l| l.strip_prefix("address: "))
                        .map(|a| format!(" (over the network the box has now, {a})"))
                        .unwrap_or_default();
                    show(format!(
                        "\nTest bind to the directory{over}:\n{result}{summary}"
                    ))
                }
                WizardStep::Apply(cmds) => {
                    let (ok, mut text) = self.run_all(cmds);
                    if ok {
                        text += "Settings applied.\n";
                        exit(text, ConsoleExit::SetUp)
                    } else {
                        text +=
                            "Not everything could be applied (see above): the questions again.\n";
                        self.state = State::Wizard(w);
                        show(text)
                    }
                }
            },
            State::Menu => self.choose(line),
            State::Form(mut f, purpose) => match f.answer(line) {
                FormStep::Next => {
                    self.state = State::Form(f, purpose);
                    show("")
                }
                FormStep::Again(why) => {
                    self.state = State::Form(f, purpose);
                    show(format!("  {why}\n"))
                }
                FormStep::Done if purpose == Purpose::Directory => self.directory_done(&f.answers),
                FormStep::Done => {
                    let text = self.finish(purpose, &f.answers);
                    show(text + &self.menu())
                }
            },
            State::Queue => self.queue(line),
            State::Diagnostics => self.diagnostics(line),
            State::Tls => self.tls(line),
            State::PastePem(pem) => self.paste_pem(pem, line),
            State::FactoryReset { second } => {
                let answer = line.to_ascii_lowercase();
                match (second, answer.as_str()) {
                    (false, "yes" | "y") => {
                        self.state = State::FactoryReset { second: true };
                        show("")
                    }
                    (true, "erase") => exit(
                        "Erasing the flash, then rebooting.\n",
                        ConsoleExit::FactoryReset,
                    ),
                    _ => show(format!("Nothing erased.\n{}", self.menu())),
                }
            }
            State::CommandLine => self.command_line(line),
            State::UpdateSource => self.update_source(line),
            State::UpdateConfirm(source) => self.update_confirm(source, line),
            State::Store { cmds, default_yes } => {
                let yes = match line.to_ascii_lowercase().as_str() {
                    "" => default_yes,
                    "y" | "yes" => true,
                    "n" | "no" => false,
                    _ => {
                        self.state = State::Store { cmds, default_yes };
                        return show("  answer yes or no\n");
                    }
                };
                match yes {
                    true => {
                        let (_, text) = self.run_all(cmds);
                        show(text + &self.menu())
                    }
                    false => show(format!("Nothing stored.\n{}", self.menu())),
                }
            }
            State::Confirm(cmd) => {
                self.state = State::CommandLine;
                if matches!(line.to_ascii_lowercase().as_str(), "y" | "yes") {
                    show(self.run(cmd))
                } else {
                    show("not done\n")
                }
            }
        }
    }

    fn login(&mut self, line: &str, failures: u32) -> Output {
        let stored = match self.ops.box_config() {
            Ok(c) => c.console_password,
            // A box config this firmware cannot read must not lock the admin out of the menu
            // that repairs it.
            Err(e) => {
                return show(format!(
                    "cannot read the console password ({e}); no login asked\n{}",
                    self.menu()
                ));
            }
        };
        match stored.map(|h| password::verify(line, &h)) {
            None | Some(Ok(true)) => show(self.menu()),
            Some(Ok(false)) | Some(Err(_)) => {
                self.state = State::Login {
                    failures: failures.saturating_add(1),
                };
                let wait = LOGIN_DELAY
                    .saturating_mul(1 << failures.min(8))
                    .min(LOGIN_DELAY_MAX);
                Output {
                    pause: Some(wait),
                    ..show("Wrong password.\n")
                }
            }
        }
    }

    /// The menu, drawn after each action.
    fn menu(&mut self) -> String {
        self.state = State::Menu;
        let name = self
            .ops
            .box_config()
            .ok()
            .and_then(|c| c.hostname)
            .map_or("not set up".to_string(), |h| h.to_string());
        let mut text = format!("\nPostern {} on {name}\n", env!("CARGO_PKG_VERSION"));
        for (n, (_, label)) in MENU.iter().enumerate() {
            text += &format!("{:>3}) {label}\n", n + 1);
        }
        text
    }

    fn choose(&mut self, line: &str) -> Output {
        let current = self.ops.box_config().unwrap_or_default();
        let mut answers = Answers::default();
        answers.hostname = current.hostname.clone();
        answers.ntp_servers = Some(current.ntp_servers.clone());
        if let Some(n) = &current.network {
            answers.dhcp = Some(n.ipv4 == Ipv4Method::Dhcp);
            answers.dns = Some(n.dns.clone());
            if let Ipv4Method::Static(s) = n.ipv4 {
                answers.address = Some(s);
            }
            answers.set_ipv6(n.ipv6);
        }
        let form = |qs: &[Question], purpose| {
            State::Form(Box::new(Form::new(qs, answers.clone())), purpose)
        };
        if line.is_empty() {
            return show(self.menu());
        }
        let chosen = line
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| MENU.get(i));
        let Some((entry, _)) = chosen else {
            return show(format!(
                "  {line:?} is not on the menu: type a number from 1 to {}\n",
                MENU.len()
            ));
        };
        match entry {
            Entry::Status => {
                let mut text = self.run(AdminCommand::Status);
                text += &self.run(AdminCommand::Setup(SetupCommand::Show));
                text += &self.platform.network_status();
                show(text + &self.menu())
            }
            Entry::Network => {
                self.state = form(
                    &[
                        Question::Ipv4Method,
                        Question::Address,
                        Question::Gateway,
                        Question::Dns,
                        Question::Ipv6Method,
                        Question::Ipv6Address,
                        Question::Ipv6Gateway,
                    ],
                    Purpose::Network,
                );
                show("")
            }
            Entry::Hostname => {
                self.state = form(
                    &[Question::Hostname, Question::NtpServers],
                    Purpose::Hostname,
                );
                show("")
            }
            Entry::Directory => {
                let answers = self.directory_answers(answers.clone());
                self.state = State::Form(
                    Box::new(Form::new(wizard::DIRECTORY, answers)),
                    Purpose::Directory,
                );
                show("")
            }
            Entry::MailRouting => {
                let answers = self.routing_answers(answers.clone());
                self.state = State::Form(
                    Box::new(Form::new(
                        &[Question::RelayHost, Question::Domains, Question::MyNetworks],
                        answers,
                    )),
                    Purpose::MailRouting,
                );
                show("")
            }
            Entry::Queue => {
                self.state = State::Queue;
                listing(QueueCommand::List {
                    json: false,
                    filter: FilterArgs::default(),
                })
            }
            Entry::Tls => {
                self.state = State::Tls;
                show(self.run(AdminCommand::Tls(TlsCommand::Show)))
            }
            Entry::Diagnostics => {
                self.state = State::Diagnostics;
                show("")
            }
            Entry::CommandLine => {
                self.state = State::CommandLine;
                show("Type 'help' for the commands, 'menu' for the menu.\n")
            }
            Entry::FactoryReset => {
                self.state = State::FactoryReset { second: false };
                show("")
            }
            Entry::Reboot => exit("", ConsoleExit::Reboot),
            Entry::PowerOff => exit("", ConsoleExit::Poweroff),
            Entry::FirmwareUpdate => {
                self.state = State::UpdateSource;
                show(self.run(AdminCommand::Update(UpdateCommand::Status {
                    esp: DEFAULT_ESP.into(),
                })))
            }
        }
    }

    /// A bundle named: `update check` first, so the admin sees its version, architecture and
    /// signature verdict before anything is written. A refused one is shown and asked again.
    fn update_source(&mut self, line: &str) -> Output {
        if line.is_empty() {
            return show(self.menu());
        }
        let (good, text) = self.run_one(AdminCommand::Update(UpdateCommand::Check {
            bundle: line.to_string(),
        }));
        self.state = if good {
            State::UpdateConfirm(line.to_string())
        } else {
            State::UpdateSource
        };
        show(text)
    }

    /// Yes installs the checked bundle (`update install`, which checks it again as it writes) and
    /// reboots into it on trial; the old slot stays as it is until the new one passes its
    /// health check.
    fn update_confirm(&mut self, source: String, line: &str) -> Output {
        if !matches!(line.to_ascii_lowercase().as_str(), "yes" | "y") {
            return show(format!("Nothing installed.\n{}", self.menu()));
        }
        let (installed, text) = self.run_one(AdminCommand::Update(UpdateCommand::Install {
            bundle: source,
            esp: DEFAULT_ESP.into(),
        }));
        if !installed {
            return show(format!("{text}Nothing installed.\n{}", self.menu()));
        }
        exit(
            format!(
                "{text}The box reboots into the new firmware now. It runs on trial: unless it \
                 passes its health check, the next boot goes back to this one.\n"
            ),
            ConsoleExit::Reboot,
        )
    }

    /// Carries out what a menu entry's questions asked for.
    fn finish(&mut self, purpose: Purpose, a: &Answers) -> String {
        let cmds = match purpose {
            Purpose::Network => a
                .network()
                .map(|n| wizard::network_command(&n))
                .into_iter()
                .collect(),
            Purpose::Hostname => a
                .hostname
                .clone()
                .map(|name| AdminCommand::Setup(SetupCommand::Hostname { name }))
                .into_iter()
                .chain(wizard::ntp_command(a))
                .collect(),
            Purpose::MailRouting => {
                let relay = a.relay_host.clone().flatten().unwrap_or_default();
                let mut mcf = vec!["mcf", "zimbraMtaRelayHost", &relay];
                if let Some(nets) = &a.my_networks {
                    mcf.extend(["zimbraMtaMyNetworks", nets]);
                }
                let mut cmds = vec![wizard::prov(&mcf)];
                cmds.extend(a.domains.iter().flatten().map(|d| wizard::prov(&["cd", d])));
                cmds
            }
            // Stored after the admin saw the test bind: see `directory_done`.
            Purpose::Directory => Vec::new(),
        };
        self.run_all(cmds).1
    }

    /// The directory questions answered: a test bind whose result is shown, then the settings
    /// stored only if the admin says yes (the default when the bind worked).
    fn directory_done(&mut self, a: &Answers) -> Output {
        let Some(store) = wizard::directory_command(a) else {
            return show(self.menu());
        };
        let mut text = format!("\nDirectory (LDAP): {}\n", wizard::directory_summary(a));
        let default_yes = match wizard::test_bind_command(a) {
            Some(test) => {
                let (ok, result) = self.run_one(test);
                text += "Test bind:\n";
                text += &result;
                ok
            }
            None => {
                text += "LDAP sync is turned off: the directory keeps what it has.\n";
                true
            }
        };
        self.state = State::Store {
            cmds: vec![store],
            default_yes,
        };
        show(text)
    }

    /// The stored LDAP connection settings as the directory questions' defaults.
    fn directory_answers(&self, mut a: Answers) -> Answers {
        let stored = self
            .ops
            .box_config()
            .ok()
            .and_then(|c| LocalConfig::from_pairs(&c.localconfig).ok())
            .unwrap_or_default();
        if stored.ldap_enabled() {
            a.ldap_url = Some(Some(
                stored
                    .ldap_urls
                    .iter()
                    .map(|u| u.to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
            ));
            a.ldap_bind_dn = Some(stored.user_dn.clone());
            a.ldap_schema = stored.get(crate::config::localconfig::SCHEMA).ok();
        }
        if !stored.password.is_empty() {
            a.ldap_password = Some(Secret(stored.password));
        }
        a
    }

    /// The directory's relay host and mynetworks (`prov gacf`) as the questions' defaults.
    fn routing_answers(&self, mut a: Answers) -> Answers {
        let reply = self.ops.execute(wizard::prov(&[
            "gacf",
            "zimbraMtaRelayHost",
            "zimbraMtaMyNetworks",
        ]));
        if reply.exit != 0 {
            return a;
        }
        for line in reply.text.lines() {
            if let Some(relay) = line.strip_prefix("zimbraMtaRelayHost: ") {
                a.relay_host = Some(Some(relay.to_string()).filter(|r| !r.is_empty()));
            } else if let Some(nets) = line.strip_prefix("zimbraMtaMyNetworks: ") {
                a.my_networks = Some(nets.to_string());
            }
        }
        a
    }

    fn queue(&mut self, line: &str) -> Output {
        let mut words = line.split_whitespace();
        let (verb, qid) = (words.next(), words.next().map(str::to_string));
        let cmd = match (verb, qid) {
            (None, _) => return show(self.menu()),
            (Some("l"), None) => QueueCommand::List {
                json: false,
                filter: FilterArgs::default(),
            },
            (Some("f"), None) => QueueCommand::Flush {
                destination: None,
                filter: FilterArgs::default(),
            },
            // postcat's view, every record with its time.
            (Some("s"), Some(qid)) => QueueCommand::Show {
                qid,
                body: false,
                json: false,
            },
            (Some("h"), Some(target)) => QueueCommand::Hold(one(target, false)),
            (Some("r"), Some(target)) => QueueCommand::Release(one(target, false)),
            // The menu entry itself is the confirmation: "d QID" names what to delete.
            (Some("d"), Some(target)) => QueueCommand::Delete(one(target, true)),
            _ => {
                self.state = State::Queue;
                return show("  type l, f, or s, h, r, d followed by a queue id\n");
            }
        };
        self.state = State::Queue;
        match cmd {
            QueueCommand::List { .. } => listing(cmd),
            cmd => show(self.run(AdminCommand::Queue(cmd))),
        }
    }

    /// The TLS screen: a pasted certificate (`tls install-pem`) or a new self-signed one
    /// (`tls self-signed`, asked first: it replaces what is installed).
    fn tls(&mut self, line: &str) -> Output {
        match line {
            "" => show(self.menu()),
            "i" => {
                self.state = State::PastePem(String::new());
                show(
                    "Paste the certificate chain (server certificate first) and its private key, \
                     PEM; then an empty line:\n",
                )
            }
            "n" => {
                self.state = State::Store {
                    cmds: vec![AdminCommand::Tls(TlsCommand::SelfSigned)],
                    default_yes: false,
                };
                show("This replaces the certificate in use with a new self-signed one.\n")
            }
            _ => {
                self.state = State::Tls;
                show("  type i or n, or Enter for the menu\n")
            }
        }
    }

    fn paste_pem(&mut self, mut pem: String, line: &str) -> Output {
        self.state = State::Tls;
        if line.is_empty() && pem.is_empty() {
            return show("Nothing pasted; nothing changed.\n");
        }
        if line.is_empty() {
            let cmd = TlsCommand::InstallPem {
                pem: Some(Secret(pem)),
            };
            return show(self.run(AdminCommand::Tls(cmd)));
        }
        pem.push_str(line);
        pem.push('\n');
        if pem.len() > PASTE_MAX {
            return show("That is more than a certificate chain and a key; nothing changed.\n");
        }
        self.state = State::PastePem(pem);
        show("")
    }

    /// The diagnostics screen: each check is `postern diag ...`, its answer shown as it is.
    fn diagnostics(&mut self, line: &str) -> Output {
        let mut words = line.split_whitespace();
        let cmd = match (words.next(), words.next(), words.next()) {
            (None, _, _) => return show(self.menu()),
            // The link, address, whether the gateway answers ARP now, the DHCP lease.
            (Some("n"), None, _) => {
                self.state = State::Diagnostics;
                return show(self.platform.network_status());
            }
            (Some("p"), Some(host), None) => DiagCommand::Ping {
                host: host.into(),
                count: 4,
            },
            (Some("d"), Some(name), None) => DiagCommand::Dns { name: name.into() },
            (Some("s"), Some(target), None) => DiagCommand::Smtp {
                target: target.into(),
            },
            _ => {
                self.state = State::Diagnostics;
                return show(
                    "  type n, p and a host, d and a name, or s and a host with its port\n",
                );
            }
        };
        self.state = State::Diagnostics;
        show(self.run(AdminCommand::Diag(cmd)))
    }

    fn command_line(&mut self, line: &str) -> Output {
        self.state = State::CommandLine;
        let words = match words::split(line) {
            Ok(w) if w.is_empty() => return show(""),
            Ok(w) => w,
            Err(e) => return show(format!("error: {e}\n")),
        };
        let command = match Line::try_parse_from(&words) {
            Ok(l) => l.command,
            Err(e) => return show(e.render().to_string()),
        };
        match command {
            LineCommand::Menu => show(self.menu()),
            LineCommand::Poweroff => exit("", ConsoleExit::Poweroff),
            LineCommand::Reboot => exit("", ConsoleExit::Reboot),
            LineCommand::DebugStallServices => show(self.platform.stall_services()),
            LineCommand::Admin(AdminCommand::Log(mut args)) if args.follow => {
                args.after = Some(0);
                self.following = Some(args);
                show("(following the mail log: press Enter to stop)\n")
            }
            LineCommand::Admin(cmd) if cmd.confirmation().is_some() => {
                self.state = State::Confirm(cmd);
                show("")
            }
            LineCommand::Admin(AdminCommand::Queue(list @ QueueCommand::List { .. })) => {
                listing(list)
            }
            LineCommand::Admin(cmd) => show(self.run(cmd)),
        }
    }

    /// Whether `log --follow` is running: the console asks [`Session::follow`] for new lines
    /// until the admin types something.
    pub fn is_following(&self) -> bool {
        self.following.is_some()
    }

    /// The mail log's lines since the last ask (the newest ones the first time).
    pub fn follow(&mut self) -> String {
        let Some(mut args) = self.following.take() else {
            return String::new();
        };
        let reply = self.ops.execute(AdminCommand::Log(args.clone()));
        if reply.exit != 0 {
            return reply.text;
        }
        // Each line comes with its number first, so the next ask goes on from it.
        let (text, after) = maillog::unnumbered(&reply.text, args.after.unwrap_or(0));
        args.after = Some(after);
        // After the first answer, everything new, however much.
        args.lines = usize::MAX;
        self.following = Some(args);
        text
    }

    /// The admin typed something: the follow ends, back at the prompt.
    pub fn stop_following(&mut self) {
        self.following = None;
    }

    /// Runs commands in order, stopping at the first that fails.
    fn run_all(&mut self, cmds: Vec<AdminCommand>) -> (bool, String) {
        let mut text = String::new();
        for cmd in cmds {
            let (ok, out) = self.run_one(cmd);
            text += &out;
            if !ok {
                return (false, text);
            }
        }
        (true, text)
    }

    fn run(&mut self, cmd: AdminCommand) -> String {
        self.run_one(cmd).1
    }

    /// One admin command, its text ending in a newline; a network it stored is applied.
    fn run_one(&mut self, cmd: AdminCommand) -> (bool, String) {
        let network = matches!(cmd, AdminCommand::Setup(SetupCommand::Network { .. }));
        let reply = self.ops.execute(cmd);
        let mut text = reply.text;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        if network && reply.exit == 0 {
            match self.ops.box_config().map(|c| c.network) {
                Ok(Some(n)) => text += &self.platform.apply_network(&n),
                Ok(None) => {}
                Err(e) => text += &format!("cannot read the network back: {e}\n"),
            }
        }
        (reply.exit == 0, text)
    }
}

/// The queue menu's actions name one message.
fn one(qid: String, yes: bool) -> BulkArgs {
    BulkArgs {
        targets: vec![qid],
        filter: FilterArgs::default(),
        yes,
    }
}
