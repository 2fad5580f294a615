//! `postern prov`: the directory commands, shaped like Zimbra's `zmprov` so an admin types what
//! they know (`ca`, `ma`, `ga`, `md`, `mcf`, ... or their long names).
//!
//! [`execute`] is pure: it reads a [`Directory`] and returns the text to print and, for a change,
//! the new directory (built from a clone; the caller persists it and swaps its `Arc`). A command
//! that fails changes nothing. Attribute arguments come in pairs: `attr value` sets (repeat the
//! pair for several values of a multi-valued attribute; an empty value clears), `+attr value`
//! adds one value and `-attr value` removes one, as in zmprov.

use std::fmt;
use std::fmt::Write as _;

use super::{Account, Directory, DirectoryError, Domain, account, domain_dkim};
use crate::config::{AttrError, MtaConfig};

/// What a command printed and, if it changed anything, the new directory.
#[derive(Debug)]
pub struct ProvOutcome {
    pub output: String,
    pub directory: Option<Directory>,
}

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProvError {
    /// Wrong arguments for the command; carries its usage line.
    Usage(&'static str),
    UnknownCommand(String),
    Directory(DirectoryError),
}

impl fmt::Display for ProvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProvError::Usage(u) => write!(f, "usage: {u}"),
            ProvError::UnknownCommand(c) => write!(f, "unknown command {c:?}; try help"),
            ProvError::Directory(e) => write!(f, "ERROR: {e}"),
        }
    }
}

impl std::error::Error for ProvError {}

impl From<DirectoryError> for ProvError {
    fn from(e: DirectoryError) -> Self {
        ProvError::Directory(e)
    }
}

impl From<AttrError> for ProvError {
    fn from(e: AttrError) -> Self {
        ProvError::Directory(DirectoryError::Attr(e))
    }
}

/// `(short, long, usage)` of every command.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    ("ca", "createAccount", "ca ADDRESS PASSWORD [attr value]..."),
    ("ma", "modifyAccount", "ma ADDRESS [+|-]attr value..."),
    ("da", "deleteAccount", "da ADDRESS"),
    ("ga", "getAccount", "ga ADDRESS [attr]..."),
    ("gaa", "getAllAccounts", "gaa [DOMAIN]"),
    ("aaa", "addAccountAlias", "aaa ADDRESS ALIAS"),
    ("raa", "removeAccountAlias", "raa ADDRESS ALIAS"),
    ("sp", "setPassword", "sp ADDRESS PASSWORD"),
    ("cd", "createDomain", "cd DOMAIN [attr value]..."),
    ("md", "modifyDomain", "md DOMAIN [+|-]attr value..."),
    ("dd", "deleteDomain", "dd DOMAIN"),
    ("gd", "getDomain", "gd DOMAIN [attr]..."),
    ("gad", "getAllDomains", "gad"),
    ("mcf", "modifyConfig", "mcf [+|-]attr value..."),
    ("gacf", "getAllConfig", "gacf [attr]..."),
    ("help", "help", "help"),
];

