//! The content stage: checks that read the message itself, run as its body streams to the spool
//! and decided at the end of data, before the 250, so a refused message is refused to the client
//! (no backscatter) and never queued.
//!
//! [`Scan`] is one message's pass: [`Scan::feed`] sees every body chunk as it is written to flash,
//! [`Scan::finish`] gives the verdict. The checks, in order:
//!
//! - [`hops`]: more `Received:` headers than `hopcount_limit` is a mail loop, `554 5.4.6`, as
//!   Postfix's cleanup refuses it; two systems that catch-all to each other end in a bounce at the
//!   sender, not a storm.
//! - [`attachments`]: a file name with a blocked extension, in the message, in an attached
//!   message or inside a zip ([`archive`]), is `554 5.7.1` naming the file. The MIME walk reads
//!   the message as it streams by; only a zip attachment is held (up to the scan limit).
//! - [`clamd`] and the spam scanner ([`spam`]: [`spamd`] or [`rspamd`]), called at the same
//!   time, each within its deadline: a virus is `554 5.7.1` naming it, spam over
//!   `zimbraSpamKillPercent` `554 5.7.1`, spam over `zimbraSpamTagPercent` is tagged; a scanner
//!   that gives no verdict is `451 4.7.1` or, as set, a header saying the message was not
//!   scanned. Mail to the training accounts is taught to the spam scanner instead
//!   ([`training`]), and by default not delivered to them.
//! - [`headers`]: what passes gets its header edits in its held header section.
//!
//! clamd, the spam scanner, spam training and DKIM (verifying and signing) read the message back
//! from the spool before the commit ([`stored`]), a piece at a time: DKIM holds the header
//! section and hashes the body as it goes by ([`crate::policy::auth::body_hash`]); training
//! tells the scanner each attached message found as the mail streamed by ([`lessons`]). No check
//! holds the message, so a session's RAM does not grow with it. What must be held (a zip being
//! opened, an encoded attached message being decoded) is held up to `posternContentScanLimit`;
//! past it the message passes marked unscanned, or gets `451 4.7.1`, as
//! `posternContentOversizeAction` says.

pub mod archive;
pub mod attachments;
pub mod blocked;
pub mod clamd;
pub mod dkim;
pub mod headers;
pub mod hops;
pub mod lessons;
pub mod notice;
pub mod rspamd;
pub mod scanner;
pub mod spam;
pub mod spamd;
pub mod stored;
pub mod training;

use std::sync::Arc;

use crate::config::content::FailAction;
use crate::config::{AuthConfig, ContentConfig, MtaConfig, ScannerAddress};
use crate::directory::Directory;
use crate::mail::{Envelope, Reply};
use crate::policy::SenderAuth;
use crate::policy::auth::{DmarcAction, MessageAuth, body_hash};

use clamd::protocol::ScanResult;
use scanner::ScannerError;

use attachments::AttachmentWalk;
use hops::HopCount;
use lessons::{Lesson, LessonWalk};
use stored::StoredMessage;

/// Why the content stage refuses a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    /// More `Received:` headers than `hopcount_limit`.
    TooManyHops { count: usize, limit: u32 },
    /// A file (or an archive member, `outer.zip/inner.exe`) with a blocked extension; `more`
    /// are the other such files in the message (see [`blocked`]).
    BlockedAttachment { name: String, more: Vec<String> },
    /// An archive whose members are encrypted, with `zimbraVirusBlockEncryptedArchive` on.
    EncryptedArchive { name: String },
    /// Archives nested deeper than `posternArchiveMaxDepth`.
    ArchiveTooDeep { name: String },
    /// An archive that unpacks to more than `posternArchiveMaxUnpackedSize`.
    DecompressionBomb { name: String },
    /// clamd found a virus.
    Infected { signature: String },
    /// The spam scanner scored it at or over `zimbraSpamKillPercent`.
    Spam { score: String },
    /// A scanner gave no verdict and its fail action is `tempfail`.
    ScannerFailed {
        scanner: &'static str,
        error: ScannerError,
    },
    /// DMARC failed and the From domain's policy is `p=reject` (`posternDmarcEnforce`).
    Dmarc { domain: String },
}

