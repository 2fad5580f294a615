//! The SMTP server's lines, worded as Postfix's smtpd writes them, so pflogsumm and an admin's
//! greps count connections, rejects by reason, and messages received:
//!
//! ```text
//! connect from mail.example.net[192.0.2.1]
//! NOQUEUE: reject: RCPT from mail.example.net[192.0.2.1]: 554 5.7.1 ...; from=<a@b> to=<c@d> proto=ESMTP helo=<mail.example.net>
//! 0000000000001: client=mail.example.net[192.0.2.1]
//! lost connection after DATA from mail.example.net[192.0.2.1]
//! disconnect from mail.example.net[192.0.2.1] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5
//! ```

use std::borrow::Cow;
use std::net::IpAddr;

use crate::mail::{QueueId, Reply};

/// `name[ip]`, as every smtpd line names the client; `unknown` without a verified name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub name: String,
    pub ip: Option<IpAddr>,
}

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = if self.name.is_empty() {
            "unknown"
        } else {
            &self.name
        };
        match self.ip {
            Some(ip) => write!(f, "{}[{ip}]", clean(name)),
            None => write!(f, "{}[unknown]", clean(name)),
        }
    }
}

/// `connect from NAME[IP]`.
pub fn connect_line(client: &Client) -> String {
    format!("connect from {client}")
}

/// What a refused RCPT was about.
pub struct RejectedRcpt<'a> {
    pub client: &'a Client,
    pub reply: &'a Reply,
    pub sender: &'a str,
    pub recipient: &'a str,
    /// `ESMTP`, `SMTP`, ...
    pub proto: &'a str,
    pub helo: &'a str,
}

/// `NOQUEUE: reject: RCPT from NAME[IP]: REPLY; from=<s> to=<r> proto=ESMTP helo=<h>`; `helo=`
/// is left out when the client gave none, as smtpd does.
pub fn reject_line(r: &RejectedRcpt<'_>) -> String {
    let mut line = format!(
        "NOQUEUE: reject: RCPT from {}: {}; from=<{}> to=<{}> proto={}",
        r.client,
        clean(&r.reply.to_string()),
        clean(r.sender),
        clean(r.recipient),
        clean(r.proto)
    );
    if !r.helo.is_empty() {
        line.push_str(&format!(" helo=<{}>", clean(r.helo)));
    }
    line
}

/// `QID: client=NAME[IP]`, and the SASL login when there was one.
pub fn client_line(qid: QueueId, client: &Client, sasl_username: Option<&str>) -> String {
    match sasl_username {
        Some(user) => format!(
            "{qid}: client={client}, sasl_method=PLAIN, sasl_username={}",
            clean(user)
        ),
        None => format!("{qid}: client={client}"),
    }
}

/// How a session ended without QUIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The client closed the connection.
    LostConnection,
    /// The client said nothing for `smtpd_timeout`.
    Timeout,
}

/// `lost connection after RCPT from NAME[IP]` or `timeout after DATA from NAME[IP]`.
pub fn ending_line(ending: Ending, after: &str, client: &Client) -> String {
    let what = match ending {
        Ending::LostConnection => "lost connection",
        Ending::Timeout => "timeout",
    };
    format!("{what} after {after} from {client}")
}

/// `disconnect from NAME[IP] ehlo=1 mail=1 ... commands=5`.
pub fn disconnect_line(client: &Client, commands: &str) -> String {
    format!("disconnect from {client} {commands}")
}

/// postscreen's `PREGREET after 0.5 from [IP]:PORT` for a client dropped for talking first.
pub fn pregreet_line(ip: IpAddr, port: u16, after: std::time::Duration) -> String {
    format!(
        "PREGREET after {:.2} from [{ip}]:{port}",
        after.as_secs_f64()
    )
}

fn clean(s: &str) -> Cow<'_, str> {
    super::format::clean_with(s, '?')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client {
            name: "mail.example.net".into(),
            ip: Some("192.0.2.1".parse().unwrap()),
        }
    }

    #[test]
    fn lines_read_as_postfix_writes_them() {
        let c = client();
        assert_eq!(connect_line(&c), "connect from mail.example.net[192.0.2.1]");
        let reply = Reply::new(
            554,
            [5, 7, 1],
            "Service unavailable; Client host [192.0.2.1] blocked using bl.example",
        );
        assert_eq!(
            reject_line(&RejectedRcpt {
                client: &c,
                reply: &reply,
                sender: "a@b.example",
                recipient: "user@example.com",
                proto: "ESMTP",
                helo: "mail.example.net",
            }),
            "NOQUEUE: reject: RCPT from mail.example.net[192.0.2.1]: 554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using bl.example; from=<a@b.example> to=<user@example.com> proto=ESMTP helo=<mail.example.net>"
        );
        let nameless = Client {
            name: String::new(),
            ip: c.ip,
        };
        assert_eq!(
            ending_line(Ending::LostConnection, "DATA", &nameless),
            "lost connection after DATA from unknown[192.0.2.1]"
        );
        assert_eq!(
            disconnect_line(&c, "ehlo=1 quit=1 commands=2"),
            "disconnect from mail.example.net[192.0.2.1] ehlo=1 quit=1 commands=2"
        );
        assert_eq!(
            client_line(QueueId(1), &c, Some("u@example.com")),
            format!(
                "{}: client=mail.example.net[192.0.2.1], sasl_method=PLAIN, sasl_username=u@example.com",
                QueueId(1)
            )
        );
    }
}