/// Refuses a change to an entry synced from LDAP: the next sync would undo it.
fn read_only_check(
    dir: &Directory,
    short: &str,
    account: Option<&str>,
    first: Option<&String>,
) -> Result<(), ProvError> {
    let ldap = |name: &str| Err(DirectoryError::FromLdap(name.to_string()).into());
    match short {
        "ma" | "da" | "aaa" | "raa" | "sp" => match account.and_then(|a| dir.account(a)) {
            Some(a) if a.source() == super::Source::Ldap => ldap(a.address()),
            _ => Ok(()),
        },
        "md" | "dd" => match first.and_then(|d| dir.domain(d)) {
            Some(d) if d.source() == super::Source::Ldap => ldap(d.name()),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Runs one command (`args[0]` is the command, short or long name, any case).
pub fn execute(dir: &Directory, args: &[String]) -> Result<ProvOutcome, ProvError> {
    let Some((cmd, rest)) = args.split_first() else {
        return Err(ProvError::Usage("prov COMMAND [ARGS]... (try help)"));
    };
    let &(short, _, usage) = COMMANDS
        .iter()
        .find(|(s, l, _)| cmd.eq_ignore_ascii_case(s) || cmd.eq_ignore_ascii_case(l))
        .ok_or_else(|| ProvError::UnknownCommand(cmd.clone()))?;
    let usage = ProvError::Usage(usage);
    // As in zmprov, an account may be named by any of its aliases.
    let named = match (short, rest.first()) {
        ("ma" | "da" | "ga" | "aaa" | "raa" | "sp", Some(name)) => match dir.lookup(name) {
            super::Lookup::Account { account, .. } => Some(account.address()),
            _ => None,
        },
        _ => None,
    };
    read_only_check(dir, short, named, rest.first())?;
    let rest: Vec<&str> = rest
        .iter()
        .enumerate()
        .map(|(i, a)| match named {
            Some(n) if i == 0 => n,
            _ => a.as_str(),
        })
        .collect();
    let print = |output: String| {
        Ok(ProvOutcome {
            output,
            directory: None,
        })
    };
    let change = |f: &dyn Fn(&mut Directory) -> Result<String, ProvError>| {
        let mut next = dir.clone();
        let output = f(&mut next)?;
        Ok(ProvOutcome {
            output,
            directory: Some(next),
        })
    };
    match (short, rest.as_slice()) {
        ("ca", [addr, password, mods @ ..]) => {
            let mods = parse_mods(mods).ok_or(usage)?;
            change(&|d| {
                let mut a = Account::new(addr).map_err(DirectoryError::from)?;
                apply_account(&mut a, &mods)?;
                a.set_password_hash(Some(password_hash(password)?));
                let out = format!("{}\n", a.address());
                d.add_account(a)?;
                Ok(out)
            })
        }
        ("ma", [addr, mods @ ..]) if !mods.is_empty() => {
            let mods = parse_mods(mods).ok_or(usage)?;
            change(&|d| {
                d.modify_account(addr, |a| apply_account(a, &mods))?;
                Ok(String::new())
            })
        }
        ("da", [addr]) => change(&|d| {
            d.remove_account(addr)?;
            Ok(String::new())
        }),
        ("ga", [addr, attrs @ ..]) => print(get_account(dir, addr, attrs)?),
        ("gaa", []) => print(lines(dir.accounts().map(Account::address))),
        ("gaa", [domain]) => {
            let d = dir
                .domain(domain)
                .ok_or_else(|| DirectoryError::NoSuchDomain(domain.to_string()))?;
            print(lines(
                dir.accounts()
                    .filter(|a| a.domain() == d.name())
                    .map(Account::address),
            ))
        }
        ("aaa", [addr, alias]) => change(&|d| {
            d.add_alias(addr, alias)?;
            Ok(String::new())
        }),
        ("raa", [addr, alias]) => change(&|d| {
            d.remove_alias(addr, alias)?;
            Ok(String::new())
        }),
        ("sp", [addr, password]) => change(&|d| {
            let hash = password_hash(password)?;
            d.modify_account(addr, |a| {
                a.set_password_hash(Some(hash.clone()));
                Ok::<(), DirectoryError>(())
            })?;
            Ok(String::new())
        }),
        ("cd", [name, mods @ ..]) => {
            let mods = parse_mods(mods).ok_or(usage)?;
            change(&|d| {
                let mut dom = Domain::new(name).map_err(DirectoryError::from)?;
                apply_domain(&mut dom, &mods)?;
                d.add_domain(dom)?;
                Ok(String::new())
            })
        }
        ("md", [name, mods @ ..]) if !mods.is_empty() => {
            let mods = parse_mods(mods).ok_or(usage)?;
            change(&|d| {
                d.modify_domain(name, |dom| apply_domain(dom, &mods))?;
                Ok(String::new())
            })
        }
        ("dd", [name]) => change(&|d| {
            d.remove_domain(name)?;
            Ok(String::new())
        }),
        ("gd", [name, attrs @ ..]) => {
            let dom = dir
                .domain(name)
                .ok_or_else(|| DirectoryError::NoSuchDomain(name.to_string()))?;
            let mut out = format!("# name {}\n", dom.name());
            for attr in selected(Domain::ATTRS, attrs, "domain")? {
                let mut values = dom.values(attr)?;
                // A DKIM private key is the box's secret: `gd` says there is one, no more.
                if attr == domain_dkim::PRIVATE_KEY {
                    values
                        .iter_mut()
                        .for_each(|v| *v = domain_dkim::HIDDEN_KEY.into());
                }
                push_values(&mut out, attr, values);
            }
            print(out)
        }
        ("gad", []) => print(lines(dir.domains().map(Domain::name))),
        ("mcf", mods) if !mods.is_empty() => {
            let mods = parse_mods(mods).ok_or(usage)?;
            for (_, name, _) in &mods {
                if let Ok(attr) = MtaConfig::attr_name(name)
                    && dir.ldap_config().contains(&attr)
                {
                    return Err(DirectoryError::FromLdap(attr.to_string()).into());
                }
            }
            change(&|d| {
                let mut c = d.config().clone();
                let changes = collect(&mods, |n| d.config().values(n), MtaConfig::same_value)?;
                c.set_all(&changes)?;
                d.set_config(c);
                Ok(String::new())
            })
        }
        ("gacf", attrs) => {
            let mut out = String::new();
            for attr in selected(MtaConfig::ATTRS, attrs, "config")? {
                push_values(&mut out, attr, dir.config().values(attr)?);
                push_ignored(&mut out, attr, dir.config());
            }
            print(out)
        }
        ("help", []) => print(lines(
            COMMANDS
                .iter()
                .map(|(_, long, u)| format!("{u}    ({long})")),
        )),
        _ => Err(usage),
    }
}

/// How one attribute argument changes the values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Replace,
    Add,
    Remove,
}

type Mods = Vec<(Op, String, String)>;

/// `attr value` pairs, each attr with an optional `+` or `-`; `None` if a value is missing.
/// Clearing an attribute the box does not support yet (`attr ''`) asks for what is already true,
/// so it is dropped here rather than refused.
fn parse_mods(args: &[&str]) -> Option<Mods> {
    if !args.len().is_multiple_of(2) {
        return None;
    }
    Some(
        args.chunks(2)
            .filter(|pair| !matches!(pair, [attr, ""] if crate::config::attr::is_planned(attr)))
            .filter_map(|pair| match pair {
                [attr, value] => {
                    let (op, name) = match (attr.strip_prefix('+'), attr.strip_prefix('-')) {
                        (Some(n), _) => (Op::Add, n),
                        (_, Some(n)) => (Op::Remove, n),
                        _ => (Op::Replace, *attr),
                    };
                    Some((op, name.to_string(), value.to_string()))
                }
                _ => None,
            })
            .collect(),
    )
}

/// The new values of each attribute `mods` touch, in the order first touched: `current` gives an
/// attribute's values now (and refuses an unknown one), `same` whether two spellings are one
/// value (so `-zimbraMtaRelayHost smtp:[relay]:25` removes a relay host typed `[relay]`).
/// Nothing is written here, so the caller can set them all and check the result as a whole.
fn collect(
    mods: &Mods,
    current: impl Fn(&str) -> Result<Vec<String>, AttrError>,
    same: impl Fn(&str, &str, &str) -> bool,
) -> Result<Vec<(String, Vec<String>)>, AttrError> {
    let mut pending: Vec<(String, Vec<String>)> = Vec::new();
    for (op, attr, value) in mods {
        let now = current(attr)?;
        let key = attr.to_ascii_lowercase();
        let i = match pending.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                let start = if *op == Op::Replace { Vec::new() } else { now };
                pending.push((key, start));
                pending.len() - 1
            }
        };
        let Some((_, slot)) = pending.get_mut(i) else {
            continue;
        };
        match op {
            Op::Replace if value.is_empty() => {}
            Op::Replace | Op::Add => {
                if !slot.iter().any(|v| same(attr, v, value)) {
                    slot.push(value.clone());
                }
            }
            Op::Remove => slot.retain(|v| !same(attr, v, value)),
        }
    }
    Ok(pending)
}

