//! `postern diag smtp HOST[:PORT]`: connect, read the greeting, EHLO, QUIT, and show the
//! conversation as a transcript (`<<<` from the server, `>>>` from the box), within a deadline,
//! so an admin sees what the next hop says to this box (a 554 greeting, a missing STARTTLS, a
//! firewall that lets nothing through).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::dns::resolver;
use crate::admin::Reply;
use crate::delivery::Dns;
use crate::smtp::client::{ReplyError, ReplyParser, ServerReply};

/// Why the conversation stopped.
#[derive(Debug)]
pub enum SmtpTestError {
    BadTarget(String),
    Resolve(String),
    NoAddress(String),
    Connect(std::io::Error),
    Io(std::io::Error),
    /// The server closed the connection before its reply was complete.
    Closed,
    Malformed(ReplyError),
    /// The server answered with a refusal at this step.
    Refused {
        step: &'static str,
        code: u16,
    },
    Deadline(Duration),
}

impl fmt::Display for SmtpTestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SmtpTestError::BadTarget(t) => write!(
                f,
                "{t:?} is not HOST, HOST:PORT or [ADDRESS]:PORT (e.g. mx.example.com:25)"
            ),
            SmtpTestError::Resolve(why) => write!(f, "cannot resolve: {why}"),
            SmtpTestError::NoAddress(host) => write!(f, "{host} has no address"),
            SmtpTestError::Connect(e) => write!(f, "cannot connect: {e}"),
            SmtpTestError::Io(e) => write!(f, "connection lost: {e}"),
            SmtpTestError::Closed => f.write_str("the server closed the connection"),
            SmtpTestError::Malformed(e) => write!(f, "not an SMTP server: {e}"),
            SmtpTestError::Refused { step, code } => {
                write!(f, "the server refused the {step} ({code})")
            }
            SmtpTestError::Deadline(d) => {
                write!(f, "no answer: gave up after {} s", d.as_secs())
            }
        }
    }
}

impl std::error::Error for SmtpTestError {}

/// `HOST`, `HOST:PORT`, `[HOST]:PORT` (Postfix's relay syntax; an IPv6 address needs the
/// brackets); the port is 25 when none is given.
pub fn parse_target(target: &str) -> Result<(String, u16), SmtpTestError> {
    let bad = || SmtpTestError::BadTarget(target.to_string());
    let (host, port) = match target.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            match after {
                "" => (host, None),
                p => (host, Some(p.strip_prefix(':').ok_or_else(bad)?)),
            }
        }
        None => match target.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            _ => (target, None),
        },
    };
    let port = match port {
        None => 25,
        Some(p) => p.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(bad)?,
    };
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"-._:".contains(&b);
    if host.is_empty() || host.len() > 253 || !host.bytes().all(plain) {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// Runs the test; the transcript, and at its end what went wrong if anything did.
pub async fn run(servers: &[SocketAddr], helo: &str, target: &str, deadline: Duration) -> Reply {
    let mut transcript = String::new();
    let outcome = match parse_target(target) {
        Err(e) => Err(e),
        Ok((host, port)) => tokio::time::timeout(
            deadline,
            converse(servers, helo, &host, port, &mut transcript),
        )
        .await
        .unwrap_or(Err(SmtpTestError::Deadline(deadline))),
    };
    match outcome {
        Ok(()) => Reply::ok(transcript),
        Err(e) => Reply::failed(format!("{transcript}error: {e}\n")),
    }
}

async fn addresses(servers: &[SocketAddr], host: &str) -> Result<Vec<IpAddr>, SmtpTestError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let (dns, _) = resolver(servers).map_err(SmtpTestError::Resolve)?;
    let ips = dns
        .ips(host)
        .await
        .map_err(|e| SmtpTestError::Resolve(format!("{e:?}")))?;
    match ips.is_empty() {
        true => Err(SmtpTestError::NoAddress(host.to_string())),
        false => Ok(ips),
    }
}

async fn converse(
    servers: &[SocketAddr],
    helo: &str,
    host: &str,
    port: u16,
    transcript: &mut String,
) -> Result<(), SmtpTestError> {
    let ips = addresses(servers, host).await?;
    let mut last = None;
    let mut stream = None;
    for ip in ips {
        *transcript += &format!("connecting to {host}[{ip}]:{port}\n");
        match TcpStream::connect((ip, port)).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => {
                *transcript += &format!("  {e}\n");
                last = Some(e);
            }
        }
    }
    let Some(mut stream) = stream else {
        return Err(SmtpTestError::Connect(
            last.unwrap_or_else(|| std::io::ErrorKind::NotFound.into()),
        ));
    };
    let mut parser = ReplyParser::new();
    let greeting = read_reply(&mut stream, &mut parser, transcript).await?;
    if greeting.reply.code != 220 {
        let _ = say(&mut stream, "QUIT", transcript).await;
        return Err(SmtpTestError::Refused {
            step: "connection",
            code: greeting.reply.code,
        });
    }
    say(&mut stream, &format!("EHLO {helo}"), transcript).await?;
    let ehlo = read_reply(&mut stream, &mut parser, transcript).await?;
    say(&mut stream, "QUIT", transcript).await?;
    // A server that hangs up on QUIT without 221 has still answered what matters.
    let _ = read_reply(&mut stream, &mut parser, transcript).await;
    match ehlo.reply.code {
        250 => Ok(()),
        code => Err(SmtpTestError::Refused { step: "EHLO", code }),
    }
}

