//! The spam score from rspamd: the message POSTed to `/checkv2`, and to `/learnspam` or
//! `/learnham` for training, each within a deadline, over plain HTTP or, for `https://`, TLS
//! checked against the box's trust store; with `posternRspamdPassword` in every request when set.
//! [`protocol`] is the wire format without sockets.

pub mod protocol;

use std::io;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;

use super::scanner::{self, Class, PasswordFailure, ScannerError, Stream, TlsFailure};
use super::stored::StoredMessage;
use crate::config::ScannerAddress;
use crate::config::rspamd_url::{RspamdPassword, RspamdUrl};
use crate::mail::Envelope;
use crate::trust;
use protocol::{CheckReply, Facts, LearnReply, RspamdReplyError};

/// Where rspamd answers and how it is asked.
#[derive(Debug, Clone)]
pub struct Endpoint<'a> {
    pub url: RspamdUrl,
    pub password: Option<&'a RspamdPassword>,
    /// The servers an `https://` URL may lead to; `None`: the box's trust store.
    pub trust: Option<Arc<ClientConfig>>,
}

impl<'a> Endpoint<'a> {
    /// rspamd as set, trusting the box's trust store.
    pub fn new(url: RspamdUrl, password: Option<&'a RspamdPassword>) -> Endpoint<'a> {
        Endpoint {
            url,
            password,
            trust: None,
        }
    }
}

/// What rspamd is told of `envelope` besides the message.
pub fn facts(envelope: &Envelope) -> Facts {
    Facts {
        client: envelope.client.addr,
        helo: envelope.client.helo.clone(),
        sender: envelope.sender.clone(),
        recipients: envelope
            .recipients
            .iter()
            .map(|r| r.address.clone())
            .collect(),
        user: envelope.client.auth.clone(),
    }
}

/// Scores `message`: rspamd's score, its action and the symbols that hit.
pub async fn check(
    rspamd: &Endpoint<'_>,
    message: &dyn StoredMessage,
    facts: &Facts,
    deadline: Duration,
) -> Result<CheckReply, ScannerError> {
    let host = rspamd.url.addr.to_string();
    let password = rspamd.password.map(RspamdPassword::as_str);
    let head = protocol::check_request(&host, message.size() as usize, facts, password);
    let reply = ask(rspamd, head, message, deadline).await?;
    protocol::parse_check_reply(&reply).map_err(|e| failed(rspamd, e))
}

/// Teaches rspamd's Bayes classifier that `message` is `class` (the controller worker only).
pub async fn learn(
    rspamd: &Endpoint<'_>,
    message: &dyn StoredMessage,
    class: Class,
    deadline: Duration,
) -> Result<LearnReply, ScannerError> {
    let host = rspamd.url.addr.to_string();
    let password = rspamd.password.map(RspamdPassword::as_str);
    let head = protocol::learn_request(&host, message.size() as usize, class, password);
    let reply = ask(rspamd, head, message, deadline).await?;
    protocol::parse_learn_reply(&reply).map_err(|e| failed(rspamd, e))
}

/// rspamd's `401 Unauthorized` (403 from some proxies) is about the password; anything else is
/// told as rspamd said it.
fn failed(rspamd: &Endpoint<'_>, e: RspamdReplyError) -> ScannerError {
    match (e, rspamd.password) {
        (
            RspamdReplyError::Failed {
                status: 401 | 403, ..
            },
            Some(_),
        ) => ScannerError::Password(PasswordFailure::Refused),
        (
            RspamdReplyError::Failed {
                status: 401 | 403, ..
            },
            None,
        ) => ScannerError::Password(PasswordFailure::Wanted),
        (e, _) => ScannerError::Reply(e.to_string()),
    }
}

async fn ask(
    rspamd: &Endpoint<'_>,
    head: Vec<u8>,
    message: &dyn StoredMessage,
    deadline: Duration,
) -> Result<Vec<u8>, ScannerError> {
    let exchange = async {
        let mut s = connect(rspamd).await?;
        scanner::send_request(&mut s, &head, message).await?;
        scanner::read_reply(&mut s, protocol::MAX_REPLY, protocol::is_complete).await
    };
    tokio::time::timeout(deadline, exchange)
        .await
        .map_err(|_| ScannerError::Timeout)?
}

/// A connection to rspamd, in TLS for `https://` (the certificate must name the address).
async fn connect(rspamd: &Endpoint<'_>) -> Result<Box<dyn Stream>, ScannerError> {
    let tcp = scanner::connect(&ScannerAddress::Tcp(rspamd.url.addr)).await?;
    if !rspamd.url.tls {
        return Ok(tcp);
    }
    let config = match &rspamd.trust {
        Some(config) => config.clone(),
        None => system_trust()?,
    };
    let name = ServerName::IpAddress(rspamd.url.addr.ip().into());
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(handshake_failed)?;
    Ok(Box::new(tls))
}

fn handshake_failed(e: io::Error) -> ScannerError {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(tls) => ScannerError::Tls(TlsFailure::Handshake(tls.clone())),
        None => ScannerError::Io(e.kind()),
    }
}

