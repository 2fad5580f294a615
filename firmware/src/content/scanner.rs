//! What the scanner clients (clamd, spamd, rspamd) share: the connection to a daemon at a
//! [`ScannerAddress`], and why a scan did not give a verdict.

use crate::spool::SpoolError;
use std::fmt;
use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use super::stored::{Pieces, StoredMessage};
use crate::config::ScannerAddress;

/// Why a scanner gave no verdict. The content stage then tempfails or accepts unscanned, as set.
#[derive(Debug, Clone, PartialEq)]
pub enum ScannerError {
    /// Nobody answered at the address (refused, no such socket).
    Connect(io::ErrorKind),
    /// The connection broke mid-scan.
    Io(io::ErrorKind),
    /// No answer within the deadline.
    Timeout,
    /// The daemon answered with an error or with something unreadable.
    Reply(String),
    /// The message is bigger than the scanner takes (clamd's StreamMaxLength, spamd's limit).
    TooBig,
    /// The message could not be read back from the spool to be sent.
    Unreadable(SpoolError),
    /// No TLS with a scanner behind `https://`.
    Tls(TlsFailure),
    /// rspamd refused the request for want of the right `posternRspamdPassword`.
    Password(PasswordFailure),
}

/// Why there was no TLS session with the scanner.
#[derive(Debug, Clone, PartialEq)]
pub enum TlsFailure {
    /// The box's trust store (`SSL_CERT_FILE`, else the system bundle) could not be read.
    NoTrustStore,
    /// The handshake failed: most often the server's certificate (its issuer, the address it
    /// names).
    Handshake(rustls::Error),
}

/// How the password was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordFailure {
    /// One was sent and refused.
    Refused,
    /// None is set and rspamd wants one.
    Wanted,
}

impl fmt::Display for ScannerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScannerError::Connect(kind) => write!(f, "cannot connect: {kind}"),
            ScannerError::Io(kind) => write!(f, "connection broken: {kind}"),
            ScannerError::Timeout => f.write_str("timed out"),
            ScannerError::Reply(why) => f.write_str(why),
            ScannerError::TooBig => f.write_str("message larger than the scanner's limit"),
            ScannerError::Unreadable(e) => write!(f, "message not read back: {e}"),
            ScannerError::Tls(TlsFailure::NoTrustStore) => {
                f.write_str("TLS: no trusted certificates (SSL_CERT_FILE or the system bundle)")
            }
            ScannerError::Tls(TlsFailure::Handshake(e)) => write!(f, "TLS: {e}"),
            ScannerError::Password(PasswordFailure::Refused) => {
                f.write_str("password refused: check posternRspamdPassword")
            }
            ScannerError::Password(PasswordFailure::Wanted) => {
                f.write_str("a password is required: set posternRspamdPassword")
            }
        }
    }
}

impl std::error::Error for ScannerError {}

/// What a spam scanner is taught: training mail says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Spam,
    Ham,
}

impl Class {
    /// As the log and the training header say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Spam => "spam",
            Class::Ham => "ham",
        }
    }
}

/// A connection to a scanner daemon, TCP or unix socket.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub async fn connect(addr: &ScannerAddress) -> Result<Box<dyn Stream>, ScannerError> {
    let refused = |e: io::Error| ScannerError::Connect(e.kind());
    Ok(match addr {
        ScannerAddress::Tcp(a) => {
            let s = TcpStream::connect(a).await.map_err(refused)?;
            // Small writes of a request must not wait for an ACK (Nagle).
            let _ = s.set_nodelay(true);
            Box::new(s)
        }
        ScannerAddress::Unix(p) => Box::new(UnixStream::connect(p).await.map_err(refused)?),
    })
}

/// Sends a request: `head`, then `message` read back a piece at a time, then a flush. Both
/// spam scanners take the message as it is after a header of their own.
pub async fn send_request(
    stream: &mut (impl AsyncWrite + Unpin + ?Sized),
    head: &[u8],
    message: &dyn StoredMessage,
) -> Result<(), ScannerError> {
    let broken = |e: io::Error| ScannerError::Io(e.kind());
    stream.write_all(head).await.map_err(broken)?;
    let mut pieces = Pieces::new(message);
    while let Some(piece) = pieces
        .next_piece()
        .await
        .map_err(ScannerError::Unreadable)?
    {
        stream.write_all(&piece).await.map_err(broken)?;
    }
    stream.flush().await.map_err(broken)
}

/// Reads until `done` says the answer is complete, EOF, or `max` bytes (then the reply is
/// refused as too long: no daemon of ours writes that much).
pub async fn read_reply(
    stream: &mut (impl AsyncRead + Unpin + ?Sized),
    max: usize,
    done: impl Fn(&[u8]) -> bool,
) -> Result<Vec<u8>, ScannerError> {
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| ScannerError::Io(e.kind()))?;
        if n == 0 {
            return Ok(reply);
        }
        reply.extend_from_slice(&buf[..n]);
        if reply.len() > max {
            return Err(ScannerError::Reply("reply too long".into()));
        }
        if done(&reply) {
            return Ok(reply);
        }
    }
}
