//! The first-boot wizard: on a box never set up, every question of [`form`](super::form) in turn,
//! then a summary to confirm. Nothing is applied before "yes"; then the answers become the same
//! admin commands the command line takes, the console password last, so a box cut off half way
//! runs the wizard again.

use super::form::{Answers, Form, FormStep, Question};
use crate::admin::{AdminCommand, LdapCommand, SetupCommand};
use crate::config::box_ipv6::Ipv6Method;
use crate::config::box_settings::Ipv4Method;
use crate::config::localconfig::{LDAP_URL, PASSWORD, SCHEMA, USER_DN};

/// The directory's questions, in the wizard and the menu.
pub const DIRECTORY: &[Question] = &[
    Question::LdapUrl,
    Question::LdapBindDn,
    Question::LdapPassword,
    Question::LdapSchema,
];

/// Every question, in the order asked.
pub const QUESTIONS: &[Question] = &[
    Question::Password,
    Question::PasswordAgain,
    Question::Hostname,
    Question::Ipv4Method,
    Question::Address,
    Question::Gateway,
    Question::Dns,
    Question::Ipv6Method,
    Question::Ipv6Address,
    Question::Ipv6Gateway,
    Question::NtpServers,
    Question::LdapUrl,
    Question::LdapBindDn,
    Question::LdapPassword,
    Question::LdapSchema,
    Question::RelayHost,
    Question::Domains,
];

/// Where the wizard is.
#[derive(Debug, Clone)]
pub struct Wizard {
    form: Form,
    confirming: bool,
}

/// What a line did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WizardStep {
    /// Show this, then the prompt.
    Show(String),
    /// Carry out this test bind and show its result, then this summary and the prompt.
    Test(AdminCommand, String),
    /// Confirmed: carry out these commands, in order.
    Apply(Vec<AdminCommand>),
}

impl Wizard {
    pub fn new(answers: Answers) -> Wizard {
        Wizard {
            form: Form::new(QUESTIONS, answers),
            confirming: false,
        }
    }

    pub fn greeting() -> &'static str {
        "Welcome to Postern. This box is not set up yet: a few questions follow.\n\
         Defaults are in brackets (Enter takes them); nothing is applied before the summary is confirmed.\n"
    }

    pub fn prompt(&self) -> String {
        if self.confirming {
            "Apply these settings? (yes: apply, no: answer the questions again) [no]: ".into()
        } else {
            self.form.prompt()
        }
    }

    pub fn secret(&self) -> bool {
        !self.confirming && self.form.secret()
    }

    /// Takes one clean line.
    pub fn answer(&mut self, line: &str) -> WizardStep {
        if self.confirming {
            return match line.to_ascii_lowercase().as_str() {
                "yes" | "y" => WizardStep::Apply(commands(&self.form.answers)),
                "no" | "n" | "" => {
                    *self = Wizard::new(self.form.answers.clone());
                    WizardStep::Show("Again, with your answers as the defaults.\n".into())
                }
                _ => WizardStep::Show("answer yes or no\n".into()),
            };
        }
        match self.form.answer(line) {
            FormStep::Next => WizardStep::Show(String::new()),
            FormStep::Again(why) => WizardStep::Show(format!("  {why}\n")),
            FormStep::Done => {
                self.confirming = true;
                let text = summary(&self.form.answers);
                match test_bind_command(&self.form.answers) {
                    Some(test) => WizardStep::Test(test, text),
                    None => WizardStep::Show(text),
                }
            }
        }
    }
}

/// What will be applied, for the admin to read before confirming.
pub fn summary(a: &Answers) -> String {
    let mut s = String::from("\nSummary:\n  console password: set\n");
    if let Some(h) = &a.hostname {
        s += &format!("  host name:        {h}\n");
    }
    if let Some(n) = a.network() {
        s += &format!("  network (eth0):   {n}\n");
    }
    s += &format!("  NTP servers:      {}\n", ntp_summary(a));
    s += &format!("  directory (LDAP): {}\n", directory_summary(a));
    let relay = a.relay_host.clone().flatten();
    s += &format!(
        "  relay host:       {}\n",
        relay.as_deref().unwrap_or("none (deliver by MX)")
    );
    let domains = a.domains.clone().unwrap_or_default();
    s += &format!(
        "  mail domains:     {}\n",
        if domains.is_empty() {
            "none yet".to_string()
        } else {
            domains.join(" ")
        }
    );
    s
}

