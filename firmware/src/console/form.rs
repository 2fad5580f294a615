//! Questions asked one at a time, each with its default in brackets and checked before the next:
//! the first-boot wizard is all of them, a menu entry a few. Sans-IO: a line goes in, the next
//! prompt (or why the answer was refused) comes out.

use crate::admin::Secret;
use crate::config::MtaConfig;
use crate::config::box_ipv6::{Ipv6Method, StaticIpv6};
use crate::config::box_settings::{
    self, Fqdn, Ipv4Method, NetworkSettings, SettingError, StaticIpv4,
};
use crate::config::localconfig::{self, LocalConfig, LocalConfigError};
use crate::directory::password;

/// Shorter console passwords are refused.
pub const MIN_PASSWORD: usize = 8;
/// Most mail domains one answer may list.
const MAX_DOMAINS: usize = 32;

/// One question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Question {
    Password,
    PasswordAgain,
    Hostname,
    Ipv4Method,
    Address,
    Gateway,
    Dns,
    /// IPv6: slaac, static or off; then a static address and its gateway.
    Ipv6Method,
    Ipv6Address,
    Ipv6Gateway,
    /// SNTP servers the clock is set from.
    NtpServers,
    /// The directory: `ldap_url` (none: no LDAP sync), bind DN, its password, the schema.
    LdapUrl,
    LdapBindDn,
    LdapPassword,
    LdapSchema,
    RelayHost,
    Domains,
    /// `zimbraMtaMyNetworks`: the client networks that may relay without AUTH.
    MyNetworks,
}

/// What the admin chose so far; also the defaults when a form is asked again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answers {
    /// The new console password's hash.
    pub password_hash: Option<String>,
    /// The first typing of a new password, until it is typed again. Never shown or stored.
    pending_password: Option<String>,
    pub hostname: Option<Fqdn>,
    pub dhcp: Option<bool>,
    pub address: Option<StaticIpv4>,
    pub dns: Option<Vec<std::net::IpAddr>>,
    pub ipv6: Option<Ipv6Choice>,
    pub ipv6_address: Option<StaticIpv6>,
    /// `Some(None)`: asked, and no relay host wanted.
    pub relay_host: Option<Option<String>>,
    pub domains: Option<Vec<String>>,
    /// `Some(None)`: asked, and no LDAP sync wanted. Checked `ldap_url` syntax, space separated.
    pub ldap_url: Option<Option<String>>,
    /// Empty: an anonymous bind.
    pub ldap_bind_dn: Option<String>,
    pub ldap_password: Option<Secret>,
    pub ldap_schema: Option<String>,
    /// As `zimbraMtaMyNetworks` writes it (checked).
    pub my_networks: Option<String>,
    /// Checked names or addresses; empty: the clock is left alone.
    pub ntp_servers: Option<Vec<String>>,
}

/// The answer to the IPv6 question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv6Choice {
    Slaac,
    Static,
    Off,
}

/// Why an answer was refused; the question is asked again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Empty,
    PasswordTooShort,
    PasswordsDiffer,
    NoHash(password::HashError),
    Setting(SettingError),
    NotDhcpOrStatic,
    NotSlaacStaticOrOff,
    RelayHost(crate::config::AttrError),
    TooManyDomains(usize),
    Localconfig(LocalConfigError),
    NotADn,
    MyNetworks(crate::config::AttrError),
    NtpServers(crate::admin::setup::NtpServerError),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Empty => f.write_str("an answer is needed here"),
            Refusal::PasswordTooShort => {
                write!(
                    f,
                    "the password is too short: at least {MIN_PASSWORD} characters"
                )
            }
            Refusal::PasswordsDiffer => {
                f.write_str("the two passwords differ; type the new password again")
            }
            Refusal::NoHash(e) => write!(f, "cannot store the password: {e}"),
            Refusal::Setting(e) => write!(f, "{e}"),
            Refusal::NotDhcpOrStatic => f.write_str("answer dhcp or static"),
            Refusal::NotSlaacStaticOrOff => f.write_str("answer slaac, static or off"),
            Refusal::RelayHost(why) => write!(f, "{why}"),
            Refusal::TooManyDomains(n) => {
                write!(f, "{n} domains; at most {MAX_DOMAINS} at once")
            }
            Refusal::Localconfig(e) => write!(f, "{e}"),
            Refusal::NotADn => f.write_str(
                "not a DN (e.g. uid=zmpostfix,cn=appaccts,cn=zimbra); none for an anonymous bind",
            ),
            Refusal::MyNetworks(why) => write!(f, "{why}"),
            Refusal::NtpServers(why) => write!(f, "{why}"),
        }
    }
}

