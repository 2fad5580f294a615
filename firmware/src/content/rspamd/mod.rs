//! The spam score from rspamd: the message POSTed to `/checkv2`, and to `/learnspam` or
//! `/learnham` for training, each within a deadline. [`protocol`] is the wire format without
//! sockets.

pub mod protocol;

use std::time::Duration;

use super::scanner::{self, Class, ScannerError};
use super::stored::{MessageBytes, StoredMessage};
use crate::config::ScannerAddress;
use crate::config::rspamd_url::RspamdUrl;
use crate::mail::Envelope;
use protocol::{CheckReply, Facts, LearnReply};

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
    url: RspamdUrl,
    message: &dyn StoredMessage,
    facts: &Facts,
    deadline: Duration,
) -> Result<CheckReply, ScannerError> {
    let head = protocol::check_request(&url.addr.to_string(), message.size() as usize, facts);
    let reply = ask(url, head, message, deadline).await?;
    protocol::parse_check_reply(&reply).map_err(|e| ScannerError::Reply(e.to_string()))
}

/// Teaches rspamd's Bayes classifier that `message` is `class` (the controller worker only).
pub async fn learn(
    url: RspamdUrl,
    message: &[u8],
    class: Class,
    deadline: Duration,
) -> Result<LearnReply, ScannerError> {
    let head = protocol::learn_request(&url.addr.to_string(), message.len(), class);
    let reply = ask(url, head, &MessageBytes(message), deadline).await?;
    protocol::parse_learn_reply(&reply).map_err(|e| ScannerError::Reply(e.to_string()))
}

async fn ask(
    url: RspamdUrl,
    head: Vec<u8>,
    message: &dyn StoredMessage,
    deadline: Duration,
) -> Result<Vec<u8>, ScannerError> {
    let exchange = async {
        let mut s = scanner::connect(&ScannerAddress::Tcp(url.addr)).await?;
        scanner::send_request(&mut s, &head, message).await?;
        scanner::read_reply(&mut s, protocol::MAX_REPLY, protocol::is_complete).await
    };
    tokio::time::timeout(deadline, exchange)
        .await
        .map_err(|_| ScannerError::Timeout)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn a_silent_rspamd_ends_at_the_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = RspamdUrl {
            addr: listener.local_addr().unwrap(),
        };
        let hold = tokio::spawn(async move { listener.accept().await.map(|(s, _)| s) });
        let started = std::time::Instant::now();
        let verdict = check(
            url,
            &MessageBytes(b"Subject: x\r\n\r\nhi"),
            &Facts::default(),
            Duration::from_millis(300),
        )
        .await;
        assert_eq!(verdict, Err(ScannerError::Timeout));
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(hold);
    }

    /// rspamd keeps the connection open after its answer: the answer's length ends the read.
    #[tokio::test]
    async fn the_answer_ends_at_its_length_not_at_close() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = RspamdUrl {
            addr: listener.local_addr().unwrap(),
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
            url,
            &MessageBytes(b"Subject: x\r\n\r\nhi"),
            &Facts::default(),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
        assert_eq!((reply.score, reply.symbols.len()), (3.5, 1));
        server.abort();
    }
}
