//! Talking to LDAP: connect to the first `ldap_url` that answers (StartTLS or `ldaps://`,
//! verified against `ldap_ca_cert` or the system's CA bundle), bind, and read entries page by
//! page. Every step has a time limit, so a hung server costs one sync, never the box.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{LdapConnAsync, LdapConnSettings, Scope, StdStream};
use rustls::ClientConfig;

use super::entries::Entries;
use super::entry::{MalformedEntry, RawEntry};
use super::locate::{self, LocateError, ServerNames};
use super::syncrepl::{self, SyncOutcome};
use crate::config::localconfig::{LdapUrl, LocalConfig};
use crate::trust;
use ldap3::controls::RawControl;

/// `unavailableCriticalExtension` (RFC 4511): the server does not know the Sync Request control.
const UNAVAILABLE_CRITICAL_EXTENSION: u32 = 12;
/// `protocolError`: OpenLDAP's answer to a cookie it cannot parse.
const PROTOCOL_ERROR: u32 = 2;
/// `unwillingToPerform`: OpenLDAP's answer to a cookie newer than its own state ("consumer
/// state is newer than provider!"), as after a restore from backup or from another replica.
const UNWILLING_TO_PERFORM: u32 = 53;

/// The value of an IntermediateResponse: `[APPLICATION 25] SEQUENCE { responseName [0]
/// OPTIONAL, responseValue [1] OPTIONAL }`, checked by hand (no panicking parser).
fn intermediate_value(tag: ldap3::asn1::StructureTag) -> Option<Vec<u8>> {
    let ldap3::asn1::PL::C(parts) = tag.payload else {
        return None;
    };
    parts.into_iter().find_map(|p| match (p.id, p.payload) {
        (1, ldap3::asn1::PL::P(v)) => Some(v),
        _ => None,
    })
}

/// Entries per page: large pages are fewer round trips, small ones less memory per reply.
const PAGE_SIZE: i32 = 1000;

/// A step of talking to LDAP, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Bind,
    Search,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Connect => "connect",
            Stage::Bind => "bind",
            Stage::Search => "search",
        })
    }
}

/// Why LDAP could not be read.
#[derive(Debug)]
pub enum ClientError {
    /// `ldap_url` is empty.
    NotConfigured,
    /// No CA certificate to verify the server with (`ldap_ca_cert` bad, no system bundle).
    NoTrustAnchors(String),
    /// The server's name has no address (see [`locate`]).
    Resolve { url: String, error: LocateError },
    /// The step did not finish in time.
    Timeout { url: String, stage: Stage },
    /// The library reported an error (connection refused, TLS, protocol).
    Ldap {
        url: String,
        stage: Stage,
        error: Box<ldap3::LdapError>,
    },
    /// The server answered with a result code other than success.
    Refused {
        url: String,
        stage: Stage,
        code: u32,
        text: String,
    },
    /// Every URL failed; the last failure of each.
    AllFailed(Vec<ClientError>),
    /// The fetch child failed or reported this (see `fetch`).
    Child(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::NotConfigured => f.write_str("ldap_url is not set"),
            ClientError::NoTrustAnchors(why) => write!(f, "no CA to verify LDAP's TLS: {why}"),
            ClientError::Resolve { url, error } => write!(f, "{url}: connect: {error}"),
            ClientError::Timeout { url, stage } => write!(f, "{url}: {stage} timed out"),
            ClientError::Ldap { url, stage, error } => write!(f, "{url}: {stage}: {error}"),
            ClientError::Refused {
                url,
                stage,
                code,
                text,
            } => write!(f, "{url}: {stage} refused: result {code} {text}"),
            ClientError::Child(why) => f.write_str(why),
            ClientError::AllFailed(all) => {
                let parts: Vec<String> = all.iter().map(|e| e.to_string()).collect();
                f.write_str(&parts.join("; "))
            }
        }
    }
}

impl std::error::Error for ClientError {}

fn tls_config(settings: &LocalConfig) -> Result<Arc<ClientConfig>, ClientError> {
    trust::client_config(&anchors(settings)?)
        .map_err(|e| ClientError::NoTrustAnchors(e.to_string()))
}