async fn say(
    stream: &mut TcpStream,
    line: &str,
    transcript: &mut String,
) -> Result<(), SmtpTestError> {
    *transcript += &format!(">>> {line}\n");
    stream
        .write_all(format!("{line}\r\n").as_bytes())
        .await
        .map_err(SmtpTestError::Io)
}

/// The next reply, its lines added to the transcript as sent (control characters shown as `?`).
async fn read_reply(
    stream: &mut TcpStream,
    parser: &mut ReplyParser,
    transcript: &mut String,
) -> Result<ServerReply, SmtpTestError> {
    loop {
        if let Some(reply) = parser.next_reply().map_err(SmtpTestError::Malformed)? {
            let last = reply.lines.len().saturating_sub(1);
            for (i, line) in reply.lines.iter().enumerate() {
                let sep = if i == last { ' ' } else { '-' };
                let line: String = line
                    .chars()
                    .map(|c| if c.is_control() { '?' } else { c })
                    .collect();
                *transcript += &format!("<<< {}{sep}{line}\n", reply.reply.code);
            }
            return Ok(reply);
        }
        // Straight into the parser, as delivery reads its replies.
        let n = stream
            .read_buf(parser.inbox(4096))
            .await
            .map_err(SmtpTestError::Io)?;
        if n == 0 {
            return Err(SmtpTestError::Closed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::net::TcpListener;

    /// A server that greets with `greeting` and answers EHLO and QUIT.
    async fn server(greeting: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            let (r, mut w) = sock.into_split();
            let mut lines = BufReader::new(r).lines();
            if greeting.is_empty() {
                // Never greets: the client's deadline ends it.
                let _ = lines.next_line().await;
                return;
            }
            w.write_all(greeting.as_bytes()).await.unwrap();
            while let Ok(Some(line)) = lines.next_line().await {
                let answer = match line.split(' ').next().unwrap_or("") {
                    "EHLO" => "250-sink.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
                    "QUIT" => "221 2.0.0 Bye\r\n",
                    _ => "502 5.5.2 What?\r\n",
                };
                w.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        port
    }

    #[tokio::test]
    async fn a_transcript_of_greeting_ehlo_and_quit() {
        let port = server("220 sink.example ESMTP\r\n").await;
        let r = run(
            &[],
            "mx1.example.com",
            &format!("127.0.0.1:{port}"),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(r.exit, 0, "{}", r.text);
        assert_eq!(
            r.text,
            format!(
                "connecting to 127.0.0.1[127.0.0.1]:{port}\n\
                 <<< 220 sink.example ESMTP\n\
                 >>> EHLO mx1.example.com\n\
                 <<< 250-sink.example\n\
                 <<< 250-PIPELINING\n\
                 <<< 250 STARTTLS\n\
                 >>> QUIT\n\
                 <<< 221 2.0.0 Bye\n"
            )
        );
    }

    #[tokio::test]
    async fn a_refusing_greeting_a_silent_server_and_a_closed_port() {
        let port = server("554 5.7.1 go away\r\n").await;
        let r = run(
            &[],
            "mx1.example.com",
            &format!("[127.0.0.1]:{port}"),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(r.exit, 1);
        assert!(
            r.text.contains("<<< 554 5.7.1 go away\n>>> QUIT\n"),
            "{}",
            r.text
        );
        assert!(
            r.text
                .ends_with("error: the server refused the connection (554)\n"),
            "{}",
            r.text
        );

        let port = server("").await;
        let r = run(
            &[],
            "mx1.example.com",
            &format!("127.0.0.1:{port}"),
            Duration::from_millis(300),
        )
        .await;
        assert_eq!(r.exit, 1);
        assert!(
            r.text.ends_with("error: no answer: gave up after 0 s\n"),
            "{}",
            r.text
        );

        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let r = run(
            &[],
            "mx1.example.com",
            &format!("127.0.0.1:{port}"),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(r.exit, 1);
        assert!(r.text.contains("error: cannot connect: "), "{}", r.text);
    }

    #[test]
    fn targets_as_relay_hosts_are_written() {
        let ok = |t: &str| parse_target(t).unwrap();
        assert_eq!(ok("mx.example.com"), ("mx.example.com".into(), 25));
        assert_eq!(ok("mx.example.com:587"), ("mx.example.com".into(), 587));
        assert_eq!(ok("[192.0.2.1]:2525"), ("192.0.2.1".into(), 2525));
        assert_eq!(ok("[2001:db8::1]:25"), ("2001:db8::1".into(), 25));
        assert_eq!(ok("2001:db8::1"), ("2001:db8::1".into(), 25));
        for bad in [
            "", "mx:0", "mx:99999", "mx:x", "[mx", "[mx]x", "m x:25", "a;b",
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }
}