fn apply_account(a: &mut Account, mods: &Mods) -> Result<(), AttrError> {
    for (attr, values) in collect(mods, |n| a.values(n), same_transport)? {
        a.set(&attr, &values)?;
    }
    Ok(())
}

fn apply_domain(d: &mut Domain, mods: &Mods) -> Result<(), AttrError> {
    for (attr, values) in collect(mods, |n| d.values(n), same_transport)? {
        d.set(&attr, &values)?;
    }
    Ok(())
}

/// Two spellings of one value of an account or domain attribute: equal but for case, or the same
/// next hop (`smtp:mail.example.com:25` and `smtp:mail.example.com`).
fn same_transport(attr: &str, a: &str, b: &str) -> bool {
    if a.eq_ignore_ascii_case(b) {
        return true;
    }
    attr.eq_ignore_ascii_case(account::TRANSPORT)
        && matches!(
            (a.parse::<crate::mail::Transport>(), b.parse()),
            (Ok(x), Ok(y)) if x == y
        )
}

fn get_account(dir: &Directory, addr: &str, attrs: &[&str]) -> Result<String, ProvError> {
    let a = dir
        .account(addr)
        .ok_or_else(|| DirectoryError::NoSuchAccount(addr.to_string()))?;
    let mut out = format!("# name {}\n", a.address());
    for attr in selected(Account::ATTRS, attrs, "account")? {
        let values = if attr == account::ALIAS {
            let mut v: Vec<String> = dir.aliases_of(a.address()).map(str::to_string).collect();
            v.sort();
            v
        } else {
            a.values(attr)?
        };
        push_values(&mut out, attr, values);
    }
    Ok(out)
}