fn anchors(settings: &LocalConfig) -> Result<Vec<u8>, ClientError> {
    match &settings.ca_cert_pem {
        Some(pem) => Ok(pem.clone().into_bytes()),
        None => trust::read_bundle(trust::SYSTEM_CA_BUNDLE)
            .map_err(|e| ClientError::NoTrustAnchors(e.to_string())),
    }
}

/// The host ldap3 is given in place of an IPv6 address when TLS names the server: it takes the
/// TLS name from the URL's host, where the address is bracketed and no name rustls accepts.
/// Never resolved (the box connects the socket itself) and never sent (no SNI then).
const IPV6_STAND_IN: &str = "ipv6-address.invalid";

/// An open, bound connection.
pub struct Session {
    ldap: ldap3::Ldap,
    url: String,
    read_timeout: Duration,
}

/// A connection to one server (TLS set up, nothing bound yet). The name is resolved by the box
/// ([`locate`]); ldap3 gets the connected socket and a URL that still names the server for TLS.
async fn connect(
    url: &LdapUrl,
    settings: &LocalConfig,
    names: &ServerNames,
    tls: Option<Arc<ClientConfig>>,
    starttls: bool,
) -> Result<ldap3::Ldap, ClientError> {
    let name = url.to_string();
    let cannot_connect = |error: std::io::Error| ClientError::Ldap {
        url: name.clone(),
        stage: Stage::Connect,
        error: Box::new(error.into()),
    };
    let addrs = names
        .addresses(&url.host, url.port, settings.connect_timeout)
        .await
        .map_err(|error| ClientError::Resolve {
            url: name.clone(),
            error,
        })?;
    let stream = locate::connect(&addrs, settings.connect_timeout)
        .await
        .and_then(|s| s.into_std())
        .map_err(cannot_connect)?;
    let mut conn_settings = LdapConnSettings::new()
        .set_conn_timeout(settings.connect_timeout)
        .set_starttls(starttls)
        .set_std_stream(StdStream::Tcp(stream));
    let ipv6 = url.host.parse::<std::net::Ipv6Addr>().ok();
    let host = match (ipv6, &tls) {
        // The certificate is checked against the address itself.
        (Some(ip), Some(_)) => {
            let for_address = trust::client_config_for_address(&anchors(settings)?, ip.into())
                .map_err(|e| ClientError::NoTrustAnchors(e.to_string()))?;
            conn_settings = conn_settings.set_config(for_address);
            IPV6_STAND_IN.to_string()
        }
        (Some(_), None) => format!("[{}]", url.host),
        (None, tls) => {
            if let Some(tls) = tls {
                conn_settings = conn_settings.set_config(tls.clone());
            }
            url.host.clone()
        }
    };
    let scheme = if url.tls { "ldaps" } else { "ldap" };
    let target = format!("{scheme}://{host}:{}", url.port);
    // StartTLS and the TLS handshake happen inside: give them the read timeout too.
    let limit = settings.connect_timeout + settings.read_timeout;
    let (conn, ldap) =
        tokio::time::timeout(limit, LdapConnAsync::with_settings(conn_settings, &target))
            .await
            .map_err(|_| ClientError::Timeout {
                url: name.clone(),
                stage: Stage::Connect,
            })?
            .map_err(|error| ClientError::Ldap {
                url: name.clone(),
                stage: Stage::Connect,
                error: Box::new(error),
            })?;
    tokio::spawn(async move {
        // The connection ends when the session is dropped; its error is the search's error.
        let _ = conn.drive().await;
    });
    Ok(ldap)
}

/// A simple bind with a time limit; the server's result code.
async fn bind(
    ldap: &mut ldap3::Ldap,
    name: &str,
    timeout: Duration,
    dn: &str,
    password: &str,
) -> Result<ldap3::LdapResult, ClientError> {
    let bind = ldap.with_timeout(timeout).simple_bind(dn, password);
    tokio::time::timeout(timeout, bind)
        .await
        .map_err(|_| ClientError::Timeout {
            url: name.to_string(),
            stage: Stage::Bind,
        })?
        .map_err(|error| ClientError::Ldap {
            url: name.to_string(),
            stage: Stage::Bind,
            error: Box::new(error),
        })
}

