//! A test bind: connect to each `ldap_url` and bind as the settings say (what a sync does before
//! it reads), then hang up. `postern ldap test` and the console's directory questions show its
//! result, per server, before anything is stored. It runs in the fetch child like every other
//! LDAP read (see [`fetch`](super::fetch)).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::client::{self, ClientError, Stage};
use super::locate::ServerNames;
use crate::config::localconfig::{LdapUrl, LocalConfig};

/// `invalidCredentials` (RFC 4511): a wrong password, or no such DN.
const INVALID_CREDENTIALS: u32 = 49;

/// What went wrong with one server, in the words an admin acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BindProblem {
    /// No TCP connection (refused, unreachable, no such host, timed out).
    CannotConnect,
    /// TLS failed: StartTLS refused, a certificate not trusted or for another name, no CA.
    Tls,
    /// The server refused the bind DN and password.
    InvalidCredentials,
    /// The server answered the bind with another result code.
    Refused(u32),
    /// The connection broke or the server did not answer in time after connecting.
    NoAnswer,
}

impl fmt::Display for BindProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindProblem::CannotConnect => f.write_str("cannot connect"),
            BindProblem::Tls => f.write_str("TLS failed"),
            BindProblem::InvalidCredentials => {
                f.write_str("invalid credentials (wrong bind DN or password)")
            }
            BindProblem::Refused(code) => write!(f, "bind refused with result {code}"),
            BindProblem::NoAnswer => f.write_str("no answer"),
        }
    }
}

/// One server's outcome: `Ok` after a successful bind, else the problem and the library's or
/// server's own words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerResult {
    pub url: String,
    pub outcome: Result<(), (BindProblem, String)>,
}

impl ServerResult {
    pub fn ok(&self) -> bool {
        self.outcome.is_ok()
    }
}

impl fmt::Display for ServerResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Ok(()) => write!(f, "{}: bind OK", self.url),
            Err((problem, detail)) => write!(f, "{}: {problem}: {detail}", self.url),
        }
    }
}

/// Whether a TLS error is somewhere in this error's chain (tokio-rustls hands rustls' errors up
/// wrapped in `io::Error`).
fn is_tls(error: &ldap3::LdapError) -> bool {
    match error {
        ldap3::LdapError::Rustls { .. } | ldap3::LdapError::DNSName { .. } => true,
        // A StartTLS the server answered with an error.
        ldap3::LdapError::LdapResult { .. } => true,
        ldap3::LdapError::Io { source } => source
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()),
        _ => false,
    }
}

/// Sorts a client error into what the admin must fix.
pub fn classify(error: &ClientError) -> BindProblem {
    match error {
        ClientError::NoTrustAnchors(_) => BindProblem::Tls,
        ClientError::Resolve { .. }
        | ClientError::Timeout {
            stage: Stage::Connect,
            ..
        } => BindProblem::CannotConnect,
        ClientError::Timeout { .. } => BindProblem::NoAnswer,
        ClientError::Ldap {
            stage: Stage::Connect,
            error,
            ..
        } if is_tls(error) => BindProblem::Tls,
        ClientError::Ldap {
            stage: Stage::Connect,
            ..
        } => BindProblem::CannotConnect,
        ClientError::Ldap { error, .. } if is_tls(error) => BindProblem::Tls,
        ClientError::Refused {
            code: INVALID_CREDENTIALS,
            ..
        } => BindProblem::InvalidCredentials,
        ClientError::Refused { code, .. } => BindProblem::Refused(*code),
        ClientError::Ldap { .. }
        | ClientError::NotConfigured
        | ClientError::AllFailed(_)
        | ClientError::Child(_) => BindProblem::NoAnswer,
    }
}

/// Binds to one server as `settings` say.
async fn one(settings: &LocalConfig, names: &ServerNames, url: &LdapUrl) -> ServerResult {
    let mut single = settings.clone();
    single.ldap_urls = vec![url.clone()];
    let outcome = match client::open(&single, names).await {
        Ok(session) => {
            session.close().await;
            Ok(())
        }
        Err(e) => Err((classify(&e), e.to_string())),
    };
    ServerResult {
        url: url.to_string(),
        outcome,
    }
}

/// Binds to every server of `ldap_url` in turn (in this process: callers go through
/// [`fetch::test_bind`](super::fetch::test_bind)).
pub async fn test_bind(settings: &LocalConfig, names: &ServerNames) -> Vec<ServerResult> {
    let mut results = Vec::new();
    for url in &settings.ldap_urls {
        results.push(one(settings, names, url).await);
    }
    results
}