impl Rejection {
    /// How the log tells it, in amavis's words.
    pub fn verdict(&self) -> Verdict {
        let (category, detail) = match self {
            Rejection::TooManyHops { count, .. } => {
                ("LOOP", Some(format!("{count} Received headers")))
            }
            Rejection::BlockedAttachment { .. } => ("BANNED", Some(self.blocked_names().join(","))),
            Rejection::EncryptedArchive { name } => ("BANNED", Some(format!("encrypted {name}"))),
            Rejection::ArchiveTooDeep { name } | Rejection::DecompressionBomb { name } => {
                ("UNCHECKED", Some(name.clone()))
            }
            Rejection::Infected { signature } => ("INFECTED", Some(signature.clone())),
            Rejection::Spam { .. } => ("SPAM", None),
            Rejection::Dmarc { domain } => ("DMARC", Some(domain.clone())),
            Rejection::ScannerFailed { scanner, error } => {
                return Verdict {
                    action: "Deferred",
                    category: "UNCHECKED",
                    detail: Some(format!("{scanner}: {error}")),
                    disposition: "TempFailedInbound",
                    hits: None,
                };
            }
        };
        Verdict {
            action: "Blocked",
            category,
            detail,
            disposition: "RejectedInbound",
            hits: match self {
                Rejection::Spam { score } => Some(score.clone()),
                _ => None,
            },
        }
    }

    /// The answer to the end of data, in Postfix's and amavis's words.
    pub fn reply(&self) -> Reply {
        let refused = |text: String| Reply::new(554, [5, 7, 1], text);
        match self {
            Rejection::TooManyHops { .. } => Reply::new(
                554,
                [5, 4, 6],
                "Error: too many hops (mail forwarding loop)",
            ),
            Rejection::BlockedAttachment { name, more } if more.is_empty() => refused(format!(
                "Message content rejected: blocked attachment {}",
                shown(name)
            )),
            Rejection::BlockedAttachment { name, more } => refused(format!(
                "Message content rejected: blocked attachment {} and {} more",
                shown(name),
                more.len()
            )),
            Rejection::EncryptedArchive { name } => refused(format!(
                "Message content rejected: encrypted archive {} cannot be scanned",
                shown(name)
            )),
            Rejection::ArchiveTooDeep { name } => refused(format!(
                "Message content rejected: archive {} nested too deep to scan",
                shown(name)
            )),
            Rejection::DecompressionBomb { name } => refused(format!(
                "Message content rejected: archive {} unpacks too large to scan",
                shown(name)
            )),
            Rejection::Infected { signature } => refused(format!(
                "Message content rejected: virus found: {}",
                shown(signature)
            )),
            Rejection::Spam { .. } => refused("Message content rejected as spam".into()),
            // OpenDMARC's words.
            Rejection::Dmarc { domain } => Reply::new(
                550,
                [5, 7, 1],
                format!("rejected by DMARC policy for {}", shown_bare(domain)),
            ),
            Rejection::ScannerFailed { .. } => Reply::new(
                451,
                [4, 7, 1],
                "Message content could not be scanned, try again later",
            ),
        }
    }
}

impl Rejection {
    /// Every blocked file name of a [`Rejection::BlockedAttachment`], the first first; none for
    /// other refusals.
    pub fn blocked_names(&self) -> Vec<&str> {
        match self {
            Rejection::BlockedAttachment { name, more } => std::iter::once(name.as_str())
                .chain(more.iter().map(String::as_str))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// [`shown`] without the quotes (a domain name).
fn shown_bare(name: &str) -> String {
    let quoted = shown(name);
    quoted[1..quoted.len() - 1].to_string()
}

/// A file name as the client is shown it: printable ASCII (the name came from the sender and an
/// SMTP reply is ASCII), at most 100 characters.
fn shown(name: &str) -> String {
    let mut out: String = name
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if name.chars().count() > 100 {
        out.push_str("...");
    }
    format!("\"{out}\"")
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::TooManyHops { count, limit } => write!(
                f,
                "5.4.6 mail forwarding loop: {count} Received headers, hopcount_limit is {limit}"
            ),
            Rejection::BlockedAttachment { name, .. } => write!(f, "blocked attachment {name:?}"),
            Rejection::EncryptedArchive { name } => write!(f, "encrypted archive {name:?}"),
            Rejection::ArchiveTooDeep { name } => write!(f, "archive {name:?} nested too deep"),
            Rejection::DecompressionBomb { name } => {
                write!(
                    f,
                    "archive {name:?} unpacks past posternArchiveMaxUnpackedSize"
                )
            }
            Rejection::Infected { signature } => write!(f, "virus {signature}"),
            Rejection::Spam { score } => write!(f, "spam, score {score}"),
            Rejection::ScannerFailed { scanner, error } => write!(f, "{scanner}: {error}"),
            Rejection::Dmarc { domain } => write!(f, "DMARC policy reject of {domain}"),
        }
    }
}

impl std::error::Error for Rejection {}

/// The content checks of one message, fed its body as it arrives.
#[derive(Debug)]
pub struct Scan {
    hops: HopCount,
    /// Attachment blocking, when an extension is blocked.
    attachments: Option<AttachmentWalk>,
    /// Where training mail's attached messages lie, found as it streams by.
    lessons: Option<LessonWalk>,
    config: Arc<ContentConfig>,
    /// Training mail: what it teaches the spam scanner (it is then not scored itself).
    training: Option<training::Training>,
    /// What rspamd is told besides the message.
    envelope: Envelope,
    /// SPF, DKIM and DMARC of received mail, when any is on.
    sender: Option<SenderChecks>,
    /// Signing keys, for mail from `$mynetworks` and authenticated clients: the box's, and the
    /// directory's (Zimbra's, from LDAP).
    signing: Option<(dkim::KeyRing, Arc<Directory>)>,
}

/// What the sender checks of one message need.
#[derive(Debug)]
struct SenderChecks {
    auth: Arc<SenderAuth>,
    config: AuthConfig,
    envelope: Envelope,
    /// A client that may relay: not checked (its mail is signed), but forged fields still go.
    exempt: bool,
}

impl Scan {
    /// The checks as the settings are when the message begins.
    pub fn new(config: &MtaConfig, envelope: &Envelope) -> Scan {
        let blocks = &config.content;
        let attachments = (!blocks.blocked_extensions.is_empty()
            || !blocks.common_blocked_extensions.is_empty())
        .then(|| AttachmentWalk::new(blocks));
        let training = training::class_of(envelope, config);
        Scan {
            hops: HopCount::new(config.hopcount_limit),
            attachments,
            lessons: training.is_some().then(LessonWalk::default),
            config: config.content.clone(),
            training,
            envelope: envelope.clone(),
            sender: None,
            signing: None,
        }
    }