/// The admin commands that apply the answers.
pub fn commands(a: &Answers) -> Vec<AdminCommand> {
    let mut out = Vec::new();
    if let Some(name) = &a.hostname {
        out.push(AdminCommand::Setup(SetupCommand::Hostname {
            name: name.clone(),
        }));
    }
    if let Some(n) = a.network() {
        out.push(network_command(&n));
    }
    out.extend(ntp_command(a));
    if let Some(Some(relay)) = &a.relay_host {
        out.push(prov(&["mcf", "zimbraMtaRelayHost", relay]));
    }
    for d in a.domains.iter().flatten() {
        out.push(prov(&["cd", d]));
    }
    if a.ldap_wanted() {
        out.extend(directory_command(a));
    }
    if let Some(hash) = &a.password_hash {
        out.push(AdminCommand::Setup(SetupCommand::ConsolePasswordHash {
            hash: hash.clone(),
        }));
    }
    out
}

fn ntp_summary(a: &Answers) -> String {
    match &a.ntp_servers {
        Some(s) if !s.is_empty() => s.join(" "),
        _ => "none (the clock is left alone)".into(),
    }
}

/// `setup ntp ...` for the answer, if it was asked.
pub fn ntp_command(a: &Answers) -> Option<AdminCommand> {
    let servers = a.ntp_servers.clone()?;
    Some(AdminCommand::Setup(SetupCommand::Ntp {
        servers: match servers.is_empty() {
            true => vec!["none".into()],
            false => servers,
        },
    }))
}

/// The directory answers in one line.
pub fn directory_summary(a: &Answers) -> String {
    match (&a.ldap_url, a.ldap_bind_dn.as_deref().unwrap_or("")) {
        (Some(Some(url)), "") => format!("{url}, anonymous bind, schema {}", schema(a)),
        (Some(Some(url)), dn) => format!("{url} as {dn}, schema {}", schema(a)),
        _ => "none (no LDAP sync)".into(),
    }
}

fn schema(a: &Answers) -> &str {
    a.ldap_schema.as_deref().unwrap_or("zimbra")
}

/// `ldap test` with the directory answers, when they name a server.
pub fn test_bind_command(a: &Answers) -> Option<AdminCommand> {
    let url = a.ldap_url.clone().flatten()?;
    let binddn = a.ldap_bind_dn.clone().unwrap_or_default();
    let password = match binddn.is_empty() {
        true => None,
        false => a.ldap_password.clone(),
    };
    Some(AdminCommand::Ldap(LdapCommand::Test {
        url: Some(url),
        binddn: Some(binddn),
        password_stdin: false,
        password,
    }))
}

/// `localconfig -e ...` storing the directory answers (an empty `ldap_url`: no LDAP sync), the
/// same command an admin types; `None` when they were not asked.
pub fn directory_command(a: &Answers) -> Option<AdminCommand> {
    let url = a.ldap_url.as_ref()?;
    let mut args = vec![format!("{LDAP_URL}={}", url.clone().unwrap_or_default())];
    if url.is_some() {
        let dn = a.ldap_bind_dn.clone().unwrap_or_default();
        let password = match dn.is_empty() {
            true => String::new(),
            false => a.ldap_password.clone().map(|p| p.0).unwrap_or_default(),
        };
        // `KEY=@FILE` would read a file: `@@` keeps a password's leading `@`.
        let password = match password.starts_with('@') {
            true => format!("@{password}"),
            false => password,
        };
        args.push(format!("{USER_DN}={dn}"));
        args.push(format!("{PASSWORD}={password}"));
        args.push(format!("{SCHEMA}={}", schema(a)));
    }
    Some(AdminCommand::Localconfig {
        show_secrets: false,
        edit: true,
        args,
    })
}

