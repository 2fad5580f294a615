//! Writing client commands (RFC 5321 §4.1.1, LMTP's LHLO from RFC 2033, DSN parameters from
//! RFC 3461). Each command is written whole, CRLF-terminated, into a caller's buffer.

use std::fmt::Write as _;

use crate::mail::{Notify, Ret};

/// The commands a client sends; with [`super::Pipeline`] they say what each reply answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Not a command: the server speaks first.
    Greeting,
    Ehlo,
    Lhlo,
    /// RFC 5321 §3.2: for a server that does not know EHLO.
    Helo,
    StartTls,
    Mail,
    /// The recipient's position in the transaction.
    Rcpt(usize),
    Data,
    /// The final `.`; LMTP answers it once per accepted recipient.
    EndOfData,
    Rset,
    Quit,
}

/// A command with its arguments.
#[derive(Debug, Clone, Copy)]
pub enum Command<'a> {
    /// EHLO, LHLO or HELO with this client's name.
    Hello(Verb, &'a str),
    StartTls,
    Mail(MailFrom<'a>),
    /// The recipient's position in the transaction, and the command.
    Rcpt(usize, RcptTo<'a>),
    Data,
    Rset,
    Quit,
}

impl Command<'_> {
    /// Which reply this command waits for.
    pub fn verb(&self) -> Verb {
        match self {
            Command::Hello(v, _) => *v,
            Command::StartTls => Verb::StartTls,
            Command::Mail(_) => Verb::Mail,
            Command::Rcpt(i, _) => Verb::Rcpt(*i),
            Command::Data => Verb::Data,
            Command::Rset => Verb::Rset,
            Command::Quit => Verb::Quit,
        }
    }

    /// Appends the command line to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut line = String::new();
        match self {
            Command::Hello(v, name) => {
                let verb = match v {
                    Verb::Lhlo => "LHLO",
                    Verb::Helo => "HELO",
                    _ => "EHLO",
                };
                let _ = write!(line, "{verb} {name}");
            }
            Command::StartTls => line.push_str("STARTTLS"),
            Command::Mail(m) => m.write(&mut line),
            Command::Rcpt(_, r) => r.write(&mut line),
            Command::Data => line.push_str("DATA"),
            Command::Rset => line.push_str("RSET"),
            Command::Quit => line.push_str("QUIT"),
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// `MAIL FROM` with the parameters the server offered.
#[derive(Debug, Clone, Copy, Default)]
pub struct MailFrom<'a> {
    pub sender: &'a str,
    /// SIZE=, when the server offers SIZE.
    pub size: Option<usize>,
    /// BODY=8BITMIME.
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
    /// RET=, when the server offers DSN.
    pub ret: Option<Ret>,
    /// ENVID=, when the server offers DSN.
    pub envid: Option<&'a str>,
}

impl MailFrom<'_> {
    fn write(&self, line: &mut String) {
        let _ = write!(line, "MAIL FROM:<{}>", self.sender);
        if let Some(size) = self.size {
            let _ = write!(line, " SIZE={size}");
        }
        if self.eight_bit_mime {
            line.push_str(" BODY=8BITMIME");
        }
        if self.smtputf8 {
            line.push_str(" SMTPUTF8");
        }
        match self.ret {
            Some(Ret::Full) => line.push_str(" RET=FULL"),
            Some(Ret::Headers) => line.push_str(" RET=HDRS"),
            None => {}
        }
        if let Some(id) = self.envid {
            let _ = write!(line, " ENVID={}", xtext(id));
        }
    }
}

/// `RCPT TO` with its DSN parameters, when the server offers DSN.
#[derive(Debug, Clone, Copy, Default)]
pub struct RcptTo<'a> {
    pub address: &'a str,
    pub notify: Option<Notify>,
    /// ORCPT= (address type, original address).
    pub orcpt: Option<&'a (String, String)>,
}

impl RcptTo<'_> {
    /// NOTIFY=SUCCESS is not passed on: Postern itself reports a successful hand-off
    /// ("relayed"), so the sender gets one success report, not two.
    fn write(&self, line: &mut String) {
        let _ = write!(line, "RCPT TO:<{}>", self.address);
        if let Some(notify) = self.notify.filter(|n| n.explicit) {
            let mut kinds = Vec::new();
            if notify.failure {
                kinds.push("FAILURE");
            }
            if notify.delay {
                kinds.push("DELAY");
            }
            if kinds.is_empty() {
                line.push_str(" NOTIFY=NEVER");
            } else {
                let _ = write!(line, " NOTIFY={}", kinds.join(","));
            }
        }
        if let Some((kind, addr)) = self.orcpt {
            let _ = write!(line, " ORCPT={};{}", xtext(kind), xtext(addr));
        }
    }
}

/// RFC 3461 §4 xtext: printable ASCII except `+` and `=` as is, everything else `+HH`.
pub fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "+{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(c: Command<'_>) -> String {
        let mut out = Vec::new();
        c.write_to(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn commands_carry_only_the_parameters_asked_for() {
        assert_eq!(
            line(Command::Hello(Verb::Lhlo, "gw.example")),
            "LHLO gw.example\r\n"
        );
        let mail = MailFrom {
            sender: "a@example.org",
            size: Some(42),
            eight_bit_mime: true,
            smtputf8: false,
            ret: Some(Ret::Headers),
            envid: Some("id+1=x"),
        };
        assert_eq!(
            line(Command::Mail(mail)),
            "MAIL FROM:<a@example.org> SIZE=42 BODY=8BITMIME RET=HDRS ENVID=id+2B1+3Dx\r\n"
        );
        let orcpt = ("rfc822".to_string(), "b c@example.com".to_string());
        let notify = Notify {
            explicit: true,
            success: true,
            failure: false,
            delay: false,
        };
        let rcpt = RcptTo {
            address: "b@example.com",
            notify: Some(notify),
            orcpt: Some(&orcpt),
        };
        assert_eq!(
            line(Command::Rcpt(0, rcpt)),
            "RCPT TO:<b@example.com> NOTIFY=NEVER ORCPT=rfc822;b+20c@example.com\r\n"
        );
        assert_eq!(line(Command::Data), "DATA\r\n");
    }
}
