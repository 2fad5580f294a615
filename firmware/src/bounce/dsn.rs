//! Building one DSN from a stored message. Pure: the time and this box's name are arguments.

use std::fmt::Write as _;

use mail_builder::MessageBuilder;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;

use crate::log::Notification;
use crate::mail::{
    BodyType, ClientInfo, Envelope, Notify, QueueId, Recipient, RecipientOutcome, Ret,
};
use crate::mail::{Protocol, Transport};

/// Postfix's bounce_size_limit: above it, only the headers of the original are returned (as
/// Postfix does, so that a cut never damages the original's MIME structure).
pub const BOUNCE_SIZE_LIMIT: usize = 50_000;

/// Most bytes of an oversized original read back for its headers: Postfix's header_size_limit.
/// Postfix returns every header line; a header section longer than this is cut at a line end.
pub const RETURNED_HEADERS_LIMIT: usize = 102_400;

/// How much of an original of `size` bytes a DSN needs: all of it when it may be returned whole,
/// else the start that holds its headers. Bounded either way: a 5 MB message that bounces is
/// never read back whole.
pub fn returned_bytes(size: u64) -> usize {
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if size <= BOUNCE_SIZE_LIMIT {
        size
    } else {
        size.min(RETURNED_HEADERS_LIMIT)
    }
}

/// Which notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// The message is done: failed recipients (NOTIFY=FAILURE, the default) and delivered ones
    /// that asked for NOTIFY=SUCCESS.
    Final,
    /// Still trying: these recipients (with the last reason) asked for, or default to, DELAY.
    Delay {
        recipients: Vec<(usize, Option<String>)>,
        /// Unix seconds until which delivery will still be tried (Will-Retry-Until).
        retry_until: u64,
    },
}

/// Everything a DSN is made of.
#[derive(Debug, Clone)]
pub struct DsnRequest<'a> {
    pub qid: QueueId,
    pub envelope: &'a Envelope,
    /// Per envelope recipient, its final outcome if it has one.
    pub outcomes: &'a [Option<RecipientOutcome>],
    /// The original message as stored (headers and body, CRLF), or its first
    /// [`returned_bytes`] when it is larger.
    pub original: &'a [u8],
    /// The original's whole size in bytes.
    pub original_size: u64,
    pub kind: Kind,
    /// This box's host name (Reporting-MTA, MAILER-DAEMON@...).
    pub reporting_mta: &'a str,
    /// Unix seconds.
    pub now: u64,
}

/// A notification ready to be queued: from `<>` to `recipient`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dsn {
    pub recipient: String,
    pub message: Vec<u8>,
    pub notification: Notification,
    pub eight_bit: bool,
}

impl Dsn {
    /// The envelope to store it under: null sender, one recipient, no DSN of its own.
    pub fn envelope(&self, next_hop: Transport, now: u64) -> Envelope {
        Envelope {
            sender: String::new(),
            recipients: vec![Recipient {
                address: self.recipient.clone(),
                original: None,
                orcpt: None,
                notify: Notify::NEVER,
                next_hop,
            }],
            ret: None,
            envid: None,
            body_type: if self.eight_bit {
                BodyType::EightBitMime
            } else {
                BodyType::SevenBit
            },
            smtputf8: !self.recipient.is_ascii(),
            arrival: now,
            client: ClientInfo {
                protocol: "local".into(),
                ..ClientInfo::default()
            },
        }
    }
}

struct Line<'a> {
    rcpt: &'a Recipient,
    action: &'static str,
    status: String,
    diagnostic: Option<String>,
    remote_mta: Option<String>,
}

/// The DSN for `req`, or None when nobody is to be told (a bounce's bounce, NOTIFY=NEVER, or
/// nothing failed and no one asked for success).
/// Whether `req` gives a notification at all ([`build`] would return one), without the
/// original message: the queue reads a message's body back only for a DSN that goes out.
pub fn wanted(req: &DsnRequest<'_>) -> bool {
    !req.envelope.is_bounce() && !report_lines(req).is_empty()
}

