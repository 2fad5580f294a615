//! LDAP sync benchmark against a real slapd: a full sync of 100 000 Zimbra accounts (loaded with
//! `slapadd -q`, stamped over the past year as a grown directory is), a poll with 100 changes and
//! one with none, lookups at 100 000 accounts, the snapshot's size (with the sync state that a
//! restart resumes from), and a restart: the snapshot loaded, then the first poll, which goes on
//! from that state.
//! Prints figures; never fails (without slapd it says so and stops). Aims: full sync ≤ 5 s and
//! ≤ 40 MB RSS increase, poll ≤ 200 ms, lookup p99 ≤ 5 µs.
//!
//! The sync reads LDAP in this process here; in the `postern` binary a child process does the
//! reading (see `directory::ldap::fetch`), so the daemon's own RSS grows by less than shown.
//! Run: `cargo bench -p postern --bench ldap_sync` (ACCOUNTS=N to change the size).

#[path = "../tests/common/peers.rs"]
mod peers;
// The tests' slapd harness; the bench uses part of it.
#[allow(dead_code)]
#[path = "../tests/common/slapd.rs"]
mod slapd;

use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use postern::config::localconfig::LocalConfig;
use postern::directory::ldap::{SaveError, SnapshotStore, SyncKind, Syncer};
use postern::directory::{Directory, Lookup, SharedDirectory};

/// Keeps what a save would write, without a flash.
struct Measure(std::sync::Mutex<Vec<u8>>);

impl SnapshotStore for Measure {
    fn save(&self, snapshot: Vec<u8>) -> Result<(), SaveError> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = snapshot;
        Ok(())
    }
}

