//! The engine of the session: input framing into command lines, dispatch, and the one place
//! replies are written and errors counted.

use smtp_proto::{Error as ParseError, Request};

use super::*;

impl Session {
    pub(super) fn process(&mut self, now: Instant) {
        while !self.is_closed() && self.awaiting.is_none() {
            let progressed = match self.phase {
                Phase::Data(_) => self.process_data(),
                Phase::Bdat { .. } | Phase::BdatDiscard { .. } => self.process_bdat(),
                _ => match self.next_line() {
                    Some(line) => {
                        self.handle_line(line);
                        true
                    }
                    None => false,
                },
            };
            if !progressed {
                break;
            }
        }
        if self.pos > 0 {
            self.input.drain(..self.pos.min(self.input.len()));
            self.pos = 0;
        }
        let timeout = match self.phase {
            Phase::Data(_) | Phase::Bdat { .. } | Phase::BdatDiscard { .. } => {
                self.config.data_timeout
            }
            _ => self.config.command_timeout,
        };
        self.deadline = now + timeout;
    }

    pub(super) fn next_line(&mut self) -> Option<Line> {
        let limit = self.config.line_length_limit;
        loop {
            let avail = self.input.get(self.pos..).unwrap_or_default();
            let lf = avail.iter().position(|&b| b == b'\n');
            if self.discarding {
                match lf {
                    Some(i) => {
                        self.pos += i + 1;
                        self.discarding = false;
                        continue;
                    }
                    None => {
                        self.pos = self.input.len();
                        return None;
                    }
                }
            }
            return match lf {
                Some(i) if i + 1 > limit => {
                    self.pos += i + 1;
                    Some(Line::TooLong)
                }
                Some(i) => {
                    if i == 0 || avail.get(i - 1) != Some(&b'\r') {
                        return Some(Line::BareLf);
                    }
                    let text = avail.get(..i - 1).unwrap_or_default().to_vec();
                    self.pos += i + 1;
                    Some(Line::Text(text))
                }
                None if avail.len() > limit => {
                    self.pos = self.input.len();
                    self.discarding = true;
                    Some(Line::TooLong)
                }
                None => None,
            };
        }
    }

    pub(super) fn handle_line(&mut self, line: Line) {
        let text = match line {
            Line::Text(t) => t,
            Line::TooLong => {
                if !matches!(self.phase, Phase::Command) {
                    self.phase = Phase::Command;
                }
                return self.refuse(Refusal::LineTooLong);
            }
            Line::BareLf => {
                let code = self.config.bare_newline_reject_code;
                return self.refuse(Refusal::BareLf { code });
            }
        };
        match std::mem::replace(&mut self.phase, Phase::Command) {
            Phase::AuthPlain => self.auth_plain_response(&text),
            Phase::AuthLoginUser => self.auth_login_user(&text),
            Phase::AuthLoginPass(user) => self.auth_login_pass(user, &text),
            _ => self.command(text),
        }
    }