    /// Adds the sender checks set in `config` (none for an `exempt` client: one that may relay).
    pub fn with_sender_checks(
        mut self,
        auth: Arc<SenderAuth>,
        config: &MtaConfig,
        envelope: &Envelope,
        exempt: bool,
    ) -> Scan {
        if config.auth.checks_message() {
            self.sender = Some(SenderChecks {
                auth,
                config: config.auth.clone(),
                envelope: envelope.clone(),
                exempt,
            });
        }
        self
    }

    /// Signs what passes with `keys` or `dir`'s (for a client that may relay).
    pub fn with_signing(mut self, keys: dkim::KeyRing, dir: Arc<Directory>) -> Scan {
        if !keys.is_empty() || dir.has_dkim_keys() {
            self.signing = Some((keys, dir));
        }
        self
    }

    /// Whether DKIM signatures of received mail are verified (for themselves or for DMARC).
    fn verifies_dkim(&self) -> bool {
        self.sender
            .as_ref()
            .is_some_and(|s| !s.exempt && s.config.checks_dkim())
    }

    /// Whether a check reads the message back at the end of data (clamd, spam scoring or
    /// training, DKIM verifying or signing): then every byte must be on the spool before
    /// [`Scan::finish`]. Nothing holds the message in RAM: hops, attachment names and training's
    /// lessons are found as it streams by, SPF reads only the envelope.
    pub fn reads_stored(&self) -> bool {
        let c = &self.config;
        c.virus_check_enabled && c.clamd.is_some()
            || c.spam_scanner().is_some()
            || self.verifies_dkim()
            || self.signing.is_some()
    }

    /// SPF, DKIM and DMARC of the message, when they are to be checked. DKIM reads the message
    /// back from the spool: its header section held, its body hashed a piece at a time.
    async fn sender_checks(&self, stored: &dyn StoredMessage) -> Option<MessageAuth> {
        let s = self.sender_checked()?;
        let head = match self.verifies_dkim() {
            true => stored::read_head(stored, headers::HEAD_LIMIT)
                .await
                .ok()
                .flatten(),
            false => None,
        };
        let mut parsed = head.as_deref().and_then(body_hash::parse_head);
        if let (Some(message), Some(head)) = (&mut parsed, &head) {
            let mut hashes = body_hash::BodyHashes::for_message(message);
            if !hashes.is_empty() {
                let body = stored::Pieces::from_offset(stored, head.len() as u64);
                match body.each(|piece| hashes.write(piece)).await {
                    Ok(()) => hashes.finish(message),
                    // Unread, the body's hashes cannot be known: nothing is verified.
                    Err(_) => parsed = None,
                }
            }
        }
        s.auth
            .verify_message(parsed.as_ref(), &s.envelope, &s.config)
            .await
    }