impl From<SettingError> for Refusal {
    fn from(e: SettingError) -> Refusal {
        Refusal::Setting(e)
    }
}

impl Answers {
    /// Whether the directory questions were answered with a server to sync from.
    pub fn ldap_wanted(&self) -> bool {
        matches!(self.ldap_url, Some(Some(_)))
    }

    /// The network these answers describe, once its questions were answered.
    pub fn network(&self) -> Option<NetworkSettings> {
        let ipv4 = match self.dhcp? {
            true => Ipv4Method::Dhcp,
            false => Ipv4Method::Static(self.address?),
        };
        let ipv6 = match self.ipv6 {
            None | Some(Ipv6Choice::Slaac) => Ipv6Method::Slaac,
            Some(Ipv6Choice::Off) => Ipv6Method::Off,
            Some(Ipv6Choice::Static) => Ipv6Method::Static(self.ipv6_address?),
        };
        let n = NetworkSettings::new(ipv4, self.dns.clone().unwrap_or_default()).ok()?;
        Some(n.with_ipv6(ipv6))
    }

    /// The answers a stored IPv6 setting gives, as defaults.
    pub fn set_ipv6(&mut self, m: Ipv6Method) {
        self.ipv6 = Some(match m {
            Ipv6Method::Slaac => Ipv6Choice::Slaac,
            Ipv6Method::Off => Ipv6Choice::Off,
            Ipv6Method::Static(s) => {
                self.ipv6_address = Some(s);
                Ipv6Choice::Static
            }
        });
    }
}

/// A list of questions and the answers given so far.
#[derive(Debug, Clone)]
pub struct Form {
    questions: Vec<Question>,
    at: usize,
    pub answers: Answers,
}

/// What a line did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormStep {
    /// Taken; ask the next question.
    Next,
    /// Refused; the same question again.
    Again(Refusal),
    /// Every question answered.
    Done,
}

impl Form {
    pub fn new(questions: &[Question], answers: Answers) -> Form {
        let mut f = Form {
            questions: questions.to_vec(),
            at: 0,
            answers,
        };
        f.skip_unasked();
        f
    }

    pub fn current(&self) -> Option<Question> {
        self.questions.get(self.at).copied()
    }

    /// Whether the answer must not be echoed.
    pub fn secret(&self) -> bool {
        matches!(
            self.current(),
            Some(Question::Password | Question::PasswordAgain | Question::LdapPassword)
        )
    }

    /// The prompt of the current question, its default in brackets.
    pub fn prompt(&self) -> String {
        match self.question() {
            None => String::new(),
            Some((text, Some(d))) => format!("{text} [{d}]: "),
            Some((text, None)) => format!("{text}: "),
        }
    }

