//! One mail transaction on a ready connection: MAIL, RCPT, DATA (pipelined when offered), the
//! body, and a result per recipient, worded as Postfix's smtp/lmtp clients word them.

use crate::mail::{BodyType, EnhancedStatus, Envelope, Protocol, Reply};
use crate::queue::{BODY_PIECE, BodyReader, BodySource, RcptResult};
use crate::smtp::client::{Command, DotStuffer, MailFrom, RcptTo, accepts, status_of};

use super::session::{Connection, SessionError, Stage, Timeouts};

/// What one mail transaction carries.
#[derive(Clone, Copy)]
pub struct Transaction<'a> {
    pub sender: &'a str,
    /// (envelope index, address).
    pub recipients: &'a [(usize, &'a str)],
    /// Read a piece at a time while it is sent.
    pub body: &'a dyn BodySource,
    pub body_type: BodyType,
    pub smtputf8: bool,
    /// RFC 3461 parameters (RET, ENVID, NOTIFY, ORCPT), passed on when the server offers DSN.
    pub dsn: Option<&'a Envelope>,
}

/// Results by envelope index.
type Results = Vec<(usize, RcptResult)>;

/// `Ok`: a result for every recipient. `Err`: the session error and the recipients that already
/// have a final answer; the rest are the caller's to defer, and the connection is not reused.
pub type TxOutcome = Result<Results, (SessionError, Results)>;

/// How MAIL and the RCPTs were answered.
struct EnvelopeReplies<'a> {
    /// MAIL's reply when it was refused: every recipient fails with it.
    mail_refused: Option<Reply>,
    accepted: Vec<(usize, &'a str)>,
}

impl Connection {
    /// One mail transaction.
    pub async fn send_mail(&mut self, tx: &Transaction<'_>, t: &Timeouts) -> TxOutcome {
        if let Some(refused) = self.refuse_before_mail(tx) {
            return Ok(refused);
        }
        let batch = self.envelope_batch(tx, false);
        if let Err(e) = self.pipeline_commands(&batch, Stage::Mail, t.mail).await {
            return Err((e, Vec::new()));
        }
        self.finish_transaction(tx, t).await
    }

    /// One mail transaction on a connection taken from the cache, which may have gone stale.
    /// RSET finds out, as Postfix's client does; with PIPELINING it goes in the same write as
    /// MAIL, the RCPTs and DATA (RFC 2920 lets RSET open a group), which saves the reused
    /// connection a round trip per message. `None`: RSET was not answered 250, so the
    /// connection is unusable and nothing was sent a server could deliver (no body); the
    /// caller takes a fresh connection.
    pub async fn send_mail_reused(
        &mut self,
        tx: &Transaction<'_>,
        t: &Timeouts,
    ) -> Option<TxOutcome> {
        if !self.caps.pipelining {
            if !self.reset(t).await {
                return None;
            }
            return Some(self.send_mail(tx, t).await);
        }
        if let Some(refused) = self.refuse_before_mail(tx) {
            return Some(Ok(refused));
        }
        let batch = self.envelope_batch(tx, true);
        self.pipeline_commands(&batch, Stage::Rset, t.rset)
            .await
            .ok()?;
        match self.read_reply(t).await {
            Ok(r) if r.reply.code == 250 => Some(self.finish_transaction(tx, t).await),
            _ => None,
        }
    }

    /// The replies to the envelope sent, the body, and the results.
    async fn finish_transaction(&mut self, tx: &Transaction<'_>, t: &Timeouts) -> TxOutcome {
        let mut results = Vec::with_capacity(tx.recipients.len());
        let replies = match self.envelope_replies(tx, &mut results, t).await {
            Ok(r) => r,
            Err(e) => return Err((e, results)),
        };
        if let Some(mail_reply) = replies.mail_refused {
            return Ok(all(tx, |_| self.negative(&mail_reply, Stage::Mail)));
        }
        match self.send_data(tx, &replies.accepted, &mut results, t).await {
            Ok(()) => {
                self.idle_since = tokio::time::Instant::now();
                Ok(results)
            }
            Err(e) => Err((e, results)),
        }
    }