    pub(super) fn command(&mut self, mut line: Vec<u8>) {
        self.stats.begin(stats::verb(&line));
        if line.iter().any(|&b| b.is_ascii_control() && b != b'\t') {
            return self.refuse(Refusal::BadSyntax);
        }
        if std::str::from_utf8(&line).is_err() {
            return self.refuse(Refusal::BadUtf8);
        }
        line.extend_from_slice(b"\r\n");
        let request = match Request::parse(&mut line.iter()) {
            Ok(r) => r.into_owned(),
            Err(e) => return self.refuse(parse_refusal(e)),
        };
        let announced = matches!(self.helo, Greeted::Ehlo)
            || matches!(request, Request::Ehlo { .. } | Request::Lhlo { .. });
        if self.config.forbid_unauth_pipelining
            && self.config.mode == Mode::Smtp
            && self.client.auth.is_none()
            && !announced
            && self.pos < self.input.len()
        {
            // More commands in hand than the one a client without PIPELINING may send.
            return self.refuse(Refusal::PipeliningViolation);
        }
        match request {
            Request::Ehlo { host } => self.hello(host, Greeted::Ehlo, Mode::Smtp),
            Request::Helo { host } => self.hello(host, Greeted::Helo, Mode::Smtp),
            Request::Lhlo { host } => self.hello(host, Greeted::Ehlo, Mode::Lmtp),
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => self.rcpt(to, &line),
            Request::Data => self.data(),
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.bdat(chunk_size, is_last),
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, initial_response),
            Request::StartTls => self.starttls(),
            Request::Noop { .. } => self.reply(Reply::new(250, [2, 0, 0], "Ok")),
            Request::Rset => {
                self.reset_transaction();
                self.reply(Reply::new(250, [2, 0, 0], "Ok"));
            }
            Request::Quit => {
                self.reset_transaction();
                self.reply(Reply::new(221, [2, 0, 0], "Bye"));
                self.phase = Phase::Closed;
            }
            Request::Vrfy { .. } if self.config.vrfy => self.reply(Reply::new(
                252,
                [2, 0, 0],
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Request::Vrfy { .. } => self.refuse(Refusal::VrfyDisabled),
            Request::Help { .. } => self.reply(Reply::new(
                214,
                [2, 0, 0],
                "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP STARTTLS AUTH",
            )),
            Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => self.refuse(Refusal::NotImplemented),
        }
    }

    pub(super) fn client_info(&self) -> ClientInfo {
        let mut c = self.client.clone();
        let base = match (self.config.mode, &self.helo) {
            (Mode::Lmtp, _) => "LMTP",
            (Mode::Smtp, Greeted::Helo) => "SMTP",
            (Mode::Smtp, _) => "ESMTP",
        };
        let tls = if self.tls.is_some() { "S" } else { "" };
        let auth = if self.client.auth.is_some() { "A" } else { "" };
        c.protocol = if base == "SMTP" {
            base.to_string()
        } else {
            format!("{base}{tls}{auth}")
        };
        c
    }

    pub(super) fn reset_transaction(&mut self) {
        if let Some(tx) = self.tx.take()
            && tx.open
        {
            self.events.push_back(Event::MessageAbort);
        }
    }

    pub(super) fn reply(&mut self, reply: Reply) {
        if self.is_closed() {
            return;
        }
        reply.write_to(&mut self.output);
        self.stats.replied(reply.code);
        if reply.is_error() {
            self.count_error();
        }
    }

    /// Counts a client error; at `smtpd_hard_error_limit` the session ends with 421.
    pub(super) fn count_error(&mut self) {
        self.errors += 1;
        if self.errors >= self.config.hard_error_limit && !self.is_closed() {
            Refusal::TooManyErrors
                .reply(&self.config.hostname)
                .write_to(&mut self.output);
            self.close();
        }
    }

    pub(super) fn refuse(&mut self, refusal: Refusal) {
        if self.is_closed() {
            return;
        }
        let reply = refusal.reply(&self.config.hostname);
        reply.write_to(&mut self.output);
        self.stats.replied(reply.code);
        if refusal.disconnects() {
            self.close();
        } else {
            self.count_error();
        }
    }

    pub(super) fn close(&mut self) {
        self.reset_transaction();
        self.phase = Phase::Closed;
        self.awaiting = None;
    }
}

fn parse_refusal(e: ParseError) -> Refusal {
    match e {
        ParseError::UnknownCommand => Refusal::UnknownCommand,
        ParseError::SyntaxError { syntax } => Refusal::Syntax(syntax),
        ParseError::InvalidSenderAddress => Refusal::BadSender,
        ParseError::InvalidRecipientAddress => Refusal::BadRecipient,
        ParseError::InvalidParameter { param } => Refusal::BadParameter(param),
        ParseError::UnsupportedParameter { param } => Refusal::UnsupportedParameter(param),
        _ => Refusal::BadSyntax,
    }
}
