//! One console session, sans-IO: a typed line goes in, the text to show comes out, then
//! [`Session::prompt`]. It holds where the admin is (login, wizard, menu, a menu entry's
//! questions, the command line) and carries out each action through [`Operations`]: the admin
//! commands the command line and control socket run, nothing of its own.

use clap::{Parser, Subcommand};

use super::form::{Answers, Form, FormStep, Question};
use super::line;
use super::wizard::{self, Wizard, WizardStep};
use crate::admin::setup::BoxConfigError;
use crate::admin::{
    Admin, AdminCommand, BulkArgs, FilterArgs, QueueCommand, Reply, SetupCommand, TlsCommand, words,
};
use crate::config::box_settings::{Ipv4Method, NetworkSettings};
use crate::config::stored::BoxConfig;
use crate::directory::password;

/// The command line's prompt, also what tests wait for.
pub const PROMPT: &str = "postern> ";
/// The main menu's prompt.
pub const MENU_PROMPT: &str = "Choose 1-10: ";

/// The admin operations a session carries out.
pub trait Operations {
    fn execute(&self, cmd: AdminCommand) -> Reply;
    fn box_config(&self) -> Result<BoxConfig, BoxConfigError>;
}

impl Operations for Admin {
    fn execute(&self, cmd: AdminCommand) -> Reply {
        self.execute_blocking(cmd)
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
}

/// A menu entry's questions, and what their answers change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Network,
    Hostname,
    MailRouting,
}

#[derive(Debug, Clone)]
enum State {
    Login,
    Wizard(Box<Wizard>),
    Menu,
    Form(Box<Form>, Purpose),
    Queue,
    FactoryReset { second: bool },
    CommandLine,
    Confirm(AdminCommand),
}

pub struct Session<'a, O, P> {
    ops: &'a O,
    platform: &'a P,
    state: State,
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
    }
}

fn exit(text: impl Into<String>, why: ConsoleExit) -> Output {
    Output {
        text: text.into(),
        exit: Some(why),
    }
}

impl<'a, O: Operations, P: Platform> Session<'a, O, P> {
    /// A session and the text to show before its first prompt.
    pub fn start(ops: &'a O, platform: &'a P, start: Start) -> (Self, String) {
        let mut s = Session {
            ops,
            platform,
            state: State::Menu,
        };
        let banner = format!("Postern {}\n", env!("CARGO_PKG_VERSION"));
        let text = match start {
            Start::FirstBoot => {
                s.state = State::Wizard(Box::new(Wizard::new(Answers::default())));
                format!("{banner}{}", Wizard::greeting())
            }
            Start::Login => {
                s.state = State::Login;
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
            State::Login => "Console password: ".into(),
            State::Wizard(w) => w.prompt(),
            State::Menu => MENU_PROMPT.into(),
            State::Form(f, _) => f.prompt(),
            State::Queue => {
                "Queue: l list, f flush, h QID hold, r QID release, d QID delete, Enter: menu > "
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
            State::Confirm(cmd) => format!("{} [y/N] ", cmd.confirmation().unwrap_or("Sure?")),
        }
    }

    /// Whether what is typed next must not be echoed.
    pub fn secret(&self) -> bool {
        match &self.state {
            State::Login => true,
            State::Wizard(w) => w.secret(),
            State::Form(f, _) => f.secret(),
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
            State::Login => self.login(line),
            State::Wizard(mut w) => match w.answer(line) {
                WizardStep::Show(text) => {
                    self.state = State::Wizard(w);
                    show(text)
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
                FormStep::Done => {
                    let text = self.finish(purpose, &f.answers);
                    show(text + &self.menu())
                }
            },
            State::Queue => self.queue(line),
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

    fn login(&mut self, line: &str) -> Output {
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
                self.state = State::Login;
                show("Wrong password.\n")
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
        format!(
            "\nPostern {} on {name}\n\
             \x20 1) Status\n\
             \x20 2) Network\n\
             \x20 3) Host name\n\
             \x20 4) Mail routing (relay host, domains)\n\
             \x20 5) Mail queue\n\
             \x20 6) TLS certificate\n\
             \x20 7) Command line\n\
             \x20 8) Factory reset\n\
             \x20 9) Reboot\n\
             \x2010) Power off\n",
            env!("CARGO_PKG_VERSION")
        )
    }

    fn choose(&mut self, line: &str) -> Output {
        let current = self.ops.box_config().unwrap_or_default();
        let mut answers = Answers::default();
        answers.hostname = current.hostname.clone();
        if let Some(n) = &current.network {
            answers.dhcp = Some(n.ipv4 == Ipv4Method::Dhcp);
            answers.dns = Some(n.dns.clone());
            if let Ipv4Method::Static(s) = n.ipv4 {
                answers.address = Some(s);
            }
        }
        let form = |qs: &[Question], purpose| {
            State::Form(Box::new(Form::new(qs, answers.clone())), purpose)
        };
        match line {
            "1" => {
                let mut text = self.run(AdminCommand::Status);
                text += &self.run(AdminCommand::Setup(SetupCommand::Show));
                text += &self.platform.network_status();
                show(text + &self.menu())
            }
            "2" => {
                self.state = form(
                    &[
                        Question::Ipv4Method,
                        Question::Address,
                        Question::Gateway,
                        Question::Dns,
                    ],
                    Purpose::Network,
                );
                show("")
            }
            "3" => {
                self.state = form(&[Question::Hostname], Purpose::Hostname);
                show("")
            }
            "4" => {
                self.state = form(
                    &[Question::RelayHost, Question::Domains],
                    Purpose::MailRouting,
                );
                show("")
            }
            "5" => {
                self.state = State::Queue;
                show(self.run(AdminCommand::Queue(QueueCommand::List {
                    json: false,
                    filter: FilterArgs::default(),
                })))
            }
            "6" => {
                let text = self.run(AdminCommand::Tls(TlsCommand::Show));
                show(text + &self.menu())
            }
            "7" => {
                self.state = State::CommandLine;
                show("Type 'help' for the commands, 'menu' for the menu.\n")
            }
            "8" => {
                self.state = State::FactoryReset { second: false };
                show("")
            }
            "9" => exit("", ConsoleExit::Reboot),
            "10" => exit("", ConsoleExit::Poweroff),
            "" => show(self.menu()),
            other => show(format!(
                "  {other:?} is not on the menu: type a number from 1 to 10\n"
            )),
        }
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
                .collect(),
            Purpose::MailRouting => {
                let relay = a.relay_host.clone().flatten().unwrap_or_default();
                let mut cmds = vec![wizard::prov(&["mcf", "zimbraMtaRelayHost", &relay])];
                cmds.extend(a.domains.iter().flatten().map(|d| wizard::prov(&["cd", d])));
                cmds
            }
        };
        self.run_all(cmds).1
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
            (Some("h"), Some(target)) => QueueCommand::Hold(one(target, false)),
            (Some("r"), Some(target)) => QueueCommand::Release(one(target, false)),
            // The menu entry itself is the confirmation: "d QID" names what to delete.
            (Some("d"), Some(target)) => QueueCommand::Delete(one(target, true)),
            _ => {
                self.state = State::Queue;
                return show("  type l, f, or h, r, d followed by a queue id\n");
            }
        };
        self.state = State::Queue;
        show(self.run(AdminCommand::Queue(cmd)))
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
            LineCommand::Admin(cmd) if cmd.confirmation().is_some() => {
                self.state = State::Confirm(cmd);
                show("")
            }
            LineCommand::Admin(cmd) => show(self.run(cmd)),
        }
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