    /// What this server cannot take at all: bounced before a word is said.
    fn refuse_before_mail(&self, tx: &Transaction<'_>) -> Option<Results> {
        let remote = self.target.name.clone();
        let why = if tx.smtputf8 && !self.caps.smtputf8 {
            let why = format!(
                "SMTPUTF8 is required, but was not offered by host {}",
                self.relay_name
            );
            (EnhancedStatus::of(5, 6, 7), why)
        } else if let Some(limit) = self.caps.size.filter(|&l| l > 0)
            && tx.body.size() > limit as u64
        {
            let why = format!(
                "message size {} exceeds size limit {limit} of server {}",
                tx.body.size(),
                self.relay_name
            );
            (EnhancedStatus::of(5, 3, 4), why)
        } else {
            return None;
        };
        let (status, why) = why;
        Some(all(tx, |_| RcptResult::Bounced {
            status,
            diagnostic: format!("X-Postern; {why}"),
            remote_mta: Some(remote.clone()),
        }))
    }

    fn mail_from<'a>(&self, tx: &Transaction<'a>) -> MailFrom<'a> {
        let dsn = tx.dsn.filter(|_| self.caps.dsn);
        MailFrom {
            sender: tx.sender,
            size: self
                .caps
                .size
                .map(|_| usize::try_from(tx.body.size()).unwrap_or(usize::MAX)),
            eight_bit_mime: tx.body_type != BodyType::SevenBit && self.caps.eight_bit_mime,
            smtputf8: tx.smtputf8,
            ret: dsn.and_then(|env| env.ret),
            envid: dsn.and_then(|env| env.envid.as_deref()),
        }
    }

    fn rcpt_to<'a>(&self, tx: &Transaction<'a>, k: usize) -> Option<Command<'a>> {
        let (index, address) = *tx.recipients.get(k)?;
        let dsn = tx.dsn.filter(|_| self.caps.dsn);
        let rcpt = dsn.and_then(|env| env.recipients.get(index));
        Some(Command::Rcpt(
            k,
            RcptTo {
                address,
                notify: rcpt.map(|r| r.notify),
                orcpt: rcpt.and_then(|r| r.orcpt.as_ref()),
            },
        ))
    }

    /// What goes in the first write: MAIL (after RSET on a reused connection), and with
    /// PIPELINING the RCPTs and DATA too (RFC 2920).
    fn envelope_batch<'a>(&self, tx: &Transaction<'a>, rset: bool) -> Vec<Command<'a>> {
        let mut batch = Vec::with_capacity(tx.recipients.len() + 3);
        if rset {
            batch.push(Command::Rset);
        }
        batch.push(Command::Mail(self.mail_from(tx)));
        if self.caps.pipelining {
            batch.extend((0..tx.recipients.len()).filter_map(|k| self.rcpt_to(tx, k)));
            batch.push(Command::Data);
        }
        batch
    }

    /// The replies to MAIL and the RCPTs (sent one at a time without PIPELINING). Refused
    /// recipients get their result here.
    async fn envelope_replies<'a>(
        &mut self,
        tx: &Transaction<'a>,
        results: &mut Results,
        t: &Timeouts,
    ) -> Result<EnvelopeReplies<'a>, SessionError> {
        let pipelining = self.caps.pipelining;
        let mail_reply = self.read_reply(t).await?.reply;
        let mail_ok = accepts(&mail_reply);
        let mut accepted = Vec::new();
        for (k, (idx, addr)) in tx.recipients.iter().enumerate() {
            if !pipelining {
                if !mail_ok {
                    break;
                }
                if let Some(rcpt) = self.rcpt_to(tx, k) {
                    self.command(&rcpt, Stage::Rcpt, t.rcpt).await?;
                }
            }
            let r = self.read_reply(t).await?.reply;
            if !mail_ok {
                continue;
            }
            if accepts(&r) {
                accepted.push((*idx, *addr));
            } else {
                results.push((*idx, self.negative(&r, Stage::Rcpt)));
            }
        }
        if mail_ok {
            return Ok(EnvelopeReplies {
                mail_refused: None,
                accepted,
            });
        }
        if pipelining {
            // The DATA reply is still to come; it is a refusal, read and ignore it.
            let _ = self.read_reply(t).await;
        }
        let _ = self.reset(t).await;
        Ok(EnvelopeReplies {
            mail_refused: Some(mail_reply),
            accepted,
        })
    }

    /// DATA (unless already pipelined), the body, and the final replies.
    async fn send_data(
        &mut self,
        tx: &Transaction<'_>,
        accepted: &[(usize, &str)],
        results: &mut Results,
        t: &Timeouts,
    ) -> Result<(), SessionError> {
        if !self.caps.pipelining {
            if accepted.is_empty() {
                let _ = self.reset(t).await;
                return Ok(());
            }
            self.command(&Command::Data, Stage::Data, t.data_init)
                .await?;
        }
        let data_reply = self.read_reply(t).await?.reply;
        if data_reply.code != 354 {
            for (idx, _) in accepted {
                results.push((*idx, self.negative(&data_reply, Stage::Data)));
            }
            if !accepted.is_empty() || accepts(&data_reply) {
                let _ = self.reset(t).await;
            }
            return Ok(());
        }
        if accepted.is_empty() {
            // Pipelined DATA was accepted with no recipient: send an empty message's end.
            self.expect_end_of_data(1);
            self.send(b".\r\n", Stage::EndOfData, t.data_done).await?;
            let _ = self.read_reply(t).await;
            return Ok(());
        }
        self.send_body(tx.body, t).await?;
        self.read_final_replies(accepted, results, t).await
    }

    /// SMTP: one reply for all; LMTP (RFC 2033 §4.2): one per accepted recipient, in order.
    async fn read_final_replies(
        &mut self,
        accepted: &[(usize, &str)],
        results: &mut Results,
        t: &Timeouts,
    ) -> Result<(), SessionError> {
        let relay = self.relay();
        let replies = match self.protocol {
            Protocol::Smtp => 1,
            Protocol::Lmtp => accepted.len(),
        };
        self.expect_end_of_data(replies);
        let mut end_replies = Vec::with_capacity(replies);
        for _ in 0..replies {
            match self.read_reply(t).await {
                Ok(r) => end_replies.push(r.reply),
                Err(e) => {
                    // LMTP recipients answered before the loss are final.
                    for ((idx, _), r) in accepted.iter().zip(&end_replies) {
                        results.push((*idx, self.final_result(r, &relay)));
                    }
                    return Err(e);
                }
            }
        }
        for (k, (idx, _)) in accepted.iter().enumerate() {
            if let Some(r) = end_replies.get(k).or_else(|| end_replies.first()) {
                results.push((*idx, self.final_result(r, &relay)));
            }
        }
        Ok(())
    }

    fn final_result(&self, r: &Reply, relay: &str) -> RcptResult {
        if accepts(r) {
            RcptResult::Delivered {
                relay: relay.to_string(),
                reply: r.clone(),
            }
        } else {
            self.negative(r, Stage::EndOfData)
        }
    }

    /// A 4xx or 5xx (or nonsense) to a command, as Postfix words it.
    fn negative(&self, r: &Reply, stage: Stage) -> RcptResult {
        if r.is_permanent() {
            return RcptResult::Bounced {
                status: status_of(r),
                diagnostic: format!("smtp; {r}"),
                remote_mta: Some(self.target.name.clone()),
            };
        }
        RcptResult::Deferred {
            status: if r.is_transient() {
                status_of(r)
            } else {
                EnhancedStatus::of(4, 0, 0)
            },
            reason: format!(
                "host {} said: {r} (in reply to {})",
                self.relay_name,
                stage.command()
            ),
        }
    }

    /// The body a piece at a time as the spool hands it out, dot-stuffed across the pieces' seams,
    /// so a transaction holds one piece in RAM whatever the message size. The final dot goes
    /// only after every piece was read and passed its check: a piece that cannot be read
    /// abandons the transaction without it, so the next hop never accepts a damaged message.
    /// The dot goes in the same write as the last piece: one segment less for both ends (a
    /// write of its own was one send in ten per relayed message).
    async fn send_body(&mut self, body: &dyn BodySource, t: &Timeouts) -> Result<(), SessionError> {
        let mut pieces = BodyReader::new(body, BODY_PIECE);
        let mut stuffer = DotStuffer::new();
        let mut out = Vec::with_capacity(BODY_PIECE + BODY_PIECE / 16);
        while !pieces.is_done() {
            let piece = match pieces.next_piece().await {
                Ok(Some(piece)) => piece,
                Ok(None) => break,
                Err(e) => {
                    self.abandon_data(t).await;
                    return Err(SessionError::BodyUnreadable(e));
                }
            };
            out.clear();
            stuffer.push(&piece, &mut out);
            if !pieces.is_done() {
                self.write(&out, Stage::Body, t.data_block).await?;
                out.clear();
            }
        }
        stuffer.finish(&mut out);
        self.send(&out, Stage::EndOfData, t.data_block).await
    }
}

fn all(tx: &Transaction<'_>, f: impl Fn(usize) -> RcptResult) -> Results {
    tx.recipients.iter().map(|(i, _)| (*i, f(*i))).collect()
}
