//! Queues the notices of a refused message: a virus (`zimbraVirusWarnAdmin`,
//! `zimbraVirusWarnRecipient`) or blocked attachments (`zimbraMtaBlockedExtensionWarnRecipient`).
//! Who gets one is decided when the message begins (routing needs the directory), the notices are
//! built and queued once the content stage refused it. They go through the normal queue from the
//! null sender.

use crate::config::MtaConfig;
use crate::content::Rejection;
use crate::content::notice::{self, Audience, Finding, Refused};
use crate::directory::Directory;
use crate::log::{LogSink, Program};
use crate::mail::{BodyType, Envelope, Notify, QueueId, Recipient};
use crate::queue::runner::{QueueHandle, QueueStore};
use crate::route::{self, Decision, Relay};
use crate::spool::SpoolHandle;

/// Where notices go: the spool, the queue, and the log that says so.
pub struct Outbox<'a> {
    pub spool: &'a SpoolHandle,
    pub queue: &'a QueueHandle,
    pub log: &'a LogSink,
}

/// Who is told of a refusal of this message, with the next hops to reach them.
#[derive(Debug, Clone, Default)]
pub struct NoticePlan {
    /// The virus admin.
    admin: Option<Recipient>,
    /// The admin's address when routing refused it: logged instead of a notice.
    unroutable: Option<String>,
    /// The message's recipients, when any refusal is to be told to them.
    recipients: Vec<Recipient>,
    /// `zimbraVirusWarnRecipient`, for inbound mail.
    virus_to_recipients: bool,
    /// `zimbraMtaBlockedExtensionWarnRecipient`, for inbound mail.
    banned_to_recipients: bool,
    hostname: String,
}

impl NoticePlan {
    /// The plan for `envelope` under `config`. The recipients are told only of inbound mail:
    /// mail from a client that may relay goes elsewhere, and its sender is the one to fix it.
    pub fn new(envelope: &Envelope, dir: &Directory, config: &MtaConfig, own: bool) -> NoticePlan {
        let c = &config.content;
        let wanted = c.virus_warn_admin.then(|| config.virus_admin()).flatten();
        let admin = wanted.and_then(|a| routed(a, dir, config));
        let unroutable = wanted.filter(|_| admin.is_none()).map(str::to_string);
        let virus_to_recipients = c.virus_warn_recipient && !own;
        let banned_to_recipients = c.blocked_warn_recipient && !own;
        let recipients = if virus_to_recipients || banned_to_recipients {
            envelope
                .recipients
                .iter()
                .map(|r| Recipient {
                    notify: Notify::NEVER,
                    orcpt: None,
                    ..r.clone()
                })
                .collect()
        } else {
            Vec::new()
        };
        NoticePlan {
            admin,
            unroutable,
            recipients,
            virus_to_recipients,
            banned_to_recipients,
            hostname: config.my_hostname.clone(),
        }
    }

    /// The recipients, when `wanted`.
    fn recipients_if(&self, wanted: bool) -> Vec<Recipient> {
        if wanted {
            self.recipients.clone()
        } else {
            Vec::new()
        }
    }

    /// What a notice would tell of `refused`, when someone is to be told of it.
    pub fn finding<'r>(&self, refused: &'r Rejection) -> Option<Finding<'r>> {
        match refused {
            Rejection::Infected { signature }
                if self.admin.is_some()
                    || self.unroutable.is_some()
                    || self.virus_to_recipients =>
            {
                Some(Finding::Virus(signature))
            }
            Rejection::BlockedAttachment { .. } if self.banned_to_recipients => {
                Some(Finding::Banned(refused.blocked_names()))
            }
            _ => None,
        }
    }

    /// Builds and queues the notices of `finding` in `envelope`'s message (`head` its header
    /// section, when it was held).
    pub async fn send(
        &self,
        out: Outbox<'_>,
        qid: QueueId,
        envelope: &Envelope,
        head: Option<&[u8]>,
        finding: Finding<'_>,
    ) {
        let Outbox { spool, queue, log } = out;
        let (what, admin, recipients) = match finding {
            Finding::Virus(_) => (
                "virus notification",
                self.admin.iter().cloned().collect(),
                self.recipients_if(self.virus_to_recipients),
            ),
            Finding::Banned(_) => (
                "blocked attachment notification",
                Vec::new(),
                self.recipients_if(self.banned_to_recipients),
            ),
        };
        if let (Some(admin), Finding::Virus(_)) = (&self.unroutable, &finding) {
            log.line(
                Program::Content,
                &format!("{qid}: {what} to <{admin}> dropped: no route to it"),
            );
        }
        let now = crate::mail::unix_now();
        let refused = Refused {
            qid,
            finding,
            sender: &envelope.sender,
            recipients: envelope
                .recipients
                .iter()
                .map(|r| r.address.as_str())
                .collect(),
            client: envelope.client.addr,
            subject: head.and_then(notice::subject_of),
            hostname: &self.hostname,
            now,
        };
        for (audience, to) in [(Audience::Admin, admin), (Audience::Recipients, recipients)] {
            if to.is_empty() {
                continue;
            }
            let addresses: Vec<&str> = to.iter().map(|r| r.address.as_str()).collect();
            let Some(message) = notice::notice(&refused, audience, &addresses) else {
                continue;
            };
            let notice = Envelope {
                sender: String::new(),
                recipients: to.clone(),
                ret: None,
                envid: None,
                body_type: BodyType::EightBitMime,
                smtputf8: false,
                arrival: now,
                client: Default::default(),
            };
            let size = message.len() as u64;
            let listed = addresses.join(">, <");
            match QueueStore::store(spool, notice.clone(), message).await {
                Ok(new) => {
                    log.line(
                        Program::Content,
                        &format!("{qid}: {what} to <{listed}>: {new}"),
                    );
                    queue.arrived(new, notice, size).await;
                }
                Err(e) => log.line(
                    Program::Content,
                    &format!("{qid}: {what} to <{listed}> not queued: {e}"),
                ),
            }
        }
    }
}

/// The admin's address with its next hop; none when routing refuses it (the setting is kept:
/// the directory may change).
fn routed(address: &str, dir: &Directory, config: &MtaConfig) -> Option<Recipient> {
    let next_hop = match route::route(address, dir, config, Relay::Permitted) {
        Decision::Accept(targets) => targets.first().next_hop.transport().cloned()?,
        Decision::Reject(_) => return None,
    };
    Some(Recipient {
        address: address.to_string(),
        original: None,
        orcpt: None,
        notify: Notify::NEVER,
        next_hop,
    })
}