    /// Puts the sender checks' verdict into `accepted`: the Authentication-Results field on top,
    /// the message held for DMARC `p=quarantine`, or refused for `p=reject`.
    fn apply_sender_checks(
        &self,
        accepted: &mut Accepted,
        auth: Option<MessageAuth>,
    ) -> Result<(), Rejection> {
        if let Some(s) = &self.sender {
            accepted.strip_auth_results = Some(s.auth.authserv_id().to_string());
        }
        let Some(auth) = auth else {
            return Ok(());
        };
        match auth.dmarc {
            DmarcAction::Reject { domain } => return Err(Rejection::Dmarc { domain }),
            DmarcAction::Quarantine { domain } => {
                accepted.hold = true;
                accepted
                    .notes
                    .push(format!("held: DMARC policy quarantine of {domain}"));
            }
            DmarcAction::Deliver => {}
        }
        if let Some(sealer) = auth.arc_override {
            accepted.notes.push(format!(
                "DMARC failure delivered: ARC chain sealed by trusted {sealer}"
            ));
        }
        accepted.headers.insert(0, auth.header);
        if let Some(field) = auth.received_spf {
            accepted.headers.insert(1, field);
        }
        Ok(())
    }

    /// Adds the DKIM-Signature field over the header section as it will be stored (the
    /// message's, with `accepted`'s edits) and the body, read back from the spool a piece at a
    /// time.
    async fn sign(&self, accepted: &mut Accepted, stored: &dyn StoredMessage) {
        let Some((keys, dir)) = &self.signing else {
            return;
        };
        let head = match stored::read_head(stored, headers::HEAD_LIMIT).await {
            Ok(Some(head)) => head,
            // Such a header section is stored unedited, with no room for a signature.
            Ok(None) => {
                accepted
                    .notes
                    .push("not DKIM-signed: header section too long".into());
                return;
            }
            Err(e) => {
                accepted
                    .notes
                    .push(format!("not DKIM-signed: reading the spool: {e}"));
                return;
            }
        };
        let edited = headers::edit(&head, accepted);
        let signer = match keys.signer_for(&edited, Some(dir)) {
            Ok(Some(signer)) => signer,
            Ok(None) => return,
            Err(e) => {
                accepted.notes.push(format!("not DKIM-signed: {e}"));
                return;
            }
        };
        let mut stream = signer.sign_streaming();
        stream.write(&edited);
        let body = stored::Pieces::from_offset(stored, head.len() as u64);
        if let Err(e) = body.each(|piece| stream.write(piece)).await {
            accepted
                .notes
                .push(format!("not DKIM-signed: reading the spool: {e}"));
            return;
        }
        match dkim::field(stream) {
            Ok(field) => accepted.headers.insert(0, field),
            Err(e) => accepted.notes.push(format!("not DKIM-signed: {e}")),
        }
    }

    /// Body bytes, in order, exactly as they go to the spool.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.hops.feed(chunk);
        if let Some(walk) = &mut self.attachments {
            walk.feed(chunk, &self.config);
        }
        if let Some(walk) = &mut self.lessons {
            walk.feed(chunk);
        }
    }

    /// The verdict once the whole body was fed: the message is refused, or accepted with the
    /// header edits to make. `stored` is the whole message as the scanners read it back. The
    /// scanners run at the same time.
    pub async fn finish(mut self, stored: &dyn StoredMessage) -> Result<Accepted, Rejection> {
        self.hops.verdict()?;
        let mut accepted = Accepted::default();
        if let Some(walk) = self.attachments.take()
            && let Some(unopened) = walk.finish(&self.config)?
        {
            self.too_big_to_hold(&mut accepted, &format!("archive {}", shown(&unopened.name)))?;
        }
        let lessons = self.lessons.take().map(LessonWalk::finish);
        // The checks that ask a peer make a ~14 KB future: boxed, and only when one of them
        // runs, so every session's task does not carry (and copy) it for nothing.
        let (virus, spam, auth) = if self.asks_a_peer() {
            Box::pin(self.peer_checks(stored, lessons.as_deref())).await
        } else {
            (Ok(None), Ok(Accepted::default()), None)
        };
        // A virus is the more telling answer, then spam; a scanner that failed comes last.
        let (virus, spam) = match (virus, spam) {
            (Ok(virus), Ok(spam)) => (virus, spam),
            (Err(Rejection::ScannerFailed { .. }), Err(refused)) => return Err(refused),
            (Err(refused), _) | (_, Err(refused)) => return Err(refused),
        };
        accepted.unchecked |= virus.is_some() || spam.unchecked;
        accepted.headers.extend(virus);
        accepted.headers.extend(spam.headers);
        accepted.subject_tag = spam.subject_tag;
        accepted.spammy = spam.spammy;
        accepted.hits = spam.hits;
        accepted.trained = spam.trained;
        accepted.notes.extend(spam.notes);
        self.apply_sender_checks(&mut accepted, auth)?;
        // Last: the signature covers the header section with every other edit made.
        self.sign(&mut accepted, stored).await;
        Ok(accepted)
    }

