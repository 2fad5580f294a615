//! The notices of a refused virus, as amavisd-new sends them: one to the admin
//! (`zimbraVirusWarnAdmin`), one to the recipients (`zimbraVirusWarnRecipient`), naming the virus,
//! the sender and the subject. Never one to the sender: a virus forges the sender's address, and
//! the client that sent it was refused already (no backscatter).
//!
//! This builds the messages; the inbound stage queues them, from the null sender so a notice
//! that cannot be delivered bounces nowhere.

use std::net::IpAddr;

use mail_builder::MessageBuilder;
use mail_builder::headers::date::Date;
use mail_builder::headers::raw::Raw;
use mail_parser::MessageParser;

use crate::mail::QueueId;

/// Who a notice is for: they are worded differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Admin,
    Recipients,
}

/// What the notices say of the refused message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedVirus<'a> {
    pub qid: QueueId,
    pub signature: &'a str,
    /// The reverse path as given (maybe forged); empty for the null sender.
    pub sender: &'a str,
    pub recipients: Vec<&'a str>,
    pub client: Option<IpAddr>,
    /// The message's Subject, decoded, if it had one.
    pub subject: Option<String>,
    /// The box's name: the notices come from its postmaster.
    pub hostname: &'a str,
    /// Seconds since the Unix epoch.
    pub now: u64,
}

/// The Subject of a header section, decoded (RFC 2047).
pub fn subject_of(head: &[u8]) -> Option<String> {
    let parsed = MessageParser::default().parse_headers(head)?;
    parsed.subject().map(str::to_string)
}

/// The notice for `audience`, to `to`.
pub fn notice(v: &RefusedVirus<'_>, audience: Audience, to: &[&str]) -> Option<Vec<u8>> {
    let signature = one_line(v.signature, 100);
    let sender = one_line(v.sender, 256);
    let client = v
        .client
        .map_or_else(|| "unknown".to_string(), |ip| format!("[{ip}]"));
    let subject = match audience {
        Audience::Admin => format!("VIRUS ({signature}) in mail FROM {client} <{sender}>"),
        Audience::Recipients => {
            format!("VIRUS ({signature}) IN MAIL TO YOU (from <{sender}>)")
        }
    };
    let intro = match audience {
        Audience::Admin => "A message carrying a virus was refused at the end of data.",
        Audience::Recipients => {
            "A message to you was found to carry a virus and was refused: it was not delivered \
             and there is nothing to open."
        }
    };
    let recipients: Vec<String> = v
        .recipients
        .iter()
        .map(|r| format!("<{}>", one_line(r, 256)))
        .collect();
    let body = format!(
        "{intro}\n\n\
Virus:      {signature}\n\
Sender:     <{sender}> (may be forged; not told)\n\
Client:     {client}\n\
Recipients: {}\n\
Subject:    {}\n\
Queue ID:   {}\n",
        recipients.join(", "),
        v.subject
            .as_deref()
            .map_or_else(|| "(none)".into(), |s| one_line(s, 200)),
        v.qid,
    );
    let postmaster = format!("postmaster@{}", v.hostname);
    let builder = MessageBuilder::new()
        .from(("Content filter", postmaster.as_str()))
        .to(to.to_vec());
    // Plain ASCII stays readable to grep; anything else is encoded (RFC 2047).
    let builder = if subject.is_ascii() {
        builder.header("Subject", Raw::new(subject))
    } else {
        builder.subject(subject)
    };
    builder
        .date(Date::new(i64::try_from(v.now).unwrap_or(0)))
        .message_id(format!("{}.{}.virus@{}", v.qid, v.now, v.hostname))
        .header("Auto-Submitted", Raw::new("auto-generated"))
        .text_body(body)
        .write_to_vec()
        .ok()
}

/// Text from the sender's side on one line, printable, at most `max` characters.
fn one_line(text: &str, max: usize) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(max)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> RefusedVirus<'static> {
        RefusedVirus {
            qid: "1M8S8E2260000".parse().unwrap(),
            signature: "Eicar-Test-Signature",
            sender: "forged@outside.example",
            recipients: vec!["user@example.com"],
            client: Some("192.0.2.7".parse().unwrap()),
            subject: subject_of(
                b"From: x@y.example\r\nSubject: =?UTF-8?Q?caf=C3=A9_files?=\r\n\r\n",
            ),
            hostname: "mx.example.com",
            now: 1_764_583_200,
        }
    }

    #[test]
    fn notices_name_the_virus_the_sender_and_the_subject() {
        let v = refused();
        assert_eq!(v.subject.as_deref(), Some("café files"));
        let admin = String::from_utf8(notice(&v, Audience::Admin, &["admin@example.com"]).unwrap())
            .unwrap();
        // Unfolded, as a reader of the field sees it.
        let unfolded = admin.replace("\r\n ", " ");
        assert!(
            unfolded.contains(
                "Subject: VIRUS (Eicar-Test-Signature) in mail FROM [192.0.2.7] <forged@outside.example>"
            ),
            "{admin}"
        );
        assert!(
            admin.contains("From: \"Content filter\" <postmaster@mx.example.com>"),
            "{admin}"
        );
        assert!(admin.contains("To: <admin@example.com>"), "{admin}");
        assert!(admin.contains("Auto-Submitted: auto-generated"), "{admin}");
        let parsed = MessageParser::default().parse(admin.as_bytes()).unwrap();
        let text = parsed.body_text(0).unwrap();
        assert!(text.contains("Subject:    café files"), "{text}");
        assert!(text.contains("Recipients: <user@example.com>"), "{text}");
        let to_user = notice(&v, Audience::Recipients, &["user@example.com"]).unwrap();
        let to_user = String::from_utf8(to_user).unwrap().replace("\r\n ", " ");
        assert!(
            to_user.contains("Subject: VIRUS (Eicar-Test-Signature) IN MAIL TO YOU (from <forged@outside.example>)"),
            "{to_user}"
        );
    }

    #[test]
    fn hostile_fields_stay_on_their_line() {
        let mut v = refused();
        v.signature = "Evil\r\nBcc: victim@example.org";
        v.subject = Some("hi\r\nBcc: victim@example.org".into());
        let admin =
            String::from_utf8(notice(&v, Audience::Admin, &["a@example.com"]).unwrap()).unwrap();
        assert!(!admin.contains("\r\nBcc:"), "{admin}");
        assert!(!admin.contains("\nBcc:"), "{admin}");
    }
}
