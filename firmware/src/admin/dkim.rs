//! `postern dkim`: the DKIM signing keys, as `opendkim-genkey` and Zimbra's `zmdkimkeyutil` manage
//! them. The keys themselves are `content::dkim`'s; this stores them and puts them in use.

use std::fmt::Write;

use super::Reply;
use super::commands::DkimCommand;
use crate::config::stored::DkimKeyRecord;
use crate::content::dkim::keys::{self, Algorithm};
use crate::content::dkim::{KeyRing, store};
use crate::spool::SpoolHandle;

pub async fn run(spool: &SpoolHandle, ring: &KeyRing, cmd: DkimCommand) -> Reply {
    match cmd {
        DkimCommand::Keygen {
            domain,
            selector,
            key_type,
        } => keygen(spool, ring, &domain, &selector, &key_type).await,
        DkimCommand::List => match store::load(spool).await {
            Ok(stored) if stored.is_empty() => Reply::ok("no DKIM keys\n"),
            Ok(stored) => Reply::ok(list(&stored)),
            Err(e) => Reply::failed(format!("{e}\n")),
        },
        DkimCommand::Show { domain } => {
            let domain = domain.trim_end_matches('.').to_ascii_lowercase();
            let stored = match store::load(spool).await {
                Ok(s) => s,
                Err(e) => return Reply::failed(format!("{e}\n")),
            };
            let mut out = String::new();
            for k in stored.iter().filter(|k| k.domain == domain) {
                match keys::dns_record(k) {
                    Ok(r) => {
                        let _ = writeln!(out, "{r}");
                    }
                    Err(e) => {
                        let _ = writeln!(out, "; {}._domainkey.{}: {e}", k.selector, k.domain);
                    }
                }
            }
            if out.is_empty() {
                return Reply::failed(format!("no DKIM key for {domain}\n"));
            }
            Reply::ok(out)
        }
        DkimCommand::Delete { domain, selector } => {
            let domain = domain.trim_end_matches('.').to_ascii_lowercase();
            let gone = |k: &DkimKeyRecord| {
                k.domain == domain
                    && selector
                        .as_ref()
                        .is_none_or(|s| s.eq_ignore_ascii_case(&k.selector))
            };
            let before = match store::load(spool).await {
                Ok(s) => s.iter().filter(|k| gone(k)).count(),
                Err(e) => return Reply::failed(format!("{e}\n")),
            };
            if before == 0 {
                return Reply::failed(format!("no such DKIM key for {domain}\n"));
            }
            match store::update(spool, |all| all.retain(|k| !gone(k))).await {
                Ok(now) => {
                    ring.replace(&now);
                    Reply::ok(format!("deleted {before} key(s) of {domain}\n"))
                }
                Err(e) => Reply::failed(format!("{e}; nothing was changed\n")),
            }
        }
    }
}

async fn keygen(
    spool: &SpoolHandle,
    ring: &KeyRing,
    domain: &str,
    selector: &str,
    key_type: &str,
) -> Reply {
    let algorithm = match Algorithm::parse(key_type) {
        Ok(a) => a,
        Err(e) => return Reply::failed(format!("{e}\n")),
    };
    let now = crate::mail::unix_now();
    // RSA key generation takes a moment of CPU: not on the runtime's threads.
    let (d, s) = (domain.to_string(), selector.to_string());
    let made = tokio::task::spawn_blocking(move || keys::generate(&d, &s, algorithm, now)).await;
    let key = match made {
        Ok(Ok(k)) => k,
        Ok(Err(e)) => return Reply::failed(format!("{e}\n")),
        Err(e) => return Reply::failed(format!("the key was not made: {e}\n")),
    };
    let record = match keys::dns_record(&key) {
        Ok(r) => r,
        Err(e) => return Reply::failed(format!("{e}\n")),
    };
    let (kd, ks) = (key.domain.clone(), key.selector.clone());
    let stored = store::update(spool, move |all| {
        // The same selector again replaces that key; other selectors stay.
        all.retain(|k| !(k.domain == kd && k.selector == ks));
        all.push(key);
    })
    .await;
    match stored {
        Ok(now) => {
            ring.replace(&now);
            Reply::ok(format!(
                "; publish this record, then mail from {domain} is signed with it:\n{record}\n"
            ))
        }
        Err(e) => Reply::failed(format!("{e}; the key was not stored\n")),
    }
}

/// `DOMAIN SELECTOR TYPE signing|old`, one key a line.
fn list(stored: &[DkimKeyRecord]) -> String {
    let mut out = String::new();
    for k in stored {
        let signing = stored
            .iter()
            .filter(|o| o.domain == k.domain)
            .max_by_key(|o| o.created)
            .is_some_and(|newest| std::ptr::eq(newest, k));
        let _ = writeln!(
            out,
            "{} {} {} {}",
            k.domain,
            k.selector,
            k.algorithm,
            if signing { "signing" } else { "old" }
        );
    }
    out
}