    /// Whether a check below asks clamd, a spam scanner or DNS; each of them answers nothing
    /// at once when it does not (what `finish` answers without them).
    fn asks_a_peer(&self) -> bool {
        self.virus_scanner().is_some()
            || self.config.spam_scanner().is_some()
            || self.sender_checked().is_some()
    }

    /// clamd, when the virus check is on.
    fn virus_scanner(&self) -> Option<&ScannerAddress> {
        let c = &self.config;
        c.clamd.as_ref().filter(|_| c.virus_check_enabled)
    }

    /// The sender checks to make, unless the sender is exempt.
    fn sender_checked(&self) -> Option<&SenderChecks> {
        self.sender.as_ref().filter(|s| !s.exempt)
    }

    /// The virus scan, the spam score (or training) and the sender checks, together.
    async fn peer_checks(
        &self,
        stored: &dyn StoredMessage,
        lessons: Option<&[Lesson]>,
    ) -> (
        Result<Option<String>, Rejection>,
        Result<Accepted, Rejection>,
        Option<MessageAuth>,
    ) {
        let spam_check = async {
            match (&self.training, lessons) {
                (Some(training), Some(lessons)) => self.train(stored, lessons, training).await,
                _ => self.spam_score(stored).await,
            }
        };
        tokio::join!(
            self.virus_scan(stored),
            spam_check,
            self.sender_checks(stored)
        )
    }

    /// Something a check must hold in RAM is over `posternContentScanLimit`: the message passes
    /// without that check, saying so, or is refused for now (`posternContentOversizeAction`).
    fn too_big_to_hold(&self, accepted: &mut Accepted, what: &str) -> Result<(), Rejection> {
        if self.config.oversize == FailAction::Tempfail {
            return Err(Rejection::ScannerFailed {
                scanner: "content",
                error: ScannerError::TooBig,
            });
        }
        accepted.headers.push(format!(
            "X-Postern-Scan: skipped, {what} is over posternContentScanLimit"
        ));
        accepted.unchecked = true;
        Ok(())
    }

    /// clamd's verdict: the header to add when it failed and failure is accepted.
    async fn virus_scan(&self, stored: &dyn StoredMessage) -> Result<Option<String>, Rejection> {
        let c = &self.config;
        let Some(addr) = self.virus_scanner() else {
            return Ok(None);
        };
        match clamd::scan(addr, stored, c.clamd_stream_max, c.clamd_timeout).await {
            Ok(ScanResult::Clean) => Ok(None),
            Ok(ScanResult::Infected(signature)) => Err(Rejection::Infected { signature }),
            Err(error) => match c.clamd_fail {
                FailAction::Tempfail => Err(Rejection::ScannerFailed {
                    scanner: "clamd",
                    error,
                }),
                FailAction::Accept => Ok(Some(format!("X-Virus-Scanned: no, clamd: {error}"))),
            },
        }
    }

    /// Teaches the spam scanner instead of scoring: reported spam would be killed by its own
    /// score. Once learned, the training accounts are done unless `posternSpamTrainingDeliver`.
    async fn train(
        &self,
        stored: &dyn StoredMessage,
        lessons: &[Lesson],
        training: &training::Training,
    ) -> Result<Accepted, Rejection> {
        let mut noted = Accepted::default();
        let c = &self.config;
        let Some(scanner) = c.spam_scanner() else {
            return Ok(noted);
        };
        let (what, who) = (training.class.as_str(), spam::name(scanner));
        // One deadline for all the lessons, so training holds the session no longer than a scan.
        let teach = training::train(
            scanner,
            stored,
            lessons,
            training.class,
            c.spamd_timeout,
            c.scan_limit,
        );
        match tokio::time::timeout(c.spamd_timeout, teach)
            .await
            .unwrap_or(Err(ScannerError::Timeout))
        {
            Ok(taught) => {
                let n = taught.learned;
                let mut told = format!("{n} learned as {what}");
                if taught.too_big > 0 {
                    // An encoded attached message is decoded in RAM: past the limit it is not.
                    let what = format!("{} encoded attached message(s)", taught.too_big);
                    self.too_big_to_hold(&mut noted, &what)?;
                    told += &format!(", {} over posternContentScanLimit not read", taught.too_big);
                }
                // A lesson left unread goes to the training account: nothing is lost.
                let done = !c.training_deliver && taught.too_big == 0;
                noted.headers.push(format!("X-Spam-Training: {told}"));
                // The header is lost with the training account's copy: the log keeps it.
                noted.notes.push(format!("spam training: {told} by {who}"));
                if done {
                    noted.trained = training.accounts.clone();
                }
            }
            // Not learned and not to be delivered: the lesson would be lost, so the client
            // tries again later, unless failures are accepted.
            Err(error) if !c.training_deliver && c.spamd_fail == FailAction::Tempfail => {
                return Err(Rejection::ScannerFailed {
                    scanner: who,
                    error,
                });
            }
            Err(e) => noted.headers.push(format!(
                "X-Spam-Training: not learned as {what}, {who}: {e}"
            )),
        }
        Ok(noted)
    }