async fn open_one(
    url: &LdapUrl,
    settings: &LocalConfig,
    names: &ServerNames,
    tls: Option<Arc<ClientConfig>>,
) -> Result<Session, ClientError> {
    let name = url.to_string();
    let starttls = settings.starttls && !url.tls;
    let mut ldap = connect(url, settings, names, tls, starttls).await?;
    if !settings.user_dn.is_empty() {
        let res = bind(
            &mut ldap,
            &name,
            settings.read_timeout,
            &settings.user_dn,
            &settings.password,
        )
        .await?;
        if res.rc != 0 {
            return Err(ClientError::Refused {
                url: name,
                stage: Stage::Bind,
                code: res.rc,
                text: res.text,
            });
        }
    }
    Ok(Session {
        ldap,
        url: name,
        read_timeout: settings.read_timeout,
    })
}

/// `invalidCredentials` (RFC 4511): the password is wrong, or there is no such DN.
const INVALID_CREDENTIALS: u32 = 49;

/// Whether `password` is right for `dn` at `url`, by a simple bind over TLS (StartTLS on an
/// `ldap://` URL whatever `ldap_starttls_supported` says: a user's password never goes in
/// clear). An empty password is never sent: LDAP takes it as an unauthenticated bind, which
/// succeeds without checking anything.
pub async fn check_password(
    settings: &LocalConfig,
    names: &ServerNames,
    url: &LdapUrl,
    dn: &str,
    password: &str,
) -> Result<bool, ClientError> {
    if password.is_empty() || dn.is_empty() {
        return Ok(false);
    }
    let tls = tls_config(settings)?;
    let name = url.to_string();
    let mut ldap = connect(url, settings, names, Some(tls), !url.tls).await?;
    let res = bind(&mut ldap, &name, settings.read_timeout, dn, password).await?;
    let _ = tokio::time::timeout(settings.read_timeout, ldap.unbind()).await;
    match res.rc {
        0 => Ok(true),
        INVALID_CREDENTIALS => Ok(false),
        code => Err(ClientError::Refused {
            url: name,
            stage: Stage::Bind,
            code,
            text: res.text,
        }),
    }
}

/// Connects and binds to the first server of `ldap_url` that works.
pub async fn open(settings: &LocalConfig, names: &ServerNames) -> Result<Session, ClientError> {
    if settings.ldap_urls.is_empty() {
        return Err(ClientError::NotConfigured);
    }
    let needs_tls = settings.starttls || settings.ldap_urls.iter().any(|u| u.tls);
    let tls = match needs_tls {
        true => Some(tls_config(settings)?),
        false => None,
    };
    let mut failures = Vec::new();
    for url in &settings.ldap_urls {
        match open_one(url, settings, names, tls.clone()).await {
            Ok(s) => return Ok(s),
            Err(e) => failures.push(e),
        }
    }
    Err(match failures.len() {
        1 => failures.remove(0),
        _ => ClientError::AllFailed(failures),
    })
}