    /// The current question's text and its default.
    fn question(&self) -> Option<(&'static str, Option<String>)> {
        let a = &self.answers;
        Some(match self.current() {
            None => return None,
            Some(Question::Password) => (
                "Console admin password (at least 8 characters)",
                a.password_hash.as_ref().map(|_| "keep".to_string()),
            ),
            Some(Question::PasswordAgain) => ("The same password again", None),
            Some(Question::NtpServers) => (
                "NTP servers to set the clock from, separated by spaces (none: leave the clock alone)",
                Some(match &a.ntp_servers {
                    Some(s) if !s.is_empty() => s.join(" "),
                    Some(_) => "none".into(),
                    None => "pool.ntp.org".into(),
                }),
            ),
            Some(Question::LdapUrl) => (
                "LDAP server(s) to sync accounts from, e.g. ldap://ldap.example.com (none: no LDAP)",
                Some(a.ldap_url.clone().flatten().unwrap_or("none".into())),
            ),
            Some(Question::LdapBindDn) => (
                "LDAP bind DN (none: anonymous)",
                Some(match a.ldap_bind_dn.as_deref() {
                    None => "uid=zmpostfix,cn=appaccts,cn=zimbra".to_string(),
                    Some("") => "none".to_string(),
                    Some(dn) => dn.to_string(),
                }),
            ),
            Some(Question::LdapPassword) => (
                "LDAP bind password",
                a.ldap_password.as_ref().map(|_| "keep".to_string()),
            ),
            Some(Question::LdapSchema) => (
                "LDAP schema: zimbra, inetorgperson or ad",
                Some(a.ldap_schema.clone().unwrap_or("zimbra".into())),
            ),
            Some(Question::MyNetworks) => (
                "Networks that may relay without AUTH (mynetworks), e.g. 127.0.0.0/8 192.0.2.0/24",
                Some(
                    a.my_networks
                        .clone()
                        .unwrap_or("127.0.0.0/8 [::1]/128".into()),
                ),
            ),
            Some(Question::Hostname) => (
                "Host name (fully qualified, e.g. mx1.example.com)",
                a.hostname.as_ref().map(Fqdn::to_string),
            ),
            Some(Question::Ipv4Method) => (
                "IPv4 network: dhcp or static",
                Some(
                    if a.dhcp == Some(false) {
                        "static"
                    } else {
                        "dhcp"
                    }
                    .into(),
                ),
            ),
            Some(Question::Address) => (
                "IPv4 address/prefix (e.g. 192.0.2.10/24)",
                a.address
                    .map(|s| format!("{}/{}", s.address(), s.prefix_len())),
            ),
            Some(Question::Gateway) => (
                "Default gateway (none for no route beyond the network)",
                a.address
                    .and_then(|s| s.gateway().or(s.first_host()))
                    .map(|g| g.to_string()),
            ),
            Some(Question::Dns) => (
                if a.dhcp == Some(true) {
                    "DNS servers (none: the DHCP server's)"
                } else {
                    "DNS servers, separated by spaces (none for no DNS)"
                },
                Some(dns_default(a)),
            ),
            Some(Question::Ipv6Method) => (
                "IPv6: slaac (router advertisements), static or off",
                Some(
                    match a.ipv6 {
                        None | Some(Ipv6Choice::Slaac) => "slaac",
                        Some(Ipv6Choice::Static) => "static",
                        Some(Ipv6Choice::Off) => "off",
                    }
                    .into(),
                ),
            ),
            Some(Question::Ipv6Address) => (
                "IPv6 address/prefix (e.g. 2001:db8::10/64)",
                a.ipv6_address
                    .map(|s| format!("{}/{}", s.address(), s.prefix_len())),
            ),
            Some(Question::Ipv6Gateway) => (
                "IPv6 gateway, link-local (e.g. fe80::1) or inside the prefix (none for no route)",
                Some(
                    a.ipv6_address
                        .and_then(|s| s.gateway())
                        .map_or("none".into(), |g| g.to_string()),
                ),
            ),
            Some(Question::RelayHost) => (
                "Relay host for outgoing mail, e.g. [smtp.example.net]:25 (none: deliver by MX)",
                Some(a.relay_host.clone().flatten().unwrap_or("none".into())),
            ),
            Some(Question::Domains) => (
                "Mail domains this box accepts, separated by spaces (none to skip)",
                Some(match &a.domains {
                    Some(d) if !d.is_empty() => d.join(" "),
                    _ => "none".into(),
                }),
            ),
        })
    }

