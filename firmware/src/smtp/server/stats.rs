//! What the client did in the session, for smtpd's `disconnect from ... ehlo=1 mail=1 rcpt=0/1
//! quit=1 commands=2/3` and `lost connection after RCPT` lines: each command counted once, as a
//! success when its final reply (not a 334 or 354 on the way) was positive.

/// The commands in the order smtpd lists them.
const ORDER: [&str; 15] = [
    "helo", "ehlo", "lhlo", "starttls", "auth", "mail", "rcpt", "data", "bdat", "rset", "noop",
    "vrfy", "help", "quit", "unknown",
];

/// Counts per command, and the last one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandStats {
    /// (name, successes, total), in [`ORDER`].
    counts: Vec<(&'static str, u32, u32)>,
    /// The command whose final reply is still to come.
    pending: Option<&'static str>,
    /// What the client last did, in smtpd's words (`CONNECT`, `RCPT`, `DATA`, `END-OF-MESSAGE`).
    last: Option<&'static str>,
}

/// The counted name of a command line's verb (`unknown` for anything else).
pub fn verb(line: &[u8]) -> &'static str {
    let word = line.split(|b| *b == b' ').next().unwrap_or_default();
    ORDER
        .iter()
        .copied()
        .find(|n| n.as_bytes().eq_ignore_ascii_case(word))
        .unwrap_or("unknown")
}

impl CommandStats {
    /// A command line was read.
    pub fn begin(&mut self, name: &'static str) {
        self.pending = Some(name);
        self.last = Some(match name {
            "helo" => "HELO",
            "ehlo" => "EHLO",
            "lhlo" => "LHLO",
            "starttls" => "STARTTLS",
            "auth" => "AUTH",
            "mail" => "MAIL",
            "rcpt" => "RCPT",
            "data" => "DATA",
            "bdat" => "BDAT",
            "rset" => "RSET",
            "noop" => "NOOP",
            "vrfy" => "VRFY",
            "help" => "HELP",
            "quit" => "QUIT",
            _ => "UNKNOWN",
        });
    }

    /// A reply went out; the first final one decides the pending command.
    pub fn replied(&mut self, code: u16) {
        if (300..400).contains(&code) {
            return;
        }
        let Some(name) = self.pending.take() else {
            return;
        };
        let ok = u32::from((200..300).contains(&code));
        match self.counts.iter_mut().find(|(n, _, _)| *n == name) {
            Some(entry) => {
                entry.1 += ok;
                entry.2 += 1;
            }
            None => {
                self.counts.push((name, ok, 1));
                self.counts
                    .sort_by_key(|(n, _, _)| ORDER.iter().position(|o| o == n));
            }
        }
    }

    /// The message data ended (smtpd's `END-OF-MESSAGE`).
    pub fn end_of_message(&mut self) {
        self.last = Some("END-OF-MESSAGE");
    }

    /// `RCPT`, `DATA`, ...; `CONNECT` before any command.
    pub fn last(&self) -> &'static str {
        self.last.unwrap_or("CONNECT")
    }

    /// `ehlo=1 mail=1 rcpt=0/1 quit=1 commands=2/3`, as smtpd ends its disconnect line; a count
    /// is `n` when all succeeded, else `ok/total`.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        // Written in place: a `String` per count was a dozen allocations per disconnect line.
        let mut out = String::with_capacity(16 * (self.counts.len() + 1));
        let (mut ok, mut total) = (0, 0);
        for (name, o, t) in &self.counts {
            let _ = write!(out, "{name}={} ", Fraction(*o, *t));
            ok += o;
            total += t;
        }
        let _ = write!(out, "commands={}", Fraction(ok, total));
        out
    }
}

/// `n` when all `n` succeeded, else `ok/total`.
struct Fraction(u32, u32);

impl std::fmt::Display for Fraction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Fraction(ok, total) = *self;
        if ok == total {
            write!(f, "{total}")
        } else {
            write!(f, "{ok}/{total}")
        }
    }
}