pub fn build(req: &DsnRequest<'_>) -> Option<Dsn> {
    let env = req.envelope;
    if env.is_bounce() {
        return None;
    }
    let lines = report_lines(req);
    if lines.is_empty() {
        return None;
    }
    let notification = match &req.kind {
        Kind::Delay { .. } => Notification::Delay,
        Kind::Final if lines.iter().any(|l| l.action == "failed") => Notification::NonDelivery,
        Kind::Final => Notification::Success,
    };
    let subject = match notification {
        Notification::NonDelivery => "Undelivered Mail Returned to Sender",
        Notification::Delay => "Delayed Mail (still being retried)",
        Notification::Success => "Successful Mail Delivery Report",
    };
    let human = human_text(req, &lines, notification);
    let status = status_part(req, &lines);
    let global = !status.is_ascii();

    // RET=HDRS, delay and success reports, and oversized messages return the headers only.
    let whole = req.original.len() as u64 == req.original_size;
    let full = notification == Notification::NonDelivery
        && env.ret != Some(Ret::Headers)
        && req.original_size <= BOUNCE_SIZE_LIMIT as u64
        && whole;
    let original = if full {
        req.original
    } else {
        headers_of(req.original, whole)
    };
    let eight_bit = !original.is_ascii() || global;
    let cte = if eight_bit { "8bit" } else { "7bit" };
    let original_type = match (full, env.smtputf8) {
        (true, false) => "message/rfc822",
        (true, true) => "message/global",
        (false, false) => "text/rfc822-headers",
        (false, true) => "message/global-headers",
    };
    let status_type = if global {
        "message/global-delivery-status"
    } else {
        "message/delivery-status"
    };

    let report = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
        vec![
            MimePart::new(ContentType::new("text/plain"), human)
                .header("Content-Description", Raw::new("Notification")),
            MimePart::new(ContentType::new(status_type), status.into_bytes())
                .header("Content-Description", Raw::new("Delivery report"))
                .transfer_encoding(cte),
            MimePart::new(ContentType::new(original_type), original.to_vec())
                .header(
                    "Content-Description",
                    Raw::new(if full {
                        "Undelivered Message"
                    } else {
                        "Undelivered Message Headers"
                    }),
                )
                .transfer_encoding(cte),
        ],
    );
    let from = format!("MAILER-DAEMON@{}", req.reporting_mta);
    let message = MessageBuilder::new()
        .from(("Mail Delivery System", from.as_str()))
        .to(env.sender.as_str())
        .subject(subject)
        .date(date(req.now))
        .message_id(format!(
            "{}.{}.{}@{}",
            req.qid,
            req.now,
            notification_tag(notification),
            req.reporting_mta
        ))
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .body(report)
        .write_to_vec()
        .ok()?;
    Some(Dsn {
        recipient: env.sender.clone(),
        message,
        notification,
        eight_bit,
    })
}

fn notification_tag(n: Notification) -> &'static str {
    match n {
        Notification::NonDelivery => "bounce",
        Notification::Delay => "delay",
        Notification::Success => "success",
    }
}

fn report_lines<'a>(req: &DsnRequest<'a>) -> Vec<Line<'a>> {
    let env = req.envelope;
    let mut lines = Vec::new();
    match &req.kind {
        Kind::Final => {
            for (i, rcpt) in env.recipients.iter().enumerate() {
                match req.outcomes.get(i) {
                    Some(Some(RecipientOutcome::Failed {
                        status,
                        diagnostic,
                        remote_mta,
                    })) if rcpt.notify.failure => lines.push(Line {
                        rcpt,
                        action: "failed",
                        // An expired recipient reports 4.4.7 as the DSN's status, yet it failed.
                        status: status.clone(),
                        diagnostic: Some(diagnostic.clone()),
                        remote_mta: remote_mta.clone(),
                    }),
                    Some(Some(RecipientOutcome::Delivered { relay, reply }))
                        if rcpt.notify.success =>
                    {
                        lines.push(Line {
                            rcpt,
                            // Over LMTP the mail reached the mailbox; over SMTP it left our hands
                            // for a hop that was not asked to carry the DSN request on.
                            action: if rcpt.next_hop.protocol == Protocol::Lmtp {
                                "delivered"
                            } else {
                                "relayed"
                            },
                            status: status_of(reply).unwrap_or_else(|| "2.0.0".into()),
                            diagnostic: Some(format!("smtp; {reply}")),
                            remote_mta: Some(host_of_relay(relay).to_string()),
                        })
                    }
                    _ => {}
                }
            }
        }
        Kind::Delay { recipients, .. } => {
            for (i, reason) in recipients {
                let Some(rcpt) = env.recipients.get(*i) else {
                    continue;
                };
                if !rcpt.notify.delay {
                    continue;
                }
                lines.push(Line {
                    rcpt,
                    action: "delayed",
                    status: reason
                        .as_deref()
                        .and_then(status_of)
                        .filter(|s| s.starts_with('4'))
                        .unwrap_or_else(|| "4.0.0".into()),
                    diagnostic: reason.as_ref().map(|r| format!("X-Postern; {r}")),
                    remote_mta: None,
                });
            }
        }
    }
    lines
}

/// The enhanced status code in a reply or a reason (`452 4.2.2 Mailbox full`, `host x said:
/// 452 4.2.2 ...`): the first word shaped like one.
fn status_of(text: &str) -> Option<String> {
    text.split_whitespace()
        .take(12)
        .find(|w| {
            let parts: Vec<&str> = w.split('.').collect();
            parts.len() == 3
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
                && matches!(parts.first(), Some(&"2" | &"4" | &"5"))
        })
        .map(str::to_string)
}

