//! STARTTLS and AUTH (PLAIN, LOGIN): the commands that change who the client is.

use super::super::auth::{self, SaslError};
use super::*;

impl Session {
    pub(super) fn auth(&mut self, mechanism: u64, initial: String) {
        if matches!(self.helo, Greeted::No) {
            return self.refuse(Refusal::NeedHelo);
        }
        if !self.auth_offered() {
            return self.refuse(Refusal::AuthNotEnabled);
        }
        if self.client.auth.is_some() {
            return self.refuse(Refusal::AlreadyAuthenticated);
        }
        if self.tx.is_some() {
            return self.refuse(Refusal::TransactionInProgress);
        }
        match mechanism {
            smtp_proto::AUTH_PLAIN if initial.is_empty() => {
                self.phase = Phase::AuthPlain;
                self.reply(Reply::bare(334, ""));
            }
            smtp_proto::AUTH_PLAIN => self.auth_plain_response(initial.as_bytes()),
            smtp_proto::AUTH_LOGIN if initial.is_empty() => {
                self.phase = Phase::AuthLoginUser;
                self.reply(Reply::bare(334, "VXNlcm5hbWU6"));
            }
            smtp_proto::AUTH_LOGIN => self.auth_login_user(initial.as_bytes()),
            _ => self.refuse(Refusal::UnknownMechanism),
        }
    }

    pub(super) fn auth_plain_response(&mut self, line: &[u8]) {
        match auth::decode_response(line).and_then(|d| auth::parse_plain(&d)) {
            Ok((user, password)) => self.authenticate(Mechanism::Plain, user, password),
            Err(e) => self.sasl_error(e),
        }
    }

    pub(super) fn auth_login_user(&mut self, line: &[u8]) {
        match auth::decode_response(line).and_then(auth::parse_login_item) {
            Ok(user) => {
                self.phase = Phase::AuthLoginPass(user);
                self.reply(Reply::bare(334, "UGFzc3dvcmQ6"));
            }
            Err(e) => self.sasl_error(e),
        }
    }

    pub(super) fn auth_login_pass(&mut self, user: String, line: &[u8]) {
        match auth::decode_response(line).and_then(auth::parse_login_item) {
            Ok(password) => self.authenticate(Mechanism::Login, user, password),
            Err(e) => self.sasl_error(e),
        }
    }

    pub(super) fn authenticate(&mut self, mechanism: Mechanism, user: String, password: String) {
        self.events.push_back(Event::Authenticate {
            mechanism,
            user: user.clone(),
            password: Password::new(password),
        });
        self.awaiting = Some(Awaiting::Auth { user });
    }

    pub(super) fn sasl_error(&mut self, e: SaslError) {
        self.refuse(match e {
            SaslError::Base64 => Refusal::AuthUndecodable,
            SaslError::Cancelled => Refusal::AuthCancelled,
            SaslError::Malformed => Refusal::AuthFailed,
        });
    }

    pub(super) fn starttls(&mut self) {
        if self.tls.is_some() {
            return self.refuse(Refusal::TlsAlreadyActive);
        }
        if !self.config.starttls {
            return self.refuse(Refusal::TlsNotAvailable);
        }
        if self.tx.is_some() {
            return self.refuse(Refusal::TransactionInProgress);
        }
        self.reply(Reply::new(220, [2, 0, 0], "Ready to start TLS"));
        // Plaintext sent after STARTTLS must never be read as if it came over TLS
        // (CVE-2011-0411, command injection).
        self.pos = self.input.len();
        self.events.push_back(Event::StartTls);
        self.awaiting = Some(Awaiting::Tls);
    }
}