impl Measure {
    fn saved(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// (VmRSS, VmHWM) in KiB.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `modifyTimestamp` of the `i`th entry: a directory grown over the past year, one change a
/// few minutes apart (a bulk load stamps every entry with the same second instead).
fn stamp(i: usize, n: usize) -> String {
    let secs = now().saturating_sub(366 * 86_400) + (i * 300 * 100_000 / n.max(1)) as u64;
    let days = (secs / 86_400) as i64;
    let (h, m, s) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    // Civil date from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}{mo:02}{d:02}{h:02}{m:02}{s:02}Z")
}

fn ldif(accounts: usize) -> String {
    let mut s = slapd::base_ldif();
    s += &slapd::domain_ldif("example.com", "d-1", "");
    let old = stamp(0, accounts);
    s = s.replace("\n\n", &format!("\nmodifyTimestamp: {old}\n\n"));
    for i in 0..accounts {
        let _ = write!(
            s,
            "dn: uid=u{i},ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\n\
             objectClass: zimbraAccount\nobjectClass: zimbraMailRecipient\nuid: u{i}\ncn: u{i}\n\
             sn: u{i}\nzimbraId: id-{i}\nzimbraMailDeliveryAddress: u{i}@example.com\n\
             zimbraMailAlias: alias{i}@example.com\nzimbraMailStatus: enabled\n\
             zimbraAccountStatus: active\nzimbraMailTransport: lmtp:mbox{}.example.com:7025\n\
             modifyTimestamp: {}\n\
             userPassword: {{SSHA512}}c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2FsdA==\n\n",
            i % 8,
            stamp(i, accounts)
        );
    }
    s
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

/// The box starting again: the snapshot read back (the LDAP entries built from the stored model,
/// as at boot), a syncer resumed from it, and its first poll after 100 more changes.
fn restart(
    rt: &tokio::runtime::Runtime,
    ldap: &slapd::Slapd,
    settings: &LocalConfig,
    measure: &Measure,
    store: &Arc<dyn SnapshotStore>,
) {
    let bytes = measure.saved();
    let t = Instant::now();
    let dir = match Directory::decode(&bytes) {
        Ok(d) => d,
        Err(e) => return println!("restart: the snapshot did not load: {e}"),
    };
    println!(
        "restart: snapshot loaded, directory built from it in {} ms ({} accounts)",
        t.elapsed().as_millis(),
        dir.counts().0
    );
    let mut syncer = Syncer::for_settings(settings);
    let resumed = syncer.resume(&dir, settings);
    let shared = Arc::new(SharedDirectory::new(dir));
    let mut mods = String::new();
    for i in 100..200 {
        let _ = write!(
            mods,
            "dn: uid=u{i},ou=people,dc=example,dc=com\nchangetype: modify\n\
             replace: zimbraMailTransport\nzimbraMailTransport: lmtp:moved.example.com:7025\n\n"
        );
    }
    ldap.ldapmodify(&mods);
    let t = Instant::now();
    let r = rt.block_on(syncer.sync(SyncKind::Incremental, settings, &shared, store, now()));
    println!(
        "first poll after the restart ({resumed}), 100 changes: {} ms ({}, {} entries read, \
         {} modified, error {:?})",
        t.elapsed().as_millis(),
        r.kind_text(),
        r.read,
        r.changes.modified.len(),
        r.error
    );
}

fn main() {
    if slapd::require_slapd().is_none() {
        println!("ldap_sync bench: slapd not installed, nothing measured");
        return;
    }
    let n: usize = std::env::var("ACCOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut ldap = slapd::Slapd::start(false);
    let t = Instant::now();
    ldap.slapadd(&ldif(n));
    println!(
        "slapadd -q of {n} accounts: {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let mut settings = LocalConfig::default();
    for (k, v) in [
        ("ldap_url", ldap.url()),
        ("zimbra_ldap_userdn", slapd::ROOT_DN.to_string()),
        ("zimbra_ldap_password", slapd::ROOT_PW.to_string()),
        ("ldap_read_timeout", "60s".to_string()),
        ("ldap_full_sync_interval", "1d".to_string()),
    ] {
        settings.set(k, &v).expect("setting");
    }
    let shared = Arc::new(SharedDirectory::default());
    let measure = Arc::new(Measure(std::sync::Mutex::new(Vec::new())));
    let store: Arc<dyn SnapshotStore> = measure.clone();
    let mut syncer = Syncer::for_settings(&settings);
    let (rss_before, _) = rss();
    let t = Instant::now();
    let r = rt.block_on(syncer.sync(SyncKind::Full, &settings, &shared, &store, now()));
    let full = t.elapsed();
    let (rss_after, hwm) = rss();
    println!(
        "full sync: {:.2} s for {} entries ({} added, error {:?})",
        full.as_secs_f64(),
        r.read,
        r.changes.added.len(),
        r.error
    );
    println!(
        "RSS: {} MiB before, {} MiB after (+{} MiB), peak +{} MiB",
        rss_before / 1024,
        rss_after / 1024,
        rss_after.saturating_sub(rss_before) / 1024,
        hwm.saturating_sub(rss_before) / 1024
    );
    let size = measure.saved().len();
    println!(
        "snapshot on flash, with the sync state: {:.1} MiB ({} bytes per account; a 256 MiB \
         flash has a 16 MiB slot)",
        size as f64 / (1 << 20) as f64,
        size / n.max(1)
    );

    let mut mods = String::new();
    for i in 0..100 {
        let _ = write!(
            mods,
            "dn: uid=u{i},ou=people,dc=example,dc=com\nchangetype: modify\n\
             replace: zimbraMailTransport\nzimbraMailTransport: lmtp:moved.example.com:7025\n\n"
        );
    }
    ldap.ldapmodify(&mods);
    let t = Instant::now();
    let r = rt.block_on(syncer.sync(SyncKind::Incremental, &settings, &shared, &store, now()));
    println!(
        "poll with 100 changes: {} ms ({}, {} entries read, {} modified, error {:?})",
        t.elapsed().as_millis(),
        r.kind,
        r.read,
        r.changes.modified.len(),
        r.error
    );

    let t = Instant::now();
    let r = rt.block_on(syncer.sync(SyncKind::Incremental, &settings, &shared, &store, now()));
    println!(
        "poll with no changes: {} ms ({}, {} entries read, error {:?})",
        t.elapsed().as_millis(),
        r.kind,
        r.read,
        r.error
    );

    restart(&rt, &ldap, &settings, &measure, &store);

    let dir = shared.snapshot();
    let names: Vec<String> = (0..n)
        .map(|i| match i % 2 {
            0 => format!("u{}@example.com", (i * 7919) % n),
            _ => format!("alias{}@example.com", (i * 104_729) % n),
        })
        .collect();
    let mut times = Vec::with_capacity(names.len());
    let mut found = 0usize;
    for name in &names {
        let t = Instant::now();
        let l = black_box(dir.lookup(black_box(name)));
        times.push(t.elapsed());
        found += usize::from(matches!(l, Lookup::Account { .. }));
    }
    times.sort();
    println!(
        "lookup at {n} accounts: p50 {} ns, p99 {} ns ({found} of {} found)",
        percentile(&times, 0.50).as_nanos(),
        percentile(&times, 0.99).as_nanos(),
        names.len()
    );
}
