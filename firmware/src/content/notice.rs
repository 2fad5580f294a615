//! The notices of a refused message, as amavisd-new sends them: for a virus one to the admin
//! (`zimbraVirusWarnAdmin`) and one to the recipients (`zimbraVirusWarnRecipient`), for blocked
//! attachments one to the recipients (`zimbraMtaBlockedExtensionWarnRecipient`), naming the virus
//! or the files, the sender and the subject. Never one to the sender: a virus forges the sender's
//! address, and the client that sent it was refused already (no backscatter).
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

/// Why the message was refused, as the notices tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding<'a> {
    /// clamd's signature.
    Virus(&'a str),
    /// The file names with a blocked extension.
    Banned(Vec<&'a str>),
}

/// What the notices say of the refused message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused<'a> {
    pub qid: QueueId,
    pub finding: Finding<'a>,
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
pub fn notice(v: &Refused<'_>, audience: Audience, to: &[&str]) -> Option<Vec<u8>> {
    let sender = one_line(v.sender, 256);
    let client = v
        .client
        .map_or_else(|| "unknown".to_string(), |ip| format!("[{ip}]"));
    // amavis's words: "VIRUS (...)" and "BANNED FILENAME (...)" in the Subject.
    let (kind, found, label) = match &v.finding {
        Finding::Virus(signature) => ("VIRUS", one_line(signature, 100), "Virus:     "),
        Finding::Banned(names) => {
            let names: Vec<String> = names.iter().map(|n| one_line(n, 100)).collect();
            ("BANNED FILENAME", names.join(", "), "Blocked:   ")
        }
    };
    let subject = match audience {
        Audience::Admin => format!("{kind} ({found}) in mail FROM {client} <{sender}>"),
        Audience::Recipients => format!("{kind} ({found}) IN MAIL TO YOU (from <{sender}>)"),
    };
    let intro = match (audience, &v.finding) {
        (Audience::Admin, Finding::Virus(_)) => {
            "A message carrying a virus was refused at the end of data."
        }
        (Audience::Admin, Finding::Banned(_)) => {
            "A message with a blocked attachment was refused at the end of data."
        }
        (Audience::Recipients, Finding::Virus(_)) => {
            "A message to you was found to carry a virus and was refused: it was not delivered \
             and there is nothing to open."
        }
        (Audience::Recipients, Finding::Banned(_)) => {
            "A message to you carried an attachment of a type this system does not accept \
             (zimbraMtaBlockedExtension) and was refused: it was not delivered. If you expected \
             it, ask the sender to send it another way."
        }
    };
    let recipients: Vec<String> = v
        .recipients
        .iter()
        .map(|r| format!("<{}>", one_line(r, 256)))
        .collect();
    let body = format!(
        "{intro}\n\n\
{label} {found}\n\
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
        .message_id(format!(
            "{}.{}.{}@{}",
            v.qid,
            v.now,
            match v.finding {
                Finding::Virus(_) => "virus",
                Finding::Banned(_) => "banned",
            },
            v.hostname
        ))
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

    fn refused() -> Refused<'static> {
        Refused {
            qid: "1M8S8E2260000".parse().unwrap(),
            finding: Finding::Virus("Eicar-Test-Signature"),
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
    fn a_banned_notice_names_every_file() {
        let mut v = refused();
        v.finding = Finding::Banned(vec!["setup.exe", "docs.zip/run.vbs\r\nBcc: x@example.org"]);
        let to_user = notice(&v, Audience::Recipients, &["user@example.com"]).unwrap();
        let text = String::from_utf8(to_user).unwrap();
        let unfolded = text.replace("\r\n ", " ");
        assert!(
            unfolded.contains(
                "Subject: BANNED FILENAME (setup.exe, docs.zip/run.vbs??Bcc: x@example.org) IN MAIL TO YOU (from <forged@outside.example>)"
            ),
            "{text}"
        );
        assert!(!text.contains("\nBcc:"), "{text}");
        assert!(text.contains(".banned@mx.example.com>"), "{text}");
        let parsed = MessageParser::default().parse(text.as_bytes()).unwrap();
        let body = parsed.body_text(0).unwrap();
        assert!(
            body.contains("Blocked:    setup.exe, docs.zip/run.vbs??Bcc: x@example.org"),
            "{body}"
        );
        assert!(body.contains("Subject:    café files"), "{body}");
        assert!(body.contains("was not delivered"), "{body}");
    }

    #[test]
    fn hostile_fields_stay_on_their_line() {
        let mut v = refused();
        v.finding = Finding::Virus("Evil\r\nBcc: victim@example.org");
        v.subject = Some("hi\r\nBcc: victim@example.org".into());
        let admin =
            String::from_utf8(notice(&v, Audience::Admin, &["a@example.com"]).unwrap()).unwrap();
        assert!(!admin.contains("\r\nBcc:"), "{admin}");
        assert!(!admin.contains("\nBcc:"), "{admin}");
    }
}