fn host_of_relay(relay: &str) -> &str {
    relay.split('[').next().unwrap_or(relay)
}

fn human_text(req: &DsnRequest<'_>, lines: &[Line<'_>], n: Notification) -> String {
    let host = req.reporting_mta;
    let mut s = format!("This is the mail system at host {host}.\n\n");
    match (n, &req.kind) {
        (Notification::NonDelivery, _) => s.push_str(
            "I'm sorry to have to inform you that your message could not\n\
             be delivered to one or more recipients. It's attached below.\n\n\
             For further assistance, please send mail to postmaster.\n\n\
             If you do so, please include this problem report. You can\n\
             delete your own text from the attached returned message.\n",
        ),
        (Notification::Delay, Kind::Delay { retry_until, .. }) => {
            let _ = write!(
                s,
                "####################################################################\n\
                 # THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n\
                 ####################################################################\n\n\
                 Your message could not be delivered for more than {} hour(s).\n\
                 It will be retried until it is {} day(s) old.\n",
                req.now.saturating_sub(req.envelope.arrival) / 3600,
                retry_until
                    .saturating_sub(req.envelope.arrival)
                    .div_ceil(86_400),
            );
        }
        _ => s.push_str(
            "Your message was successfully delivered to the destination(s)\n\
             listed below. If the message was delivered to mailbox you will\n\
             receive no further notifications. Otherwise you may still receive\n\
             notifications of mail delivery errors from other systems.\n",
        ),
    }
    s.push_str("\n                   The mail system\n");
    for l in lines {
        let _ = write!(s, "\n<{}>: ", l.rcpt.address);
        match &l.diagnostic {
            Some(d) => s.push_str(d.split_once("; ").map_or(d.as_str(), |(_, t)| t)),
            None => s.push_str(l.action),
        }
        s.push('\n');
    }
    s
}

fn status_part(req: &DsnRequest<'_>, lines: &[Line<'_>]) -> String {
    let env = req.envelope;
    let mut s = String::new();
    let _ = write!(s, "Reporting-MTA: dns; {}\r\n", req.reporting_mta);
    let _ = write!(s, "X-Postfix-Queue-ID: {}\r\n", req.qid);
    if let Some(id) = &env.envid {
        let _ = write!(s, "Original-Envelope-Id: {}\r\n", field(id));
    }
    let _ = write!(s, "X-Postfix-Sender: rfc822; {}\r\n", field(&env.sender));
    let _ = write!(s, "Arrival-Date: {}\r\n", date(env.arrival).to_rfc822());
    for l in lines {
        s.push_str("\r\n");
        let addr_type = if l.rcpt.address.is_ascii() {
            "rfc822"
        } else {
            "utf-8"
        };
        let _ = write!(
            s,
            "Final-Recipient: {addr_type}; {}\r\n",
            field(&l.rcpt.address)
        );
        if let Some((kind, addr)) = &l.rcpt.orcpt {
            let _ = write!(
                s,
                "Original-Recipient: {}; {}\r\n",
                field(kind),
                field(addr)
            );
        } else if let Some(orig) = &l.rcpt.original {
            let _ = write!(s, "Original-Recipient: rfc822; {}\r\n", field(orig));
        }
        let _ = write!(s, "Action: {}\r\n", l.action);
        let _ = write!(s, "Status: {}\r\n", field(&l.status));
        if let Some(m) = &l.remote_mta {
            let _ = write!(s, "Remote-MTA: dns; {}\r\n", field(m));
        }
        if let Some(d) = &l.diagnostic {
            let _ = write!(s, "Diagnostic-Code: {}\r\n", field(d));
        }
        if let Kind::Delay { retry_until, .. } = &req.kind {
            let _ = write!(
                s,
                "Will-Retry-Until: {}\r\n",
                date(*retry_until).to_rfc822()
            );
        }
    }
    s
}

/// A date for a header; times past the year 9999 (a damaged record) are clamped there.
fn date(unix: u64) -> Date {
    const YEAR_9999: u64 = 253_402_300_799;
    Date::new(i64::try_from(unix.min(YEAR_9999)).unwrap_or(0))
}

/// A field value on one line of sane length: text from peers must not break the report.
fn field(v: &str) -> String {
    let mut out: String = v
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if out.len() > 900 {
        let mut cut = 900;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// The header section of a message: up to and including the first empty line. `whole`: `msg` is
/// the entire message; if it is only its start and holds no empty line, the section is cut after
/// its last complete line, never inside one.
fn headers_of(msg: &[u8], whole: bool) -> &[u8] {
    let end = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| msg.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))
        .unwrap_or(if whole {
            msg.len()
        } else {
            msg.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1)
        });
    msg.get(..end).unwrap_or(msg)
}

#[cfg(test)]
mod tests;
