//! RCPT TO: the policy stage, then the router over the directory as it is now; their typed answers
//! become the replies a Postfix admin knows.

use std::sync::Arc;

use super::stages::RecipientCheck;
use crate::directory::SharedDirectory;
use crate::log::{self, LogSink, Program};
use crate::mail::Reply;
use crate::policy::{OwnName, Policy, Relay};
use crate::route::{self, Decision, Deferral, NextHop, Reject};
use crate::smtp::{RcptQuery, RcptTarget};

/// Decides each RCPT TO of the box's listeners.
pub struct Recipients {
    pub directory: Arc<SharedDirectory>,
    pub policy: Arc<Policy>,
    /// Where the router's line for a dropped forwarding target goes.
    pub log: LogSink,
}

/// `550 5.1.1 <x@example.com>: Recipient address rejected: User unknown`.
pub fn reject_reply(address: &str, reason: Reject) -> Reply {
    Reply::new(
        reason.code(),
        reason.status(),
        format!("<{address}>: {}", reason.text()),
    )
}

/// `451 4.3.5 <x@example.com>: Recipient address rejected: no zimbraMailTransport ...`: accepting
/// it would queue mail the box cannot route, so the client keeps it and tries again later.
pub fn deferral_reply(address: &str, reason: Deferral) -> Reply {
    Reply::new(
        451,
        reason.status(),
        format!("<{address}>: Recipient address rejected: {}", reason.text()),
    )
}

impl RecipientCheck for Recipients {
    async fn check(&self, q: &RcptQuery) -> Result<Vec<RcptTarget>, Reply> {
        let dir = self.directory.snapshot();
        let mut relay = self.policy.rcpt(&q.client, dir.config());
        let own = self.policy.own_name(&q.address, &dir);
        let address = match &own {
            OwnName::Other => q.address.as_str(),
            // The admin's address may be anywhere: the box sends it there itself.
            OwnName::Admin(admin) => {
                relay = Relay::Permitted;
                admin.as_str()
            }
            OwnName::Unknown(refusal) => return Err(refusal.reply()),
        };
        let targets = match route::route(address, &dir, dir.config(), relay) {
            // Past ldap_cache_max_age the cache may not know a new account yet: the client
            // tries again later (Postfix answers 451 4.3.0 when its LDAP lookup fails).
            Decision::Reject(Reject::UserUnknown)
                if self.directory.ldap_cache_stale(crate::mail::unix_now()) =>
            {
                return Err(Reply::new(
                    451,
                    [4, 3, 0],
                    format!(
                        "<{}>: Recipient address rejected: directory cache out of date, try again later",
                        q.address
                    ),
                ));
            }
            Decision::Reject(r) => return Err(reject_reply(&q.address, r)),
            Decision::Accept(targets) => targets,
        };
        // Relay control and the directory first (Postfix's relay restrictions and
        // reject_unlisted_recipient), then the admin's restrictions.
        if let Err(refusal) = self.policy.restrictions(q, &dir).await {
            return Err(refusal.reply());
        }
        let mut out = Vec::new();
        let mut held_back = None;
        for t in targets.iter() {
            match &t.next_hop {
                NextHop::Transport(tr) => out.push(RcptTarget {
                    address: t.address.to_string(),
                    next_hop: tr.as_ref().clone(),
                }),
                // Part of a forwarding list that cannot be delivered: the rest still goes.
                NextHop::Bounce(r) => {
                    let line = log::dropped_from_expansion_line(&q.address, &t.address, r);
                    self.log.line(Program::Route, &line);
                    held_back.get_or_insert(reject_reply(&t.address, *r));
                }
                // No next hop yet: the client keeps the message and tries again later (4xx),
                // so nothing is accepted that the box cannot route.
                NextHop::Defer(d) => held_back = Some(deferral_reply(&t.address, *d)),
            }
        }
        match (out.is_empty(), held_back) {
            (true, Some(reply)) => Err(reply),
            _ => Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{Directory, prov};
    use crate::mail::ClientInfo;
    use crate::policy::ConnectionLimits;
    use crate::smtp::RcptQuery;

    fn recipients(lines: &[&str]) -> Recipients {
        let mut d = Directory::default();
        for line in lines {
            let args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
            if let Some(next) = prov::execute(&d, &args).unwrap().directory {
                d = next;
            }
        }
        Recipients {
            directory: Arc::new(SharedDirectory::new(d)),
            policy: Policy::new(ConnectionLimits::default()),
            log: LogSink::memory(),
        }
    }

    fn query(from: &str, address: &str) -> RcptQuery {
        RcptQuery {
            client: ClientInfo {
                addr: Some(from.parse().unwrap()),
                ..ClientInfo::default()
            },
            sender: "sender@example.org".into(),
            address: address.into(),
            notify: crate::mail::Notify::DEFAULT,
            orcpt: None,
        }
    }

    async fn answer(r: &Recipients, from: &str, address: &str) -> String {
        match r.check(&query(from, address)).await {
            Ok(targets) => targets
                .iter()
                .map(|t| format!("{} -> {}", t.address, t.next_hop))
                .collect::<Vec<_>>()
                .join(", "),
            Err(reply) => reply.to_string(),
        }
    }

    #[tokio::test]
    async fn decisions_become_postfix_replies() {
        let r = recipients(&[
            "cd example.com zimbraMailTransport lmtp:store.example.com:7025",
            "ca user@example.com pw",
            "ca off@example.com pw zimbraMailStatus disabled",
            "cd notransport.example",
            "ca lost@notransport.example pw",
        ]);
        assert_eq!(
            answer(&r, "203.0.113.9", "user@example.com").await,
            "user@example.com -> lmtp:store.example.com:7025"
        );
        assert_eq!(
            answer(&r, "203.0.113.9", "nobody@example.com").await,
            "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown"
        );
        assert_eq!(
            answer(&r, "203.0.113.9", "off@example.com").await,
            "550 5.2.1 <off@example.com>: Recipient address rejected: Mailbox disabled"
        );
        assert_eq!(
            answer(&r, "203.0.113.9", "x@example.net").await,
            "554 5.7.1 <x@example.net>: Relay access denied"
        );
        // mynetworks (loopback by default) may relay: the policy said so.
        assert_eq!(
            answer(&r, "127.0.0.1", "x@example.net").await,
            "x@example.net -> smtp:example.net"
        );
        assert!(
            answer(&r, "203.0.113.9", "lost@notransport.example")
                .await
                .starts_with(
                    "451 4.3.5 <lost@notransport.example>: Recipient address rejected: no zimbraMailTransport"
                )
        );
    }

    #[tokio::test]
    async fn a_forwarding_target_that_fails_is_dropped_and_logged() {
        let r = recipients(&[
            "cd example.com zimbraMailTransport lmtp:store.example.com:7025",
            "ca boss@example.com pw zimbraMailForwardingAddress gone@example.com zimbraMailForwardingAddress boss2@example.com",
            "ca boss2@example.com pw",
        ]);
        assert_eq!(
            answer(&r, "203.0.113.9", "boss@example.com").await,
            "boss@example.com -> lmtp:store.example.com:7025, boss2@example.com -> lmtp:store.example.com:7025"
        );
        assert_eq!(
            r.log.lines(),
            vec![
                "postern/route: <boss@example.com> -> <gone@example.com>: dropped from expansion: 5.1.1 Recipient address rejected: User unknown"
            ]
        );
    }
}
