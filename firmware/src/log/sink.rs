//! Where log lines go: stderr, one line per write, prefixed with the Postfix-like program name
//! (`postern/smtp: QID: to=<...>`) so an admin greps as on a Postfix box.

use std::sync::{Arc, Mutex};

/// The part of Postern that speaks, named after the Postfix daemon with the same job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    Qmgr,
    /// The SMTP server (Postfix's smtpd).
    Smtpd,
    /// The pregreet test (Postfix's postscreen).
    Postscreen,
    Smtp,
    Lmtp,
    Bounce,
    /// The router (Postfix's trivial-rewrite and cleanup expand aliases there).
    Route,
    /// The services themselves: start, stop, recovery (Postfix's master).
    Master,
    /// The content stage's verdicts (amavisd-new's lines on a Zimbra MTA).
    Content,
}

impl Program {
    pub fn as_str(self) -> &'static str {
        match self {
            Program::Qmgr => "postern/qmgr",
            Program::Smtpd => "postern/smtpd",
            Program::Postscreen => "postern/postscreen",
            Program::Smtp => "postern/smtp",
            Program::Lmtp => "postern/lmtp",
            Program::Bounce => "postern/bounce",
            Program::Route => "postern/route",
            Program::Master => "postern",
            Program::Content => "postern/content",
        }
    }
}

/// A cheap, clonable log writer. `LogSink::stderr()` in the daemon; `LogSink::memory()` in tests
/// to assert on the lines written.
#[derive(Clone, Debug)]
pub struct LogSink {
    memory: Option<Arc<Mutex<Vec<String>>>>,
}

impl LogSink {
    pub fn stderr() -> LogSink {
        LogSink { memory: None }
    }

    /// Keeps lines in memory instead (tests).
    pub fn memory() -> LogSink {
        LogSink {
            memory: Some(Arc::new(Mutex::new(Vec::new()))),
        }
    }

    pub fn line(&self, program: Program, line: &str) {
        let name = program.as_str();
        match &self.memory {
            Some(m) => {
                if let Ok(mut v) = m.lock() {
                    v.push(format!("{name}: {line}"));
                }
            }
            None => {
                // A slow or stuck console must never stop mail: the line may be lost there,
                // the mail is not.
                super::console::write(name, line);
                super::remote::send(name, line);
                super::keep::keep(name, line);
            }
        }
    }

    /// The lines kept by a memory sink (empty for stderr).
    pub fn lines(&self) -> Vec<String> {
        self.memory
            .as_ref()
            .and_then(|m| m.lock().ok().map(|v| v.clone()))
            .unwrap_or_default()
    }
}