    /// The spam scanner's score, against Zimbra's kill and tag thresholds.
    async fn spam_score(&self, stored: &dyn StoredMessage) -> Result<Accepted, Rejection> {
        let c = &self.config;
        let mut tagged = Accepted::default();
        let Some(scanner) = c.spam_scanner() else {
            return Ok(tagged);
        };
        let who = spam::name(scanner);
        // spamc does not send what is over its size either: big mail is rarely spam.
        if stored.size() > c.spamd_max_size {
            return Ok(tagged);
        }
        let reply = match spam::score(scanner, stored, &self.envelope, c.spamd_timeout).await {
            Ok(reply) => reply,
            Err(error) => {
                return match c.spamd_fail {
                    FailAction::Tempfail => Err(Rejection::ScannerFailed {
                        scanner: who,
                        error,
                    }),
                    FailAction::Accept => {
                        tagged
                            .headers
                            .push(format!("X-Spam-Status: unknown, {who}: {error}"));
                        tagged.unchecked = true;
                        Ok(tagged)
                    }
                };
            }
        };
        let score = reply.score;
        if score >= c.spam_kill_score() {
            return Err(Rejection::Spam {
                score: format!("{score:.1}"),
            });
        }
        let spam = score >= c.spam_tag_score();
        tagged.spammy = spam;
        tagged.hits = Some(format!("{score:.1}"));
        if spam {
            tagged.headers.push("X-Spam-Flag: YES".into());
            if !c.spam_subject_tag.is_empty() {
                tagged.subject_tag = Some(c.spam_subject_tag.clone());
            }
        }
        tagged.headers.push(format!("X-Spam-Score: {score:.1}"));
        tagged.headers.push(format!(
            "X-Spam-Status: {}, score={score:.1} required={:.1} tests={}",
            if spam { "Yes" } else { "No" },
            c.spam_tag_score(),
            reply.symbols.join(",")
        ));
        Ok(tagged)
    }
}

/// What the content stage adds to an accepted message.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Header fields (`Name: value`, no line end) to put at the top of the message.
    pub headers: Vec<String>,
    /// Put before the Subject's text (`zimbraSpamSubjectTag` on tagged spam).
    pub subject_tag: Option<String>,
    /// Over `zimbraSpamTagPercent`.
    pub spammy: bool,
    /// A check was skipped (too big, a scanner failed and failure is accepted).
    pub unchecked: bool,
    /// The spam score, as logged.
    pub hits: Option<String>,
    /// DMARC `p=quarantine` with `posternDmarcEnforce`: into the hold queue, not delivered.
    pub hold: bool,
    /// Remove `Authentication-Results:` fields with this authserv-id (the box's) that came with
    /// the message, before the box's own is added.
    pub strip_auth_results: Option<String>,
    /// What the log should say besides the verdict (a message held, a signature not made).
    pub notes: Vec<String>,
    /// The recipients (indices in the envelope) that are done: training accounts whose lesson
    /// was learned, not delivered to.
    pub trained: Vec<usize>,
}

impl Accepted {
    /// How the log tells it, in amavis's words.
    pub fn verdict(&self) -> Verdict {
        let (category, disposition) = match (self.unchecked, self.spammy) {
            (_, true) => ("SPAMMY", "RelayedTaggedInbound"),
            (true, false) => ("UNCHECKED", "RelayedInbound"),
            (false, false) => ("CLEAN", "RelayedInbound"),
        };
        Verdict {
            action: "Passed",
            category,
            detail: None,
            disposition,
            hits: self.hits.clone(),
        }
    }
}

