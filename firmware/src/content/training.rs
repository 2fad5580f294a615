//! Spam training as Zimbra does it: mail to `zimbraSpamIsSpamAccount` (or
//! `zimbraSpamIsNotSpamAccount`) teaches the spam scanner's Bayes filter (spamd's TELL, rspamd's
//! `/learnspam`) that the messages it carries are spam (or ham). Each attached message
//! (message/rfc822, as the mailbox server forwards a "junk" click) is learned on its own; a
//! message with none is learned whole. Unless `posternSpamTrainingDeliver` is TRUE, the training
//! accounts are not delivered to once the lesson is taken.
//!
//! Only clients the box trusts (authenticated, or from `zimbraMtaMyNetworks`) may train: anybody
//! else could teach the filter that their spam is ham.
//!
//! The lessons are found as the mail streams by ([`super::lessons`]) and each is read back from
//! the spool as the scanner is told it: the mail is never held in RAM. An attached message with
//! a transfer encoding (against RFC 2046, but clients do it) is decoded by mail-parser from its
//! part, held up to `posternContentScanLimit`; a bigger one is skipped and counted.

use std::time::Duration;

use mail_parser::{MessageParser, PartType};

use super::lessons::Lesson;
use super::scanner::{Class, ScannerError};
use super::spam;
use super::stored::{MessageBytes, Pieces, Slice, StoredMessage};
use crate::config::{MtaConfig, SpamScanner};
use crate::mail::Envelope;

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

/// What one training mail taught.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Taught {
    /// Lessons the scanner learned (it declines a message it already knew).
    pub learned: usize,
    /// Encoded attached messages bigger than `posternContentScanLimit`: not decoded, not told.
    pub too_big: usize,
}

/// Teaches the scanner every lesson of `mail` (its attached messages at `lessons`, or the
/// whole mail when it has none), each read back from the spool; encoded ones are decoded in RAM
/// when they fit in `hold` bytes.
pub async fn train(
    scanner: SpamScanner<'_>,
    mail: &dyn StoredMessage,
    lessons: &[Lesson],
    class: Class,
    deadline: Duration,
    hold: u64,
) -> Result<Taught, ScannerError> {
    let mut taught = Taught::default();
    if lessons.is_empty() {
        taught.learned += usize::from(spam::learn(scanner, mail, class, deadline).await?);
        return Ok(taught);
    }
    for lesson in lessons {
        let learned = if lesson.encoded {
            if lesson.end - lesson.part > hold {
                taught.too_big += 1;
                continue;
            }
            let part = read_all(&Slice {
                message: mail,
                start: lesson.part,
                end: lesson.end,
            })
            .await?;
            let Some(decoded) = decode_attached(&part) else {
                continue;
            };
            spam::learn(scanner, &MessageBytes(&decoded), class, deadline).await?
        } else {
            let attached = Slice {
                message: mail,
                start: lesson.start,
                end: lesson.end,
            };
            spam::learn(scanner, &attached, class, deadline).await?
        };
        taught.learned += usize::from(learned);
    }
    Ok(taught)
}

/// A part (its header section and content) read into RAM; the caller bounds its size.
async fn read_all(part: &dyn StoredMessage) -> Result<Vec<u8>, ScannerError> {
    let mut bytes = Vec::new();
    Pieces::new(part)
        .each(|piece| bytes.extend_from_slice(piece))
        .await
        .map_err(ScannerError::Unreadable)?;
    Ok(bytes)
}

/// The attached message an encoded message/rfc822 part carries, as mail-parser decodes it.
fn decode_attached(part: &[u8]) -> Option<Vec<u8>> {
    let parsed = MessageParser::default().parse(part)?;
    parsed.parts.iter().find_map(|p| match &p.body {
        PartType::Message(inner) => Some(inner.raw_message().to_vec()),
        _ => None,
    })
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
    fn an_encoded_attached_message_is_decoded_out_of_its_part() {
        let part = b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n\
U3ViamVjdDogeA0KDQpoaQ0K\r\n";
        assert_eq!(decode_attached(part).unwrap(), b"Subject: x\r\n\r\nhi\r\n");
        assert_eq!(decode_attached(b"Content-Type: text/plain\r\n\r\nx"), None);
    }
}
