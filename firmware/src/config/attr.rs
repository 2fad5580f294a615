//! Errors of the attribute layer shared by the global config, domains and accounts: what `zmprov`
//! (and later the LDAP sync) reports when an attribute or a value is refused. Each names the
//! attribute, so the admin knows what to fix.

use std::fmt;

/// Why setting an attribute failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrError {
    /// No such attribute on this kind of entry (zmprov's `account.INVALID_ATTR_NAME`).
    Unknown { attr: String, kind: &'static str },
    /// A Zimbra attribute, or one value of it, that this firmware could store but does not act on
    /// yet. Refused rather than kept, so `gacf` never shows a setting that does nothing.
    NotSupported { attr: String, value: Option<String> },
    /// The value does not fit the attribute.
    Invalid {
        attr: &'static str,
        value: String,
        reason: String,
    },
    /// More than one value for a single-valued attribute.
    SingleValued(&'static str),
    /// The attribute is changed another way (a hint says how).
    ReadOnly {
        attr: &'static str,
        hint: &'static str,
    },
}

impl fmt::Display for AttrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrError::Unknown { attr, .. } => write!(f, "invalid attr name: {attr}"),
            AttrError::NotSupported { attr, value } => match value {
                Some(v) => write!(f, "{attr} {v}: not supported yet"),
                None => write!(f, "{attr}: not supported yet"),
            },
            AttrError::Invalid {
                attr,
                value,
                reason,
            } => write!(f, "invalid value {value:?} for {attr}: {reason}"),
            AttrError::SingleValued(a) => write!(f, "{a} is single-valued: give one value"),
            AttrError::ReadOnly { attr, hint } => write!(f, "{attr} cannot be set here: {hint}"),
        }
    }
}

impl std::error::Error for AttrError {}

impl AttrError {
    /// The zmprov error code the admin sees before the message.
    pub fn code(&self) -> &'static str {
        match self {
            AttrError::Unknown { .. } => "account.INVALID_ATTR_NAME",
            AttrError::NotSupported { .. } => "service.UNSUPPORTED",
            _ => "service.INVALID_REQUEST",
        }
    }
}

/// Zimbra attributes of the MTA that the policy and content stages will act on once they exist.
/// Named here so an admin pasting them from the Zimbra pages learns they are known but not there
/// yet, instead of reading that the name is invalid.
pub const PLANNED: &[&str] = &[
    "zimbraMtaAuthEnabled",
    "zimbraMtaTlsAuthOnly",
    "zimbraAttachmentsBlocked",
];

/// Whether `attr` is one of the [`PLANNED`] attributes.
pub fn is_planned(attr: &str) -> bool {
    PLANNED.iter().any(|p| p.eq_ignore_ascii_case(attr))
}

/// Finds `attr` (case-insensitive, as LDAP attribute names are) among `names`.
pub fn canonical(
    names: &[&'static str],
    attr: &str,
    kind: &'static str,
) -> Result<&'static str, AttrError> {
    if let Some(n) = names.iter().copied().find(|n| n.eq_ignore_ascii_case(attr)) {
        return Ok(n);
    }
    Err(
        match PLANNED.iter().find(|p| p.eq_ignore_ascii_case(attr)) {
            Some(p) => AttrError::NotSupported {
                attr: p.to_string(),
                value: None,
            },
            None => AttrError::Unknown {
                attr: attr.to_string(),
                kind,
            },
        },
    )
}

/// The one value of a single-valued attribute; `None` when the list is empty (clear it).
pub fn single<'v>(attr: &'static str, values: &'v [String]) -> Result<Option<&'v str>, AttrError> {
    match values {
        [] => Ok(None),
        [v] if v.is_empty() => Ok(None),
        [v] => Ok(Some(v)),
        _ => Err(AttrError::SingleValued(attr)),
    }
}

/// `TRUE`/`FALSE` as LDAP booleans are written (any case).
pub fn boolean(attr: &'static str, v: &str) -> Result<bool, AttrError> {
    match v.to_ascii_uppercase().as_str() {
        "TRUE" => Ok(true),
        "FALSE" => Ok(false),
        _ => Err(invalid(attr, v, "use TRUE or FALSE")),
    }
}

pub fn show_bool(b: bool) -> String {
    if b { "TRUE" } else { "FALSE" }.to_string()
}

pub fn invalid(attr: &'static str, value: &str, reason: impl fmt::Display) -> AttrError {
    AttrError::Invalid {
        attr,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// A parsed value with the text the admin typed for it: the box acts on the value, `ga`/`gd`
/// show the text (`smtp:mail.example.com:25` stays that, though it means the same as
/// `smtp:mail.example.com`), and flash keeps the text, which parses back to the same value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Typed<T> {
    value: T,
    text: Box<str>,
}

impl<T> Typed<T> {
    pub fn new(value: T, text: &str) -> Typed<T> {
        Typed {
            value,
            text: text.into(),
        }
    }

    pub fn value(&self) -> &T {
        &self.value
    }

    /// What the admin typed.
    pub fn text(&self) -> &str {
        &self.text
    }
}