/// A message's verdict as amavisd-new logs it (see [`crate::log::content`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `Passed`, `Blocked` or `Deferred`.
    pub action: &'static str,
    /// `CLEAN`, `SPAMMY`, `SPAM`, `INFECTED`, `BANNED`, `UNCHECKED`, `LOOP`.
    pub category: &'static str,
    /// The signature, file name or scanner error, shown in parentheses.
    pub detail: Option<String>,
    /// `RelayedInbound`, `RelayedTaggedInbound`, `RejectedInbound`, `TempFailedInbound`.
    pub disposition: &'static str,
    /// The spam score.
    pub hits: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `message` through a scan, in pieces of `piece` bytes; the scanners read it whole.
    async fn verdict(scan: Scan, message: &[u8], piece: usize) -> Result<Accepted, Rejection> {
        let mut scan = scan;
        for p in message.chunks(piece) {
            scan.feed(p);
        }
        scan.finish(&stored::MessageBytes(message)).await
    }

    #[tokio::test]
    async fn a_looping_message_is_refused_with_554_5_4_6() {
        let config = MtaConfig::default();
        let envelope = training::tests::envelope("b@example.com", "127.0.0.1", None);
        let mut looping = "Received: from a by b\r\n".repeat(config.hopcount_limit as usize + 1);
        looping.push_str("\r\nbody\r\n");
        let refused = verdict(Scan::new(&config, &envelope), looping.as_bytes(), 23)
            .await
            .unwrap_err();
        assert_eq!(
            refused.reply().to_string(),
            "554 5.4.6 Error: too many hops (mail forwarding loop)"
        );
        let fine = b"Received: from a by b\r\n\r\nReceived: in the body\r\n";
        assert_eq!(
            verdict(Scan::new(&config, &envelope), fine, 1000).await,
            Ok(Accepted::default())
        );
    }

    /// Training decodes an encoded attached message in RAM: over the limit it is not read, and
    /// the training mail is delivered saying so, or refused for now.
    #[tokio::test]
    async fn an_encoded_lesson_over_the_scan_limit_is_not_read_and_says_so() {
        let mut config = MtaConfig::default();
        Arc::make_mut(&mut config.content).scan_limit = 100;
        // Never reached: the only lesson is over the limit.
        Arc::make_mut(&mut config.content).spamd = Some("127.0.0.1:9".parse().unwrap());
        Arc::make_mut(&mut config.content).spam_account = Some("spam@example.com".into());
        let envelope = training::tests::envelope("spam@example.com", "127.0.0.1", Some("u"));
        let scan = Scan::new(&config, &envelope);
        assert!(scan.reads_stored());
        let mut big = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            .to_vec();
        big.extend_from_slice(&[b'A'; 100]);
        big.extend_from_slice(b"\r\n--b--\r\n");
        let accepted = verdict(scan, &big, 50).await.unwrap();
        assert!(accepted.unchecked);
        assert_eq!(
            accepted.headers,
            [
                "X-Postern-Scan: skipped, 1 encoded attached message(s) is over posternContentScanLimit",
                "X-Spam-Training: 0 learned as spam, 1 over posternContentScanLimit not read"
            ]
        );
        assert!(accepted.trained.is_empty(), "delivered: nothing is lost");
        Arc::make_mut(&mut config.content).oversize = FailAction::Tempfail;
        let refused = verdict(Scan::new(&config, &envelope), &big, 50).await;
        let reply = refused.unwrap_err().reply().to_string();
        assert_eq!(
            reply,
            "451 4.7.1 Message content could not be scanned, try again later"
        );
    }

    /// Attachment names are read as the message streams by: no copy, and no size limit.
    #[tokio::test]
    async fn attachments_are_blocked_whatever_the_size_without_a_copy() {
        let mut config = MtaConfig::default();
        Arc::make_mut(&mut config.content).scan_limit = 100;
        let envelope = training::tests::envelope("b@example.com", "127.0.0.1", None);
        let mut big = Scan::new(&config, &envelope);
        assert!(!big.reads_stored());
        big.feed(b"Subject: x\r\nContent-Type: application/octet-stream; name=a.exe\r\n\r\n");
        for _ in 0..100 {
            big.feed(&[b'A'; 1000]);
        }
        assert_eq!(
            big.finish(&stored::MessageBytes(b"")).await,
            Err(Rejection::BlockedAttachment {
                name: "a.exe".into(),
                more: vec![]
            })
        );
        let plain = [&b"Subject: x\r\n\r\n"[..], &[b'A'; 1000]].concat();
        assert_eq!(
            verdict(Scan::new(&config, &envelope), &plain, 100).await,
            Ok(Accepted::default())
        );
    }

    /// The scanners, training and DKIM read the message back from the spool, and only when on.
    #[test]
    fn the_checks_that_are_on_read_the_spool() {
        let envelope = training::tests::envelope("b@example.com", "127.0.0.1", None);
        let mut config = MtaConfig::default();
        let plain = Scan::new(&config, &envelope);
        assert!(!plain.reads_stored());
        Arc::make_mut(&mut config.content).clamd = Some("127.0.0.1:9".parse().unwrap());
        assert!(!Scan::new(&config, &envelope).reads_stored(), "clamd off");
        Arc::make_mut(&mut config.content).virus_check_enabled = true;
        let virus = Scan::new(&config, &envelope);
        assert!(virus.reads_stored());
        let mut config = MtaConfig::default();
        Arc::make_mut(&mut config.content).spamd = Some("127.0.0.1:9".parse().unwrap());
        let spam = Scan::new(&config, &envelope);
        assert!(spam.reads_stored() && spam.lessons.is_none());
        Arc::make_mut(&mut config.content).spam_account = Some("b@example.com".into());
        let training = Scan::new(&config, &envelope);
        assert!(training.reads_stored() && training.lessons.is_some());
        let config = MtaConfig::default();
        let keys = dkim::KeyRing::default();
        let key = dkim::keys::generate("example.com", "s1", dkim::keys::Algorithm::Ed25519, 1);
        assert!(keys.replace(&[key.unwrap()]).is_empty());
        let signing = Scan::new(&config, &envelope).with_signing(keys, Arc::default());
        assert!(signing.reads_stored());
    }

    /// Signing reads the body back from the spool: a message far over the scan limit is signed,
    /// with the body hash of the whole body, whatever the pieces it was fed in.
    #[tokio::test]
    async fn a_message_over_the_scan_limit_is_signed_from_the_spool() {
        let mut config = MtaConfig::default();
        Arc::make_mut(&mut config.content).scan_limit = 100;
        let envelope = training::tests::envelope("b@example.org", "127.0.0.1", None);
        let keys = dkim::KeyRing::default();
        let key = dkim::keys::generate("example.com", "s1", dkim::keys::Algorithm::Ed25519, 1);
        assert!(keys.replace(&[key.unwrap()]).is_empty());
        let head = b"From: ann@example.com\r\nSubject: big\r\n\r\n";
        let body = "A line  of the body \r\n".repeat(20_000);
        let message = [&head[..], body.as_bytes()].concat();
        let scan = Scan::new(&config, &envelope).with_signing(keys.clone(), Arc::default());
        let accepted = verdict(scan, &message, 7000).await.unwrap();
        assert_eq!(accepted.notes, Vec::<String>::new());
        let [field] = &accepted.headers[..] else {
            panic!("one DKIM-Signature: {:?}", accepted.headers);
        };
        let whole = keys.sign(head, body.as_bytes(), None).unwrap().unwrap();
        let bh = |f: &str| {
            let f = f.replace("\r\n\t", "");
            f.split("bh=")
                .nth(1)
                .and_then(|v| v.split(';').next())
                .map(str::to_string)
        };
        assert!(bh(field).is_some(), "{field}");
        assert_eq!(bh(field), bh(&whole));
        let other = keys.sign(head, b"other\r\n", None).unwrap().unwrap();
        assert_ne!(bh(field), bh(&other), "the hash is of this body");
    }

    /// A lesson the scanner could not take is not thrown away with the training account's copy:
    /// the client tries again later, or, set to deliver, the account gets it saying so.
    #[tokio::test]
    async fn training_mail_the_scanner_cannot_learn_is_kept() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let mut config = MtaConfig::default();
        let set = |c: &mut MtaConfig, a: &str, v: &str| c.set(a, &[v.to_string()]).unwrap();
        set(&mut config, "posternRspamdUrl", &url);
        set(&mut config, "zimbraSpamIsSpamAccount", "spam.x@example.com");
        let envelope = training::tests::envelope("spam.x@example.com", "127.0.0.1", None);
        let lesson = b"Subject: junk\r\n\r\nbuy now\r\n";
        let mut scan = Scan::new(&config, &envelope);
        scan.feed(lesson);
        let refused = scan
            .finish(&stored::MessageBytes(lesson))
            .await
            .unwrap_err();
        assert!(
            matches!(
                refused,
                Rejection::ScannerFailed {
                    scanner: "rspamd",
                    ..
                }
            ),
            "{refused:?}"
        );
        assert_eq!(refused.reply().code, 451);
        set(&mut config, "posternSpamTrainingDeliver", "TRUE");
        let mut scan = Scan::new(&config, &envelope);
        scan.feed(lesson);
        let kept = scan.finish(&stored::MessageBytes(lesson)).await.unwrap();
        assert!(kept.trained.is_empty());
        assert!(
            kept.headers[0]
                .starts_with("X-Spam-Training: not learned as spam, rspamd: cannot connect"),
            "{kept:?}"
        );
    }

    /// File names and signatures come from the sender: they never break the reply line.
    #[test]
    fn hostile_names_stay_one_short_ascii_line() {
        let sneaky = Rejection::BlockedAttachment {
            name: "a.exe\r\n250 2.0.0 Ok: queued\u{202e}txt.exe".into(),
            more: vec![],
        };
        assert_eq!(
            sneaky.reply().to_string(),
            "554 5.7.1 Message content rejected: blocked attachment \"a.exe??250 2.0.0 Ok: queued?txt.exe\""
        );
        let long = Rejection::Infected {
            signature: "V".repeat(500),
        };
        let reply = long.reply().to_string();
        assert!(reply.len() < 200 && reply.ends_with("VVV...\""), "{reply}");
    }
}
