//! The spam score: the message sent to spamd (SpamAssassin) with SYMBOLS, and TELL for
//! training, within a deadline. [`protocol`] is the wire format without sockets.

pub mod protocol;

use std::time::Duration;

use super::scanner::{self, ScannerError};
use super::stored::StoredMessage;
use crate::config::ScannerAddress;
use protocol::{Class, SpamdReply};

/// Scores `message`: the SpamAssassin score and the rules that hit.
pub async fn check(
    addr: &ScannerAddress,
    message: &dyn StoredMessage,
    deadline: Duration,
) -> Result<SpamdReply, ScannerError> {
    let head = protocol::symbols_request(message.size() as usize);
    let reply = ask(addr, head, message, deadline).await?;
    if reply.score.is_none() {
        return Err(ScannerError::Reply("spamd gave no score".into()));
    }
    Ok(reply)
}

/// Teaches spamd's Bayes database that `message` is `class` (spamd needs `--allow-tell`).
pub async fn tell(
    addr: &ScannerAddress,
    message: &dyn StoredMessage,
    class: Class,
    deadline: Duration,
) -> Result<(), ScannerError> {
    let head = protocol::tell_request(message.size() as usize, class);
    let reply = ask(addr, head, message, deadline).await?;
    match reply.did_set {
        Some(_) => Ok(()),
        None => Err(ScannerError::Reply("spamd did not learn it".into())),
    }
}

async fn ask(
    addr: &ScannerAddress,
    head: Vec<u8>,
    message: &dyn StoredMessage,
    deadline: Duration,
) -> Result<SpamdReply, ScannerError> {
    let exchange = async {
        let mut s = scanner::connect(addr).await?;
        scanner::send_request(&mut s, &head, message).await?;
        // spamd answers, then closes.
        let reply = scanner::read_reply(&mut s, protocol::MAX_REPLY, |_| false).await?;
        protocol::parse_reply(&reply).map_err(|e| ScannerError::Reply(e.to_string()))
    };
    tokio::time::timeout(deadline, exchange)
        .await
        .map_err(|_| ScannerError::Timeout)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::stored::MessageBytes;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn a_silent_spamd_ends_at_the_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = ScannerAddress::Tcp(listener.local_addr().unwrap());
        let hold = tokio::spawn(async move { listener.accept().await.map(|(s, _)| s) });
        let started = std::time::Instant::now();
        let message = MessageBytes(b"Subject: x\r\n\r\nhi");
        let verdict = check(&addr, &message, Duration::from_millis(300)).await;
        assert_eq!(verdict, Err(ScannerError::Timeout));
        // A hang is what this catches: the margin is for a busy machine.
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(hold);
    }
}
