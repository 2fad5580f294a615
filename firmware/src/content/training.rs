//! Spam training as Zimbra does it: mail to `zimbraSpamIsSpamAccount` (or
//! `zimbraSpamIsNotSpamAccount`) teaches the spam scanner's Bayes filter (spamd's TELL, rspamd's
//! `/learnspam`) that the messages it carries are spam (or ham). Each attached message
//! (message/rfc822, as the mailbox server forwards a "junk" click) is learned on its own; a
//! message with none is learned whole. Unless `posternSpamTrainingDeliver` is TRUE, the training
//! accounts are not delivered to once the lesson is taken.
//!
//! Only clients the box trusts (authenticated, or from `zimbraMtaMyNetworks`) may train: anybody
//! else could teach the filter that their spam is ham.

use std::time::Duration;

use mail_parser::{MessageParser, PartType};

use super::scanner::{Class, ScannerError};
use super::spam;
use crate::config::{MtaConfig, SpamScanner};
use crate::mail::Envelope;

/// The most attached messages learned from one training mail.
const MAX_LEARNED: usize = 100;

/// Training mail: what it teaches and to whom it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Training {
    pub class: Class,
    /// The envelope's training accounts (their indices): not delivered to once learned, unless
    /// `posternSpamTrainingDeliver` is TRUE.
    pub accounts: Vec<usize>,
}

/// What this message teaches, if it is training mail from a trusted client.
pub fn class_of(envelope: &Envelope, config: &MtaConfig) -> Option<Training> {
    let c = &config.content;
    let trusted = envelope.client.auth.is_some()
        || envelope
            .client
            .addr
            .is_some_and(|ip| config.my_networks.contains(ip));
    if !trusted || c.spam_scanner().is_none() {
        return None;
    }
    let is = |account: &Option<String>, address: &str| {
        account
            .as_ref()
            .is_some_and(|a| address.eq_ignore_ascii_case(a))
    };
    let to = |account: &Option<String>| envelope.recipients.iter().any(|r| is(account, &r.address));
    let class = if to(&c.spam_account) {
        Class::Spam
    } else if to(&c.ham_account) {
        Class::Ham
    } else {
        return None;
    };
    let accounts = envelope
        .recipients
        .iter()
        .enumerate()
        .filter(|(_, r)| is(&c.spam_account, &r.address) || is(&c.ham_account, &r.address))
        .map(|(i, _)| i)
        .collect();
    Some(Training { class, accounts })
}

/// The messages to learn from `raw`: its attached messages, or itself when it has none.
pub fn lessons(raw: &[u8]) -> Vec<Vec<u8>> {
    let attached: Vec<Vec<u8>> = MessageParser::default()
        .parse(raw)
        .map(|m| {
            m.parts
                .iter()
                .filter_map(|p| match &p.body {
                    PartType::Message(inner) => Some(inner.raw_message().to_vec()),
                    _ => None,
                })
                .take(MAX_LEARNED)
                .collect()
        })
        .unwrap_or_default();
    if attached.is_empty() {
        vec![raw.to_vec()]
    } else {
        attached
    }
}

/// Teaches the scanner every lesson of `raw`; the number learned (a scanner declines a
/// message it already knew).
pub async fn train(
    scanner: SpamScanner<'_>,
    raw: &[u8],
    class: Class,
    deadline: Duration,
) -> Result<usize, ScannerError> {
    let mut learned = 0;
    for lesson in lessons(raw) {
        if spam::learn(scanner, &lesson, class, deadline).await? {
            learned += 1;
        }
    }
    Ok(learned)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::mail::{BodyType, ClientInfo, Notify, Recipient, Transport};

    pub(crate) fn envelope(to: &str, client: &str, auth: Option<&str>) -> Envelope {
        Envelope {
            sender: "u@example.com".into(),
            recipients: vec![Recipient {
                address: to.into(),
                original: None,
                orcpt: None,
                notify: Notify::DEFAULT,
                next_hop: Transport::mx("example.com").unwrap(),
            }],
            ret: None,
            envid: None,
            body_type: BodyType::SevenBit,
            smtputf8: false,
            arrival: 0,
            client: ClientInfo {
                addr: client.parse().ok(),
                auth: auth.map(str::to_string),
                ..ClientInfo::default()
            },
        }
    }

    #[test]
    fn only_trusted_clients_train() {
        let mut config = MtaConfig::default();
        let set = |c: &mut MtaConfig, a: &str, v: &str| c.set(a, &[v.to_string()]).unwrap();
        set(&mut config, "posternSpamdAddress", "127.0.0.1:783");
        set(&mut config, "zimbraSpamIsSpamAccount", "Spam.X@example.com");
        set(
            &mut config,
            "zimbraSpamIsNotSpamAccount",
            "ham.x@example.com",
        );
        let class = |e: &Envelope| class_of(e, &config).map(|t| t.class);
        let mut from_lan = envelope("spam.x@EXAMPLE.com", "127.0.0.1", None);
        assert_eq!(class(&from_lan), Some(Class::Spam));
        let mut other_rcpt = from_lan.recipients[0].clone();
        other_rcpt.address = "user@example.com".into();
        from_lan.recipients.insert(0, other_rcpt);
        assert_eq!(class_of(&from_lan, &config).unwrap().accounts, [1]);
        let ham = envelope("ham.x@example.com", "192.0.2.9", Some("user@example.com"));
        assert_eq!(class(&ham), Some(Class::Ham));
        let stranger = envelope("spam.x@example.com", "192.0.2.9", None);
        assert_eq!(class_of(&stranger, &config), None);
        let other = envelope("user@example.com", "127.0.0.1", None);
        assert_eq!(class_of(&other, &config), None);
    }

    #[test]
    fn attached_messages_are_learned_one_by_one() {
        let one = "From: a@x.example\r\nSubject: buy\r\n\r\ncheap\r\n";
        let two = "From: b@x.example\r\nSubject: sell\r\n\r\ndear\r\n";
        let report = format!(
            "Subject: junk\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n\
Content-Type: message/rfc822\r\n\r\n{one}--B\r\nContent-Type: message/rfc822\r\n\r\n{two}--B--\r\n"
        );
        let learned = lessons(report.as_bytes());
        assert_eq!(learned.len(), 2);
        assert!(learned[0].starts_with(b"From: a@x.example"));
        assert!(learned[1].starts_with(b"From: b@x.example"));
        assert_eq!(lessons(one.as_bytes()), [one.as_bytes().to_vec()]);
    }
}