    /// Takes an answer (already a clean line) to the current question.
    pub fn answer(&mut self, line: &str) -> FormStep {
        let Some(q) = self.current() else {
            return FormStep::Done;
        };
        if let Err(refusal) = self.take(q, line) {
            return FormStep::Again(refusal);
        }
        self.at += 1;
        self.skip_unasked();
        match self.current() {
            Some(_) => FormStep::Next,
            None => FormStep::Done,
        }
    }

    /// Skips questions the answers so far make moot: a static address's with DHCP, the second
    /// typing of a password that was kept.
    fn skip_unasked(&mut self) {
        while let Some(q) = self.current() {
            let moot = match q {
                Question::Address | Question::Gateway => self.answers.dhcp == Some(true),
                Question::Ipv6Address | Question::Ipv6Gateway => {
                    self.answers.ipv6 != Some(Ipv6Choice::Static)
                }
                Question::PasswordAgain => self.answers.pending_password.is_none(),
                Question::LdapBindDn | Question::LdapSchema => !self.answers.ldap_wanted(),
                Question::LdapPassword => {
                    !self.answers.ldap_wanted()
                        || self
                            .answers
                            .ldap_bind_dn
                            .as_deref()
                            .unwrap_or("")
                            .is_empty()
                }
                _ => false,
            };
            if !moot {
                break;
            }
            self.at += 1;
        }
    }

