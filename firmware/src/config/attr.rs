//! Errors of the attribute layer shared by the global config, domains and accounts: what `zmprov`
//! (and later the LDAP sync) reports when an attribute or a value is refused. Each names the
//! attribute, so the admin knows what to fix.

use std::fmt;

/// Why setting an attribute failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrError {
    /// No such attribute on this kind of entry.
    Unknown { attr: String, kind: &'static str },
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
            AttrError::Unknown { attr, kind } => write!(f, "unknown {kind} attribute {attr:?}"),
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

/// Finds `attr` (case-insensitive, as LDAP attribute names are) among `names`.
pub fn canonical(
    names: &[&'static str],
    attr: &str,
    kind: &'static str,
) -> Result<&'static str, AttrError> {
    names
        .iter()
        .copied()
        .find(|n| n.eq_ignore_ascii_case(attr))
        .ok_or_else(|| AttrError::Unknown {
            attr: attr.to_string(),
            kind,
        })
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
