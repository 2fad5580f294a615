//! The SMTP listeners: which kind each is, and the accept loop that hands connections to `inbound`.

use std::fmt;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::State;

/// What a listener is for, as Postfix's master.cf names the services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenerKind {
    /// Port 25: mail from the world.
    Smtp,
    /// Port 587: clients that authenticate.
    Submission,
    /// Port 465: submission with TLS from the first byte.
    Smtps,
}

impl fmt::Display for ListenerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ListenerKind::Smtp => "smtp",
            ListenerKind::Submission => "submission",
            ListenerKind::Smtps => "smtps",
        })
    }
}

/// Accepts connections until the task is aborted.
pub async fn serve(kind: ListenerKind, listener: TcpListener, state: Arc<State>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let state = state.clone();
                tokio::spawn(async move {
                    if let Err(e) = greet(stream, &state).await {
                        eprintln!("postern/{kind}: {peer}: {e}");
                    }
                });
            }
            Err(e) => {
                eprintln!("postern/{kind}: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Greets and closes politely: the SMTP session proper is `inbound`'s.
async fn greet(stream: tokio::net::TcpStream, state: &State) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    w.write_all(format!("220 {} ESMTP Postern\r\n", state.hostname).as_bytes())
        .await?;
    let mut lines = BufReader::new(r).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim().eq_ignore_ascii_case("quit") {
            w.write_all(b"221 2.0.0 Bye\r\n").await?;
            break;
        }
        w.write_all(b"421 4.3.2 Service not yet available, closing transmission channel\r\n")
            .await?;
        break;
    }
    Ok(())
}
