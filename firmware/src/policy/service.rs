//! `check_policy_service inet:host:port`: Postfix's policy delegation protocol (SMTPD_POLICY_README),
//! so postgrey, cbpolicyd, policyd-spf and the like work as they do beside Postfix. One request
//! per RCPT: `name=value` lines and an empty line; the answer is `action=...` and an empty line.
//! The action is one of access(5)'s: `OK`, `DUNNO`, `REJECT text`, `DEFER text`,
//! `DEFER_IF_PERMIT text`, `DEFER_IF_REJECT text`, `4NN text`, `5NN text`. A service that cannot
//! be reached, is too slow, or answers what this box does not do gets Postfix's
//! `smtpd_policy_service_default_action`: `451 4.3.5 Server configuration problem`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::config::restriction::PolicyService;

use super::dns::Dns;
use super::refusal::RcptRefusal;

/// `smtpd_policy_service_timeout` is 100 s in Postfix; a session here waits at most this long.
pub const SERVICE_TIMEOUT: Duration = Duration::from_secs(20);

/// The longest answer read from a service.
const ANSWER_MAX: usize = 4096;

/// What is sent about one RCPT.
pub struct Attributes<'a> {
    pub helo: &'a str,
    pub sender: &'a str,
    pub recipient: &'a str,
    pub client_address: Option<IpAddr>,
    /// The verified client name, or `unknown`.
    pub client_name: &'a str,
    /// The PTR name, or `unknown`.
    pub reverse_client_name: &'a str,
    pub sasl_username: Option<&'a str>,
    pub protocol: &'a str,
    pub tls: Option<&'a str>,
}

/// What the service said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Permit,
    Dunno,
    Refuse(RcptRefusal),
    DeferIfPermit(RcptRefusal),
}

/// Why the service gave no usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceError {
    /// The host name has no address.
    Unresolved,
    Connect,
    Timeout,
    /// The connection closed before an answer, or the answer was too long.
    Protocol,
    /// An action this box does not carry out (HOLD, DISCARD, FILTER, REDIRECT, PREPEND, ...).
    UnsupportedAction,
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ServiceError::Unresolved => "host not found",
            ServiceError::Connect => "connection refused",
            ServiceError::Timeout => "timeout",
            ServiceError::Protocol => "no answer (connection closed or answer too long)",
            ServiceError::UnsupportedAction => "unsupported action",
        })
    }
}

impl ServiceError {
    /// Postfix's default action for a service that failed.
    pub fn refusal(self) -> RcptRefusal {
        RcptRefusal::Service {
            code: 451,
            status: [4, 3, 5],
            text: "Server configuration problem".into(),
            recipient: None,
        }
    }
}

/// The request, as the protocol spells it.
pub fn request(a: &Attributes<'_>) -> String {
    let mut out = String::from("request=smtpd_access_policy\nprotocol_state=RCPT\n");
    let mut attr = |name: &str, value: &str| {
        // A value never spans lines: the protocol has no escaping.
        let value: String = value.chars().filter(|c| !c.is_control()).collect();
        out.push_str(name);
        out.push('=');
        out.push_str(&value);
        out.push('\n');
    };
    attr("protocol_name", a.protocol);
    attr("helo_name", a.helo);
    attr("queue_id", "");
    attr("sender", a.sender);
    attr("recipient", a.recipient);
    attr("recipient_count", "0");
    attr(
        "client_address",
        &a.client_address
            .map(|ip| ip.to_string())
            .unwrap_or_default(),
    );
    attr("client_name", a.client_name);
    attr("reverse_client_name", a.reverse_client_name);
    attr("instance", "");
    attr(
        "sasl_method",
        if a.sasl_username.is_some() {
            "PLAIN"
        } else {
            ""
        },
    );
    attr("sasl_username", a.sasl_username.unwrap_or(""));
    attr("encryption_protocol", a.tls.unwrap_or(""));
    out.push('\n');
    out
}

/// The verdict of an answer's `action=` line.
pub fn verdict(answer: &str, recipient: &str) -> Result<Verdict, ServiceError> {
    let action = answer
        .lines()
        .find_map(|l| l.strip_prefix("action="))
        .ok_or(ServiceError::Protocol)?
        .trim();
    let (word, text) = match action.split_once(char::is_whitespace) {
        Some((w, t)) => (w, t.trim()),
        None => (action, ""),
    };
    let refusal = |code: u16, status: [u8; 3], default: &str| {
        let (status, text) = split_status(text, status);
        RcptRefusal::Service {
            code,
            status,
            text: if text.is_empty() {
                default.into()
            } else {
                text.into()
            },
            recipient: Some(recipient.to_string()),
        }
    };
    Ok(match word.to_ascii_uppercase().as_str() {
        "OK" => Verdict::Permit,
        // DEFER_IF_REJECT only matters when something else rejects; the box then refuses anyway.
        "DUNNO" | "DEFER_IF_REJECT" => Verdict::Dunno,
        "REJECT" => Verdict::Refuse(refusal(554, [5, 7, 1], "Access denied")),
        "DEFER" => Verdict::Refuse(refusal(450, [4, 7, 1], "Access denied")),
        "DEFER_IF_PERMIT" => Verdict::DeferIfPermit(refusal(450, [4, 7, 1], "Service unavailable")),
        code if code.len() == 3 && (code.starts_with('4') || code.starts_with('5')) => {
            let Ok(n) = code.parse::<u16>() else {
                return Err(ServiceError::UnsupportedAction);
            };
            let class = if n >= 500 { 5 } else { 4 };
            Verdict::Refuse(refusal(n, [class, 7, 1], "Access denied"))
        }
        _ => return Err(ServiceError::UnsupportedAction),
    })
}