    fn take(&mut self, q: Question, line: &str) -> Result<(), Refusal> {
        let default = self.question().and_then(|(_, d)| d);
        let a = &mut self.answers;
        // An empty line takes the default shown in brackets.
        let line = if line.is_empty() {
            match q {
                Question::Password if a.password_hash.is_some() => return Ok(()),
                Question::LdapPassword if a.ldap_password.is_some() => return Ok(()),
                Question::Password | Question::PasswordAgain | Question::LdapPassword => {
                    return Err(Refusal::Empty);
                }
                _ => default.ok_or(Refusal::Empty)?,
            }
        } else {
            line.to_string()
        };
        let none = line.eq_ignore_ascii_case("none");
        match q {
            Question::Password => {
                if line.chars().count() < MIN_PASSWORD {
                    return Err(Refusal::PasswordTooShort);
                }
                a.pending_password = Some(line);
            }
            Question::PasswordAgain => {
                let first = a.pending_password.take();
                if first.as_deref() != Some(line.as_str()) {
                    // Back to the first typing.
                    self.at -= 1;
                    return Err(Refusal::PasswordsDiffer);
                }
                a.password_hash = Some(password::hash(&line).map_err(Refusal::NoHash)?);
            }
            Question::Hostname => a.hostname = Some(line.parse()?),
            Question::NtpServers => {
                a.ntp_servers = Some(
                    crate::admin::setup::ntp_servers(std::slice::from_ref(&line))
                        .map_err(Refusal::NtpServers)?,
                )
            }
            Question::LdapUrl => {
                a.ldap_url = Some(if none {
                    None
                } else {
                    let mut probe = LocalConfig::default();
                    probe
                        .set(localconfig::LDAP_URL, &line)
                        .map_err(Refusal::Localconfig)?;
                    Some(
                        probe
                            .get(localconfig::LDAP_URL)
                            .map_err(Refusal::Localconfig)?,
                    )
                })
            }
            Question::LdapBindDn => {
                a.ldap_bind_dn = Some(if none {
                    String::new()
                } else if line.contains('=') {
                    line
                } else {
                    return Err(Refusal::NotADn);
                })
            }
            Question::LdapPassword => a.ldap_password = Some(Secret(line)),
            Question::LdapSchema => {
                let mut probe = LocalConfig::default();
                probe
                    .set(localconfig::SCHEMA, &line)
                    .map_err(Refusal::Localconfig)?;
                a.ldap_schema = Some(
                    probe
                        .get(localconfig::SCHEMA)
                        .map_err(Refusal::Localconfig)?,
                );
            }
            Question::MyNetworks => {
                let mut probe = MtaConfig::default();
                probe
                    .set("zimbraMtaMyNetworks", std::slice::from_ref(&line))
                    .map_err(Refusal::MyNetworks)?;
                a.my_networks = Some(line);
            }
            Question::Ipv4Method => {
                a.dhcp = Some(match line.to_ascii_lowercase().as_str() {
                    "dhcp" | "d" => true,
                    "static" | "s" => false,
                    _ => return Err(Refusal::NotDhcpOrStatic),
                })
            }
            Question::Address => {
                let new = StaticIpv4::parse_address(&line)?;
                // Keep the gateway when the network stays the same.
                let kept = a
                    .address
                    .and_then(|old| old.gateway())
                    .and_then(|g| new.with_gateway(Some(g)).ok());
                a.address = Some(kept.unwrap_or(new));
            }
            Question::Gateway => {
                let address = a.address.ok_or(Refusal::Empty)?;
                let gateway = if none {
                    None
                } else {
                    Some(
                        line.parse()
                            .map_err(|_| SettingError::NotIpv4(line.clone()))?,
                    )
                };
                a.address = Some(address.with_gateway(gateway)?);
            }
            Question::Ipv6Method => {
                a.ipv6 = Some(match line.to_ascii_lowercase().as_str() {
                    "slaac" | "auto" => Ipv6Choice::Slaac,
                    "static" | "s" => Ipv6Choice::Static,
                    "off" | "none" => Ipv6Choice::Off,
                    _ => return Err(Refusal::NotSlaacStaticOrOff),
                })
            }
            Question::Ipv6Address => {
                let new = StaticIpv6::parse_address(&line)?;
                // Keep the gateway when it still fits the new prefix.
                let kept = a
                    .ipv6_address
                    .and_then(|old| old.gateway())
                    .and_then(|g| new.with_gateway(Some(g)).ok());
                a.ipv6_address = Some(kept.unwrap_or(new));
            }
            Question::Ipv6Gateway => {
                let address = a.ipv6_address.ok_or(Refusal::Empty)?;
                let gateway = if none {
                    None
                } else {
                    Some(
                        line.parse()
                            .map_err(|_| SettingError::NotAnIpv6Address(line.clone()))?,
                    )
                };
                a.ipv6_address = Some(address.with_gateway(gateway)?);
            }
            Question::Dns => {
                a.dns = Some(if none {
                    Vec::new()
                } else {
                    box_settings::parse_dns_list(&line)?
                })
            }
            Question::RelayHost => {
                a.relay_host = Some(if none {
                    None
                } else {
                    let mut probe = MtaConfig::default();
                    probe
                        .set("zimbraMtaRelayHost", std::slice::from_ref(&line))
                        .map_err(Refusal::RelayHost)?;
                    Some(line)
                })
            }
            Question::Domains => {
                let domains: Vec<String> = if none {
                    Vec::new()
                } else {
                    line.split([' ', ','])
                        .filter(|w| !w.is_empty())
                        .map(|d| d.parse::<Fqdn>().map(String::from))
                        .collect::<Result<_, _>>()?
                };
                if domains.len() > MAX_DOMAINS {
                    return Err(Refusal::TooManyDomains(domains.len()));
                }
                a.domains = Some(domains);
            }
        }
        Ok(())
    }
}

