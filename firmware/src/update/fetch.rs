//! Fetching a bundle from an `http://` or `https://` URL into a file, for `postern update install
//! URL`. Plain HTTP is enough for trust (the bundle's signature and hashes are checked before
//! anything is written to a slot); HTTPS keeps the download private. Server certificates are
//! checked against the system's roots (`SSL_CERT_FILE`, else Debian's bundle in the image).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::http::{self, HttpError, Scheme, Url};
use crate::policy::dns::{Dns, HickoryResolve};
use crate::trust::{self, TrustError};

/// A bundle is a slot image (~35 MiB) and a manifest: anything far larger is not one.
pub const MAX_BUNDLE: u64 = 512 << 20;
/// How long the server may stay silent (connect, TLS, each read).
const TIMEOUT: Duration = Duration::from_secs(30);
const MAX_REDIRECTS: usize = 5;

/// Why a bundle could not be fetched.
#[derive(Debug)]
pub enum FetchError {
    Url(HttpError),
    /// The host name has no address (or DNS did not answer).
    Resolve(String),
    Connect(SocketAddr, std::io::Error),
    /// No trust roots to check the server's certificate against.
    NoRoots(String),
    Tls(std::io::Error),
    /// The server answered, but not with the file.
    Status(u16, String),
    TooManyRedirects,
    TooBig,
    /// The connection ended before Content-Length bytes came.
    Truncated {
        got: u64,
        expected: u64,
    },
    Timeout,
    Io(std::io::Error),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Url(e) => write!(f, "{e}"),
            FetchError::Resolve(host) => write!(f, "cannot resolve {host}"),
            FetchError::Connect(addr, e) => write!(f, "cannot connect to {addr}: {e}"),
            FetchError::NoRoots(why) => write!(f, "no certificates to check the server: {why}"),
            FetchError::Tls(e) => write!(f, "TLS: {e}"),
            FetchError::Status(code, reason) => write!(f, "the server answered {code} {reason}"),
            FetchError::TooManyRedirects => write!(f, "more than {MAX_REDIRECTS} redirects"),
            FetchError::TooBig => write!(f, "larger than {} MiB: not a bundle", MAX_BUNDLE >> 20),
            FetchError::Truncated { got, expected } => {
                write!(f, "the connection ended after {got} of {expected} bytes")
            }
            FetchError::Timeout => write!(f, "the server stopped answering"),
            FetchError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FetchError {}

impl From<HttpError> for FetchError {
    fn from(e: HttpError) -> FetchError {
        FetchError::Url(e)
    }
}

/// Downloads `url` (following redirects) into `to`; the bytes written.
pub async fn fetch(url: &Url, to: &Path) -> Result<u64, FetchError> {
    let mut url = url.clone();
    for _ in 0..=MAX_REDIRECTS {
        match get(&url, to).await? {
            Got::File(n) => return Ok(n),
            Got::Redirect(location) => url = url.join(&location)?,
        }
    }
    Err(FetchError::TooManyRedirects)
}

enum Got {
    File(u64),
    Redirect(String),
}

async fn get(url: &Url, to: &Path) -> Result<Got, FetchError> {
    let addr = resolve(url).await?;
    let tcp = within(TcpStream::connect(addr))
        .await?
        .map_err(|e| FetchError::Connect(addr, e))?;
    match url.scheme {
        Scheme::Http => exchange(tcp, url, to).await,
        Scheme::Https => {
            let name = rustls_pki_types::ServerName::try_from(url.host.clone())
                .map_err(|_| FetchError::Url(HttpError::BadUrl("not a TLS server name")))?;
            let connector = tokio_rustls::TlsConnector::from(client_config()?);
            let tls = within(connector.connect(name, tcp))
                .await?
                .map_err(FetchError::Tls)?;
            exchange(tls, url, to).await
        }
    }
}

async fn resolve(url: &Url) -> Result<SocketAddr, FetchError> {
    if let Ok(ip) = url.host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, url.port));
    }
    let resolver =
        HickoryResolve::from_system(TIMEOUT).map_err(|_| FetchError::Resolve(url.host.clone()))?;
    let dns = Dns::new(Arc::new(resolver), TIMEOUT);
    let ips = dns
        .ips(&url.host)
        .await
        .map_err(|_| FetchError::Resolve(url.host.clone()))?;
    ips.first()
        .map(|ip| SocketAddr::new(*ip, url.port))
        .ok_or_else(|| FetchError::Resolve(url.host.clone()))
}

fn client_config() -> Result<Arc<rustls::ClientConfig>, FetchError> {
    let file = std::env::var("SSL_CERT_FILE").unwrap_or_else(|_| trust::SYSTEM_CA_BUNDLE.into());
    let no_roots = |e: TrustError| FetchError::NoRoots(format!("{file}: {e}"));
    let pem = trust::read_bundle(&file).map_err(|e| FetchError::NoRoots(e.to_string()))?;
    trust::client_config(&pem).map_err(no_roots)
}

async fn within<F: std::future::Future>(f: F) -> Result<F::Output, FetchError> {
    tokio::time::timeout(TIMEOUT, f)
        .await
        .map_err(|_| FetchError::Timeout)
}

/// Sends the request and reads the head, then the body into `to`.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    url: &Url,
    to: &Path,
) -> Result<Got, FetchError> {
    within(s.write_all(url.request().as_bytes()))
        .await?
        .map_err(FetchError::Io)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut head = Vec::new();
    let (response, used) = loop {
        if let Some(parsed) = http::parse_head(&head)? {
            break parsed;
        }
        let n = read(&mut s, &mut buf).await?;
        if n == 0 {
            return Err(FetchError::Url(HttpError::BadResponse(
                "the connection ended in the head",
            )));
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
    };
    if (300..400).contains(&response.status)
        && let Some(location) = response.location
    {
        return Ok(Got::Redirect(location));
    }
    if response.status != 200 {
        return Err(FetchError::Status(response.status, response.reason));
    }
    if response.content_length.is_some_and(|n| n > MAX_BUNDLE) {
        return Err(FetchError::TooBig);
    }
    let mut file = tokio::fs::File::create(to).await.map_err(FetchError::Io)?;
    let mut first = head.get(used..).unwrap_or_default();
    if let Some(w) = response.content_length {
        first = first.get(..first.len().min(w as usize)).unwrap_or_default();
    }
    file.write_all(first).await.map_err(FetchError::Io)?;
    let mut got = first.len() as u64;
    let want = response.content_length;
    while want.is_none_or(|w| got < w) {
        let n = match read(&mut s, &mut buf).await {
            Ok(n) => n,
            // A TLS server that closes without close_notify: the end, when no length was given
            // (the signature check finds a short file anyway).
            Err(FetchError::Io(e)) if want.is_none() && is_unclean_end(&e) => 0,
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        got += n as u64;
        if got > MAX_BUNDLE {
            return Err(FetchError::TooBig);
        }
        file.write_all(buf.get(..n).unwrap_or_default())
            .await
            .map_err(FetchError::Io)?;
    }
    if let Some(expected) = want
        && got < expected
    {
        return Err(FetchError::Truncated { got, expected });
    }
    file.flush().await.map_err(FetchError::Io)?;
    Ok(Got::File(got.min(want.unwrap_or(got))))
}

async fn read<S: AsyncRead + Unpin>(s: &mut S, buf: &mut [u8]) -> Result<usize, FetchError> {
    within(s.read(buf)).await?.map_err(FetchError::Io)
}

fn is_unclean_end(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::UnexpectedEof
}
