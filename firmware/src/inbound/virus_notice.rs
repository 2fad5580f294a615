//! Queues the notices of a refused virus (`zimbraVirusWarnAdmin`, `zimbraVirusWarnRecipient`):
//! who gets one is decided when the message begins (routing needs the directory), the notices are
//! built and queued once clamd refused it. They go through the normal queue from the null sender.

use crate::config::MtaConfig;
use crate::content::virus_warning::{self, Audience, RefusedVirus};
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

/// Who is told of a virus in this message, with the next hops to reach them.
#[derive(Debug, Clone, Default)]
pub struct NoticePlan {
    admin: Option<Recipient>,
    /// The admin's address when routing refused it: logged instead of a notice.
    unroutable: Option<String>,
    recipients: Vec<Recipient>,
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
        let recipients = if c.virus_warn_recipient && !own {
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
            hostname: config.my_hostname.clone(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.admin.is_none() && self.unroutable.is_none() && self.recipients.is_empty()
    }

    /// Builds and queues the notices of `signature` found in `envelope`'s message (`head` its
    /// header section, when it was held).
    pub async fn send(
        &self,
        out: Outbox<'_>,
        qid: QueueId,
        envelope: &Envelope,
        head: Option<&[u8]>,
        signature: &str,
    ) {
        let Outbox { spool, queue, log } = out;
        if let Some(admin) = &self.unroutable {
            log.line(
                Program::Content,
                &format!("{qid}: virus notification to <{admin}> dropped: no route to it"),
            );
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let refused = RefusedVirus {
            qid,
            signature,
            sender: &envelope.sender,
            recipients: envelope
                .recipients
                .iter()
                .map(|r| r.address.as_str())
                .collect(),
            client: envelope.client.addr,
            subject: head.and_then(virus_warning::subject_of),
            hostname: &self.hostname,
            now,
        };
        let admin = self.admin.iter().cloned().collect();
        for (audience, to) in [
            (Audience::Admin, admin),
            (Audience::Recipients, self.recipients.clone()),
        ] {
            if to.is_empty() {
                continue;
            }
            let addresses: Vec<&str> = to.iter().map(|r| r.address.as_str()).collect();
            let Some(message) = virus_warning::notice(&refused, audience, &addresses) else {
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
                        &format!("{qid}: virus notification to <{listed}>: {new}"),
                    );
                    queue.arrived(new, notice, size).await;
                }
                Err(e) => log.line(
                    Program::Content,
                    &format!("{qid}: virus notification to <{listed}> not queued: {e}"),
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
