//! The virus scan: the message streamed to clamd over INSTREAM (TCP or unix socket), in chunks,
//! within a deadline. [`protocol`] is the wire format without sockets.

pub mod protocol;

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::scanner::{self, ScannerError};
use super::stored::{Pieces, StoredMessage};
use crate::config::ScannerAddress;
use protocol::ScanResult;

/// Scans `message` with the clamd at `addr`, one INSTREAM chunk per piece read (at most
/// [`super::stored::PIECE`], clamdscan's size). The whole exchange, connect included, ends by
/// `deadline`. A message longer than `stream_max` (clamd's StreamMaxLength) is not sent: clamd
/// would stop reading and scan only its start.
pub async fn scan(
    addr: &ScannerAddress,
    message: &dyn StoredMessage,
    stream_max: u64,
    deadline: Duration,
) -> Result<ScanResult, ScannerError> {
    if message.size() > stream_max {
        return Err(ScannerError::TooBig);
    }
    tokio::time::timeout(deadline, exchange(addr, message))
        .await
        .map_err(|_| ScannerError::Timeout)?
}

async fn exchange(
    addr: &ScannerAddress,
    message: &dyn StoredMessage,
) -> Result<ScanResult, ScannerError> {
    let mut s = scanner::connect(addr).await?;
    let sent = send(&mut s, message).await;
    // clamd may answer early (a size limit) and close; its answer says more than a broken pipe.
    let reply = scanner::read_reply(&mut s, protocol::MAX_REPLY, |r| r.contains(&0)).await;
    match (sent, reply) {
        (_, Ok(r)) if !r.is_empty() => {
            protocol::parse_reply(&r).map_err(|e| ScannerError::Reply(e.to_string()))
        }
        (Err(e), _) | (Ok(()), Err(e)) => Err(e),
        (Ok(()), Ok(_)) => Err(ScannerError::Reply("clamd closed without an answer".into())),
    }
}

async fn send(
    s: &mut Box<dyn scanner::Stream>,
    message: &dyn StoredMessage,
) -> Result<(), ScannerError> {
    let broken = |e: std::io::Error| ScannerError::Io(e.kind());
    s.write_all(protocol::INSTREAM).await.map_err(broken)?;
    let mut pieces = Pieces::new(message);
    while let Some(chunk) = pieces
        .next_piece()
        .await
        .map_err(ScannerError::Unreadable)?
    {
        s.write_all(&protocol::chunk_header(chunk.len()))
            .await
            .map_err(broken)?;
        s.write_all(&chunk).await.map_err(broken)?;
    }
    s.write_all(&protocol::END_OF_STREAM)
        .await
        .map_err(broken)?;
    s.flush().await.map_err(broken)
}

#[cfg(test)]
mod tests {
    use super::super::stored::{MessageBytes, PIECE as CHUNK};
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, UnixListener};

    /// A clamd stand-in on a unix socket: reads the INSTREAM request to its end, answers `reply`.
    async fn fake_unix_clamd(path: std::path::PathBuf, reply: &'static [u8]) -> Vec<u8> {
        let listener = UnixListener::bind(&path).unwrap();
        let (mut s, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.ends_with(&protocol::END_OF_STREAM) || got.len() < 14 {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        s.write_all(reply).await.unwrap();
        got
    }

    #[tokio::test]
    async fn unix_socket_and_chunk_framing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clamd.sock");
        let server = tokio::spawn(fake_unix_clamd(path.clone(), b"stream: Test.Sig FOUND\0"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let message = vec![b'x'; CHUNK + 10];
        let addr = ScannerAddress::Unix(path);
        let verdict = scan(
            &addr,
            &MessageBytes(&message),
            1 << 20,
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(verdict, Ok(ScanResult::Infected("Test.Sig".into())));
        let sent = server.await.unwrap();
        let mut expected = protocol::INSTREAM.to_vec();
        expected.extend_from_slice(&protocol::chunk_header(CHUNK));
        expected.extend_from_slice(&message[..CHUNK]);
        expected.extend_from_slice(&protocol::chunk_header(10));
        expected.extend_from_slice(&message[CHUNK..]);
        expected.extend_from_slice(&protocol::END_OF_STREAM);
        assert_eq!(sent, expected);
    }

    #[tokio::test]
    async fn silence_down_and_too_big_give_no_verdict() {
        // Accepts and never answers: the deadline ends it.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = ScannerAddress::Tcp(listener.local_addr().unwrap());
        let hold = tokio::spawn(async move { listener.accept().await.map(|(s, _)| s) });
        let started = std::time::Instant::now();
        let verdict = scan(&addr, &MessageBytes(b"hi"), 100, Duration::from_millis(300)).await;
        assert_eq!(verdict, Err(ScannerError::Timeout));
        // A hang is what this catches: the margin is for a busy machine.
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(hold);

        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gone = ScannerAddress::Tcp(closed.local_addr().unwrap());
        drop(closed);
        let verdict = scan(&gone, &MessageBytes(b"hi"), 100, Duration::from_secs(5)).await;
        assert!(
            matches!(verdict, Err(ScannerError::Connect(_))),
            "{verdict:?}"
        );

        let verdict = scan(&gone, &MessageBytes(&[0; 101]), 100, Duration::from_secs(5)).await;
        assert_eq!(verdict, Err(ScannerError::TooBig));
    }
}