impl Session {
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every entry under `base` matching `filter`, with `attrs`.
    pub async fn search(
        &mut self,
        base: &str,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Entries, ClientError> {
        let url = self.url.clone();
        let timeout = |stage| ClientError::Timeout {
            url: url.clone(),
            stage,
        };
        let lib = |error| ClientError::Ldap {
            url: url.clone(),
            stage: Stage::Search,
            error: Box::new(error),
        };
        let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(PAGE_SIZE)),
        ];
        let limit = self.read_timeout;
        let attrs: Vec<&str> = attrs.to_vec();
        let mut stream = tokio::time::timeout(
            limit,
            self.ldap.with_timeout(limit).streaming_search_with(
                adapters,
                base,
                Scope::Subtree,
                filter,
                attrs,
            ),
        )
        .await
        .map_err(|_| timeout(Stage::Search))?
        .map_err(lib)?;
        let mut entries = Entries::default();
        loop {
            let next = tokio::time::timeout(limit, stream.next())
                .await
                .map_err(|_| timeout(Stage::Search))?
                .map_err(lib)?;
            match next {
                Some(re) => entries.push(RawEntry::parse(re.0)),
                None => break,
            }
        }
        let res = stream.finish().await;
        if res.rc != 0 {
            return Err(ClientError::Refused {
                url: url.clone(),
                stage: Stage::Search,
                code: res.rc,
                text: res.text,
            });
        }
        Ok(entries)
    }

    /// An RFC 4533 refreshOnly search: with `cookie`, only what changed since (and what was
    /// deleted); without, everything. Each entry comes with its Sync State.
    pub async fn sync_search(
        &mut self,
        base: &str,
        filter: &str,
        attrs: &[&str],
        cookie: Option<&[u8]>,
    ) -> Result<(Entries, SyncOutcome), ClientError> {
        let url = self.url.clone();
        let timeout = |stage| ClientError::Timeout {
            url: url.clone(),
            stage,
        };
        let lib = |error| ClientError::Ldap {
            url: url.clone(),
            stage: Stage::Search,
            error: Box::new(error),
        };
        let control = RawControl {
            ctype: syncrepl::SYNC_REQUEST_OID.to_string(),
            crit: true,
            val: Some(syncrepl::encode_request(cookie)),
        };
        let limit = self.read_timeout;
        let attrs: Vec<&str> = attrs.to_vec();
        let mut stream = tokio::time::timeout(
            limit,
            self.ldap
                .with_timeout(limit)
                .with_controls(control)
                .streaming_search(base, Scope::Subtree, filter, attrs),
        )
        .await
        .map_err(|_| timeout(Stage::Search))?
        .map_err(lib)?;
        let mut entries = Entries::default();
        let mut outcome = SyncOutcome::default();
        loop {
            let next = tokio::time::timeout(limit, stream.next())
                .await
                .map_err(|_| timeout(Stage::Search))?
                .map_err(lib)?;
            let Some(re) = next else { break };
            if re.is_ref() {
                continue;
            }
            if re.is_intermediate() {
                match intermediate_value(re.0) {
                    Some(v) => match syncrepl::decode_info(&v) {
                        Ok(info) => outcome.infos.push(info),
                        Err(_) => outcome.bad_infos += 1,
                    },
                    None => outcome.bad_infos += 1,
                }
                continue;
            }
            let state =
                re.1.iter()
                    .find(|c| c.1.ctype == syncrepl::SYNC_STATE_OID)
                    .map(|c| syncrepl::decode_state(c.1.val.as_deref().unwrap_or_default()));
            match state {
                Some(Err(bad)) => {
                    entries.push(Err(MalformedEntry::SyncControl(bad)));
                    outcome.states.push(None);
                }
                state => {
                    entries.push(RawEntry::parse(re.0));
                    outcome.states.push(state.and_then(Result::ok));
                }
            }
        }
        let res = stream.finish().await;
        match res.rc {
            0 => {}
            syncrepl::REFRESH_REQUIRED => outcome.refresh_required = true,
            // A cookie the server will not go on from, said otherwise: a cookie kept on flash
            // must not fail every sync after it, so it is dropped as e-syncRefreshRequired says.
            PROTOCOL_ERROR | UNWILLING_TO_PERFORM if cookie.is_some() => {
                outcome.refresh_required = true
            }
            UNAVAILABLE_CRITICAL_EXTENSION => outcome.unsupported = true,
            code => {
                return Err(ClientError::Refused {
                    url: url.clone(),
                    stage: Stage::Search,
                    code,
                    text: res.text,
                });
            }
        }
        outcome.done = res
            .ctrls
            .iter()
            .find(|c| c.1.ctype == syncrepl::SYNC_DONE_OID)
            .and_then(|c| syncrepl::decode_done(c.1.val.as_deref().unwrap_or_default()).ok());
        Ok((entries, outcome))
    }

    /// Ends the session politely; errors do not matter any more.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(self.read_timeout, self.ldap.unbind()).await;
    }
}
