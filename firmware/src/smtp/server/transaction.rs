//! The mail transaction: EHLO/HELO/LHLO, MAIL, RCPT, DATA and BDAT, and the message body.

use super::super::data::{DataError, Progress};
use super::*;

impl Session {
    pub(super) fn hello(&mut self, host: String, kind: Greeted, mode: Mode) {
        if mode != self.config.mode {
            return self.refuse(Refusal::WrongGreeting);
        }
        self.reset_transaction();
        self.client.helo = host;
        let hostname = self.config.hostname.clone();
        if matches!(kind, Greeted::Helo) {
            self.helo = Greeted::Helo;
            return self.reply(Reply::bare(250, hostname));
        }
        self.helo = Greeted::Ehlo;
        let mut lines = vec![
            hostname,
            "PIPELINING".to_string(),
            format!("SIZE {}", self.config.max_message_size),
        ];
        if self.config.starttls && self.tls.is_none() {
            lines.push("STARTTLS".into());
        }
        if self.auth_offered() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        for ext in [
            "ENHANCEDSTATUSCODES",
            "8BITMIME",
            "DSN",
            "SMTPUTF8",
            "CHUNKING",
        ] {
            lines.push(ext.into());
        }
        let last = lines.len() - 1;
        for (i, l) in lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            self.output
                .extend_from_slice(format!("250{sep}{l}\r\n").as_bytes());
        }
        self.stats.replied(250);
    }

    pub(super) fn auth_offered(&self) -> bool {
        self.config.auth && self.tls.is_some()
    }

    pub(super) fn mail(&mut self, from: smtp_proto::MailFrom<String>) {
        if matches!(self.helo, Greeted::No) {
            return self.refuse(Refusal::NeedHelo);
        }
        if self.config.auth_required && self.client.auth.is_none() {
            return self.refuse(if self.tls.is_none() {
                Refusal::NeedTls
            } else {
                Refusal::NeedAuth
            });
        }
        if self.tx.is_some() {
            return self.refuse(Refusal::NestedMail);
        }
        use smtp_proto::*;
        let unsupported = [
            (MAIL_BODY_BINARYMIME, "BODY=BINARYMIME"),
            (MAIL_REQUIRETLS, "REQUIRETLS"),
            (MAIL_CONPERM, "CONPERM"),
            (MAIL_BY_NOTIFY | MAIL_BY_RETURN | MAIL_BY_TRACE, "BY"),
        ];
        for (flag, name) in unsupported {
            if from.flags & flag != 0 {
                return self.refuse(Refusal::UnsupportedParameter(name.into()));
            }
        }
        let extras = [
            (from.trans_id.is_some(), "TRANSID"),
            (from.by != 0, "BY"),
            (from.solicit.is_some(), "SOLICIT"),
            (from.mtrk.is_some(), "MTRK"),
            (from.hold_for != 0 || from.hold_until != 0, "FUTURERELEASE"),
            (from.mt_priority != 0, "MT-PRIORITY"),
        ];
        for (present, name) in extras {
            if present {
                return self.refuse(Refusal::UnsupportedParameter(name.into()));
            }
        }
        let smtputf8 = from.flags & MAIL_SMTPUTF8 != 0;
        if smtputf8 && !matches!(self.helo, Greeted::Ehlo) {
            return self.refuse(Refusal::UnsupportedParameter("SMTPUTF8".into()));
        }
        if !from.address.is_ascii() && !smtputf8 {
            return self.refuse(Refusal::NeedSmtpUtf8);
        }
        if from.size as u64 > self.config.max_message_size {
            return self.refuse(Refusal::SizeTooBig);
        }
        let body_type = if from.flags & MAIL_BODY_8BITMIME != 0 {
            BodyType::EightBitMime
        } else {
            BodyType::SevenBit
        };
        let ret = if from.flags & MAIL_RET_FULL != 0 {
            Some(Ret::Full)
        } else if from.flags & MAIL_RET_HDRS != 0 {
            Some(Ret::Headers)
        } else {
            None
        };
        let tx = Transaction {
            sender: from.address,
            ret,
            envid: from.env_id,
            body_type,
            smtputf8,
            recipients: Vec::new(),
            open: false,
            bdat: false,
            size: 0,
            too_big: false,
            nul: false,
        };
        self.events.push_back(Event::CheckSender);
        self.awaiting = Some(Awaiting::Sender(Box::new(tx)));
    }

    pub(super) fn rcpt(&mut self, to: smtp_proto::RcptTo<String>, line: &[u8]) {
        use smtp_proto::*;
        if matches!(self.helo, Greeted::No) {
            return self.refuse(Refusal::NeedHelo);
        }
        let Some(tx) = self.tx.as_ref() else {
            return self.refuse(Refusal::NeedMail);
        };
        if tx.recipients.len() >= self.config.max_recipients {
            return self.refuse(Refusal::TooManyRecipients);
        }
        if to.flags & (RCPT_CONNEG | RCPT_RRVS_REJECT | RCPT_RRVS_CONTINUE) != 0 || to.rrvs != 0 {
            return self.refuse(Refusal::UnsupportedParameter("RRVS/CONNEG".into()));
        }
        let mut address = to.address;
        if address.is_empty() {
            // smtp-proto maps both <> and <postmaster> to "": only the latter is a recipient.
            let lower = String::from_utf8_lossy(line).to_ascii_lowercase();
            if !lower.contains("<postmaster>") {
                return self.refuse(Refusal::BadRecipient);
            }
            address = "postmaster".into();
        }
        if !address.is_ascii() && !tx.smtputf8 {
            return self.refuse(Refusal::NeedSmtpUtf8);
        }
        let never = to.flags & RCPT_NOTIFY_NEVER != 0;
        let others = to.flags & (RCPT_NOTIFY_SUCCESS | RCPT_NOTIFY_FAILURE | RCPT_NOTIFY_DELAY);
        if never && others != 0 {
            return self.refuse(Refusal::BadParameter("NOTIFY"));
        }
        let notify = if never {
            Notify::NEVER
        } else if others != 0 {
            Notify {
                success: to.flags & RCPT_NOTIFY_SUCCESS != 0,
                failure: to.flags & RCPT_NOTIFY_FAILURE != 0,
                delay: to.flags & RCPT_NOTIFY_DELAY != 0,
                explicit: true,
            }
        } else {
            Notify::DEFAULT
        };
        let orcpt = to.orcpt.map(|a| ("rfc822".to_string(), a));
        let query = RcptQuery {
            client: self.client_info(),
            sender: tx.sender.clone(),
            address: address.clone(),
            notify,
            orcpt: orcpt.clone(),
        };
        // The router's answer makes the recipients, each with its next hop.
        let pending = PendingRcpt {
            address,
            orcpt,
            notify,
        };
        self.events.push_back(Event::CheckRecipient(query));
        self.awaiting = Some(Awaiting::Rcpt(pending));
    }

    pub(super) fn data(&mut self) {
        if matches!(self.helo, Greeted::No) {
            return self.refuse(Refusal::NeedHelo);
        }
        match &self.tx {
            None => return self.refuse(Refusal::NeedRcpt),
            Some(tx) if tx.recipients.is_empty() => return self.refuse(Refusal::NeedRcpt),
            Some(tx) if tx.bdat => return self.refuse(Refusal::DataAfterBdat),
            Some(_) => {}
        }
        self.begin(AfterBegin::Data);
    }

    pub(super) fn bdat(&mut self, size: usize, last: bool) {
        let refusal = if matches!(self.helo, Greeted::No) {
            Some(Refusal::NeedHelo)
        } else {
            match &self.tx {
                None => Some(Refusal::NeedMail),
                Some(tx) if tx.recipients.is_empty() => Some(Refusal::NeedRcpt),
                Some(_) => None,
            }
        };
        if let Some(r) = refusal {
            // Counted as an error when the reply goes out, after the chunk.
            let reply = r.reply(&self.config.hostname);
            self.phase = Phase::BdatDiscard {
                remaining: size,
                reply,
            };
            return;
        }
        let Some(tx) = self.tx.as_mut() else { return };
        tx.bdat = true;
        if tx.open {
            self.phase = Phase::Bdat {
                remaining: size,
                size,
                last,
            };
        } else {
            self.begin(AfterBegin::Bdat { size, last });
        }
    }

    pub(super) fn begin(&mut self, after: AfterBegin) {
        let Some(tx) = self.tx.as_ref() else { return };
        let envelope = Envelope {
            sender: tx.sender.clone(),
            recipients: tx.recipients.clone(),
            ret: tx.ret,
            envid: tx.envid.clone(),
            body_type: tx.body_type,
            smtputf8: tx.smtputf8,
            arrival: 0,
            client: self.client_info(),
        };
        self.events
            .push_back(Event::MessageBegin(Box::new(envelope)));
        self.awaiting = Some(Awaiting::Begin(after));
    }

    pub(super) fn process_data(&mut self) -> bool {
        let Phase::Data(decoder) = &mut self.phase else {
            return false;
        };
        let avail = self.input.get(self.pos..).unwrap_or_default();
        if avail.is_empty() {
            return false;
        }
        // Never longer than its input: sized once, not grown line by line.
        let mut body = Vec::with_capacity(avail.len());
        let progress = decoder.decode(avail, &mut body);
        match progress {
            Progress::NeedMore => self.pos = self.input.len(),
            Progress::End(n) | Progress::Error(_, n) => self.pos += n,
        }
        self.take_body(body);
        match progress {
            Progress::NeedMore => {}
            Progress::End(_) => self.end_of_message(),
            Progress::Error(e, _) => {
                self.reset_transaction();
                let code = self.config.bare_newline_reject_code;
                self.refuse(match e {
                    DataError::BareLf => Refusal::BareLf { code },
                    DataError::BareCr => Refusal::BareCr { code },
                });
            }
        }
        true
    }

    pub(super) fn process_bdat(&mut self) -> bool {
        let avail = self.input.len().saturating_sub(self.pos);
        match &mut self.phase {
            Phase::BdatDiscard { remaining, reply } => {
                let n = avail.min(*remaining);
                *remaining -= n;
                self.pos += n;
                if *remaining > 0 {
                    return false;
                }
                let reply = reply.clone();
                self.phase = Phase::Command;
                self.reply(reply);
                true
            }
            Phase::Bdat {
                remaining,
                size,
                last,
            } => {
                let n = avail.min(*remaining);
                *remaining -= n;
                let done = *remaining == 0;
                let (size, last) = (*size, *last);
                let chunk = self
                    .input
                    .get(self.pos..self.pos + n)
                    .unwrap_or_default()
                    .to_vec();
                self.pos += n;
                self.take_body(chunk);
                if !done {
                    return false;
                }
                self.phase = Phase::Command;
                if last || self.tx.as_ref().is_some_and(|tx| tx.too_big || tx.nul) {
                    self.end_of_message();
                } else {
                    self.reply(Reply::new(250, [2, 0, 0], format!("Ok: {size} bytes")));
                }
                true
            }
            _ => false,
        }
    }

    /// Counts body bytes against the size limit and passes them on while under it and free of
    /// NUL bytes. The chunk that passes the limit aborts the message instead: nothing past the
    /// limit is written, and what was streamed before is dropped by the driver (the contract on
    /// [`Event`]).
    pub(super) fn take_body(&mut self, body: Vec<u8>) {
        let Some(tx) = self.tx.as_mut() else { return };
        tx.size += body.len() as u64;
        if tx.too_big || tx.nul {
            return;
        }
        // A server behind this box that ends data at `\r\n\0.\r\n` could be smuggled into.
        if body.contains(&0) {
            tx.nul = true;
            tx.open = false;
            self.events.push_back(Event::MessageAbort);
            return;
        }
        if tx.size > self.config.max_message_size {
            tx.too_big = true;
            tx.open = false;
            self.events.push_back(Event::MessageAbort);
            return;
        }
        if !body.is_empty() {
            self.events.push_back(Event::MessageData(body));
        }
    }

    pub(super) fn end_of_message(&mut self) {
        self.phase = Phase::Command;
        self.stats.end_of_message();
        if self.tx.as_ref().is_some_and(|tx| tx.too_big) {
            self.tx = None;
            return self.refuse(Refusal::MessageTooBig);
        }
        if self.tx.as_ref().is_some_and(|tx| tx.nul) {
            self.tx = None;
            return self.refuse(Refusal::NulInData);
        }
        if let Some(tx) = self.tx.as_mut() {
            tx.open = false;
        }
        self.events.push_back(Event::MessageEnd);
        self.awaiting = Some(Awaiting::Commit);
    }
}