fn dns_default(a: &Answers) -> String {
    match &a.dns {
        Some(d) if !d.is_empty() => d
            .iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(" "),
        Some(_) => "none".into(),
        None if a.dhcp == Some(true) => "none".into(),
        // The gateway usually resolves on small networks; an admin with others types them.
        None => a
            .address
            .and_then(|s| s.gateway())
            .map_or("none".into(), |g| g.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NETWORK: &[Question] = &[
        Question::Ipv4Method,
        Question::Address,
        Question::Gateway,
        Question::Dns,
    ];

    fn run(form: &mut Form, lines: &[&str]) -> Vec<FormStep> {
        lines.iter().map(|l| form.answer(l)).collect()
    }

    #[test]
    fn a_static_network_with_defaults_taken() {
        let mut f = Form::new(NETWORK, Answers::default());
        assert_eq!(f.prompt(), "IPv4 network: dhcp or static [dhcp]: ");
        assert_eq!(f.answer("static"), FormStep::Next);
        assert_eq!(f.answer("192.0.2.10/24"), FormStep::Next);
        assert_eq!(
            f.prompt(),
            "Default gateway (none for no route beyond the network) [192.0.2.1]: "
        );
        assert_eq!(f.answer(""), FormStep::Next);
        assert!(f.prompt().ends_with("[192.0.2.1]: "), "{}", f.prompt());
        assert_eq!(f.answer("192.0.2.53 192.0.2.54"), FormStep::Done);
        assert_eq!(
            f.answers.network().unwrap().to_string(),
            "static 192.0.2.10/24 gateway 192.0.2.1, DNS 192.0.2.53 192.0.2.54; \
             IPv6 SLAAC (router advertisements)"
        );
    }

    #[test]
    fn dhcp_skips_the_static_questions() {
        let mut f = Form::new(NETWORK, Answers::default());
        assert_eq!(run(&mut f, &["", ""]), [FormStep::Next, FormStep::Done]);
        assert_eq!(
            f.answers.network().unwrap(),
            NetworkSettings::new(Ipv4Method::Dhcp, vec![]).unwrap()
        );
    }

    #[test]
    fn wrong_answers_are_asked_again_with_the_reason() {
        let mut f = Form::new(NETWORK, Answers::default());
        assert_eq!(f.answer("maybe"), FormStep::Again(Refusal::NotDhcpOrStatic));
        f.answer("static");
        let again = f.answer("192.0.2.10");
        assert!(matches!(again, FormStep::Again(Refusal::Setting(_))));
        assert_eq!(f.current(), Some(Question::Address));
        f.answer("192.0.2.10/24");
        let outside = f.answer("10.0.0.1");
        let FormStep::Again(r) = outside else {
            panic!("{outside:?}")
        };
        assert_eq!(
            r.to_string(),
            "gateway 10.0.0.1 is outside the network 192.0.2.0/24: it must be reachable directly"
        );
        assert_eq!(f.current(), Some(Question::Gateway));
        assert_eq!(f.answer("none"), FormStep::Next);
        assert_eq!(
            f.answer("dns.example"),
            FormStep::Again(Refusal::Setting(SettingError::NotIpAddress(
                "dns.example".into()
            )))
        );
        // A link-local IPv6 server cannot be asked without naming the interface.
        assert_eq!(
            f.answer("fe80::53"),
            FormStep::Again(Refusal::Setting(SettingError::LinkLocalDns(
                "fe80::53".parse().unwrap()
            )))
        );
        assert_eq!(f.answer("none"), FormStep::Done);
        assert_eq!(
            f.answers.network().unwrap().to_string(),
            "static 192.0.2.10/24 no gateway, DNS from DHCP; IPv6 SLAAC (router advertisements)"
        );
    }

    #[test]
    fn ipv6_is_slaac_off_or_static_with_its_questions_only_then() {
        const IPV6: &[Question] = &[
            Question::Ipv4Method,
            Question::Dns,
            Question::Ipv6Method,
            Question::Ipv6Address,
            Question::Ipv6Gateway,
        ];
        let mut f = Form::new(IPV6, Answers::default());
        assert_eq!(
            run(&mut f, &["", "", ""]),
            [FormStep::Next, FormStep::Next, FormStep::Done]
        );
        assert_eq!(f.answers.network().unwrap().ipv6, Ipv6Method::Slaac);

        let mut f = Form::new(IPV6, Answers::default());
        run(&mut f, &["", ""]);
        assert_eq!(
            f.answer("maybe"),
            FormStep::Again(Refusal::NotSlaacStaticOrOff)
        );
        assert_eq!(f.answer("static"), FormStep::Next);
        assert!(matches!(
            f.answer("fe80::7/64"),
            FormStep::Again(Refusal::Setting(SettingError::Ipv6LinkLocal(_)))
        ));
        assert_eq!(f.answer("2001:db8::7/64"), FormStep::Next);
        assert_eq!(
            f.prompt(),
            "IPv6 gateway, link-local (e.g. fe80::1) or inside the prefix (none for no route) [none]: "
        );
        assert!(matches!(
            f.answer("2001:db9::1"),
            FormStep::Again(Refusal::Setting(SettingError::Ipv6GatewayOutside { .. }))
        ));
        assert_eq!(f.answer("fe80::1"), FormStep::Done);
        assert_eq!(
            f.answers.network().unwrap().ipv6.to_string(),
            "static 2001:db8::7/64 gateway fe80::1"
        );
        // Asked again, the stored setting is the default.
        let mut again = Answers::default();
        again.set_ipv6(f.answers.network().unwrap().ipv6);
        let f = Form::new(&[Question::Ipv6Method, Question::Ipv6Address], again);
        assert_eq!(
            f.prompt(),
            "IPv6: slaac (router advertisements), static or off [static]: "
        );
    }

    #[test]
    fn passwords_are_typed_twice_and_only_their_hash_kept() {
        let mut f = Form::new(
            &[Question::Password, Question::PasswordAgain],
            Answers::default(),
        );
        assert!(f.secret());
        assert_eq!(f.answer(""), FormStep::Again(Refusal::Empty));
        assert_eq!(
            f.answer("short"),
            FormStep::Again(Refusal::PasswordTooShort)
        );
        assert_eq!(f.answer("correct horse"), FormStep::Next);
        assert_eq!(
            f.answer("correct hose"),
            FormStep::Again(Refusal::PasswordsDiffer)
        );
        assert_eq!(f.current(), Some(Question::Password));
        run(&mut f, &["battery staple", "battery staple"]);
        let hash = f.answers.password_hash.clone().unwrap();
        assert_eq!(password::verify("battery staple", &hash), Ok(true));
        assert!(!format!("{:?}", f.answers).contains("battery"));
        // Asked again later, an empty answer keeps it.
        let mut again = Form::new(&[Question::Password, Question::PasswordAgain], f.answers);
        assert_eq!(
            again.prompt(),
            "Console admin password (at least 8 characters) [keep]: "
        );
        assert_eq!(again.answer(""), FormStep::Done);
    }

    #[test]
    fn host_name_relay_and_domains() {
        let mut f = Form::new(
            &[Question::Hostname, Question::RelayHost, Question::Domains],
            Answers::default(),
        );
        assert_eq!(f.answer(""), FormStep::Again(Refusal::Empty));
        assert!(matches!(
            f.answer("postern"),
            FormStep::Again(Refusal::Setting(_))
        ));
        assert_eq!(f.answer("mx1.example.com"), FormStep::Next);
        assert!(matches!(
            f.answer("smtp:[relay.example.net]:notaport"),
            FormStep::Again(Refusal::RelayHost(_))
        ));
        assert_eq!(f.answer("[relay.example.net]:587"), FormStep::Next);
        assert!(matches!(
            f.answer("example.com bad_domain"),
            FormStep::Again(_)
        ));
        assert_eq!(f.answer("example.com, example.org"), FormStep::Done);
        assert_eq!(
            f.answers.relay_host,
            Some(Some("[relay.example.net]:587".into()))
        );
        assert_eq!(
            f.answers.domains,
            Some(vec!["example.com".to_string(), "example.org".to_string()])
        );
        // Defaults with brackets of their own are taken whole by Enter.
        let mut again = Form::new(&[Question::RelayHost, Question::MyNetworks], f.answers);
        assert_eq!(again.answer(""), FormStep::Next);
        assert!(again.prompt().ends_with("[127.0.0.0/8 [::1]/128]: "));
        assert!(matches!(
            again.answer("10.0.0.1/8"),
            FormStep::Again(Refusal::MyNetworks(_))
        ));
        assert_eq!(again.answer(""), FormStep::Done);
        assert_eq!(
            again.answers.relay_host,
            Some(Some("[relay.example.net]:587".into()))
        );
        assert_eq!(
            again.answers.my_networks.as_deref(),
            Some("127.0.0.0/8 [::1]/128")
        );
    }
}