/// The attributes to print: all of `names`, or those asked for (canonical spelling).
fn selected(
    names: &'static [&'static str],
    asked: &[&str],
    kind: &'static str,
) -> Result<Vec<&'static str>, AttrError> {
    if asked.is_empty() {
        return Ok(names.to_vec());
    }
    asked
        .iter()
        .map(|a| crate::config::attr::canonical(names, a, kind))
        .collect()
}

/// Values an older firmware left on flash that this one does not apply, as comment lines so a
/// script reading `attr: value` lines does not take them for settings in force.
fn push_ignored(out: &mut String, attr: &str, config: &MtaConfig) {
    for (_, v) in config.unenforced().iter().filter(|(a, _)| *a == attr) {
        let _ = writeln!(out, "# ignored {attr}: {v} (not supported yet)");
    }
}

fn push_values(out: &mut String, attr: &str, values: Vec<String>) {
    for v in values {
        let _ = writeln!(out, "{attr}: {v}");
    }
}

fn lines<S: AsRef<str>>(items: impl Iterator<Item = S>) -> String {
    let mut v: Vec<String> = items.map(|s| s.as_ref().to_string()).collect();
    v.sort();
    let mut out = String::new();
    for s in v {
        out.push_str(&s);
        out.push('\n');
    }
    out
}

/// The `userPassword` value for a new password.
fn password_hash(password: &str) -> Result<String, ProvError> {
    if password.is_empty() {
        return Err(AttrError::Invalid {
            attr: account::PASSWORD,
            value: String::new(),
            reason: "a password cannot be empty".into(),
        }
        .into());
    }
    super::password::hash(password).map_err(|e| {
        AttrError::Invalid {
            attr: account::PASSWORD,
            value: String::new(),
            reason: e.to_string(),
        }
        .into()
    })
}

#[cfg(test)]
mod tests;
