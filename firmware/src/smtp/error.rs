//! Every way the server session refuses a client, each mapped to exactly one reply code and
//! enhanced status code. Texts follow Postfix's smtpd where Postfix has one, so admins recognise
//! them in logs and in bounce reports their users forward.

use crate::mail::Reply;

/// A refusal of the session core (not of the router or the spool, whose replies come with them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A command line over `line_length_limit` (it is skipped up to its CRLF, no desync).
    LineTooLong,
    /// `<LF>` without `<CR>`, anywhere: disconnect. Postfix 3.9 with
    /// `smtpd_forbid_bare_newline = reject` answers `<code> 5.5.2 <myhostname> Error: bare <LF>
    /// received` and hangs up, where the code is `smtpd_forbid_bare_newline_reject_code`
    /// (default 550). The first fixes of December 2023 (3.8.4, 3.7.9, ... with the boolean
    /// `smtpd_forbid_bare_newline = yes`) answered with a fixed 521; the code is a setting here.
    BareLf {
        code: u16,
    },
    /// `<CR>` without `<LF>`: disconnect, as for a bare LF. Postfix itself passes bare CR through;
    /// refusing it closes the `<CR>.<CR>` smuggling variant for servers behind us.
    BareCr {
        code: u16,
    },
    /// NUL or another control character in a command line.
    BadSyntax,
    /// Bytes that are not UTF-8 in a command line.
    BadUtf8,
    UnknownCommand,
    /// Known to the parser, not served here (ETRN, ATRN, BURL, EXPN).
    NotImplemented,
    /// The command's arguments do not parse; carries the expected syntax.
    Syntax(&'static str),
    BadSender,
    BadRecipient,
    /// A known parameter with a bad value.
    BadParameter(&'static str),
    /// A parameter we did not announce.
    UnsupportedParameter(String),
    NeedHelo,
    NestedMail,
    NeedMail,
    NeedRcpt,
    /// DATA in a transaction that already began with BDAT.
    DataAfterBdat,
    /// Submission (587): MAIL before STARTTLS.
    NeedTls,
    /// Submission (587): MAIL before AUTH.
    NeedAuth,
    /// A non-ASCII address without SMTPUTF8 (RFC 6531 §3.5).
    NeedSmtpUtf8,
    /// SIZE= at MAIL above `message_size_limit`.
    SizeTooBig,
    /// The body itself went over `message_size_limit`.
    MessageTooBig,
    /// A NUL byte in DATA or BDAT: refused rather than relayed to a server that might read
    /// `\r\n\0.\r\n` as the end of data.
    NulInData,
    /// Over `smtpd_recipient_limit`.
    TooManyRecipients,
    /// Commands sent ahead of the 354 by an unauthenticated client
    /// (`smtpd_forbid_unauth_pipelining`): disconnect.
    PipeliningViolation,
    /// `smtpd_hard_error_limit` reached: disconnect.
    TooManyErrors,
    /// The client spoke before the greeting was complete (postscreen's pregreet test, `drop`).
    Pregreet,
    /// No command or data within `smtpd_timeout`: disconnect.
    Timeout,
    AuthNotEnabled,
    AlreadyAuthenticated,
    /// AUTH, STARTTLS inside a MAIL transaction.
    TransactionInProgress,
    UnknownMechanism,
    AuthCancelled,
    AuthUndecodable,
    AuthFailed,
    /// The per-connection AUTH failure limit was reached: disconnect.
    TooManyAuthFailures,
    TlsAlreadyActive,
    TlsNotAvailable,
    VrfyDisabled,
    /// LMTP's LHLO on an SMTP port or EHLO/HELO on an LMTP port.
    WrongGreeting,
}

impl Refusal {
    /// The reply for this refusal; `hostname` is `myhostname`.
    pub fn reply(&self, hostname: &str) -> Reply {
        use Refusal::*;
        match self {
            LineTooLong => Reply::new(500, [5, 5, 2], "line too long"),
            BareLf { code } => Reply::new(
                *code,
                [5, 5, 2],
                format!("{hostname} Error: bare <LF> received"),
            ),
            BareCr { code } => Reply::new(
                *code,
                [5, 5, 2],
                format!("{hostname} Error: bare <CR> received"),
            ),
            BadSyntax => Reply::new(500, [5, 5, 2], "Error: bad syntax"),
            BadUtf8 => Reply::new(500, [5, 5, 2], "Error: bad UTF-8 syntax"),
            UnknownCommand | WrongGreeting => {
                Reply::new(500, [5, 5, 2], "Error: command not recognized")
            }
            NotImplemented => Reply::new(502, [5, 5, 1], "Error: command not implemented"),
            Syntax(s) => Reply::new(501, [5, 5, 4], format!("Syntax: {s}")),
            BadSender => Reply::new(501, [5, 1, 7], "Bad sender address syntax"),
            BadRecipient => Reply::new(501, [5, 1, 3], "Bad recipient address syntax"),
            BadParameter(p) => Reply::new(501, [5, 5, 4], format!("Bad {p} parameter syntax")),
            UnsupportedParameter(p) => {
                Reply::new(555, [5, 5, 4], format!("Unsupported option: {p}"))
            }
            NeedHelo => Reply::new(503, [5, 5, 1], "Error: send HELO/EHLO first"),
            NestedMail => Reply::new(503, [5, 5, 1], "Error: nested MAIL command"),
            NeedMail => Reply::new(503, [5, 5, 1], "Error: need MAIL command"),
            NeedRcpt => Reply::new(503, [5, 5, 1], "Error: need RCPT command"),
            DataAfterBdat => Reply::new(503, [5, 5, 1], "Error: DATA after BDAT"),
            NeedTls => Reply::new(530, [5, 7, 0], "Must issue a STARTTLS command first"),
            NeedAuth => Reply::new(530, [5, 7, 0], "Authentication required"),
            NeedSmtpUtf8 => Reply::new(
                553,
                [5, 6, 7],
                "Must declare SMTPUTF8 to send unicode address",
            ),
            SizeTooBig => Reply::new(552, [5, 3, 4], "Message size exceeds fixed limit"),
            MessageTooBig => Reply::new(552, [5, 3, 4], "Error: message file too big"),
            NulInData => Reply::new(
                550,
                [5, 6, 0],
                "Error: message content rejected: NUL character in message",
            ),
            TooManyRecipients => Reply::new(452, [4, 5, 3], "Error: too many recipients"),
            PipeliningViolation => {
                Reply::new(554, [5, 5, 0], "Error: SMTP protocol synchronization")
            }
            TooManyErrors => {
                Reply::new(421, [4, 7, 0], format!("{hostname} Error: too many errors"))
            }
            Pregreet => Reply::new(521, [5, 5, 1], "Protocol error"),
            Timeout => Reply::new(
                421,
                [4, 4, 2],
                format!("{hostname} Error: timeout exceeded"),
            ),
            AuthNotEnabled => Reply::new(503, [5, 5, 1], "Error: authentication not enabled"),
            AlreadyAuthenticated => Reply::new(503, [5, 5, 1], "Error: already authenticated"),
            TransactionInProgress => {
                Reply::new(503, [5, 5, 1], "Error: MAIL transaction in progress")
            }
            UnknownMechanism => Reply::new(504, [5, 5, 4], "Unrecognized authentication type"),
            AuthCancelled => Reply::new(501, [5, 7, 0], "Authentication aborted"),
            AuthUndecodable => Reply::new(501, [5, 5, 2], "Cannot decode response"),
            AuthFailed => Reply::new(
                535,
                [5, 7, 8],
                "Error: authentication failed: authentication failure",
            ),
            TooManyAuthFailures => Reply::new(
                421,
                [4, 7, 0],
                format!("{hostname} Error: too many failed authentication attempts"),
            ),
            TlsAlreadyActive => Reply::new(554, [5, 5, 1], "Error: TLS already active"),
            TlsNotAvailable => Reply::new(454, [4, 7, 0], "TLS not available due to local problem"),
            VrfyDisabled => Reply::new(502, [5, 5, 1], "VRFY command is disabled"),
        }
    }

    /// The session ends after this reply.
    pub fn disconnects(&self) -> bool {
        matches!(
            self,
            Refusal::BareLf { .. }
                | Refusal::BareCr { .. }
                | Refusal::PipeliningViolation
                | Refusal::Pregreet
                | Refusal::TooManyErrors
                | Refusal::Timeout
                | Refusal::TooManyAuthFailures
        )
    }
}