/// The box's trust store (`SSL_CERT_FILE`, else the system bundle), read once it has been read
/// well: a bundle installed later is still found.
fn system_trust() -> Result<Arc<ClientConfig>, ScannerError> {
    static TRUST: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    if let Some(config) = TRUST.get() {
        return Ok(config.clone());
    }
    let file = std::env::var("SSL_CERT_FILE").unwrap_or_else(|_| trust::SYSTEM_CA_BUNDLE.into());
    let config = trust::read_bundle(&file)
        .and_then(|pem| trust::client_config(&pem))
        .map_err(|_| ScannerError::Tls(TlsFailure::NoTrustStore))?;
    Ok(TRUST.get_or_init(|| config).clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::stored::MessageBytes;
    use tokio::io::AsyncReadExt;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn a_silent_rspamd_ends_at_the_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = RspamdUrl {
            addr: listener.local_addr().unwrap(),
            tls: false,
        };
        let hold = tokio::spawn(async move { listener.accept().await.map(|(s, _)| s) });
        let started = std::time::Instant::now();
        let verdict = check(
            &Endpoint::new(url, None),
            &MessageBytes(b"Subject: x\r\n\r\nhi"),
            &Facts::default(),
            Duration::from_millis(300),
        )
        .await;
        assert_eq!(verdict, Err(ScannerError::Timeout));
        // A hang is what this catches: the margin is for a busy machine.
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(hold);
    }

    /// rspamd keeps the connection open after its answer: the answer's length ends the read.
    #[tokio::test]
    async fn the_answer_ends_at_its_length_not_at_close() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = RspamdUrl {
            addr: listener.local_addr().unwrap(),
            tls: false,
        };
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 4096];
            let n = s.read(&mut request).await.unwrap();
            let body = r#"{"score":3.5,"action":"no action","symbols":{"R_X":{}}}"#;
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(answer.as_bytes()).await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            String::from_utf8_lossy(&request[..n]).to_string()
        });
        let reply = check(
            &Endpoint::new(url, None),
            &MessageBytes(b"Subject: x\r\n\r\nhi"),
            &Facts::default(),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
        assert_eq!((reply.score, reply.symbols.len()), (3.5, 1));
        server.abort();
    }

    const SCORED: &str =
        "HTTP/1.1 200 OK\r\nContent-Length: 26\r\n\r\n{\"score\":1.5,\"symbols\":{}}";
    /// As rspamd 3.4 answers a wrong or missing password.
    const UNAUTHORIZED: &str =
        "HTTP/1.1 401 Unauthorized\r\nContent-Length: 24\r\n\r\n{\"error\":\"Unauthorized\"}";

    /// A CA, and a client configuration that trusts it.
    fn authority() -> (rcgen::CertificateParams, rcgen::KeyPair, Arc<ClientConfig>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        let trust = trust::client_config(cert.pem().as_bytes()).unwrap();
        (params, key, trust)
    }

    /// A TLS server on 127.0.0.1 with a certificate for `names` from `ca`, answering one request
    /// with `answer`; the request as it read it.
    async fn tls_server(
        ca: &(rcgen::CertificateParams, rcgen::KeyPair, Arc<ClientConfig>),
        names: &[&str],
        answer: &'static str,
    ) -> (RspamdUrl, tokio::task::JoinHandle<String>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let issuer = rcgen::Issuer::from_params(&ca.0, &ca.1);
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls_pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = RspamdUrl {
            addr: listener.local_addr().unwrap(),
            tls: true,
        };
        let served = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let Ok(mut s) = acceptor.accept(tcp).await else {
                return String::new();
            };
            let mut request = vec![0u8; 4096];
            let n = s.read(&mut request).await.unwrap_or(0);
            let _ = s.write_all(answer.as_bytes()).await;
            let _ = s.shutdown().await;
            String::from_utf8_lossy(&request[..n]).to_string()
        });
        (url, served)
    }

    /// `https://`: the certificate must chain to the trust store and name the address; the
    /// password travels inside the TLS session.
    #[tokio::test]
    async fn https_checks_the_certificate_and_carries_the_password() {
        let ca = authority();
        let password: RspamdPassword = "q1w2e3".parse().unwrap();
        let message = MessageBytes(b"Subject: x\r\n\r\nhi");
        let (url, served) = tls_server(&ca, &["127.0.0.1"], SCORED).await;
        let rspamd = Endpoint {
            trust: Some(ca.2.clone()),
            ..Endpoint::new(url, Some(&password))
        };
        let reply = check(&rspamd, &message, &Facts::default(), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(reply.score, 1.5);
        let request = served.await.unwrap();
        assert!(
            request.starts_with("POST /checkv2 HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("\r\nPassword: q1w2e3\r\n"), "{request}");

        // A certificate for another name, and one from a CA the box does not trust.
        let (url, _) = tls_server(&ca, &["rspamd.example.com"], SCORED).await;
        let wrong_name = Endpoint {
            trust: Some(ca.2.clone()),
            ..Endpoint::new(url, None)
        };
        let e = check(
            &wrong_name,
            &message,
            &Facts::default(),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(e, ScannerError::Tls(TlsFailure::Handshake(_))),
            "{e:?}"
        );
        assert!(
            e.to_string().starts_with("TLS: invalid peer certificate"),
            "{e}"
        );
        let stranger = authority();
        let (url, _) = tls_server(&stranger, &["127.0.0.1"], SCORED).await;
        let untrusted = Endpoint {
            trust: Some(ca.2.clone()),
            ..Endpoint::new(url, None)
        };
        let e = check(
            &untrusted,
            &message,
            &Facts::default(),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        // Same subject as the trusted CA (rcgen's default), another key: the signature fails.
        assert!(
            e.to_string().starts_with("TLS: invalid peer certificate"),
            "{e}"
        );
    }

    /// A 401 is about the password: refused when one was sent, wanted when none was.
    #[tokio::test]
    async fn unauthorized_names_the_password_setting() {
        let ca = authority();
        let password: RspamdPassword = "wrong".parse().unwrap();
        for (password, told) in [
            (
                Some(&password),
                "password refused: check posternRspamdPassword",
            ),
            (None, "a password is required: set posternRspamdPassword"),
        ] {
            let (url, _) = tls_server(&ca, &["127.0.0.1"], UNAUTHORIZED).await;
            let rspamd = Endpoint {
                trust: Some(ca.2.clone()),
                ..Endpoint::new(url, password)
            };
            let e = learn(
                &rspamd,
                &MessageBytes(b"Subject: x\r\n\r\nhi"),
                Class::Spam,
                Duration::from_secs(5),
            )
            .await
            .unwrap_err();
            assert_eq!(e.to_string(), told);
        }
    }
}