/// `setup network ...` for these settings.
pub fn network_command(n: &crate::config::box_settings::NetworkSettings) -> AdminCommand {
    let (address, gateway) = match n.ipv4 {
        Ipv4Method::Dhcp => ("dhcp".to_string(), None),
        Ipv4Method::Static(s) => (format!("{}/{}", s.address(), s.prefix_len()), s.gateway()),
    };
    let ipv6_gateway = match n.ipv6 {
        Ipv6Method::Static(s) => s.gateway(),
        _ => None,
    };
    AdminCommand::Setup(SetupCommand::Network {
        address,
        gateway,
        dns: n.dns.clone(),
        ipv6: n.ipv6.argument(),
        ipv6_gateway,
    })
}

pub fn prov(words: &[&str]) -> AdminCommand {
    AdminCommand::Prov {
        args: words.iter().map(|w| w.to_string()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(w: &mut Wizard, lines: &[&str]) -> Vec<WizardStep> {
        lines.iter().map(|l| w.answer(l)).collect()
    }

    #[test]
    fn answers_become_admin_commands_only_when_confirmed() {
        let mut w = Wizard::new(Answers::default());
        assert!(w.secret());
        let steps = feed(
            &mut w,
            &[
                "s3cret-pass",
                "s3cret-pass",
                "mx1.example.com",
                "static",
                "192.0.2.10/24",
                "",
                "192.0.2.53",
                "",
                "none",
                "none",
                "none",
                "example.com",
            ],
        );
        let WizardStep::Show(summary) = steps.last().unwrap() else {
            panic!("{steps:?}")
        };
        assert!(
            summary.contains("host name:        mx1.example.com"),
            "{summary}"
        );
        assert!(
            summary.contains("static 192.0.2.10/24 gateway 192.0.2.1, DNS 192.0.2.53"),
            "{summary}"
        );
        assert!(!summary.contains("s3cret"));
        assert!(w.prompt().starts_with("Apply these settings?"));
        assert_eq!(
            w.answer("perhaps"),
            WizardStep::Show("answer yes or no\n".into())
        );
        let WizardStep::Apply(cmds) = w.answer("yes") else {
            panic!()
        };
        assert_eq!(cmds.len(), 5, "{cmds:?}");
        assert_eq!(
            cmds[1],
            AdminCommand::Setup(SetupCommand::Network {
                address: "192.0.2.10/24".into(),
                gateway: Some([192, 0, 2, 1].into()),
                dns: vec![[192, 0, 2, 53].into()],
                ipv6: "slaac".into(),
                ipv6_gateway: None,
            })
        );
        assert_eq!(
            cmds[2],
            AdminCommand::Setup(SetupCommand::Ntp {
                servers: vec!["none".into()]
            })
        );
        assert_eq!(cmds[3], prov(&["cd", "example.com"]));
        // The password last: a box cut off before it asks the questions again.
        assert!(matches!(
            cmds[4],
            AdminCommand::Setup(SetupCommand::ConsolePasswordHash { .. })
        ));
    }

    #[test]
    fn no_at_the_summary_asks_again_with_the_answers_as_defaults() {
        let mut w = Wizard::new(Answers::default());
        feed(
            &mut w,
            &[
                "s3cret-pass",
                "s3cret-pass",
                "mx1.example.com",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
            ],
        );
        assert!(w.prompt().starts_with("Apply these settings?"));
        w.answer("no");
        assert_eq!(
            w.prompt(),
            "Console admin password (at least 8 characters) [keep]: "
        );
        feed(&mut w, &["", "mx2.example.com", "", "", "", "", "", "", ""]);
        let WizardStep::Apply(cmds) = w.answer("y") else {
            panic!()
        };
        assert_eq!(
            cmds[0],
            AdminCommand::Setup(SetupCommand::Hostname {
                name: "mx2.example.com".parse().unwrap()
            })
        );
        // DHCP, the default NTP server, no LDAP, no relay host, no domains: host name, network,
        // NTP, password.
        assert_eq!(cmds.len(), 4, "{cmds:?}");
        assert_eq!(
            cmds[2],
            AdminCommand::Setup(SetupCommand::Ntp {
                servers: vec!["pool.ntp.org".into()]
            })
        );
    }
}