/// `4.7.1 text` → the status and the rest; the status class follows the reply code.
fn split_status(text: &str, default: [u8; 3]) -> ([u8; 3], &str) {
    let (first, rest) = text.split_once(' ').unwrap_or((text, ""));
    let parts: Vec<Option<u8>> = first.split('.').map(|p| p.parse().ok()).collect();
    match parts.as_slice() {
        [Some(c), Some(s), Some(d)] if *c == default[0] => ([*c, *s, *d], rest.trim()),
        _ => (default, text),
    }
}

/// Sends `request` to the service and reads its answer, within [`SERVICE_TIMEOUT`].
pub async fn ask(
    service: &PolicyService,
    request: &str,
    dns: &Dns,
) -> Result<String, ServiceError> {
    let exchange = async {
        let ip = match service.host.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => *dns
                .ips(&service.host)
                .await
                .map_err(|_| ServiceError::Unresolved)?
                .first()
                .ok_or(ServiceError::Unresolved)?,
        };
        let mut stream = TcpStream::connect(SocketAddr::new(ip, service.port))
            .await
            .map_err(|_| ServiceError::Connect)?;
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|_| ServiceError::Protocol)?;
        let mut reader = BufReader::new(stream);
        let mut answer = String::new();
        loop {
            let mut line = String::new();
            let n = reader
                .read_line(&mut line)
                .await
                .map_err(|_| ServiceError::Protocol)?;
            if n == 0 || answer.len() + n > ANSWER_MAX {
                return Err(ServiceError::Protocol);
            }
            if line.trim_end().is_empty() {
                return Ok(answer);
            }
            answer.push_str(&line);
        }
    };
    tokio::time::timeout(SERVICE_TIMEOUT, exchange)
        .await
        .unwrap_or(Err(ServiceError::Timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_the_attributes_on_one_line_each() {
        let text = request(&Attributes {
            helo: "mx.client.example",
            sender: "a@b.example",
            recipient: "user@example.com\r\nevil=1",
            client_address: Some("192.0.2.1".parse().unwrap()),
            client_name: "unknown",
            reverse_client_name: "unknown",
            sasl_username: None,
            protocol: "ESMTP",
            tls: None,
        });
        assert!(text.starts_with("request=smtpd_access_policy\nprotocol_state=RCPT\n"));
        assert!(
            text.contains("\nrecipient=user@example.comevil=1\n"),
            "{text}"
        );
        assert!(text.contains("\nclient_address=192.0.2.1\n"));
        assert!(text.ends_with("\n\n"));
    }

    #[test]
    fn actions_become_postfix_replies() {
        let to = "user@example.com";
        let reply = |answer: &str| match verdict(answer, to) {
            Ok(Verdict::Refuse(r)) | Ok(Verdict::DeferIfPermit(r)) => r.reply().to_string(),
            other => format!("{other:?}"),
        };
        assert_eq!(verdict("action=DUNNO\n", to), Ok(Verdict::Dunno));
        assert_eq!(verdict("action=ok\n", to), Ok(Verdict::Permit));
        assert_eq!(
            reply("action=REJECT not today\n"),
            "554 5.7.1 <user@example.com>: Recipient address rejected: not today"
        );
        assert_eq!(
            reply("action=DEFER_IF_PERMIT Greylisted, see http://postgrey.example/\n"),
            "450 4.7.1 <user@example.com>: Recipient address rejected: Greylisted, see http://postgrey.example/"
        );
        assert_eq!(
            reply("action=550 5.1.1 no such user\n"),
            "550 5.1.1 <user@example.com>: Recipient address rejected: no such user"
        );
        assert_eq!(
            verdict("action=HOLD\n", to),
            Err(ServiceError::UnsupportedAction)
        );
        assert_eq!(verdict("nothing\n", to), Err(ServiceError::Protocol));
        assert_eq!(
            ServiceError::Timeout.refusal().reply().to_string(),
            "451 4.3.5 Server configuration problem"
        );
    }
}
