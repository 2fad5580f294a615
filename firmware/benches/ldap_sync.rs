//! LDAP sync benchmark against a real slapd: a full sync of 100 000 Zimbra accounts (loaded with
//! `slapadd -q`, stamped over the past year as a grown directory is), a poll with 100 changes and
//! one with none, the periodic full sync that follows with nothing changed, lookups at 100 000 accounts, the snapshot's size (with the sync state that a
//! restart resumes from), and a restart: the snapshot loaded, then the first poll, which goes on
//! from that state.
//! Prints figures; never fails (without slapd it says so and stops). Aims: full sync ≤ 5 s and
//! ≤ 40 MB RSS increase, poll ≤ 200 ms, lookup p99 ≤ 5 µs.
//!
//! The sync reads LDAP in this process here, unless `POSTERN_BIN` names a `postern` binary: then
//! a child of it reads, as in the daemon (see `directory::ldap::fetch`), and the RSS shown is
//! the daemon's side alone.
//! Run: `cargo bench -p postern --bench ldap_sync` (ACCOUNTS=N to change the size; HEAP=1 to
//! count heap bytes per phase, which slows it; SYNCPROV=1 for a server with syncprov, as a
//! replicated Zimbra LDAP master has, where polls go by RFC 4533 cookie instead of by
//! modifyTimestamp; SESSIONLOG=N for syncprov with a session log of N changes, which spares a
//! poll the present phase naming every entry; MALLINFO=1 to print what glibc's allocator holds
//! after each phase, live and free).

#[path = "../tests/common/peers.rs"]
mod peers;
#[path = "../tests/common/ports.rs"]
mod ports;
// The tests' slapd harness; the bench uses part of it.
#[allow(dead_code)]
#[path = "../tests/common/slapd.rs"]
mod slapd;

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hal::flash::{FileFlash, FlashGeometry};
use postern::admin::ldap::LockedSlot;
use postern::config::localconfig::LocalConfig;
use postern::directory::ldap::{
    AppendRefused, SaveError, SnapshotParts, SnapshotStore, SyncKind, Syncer,
};
use postern::directory::{Directory, Lookup, SharedDirectory};
use postern::spool::{Journaled, Region, Spool, SpoolGeometry, SpoolSettings};

/// Counts heap bytes live and their peak since the last phase, to say which phase of a sync
/// makes the RSS peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Counting costs time (a full sync took 8.2 s counted, 6.5 s not): only with `HEAP=1`.
static COUNTING: AtomicBool = AtomicBool::new(false);

fn count_alloc(size: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        let now = LIVE.fetch_add(size, Ordering::Relaxed) + size;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

fn count_free(size: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE.fetch_sub(size, Ordering::Relaxed);
    }
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count_alloc(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) };
        count_free(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count_free(layout.size());
            count_alloc(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Each phase since the sync started: (name, ms, heap live MiB at its end, heap peak MiB in it,
/// RSS peak MiB in it, this process's CPU ms in it).
type Phase = (&'static str, f64, f64, f64, f64, f64);
static PHASES: Mutex<Vec<Phase>> = Mutex::new(Vec::new());
static PHASE_START: Mutex<Option<(Instant, f64)>> = Mutex::new(None);

/// CPU ms this process has used (user + system): a read that takes wall time but little of
/// this is the server's time.
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which ends with the last ')': utime and stime are the
    // 12th and 13th of them, in clock ticks (100 per second on Linux).
    let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) * 10.0
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// Starts a new phase: heap peak and the kernel's RSS high-water mark begin again here.
fn phase_reset() {
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
    // "5" resets VmHWM to the current RSS (proc(5), clear_refs).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    *PHASE_START.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), cpu_ms()));
}

/// glibc's `struct mallinfo2` (all arenas summed).
#[repr(C)]
struct MallInfo2 {
    arena: usize,
    ordblks: usize,
    smblks: usize,
    hblks: usize,
    hblkhd: usize,
    usmblks: usize,
    fsmblks: usize,
    uordblks: usize,
    fordblks: usize,
    keepcost: usize,
}

unsafe extern "C" {
    fn mallinfo2() -> MallInfo2;
}

/// With `MALLINFO=1`, what glibc holds at the end of each phase: RSS above the live heap is
/// either its free chunks (holes between live allocations, which `malloc_trim` cannot give
/// back) or large blocks mapped apart.
fn print_mallinfo(name: &str) {
    if !std::env::var("MALLINFO").is_ok_and(|v| v == "1") {
        return;
    }
    // SAFETY: mallinfo2 takes nothing and returns a plain struct of counters.
    let m = unsafe { mallinfo2() };
    let _ = (m.smblks, m.usmblks, m.fsmblks, m.keepcost);
    println!(
        "    malloc after {name}: RSS {:.1} MiB; arenas {:.1} MiB, {:.1} in use, {:.1} free in {} \
         chunks; {:.1} MiB mapped apart in {} blocks",
        rss().0 as f64 / 1024.0,
        mib(m.arena),
        mib(m.uordblks),
        mib(m.fordblks),
        m.ordblks,
        mib(m.hblkhd),
        m.hblks,
    );
}

fn on_phase(name: &'static str) {
    print_mallinfo(name);
    let (ms, cpu) = PHASE_START
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .map_or((0.0, 0.0), |(t, c)| {
            (t.elapsed().as_secs_f64() * 1000.0, cpu_ms() - c)
        });
    let (live, peak) = (LIVE.load(Ordering::Relaxed), PEAK.load(Ordering::Relaxed));
    let (_, hwm) = rss();
    PHASES.lock().unwrap_or_else(|e| e.into_inner()).push((
        name,
        ms,
        mib(live),
        mib(peak),
        hwm as f64 / 1024.0,
        cpu,
    ));
    phase_reset();
}

/// Prints the phases of the sync just run and forgets them.
fn print_phases(what: &str) {
    let phases = std::mem::take(&mut *PHASES.lock().unwrap_or_else(|e| e.into_inner()));
    println!(
        "  {what}, by phase (wall ms, this process's CPU ms; heap MiB live at the end, peak \
         within; RSS peak MiB within):"
    );
    let counted = COUNTING.load(Ordering::Relaxed);
    if !counted {
        println!("    (heap not counted: HEAP=1 counts it, slower)");
    }
    for (name, ms, live, peak, hwm, cpu) in phases {
        let heap = match counted {
            true => format!("heap {live:>7.1} / peak {peak:>7.1}  "),
            false => String::new(),
        };
        println!("    {name:<7} {ms:>8.1} ms (CPU {cpu:>6.0})  {heap}RSS peak {hwm:>7.1}");
    }
}

/// The directory slots of a spool on a flash file (fdatasync'd as on the box): the saves and
/// journal appends are measured as the box makes them.
struct Measure {
    spool: Mutex<Spool<FileFlash>>,
    _dir: tempfile::TempDir,
}

impl SnapshotStore for Measure {
    fn begin(&self, len: usize) -> Result<Box<dyn SnapshotParts + '_>, SaveError> {
        let spool = self.spool.lock().unwrap_or_else(|e| e.into_inner());
        Ok(LockedSlot::begin(spool, len)?)
    }

    fn append(&self, record: Vec<u8>) -> Result<Result<(), AppendRefused>, SaveError> {
        let mut spool = self.spool.lock().unwrap_or_else(|e| e.into_inner());
        spool
            .append_slot(Region::Directory, &record)
            .map(|appended| appended.map_err(|why| AppendRefused(why.to_string())))
            .map_err(|e| SaveError(Box::new(e)))
    }
}

impl Measure {
    /// A flash of 40 MiB: two 16 MiB directory slots, as a 256 MiB box has, and a little spool.
    fn new() -> Measure {
        let dir = tempfile::tempdir().expect("temp dir");
        let geometry = FlashGeometry::new(64 << 10, 40 << 20).expect("geometry");
        let mut flash = FileFlash::create(dir.path().join("flash"), geometry).expect("flash file");
        Spool::format(
            &mut flash,
            SpoolGeometry {
                config_slot_blocks: 1,
                directory_slot_blocks: 256,
                segment_blocks: 4,
                log_blocks: 0,
            },
        )
        .expect("format");
        let (spool, _) = Spool::open(flash, SpoolSettings::default()).expect("open");
        Measure {
            spool: Mutex::new(spool),
            _dir: dir,
        }
    }

    /// The snapshot and journal records in the directory slot.
    fn saved(&self) -> Journaled {
        let mut spool = self.spool.lock().unwrap_or_else(|e| e.into_inner());
        spool
            .read_slot_journaled(Region::Directory)
            .ok()
            .flatten()
            .unwrap_or_default()
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

/// After a sync: VmRSS, and the highest VmHWM of its phases (each resets it), in KiB. The peak
/// after the last phase (the report made and kept) counts too.
fn sync_rss() -> (u64, u64) {
    let (rss_after, since_last) = rss();
    let hwm = PHASES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|p| (p.4 * 1024.0) as u64)
        .chain([since_last])
        .max()
        .unwrap_or(0);
    (rss_after, hwm)
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
    let t = Instant::now();
    let slot = measure.saved();
    let read = t.elapsed();
    let dir = match Directory::decode_journaled(&slot.data, &slot.journal) {
        Ok((d, r)) if r.error.is_none() => d,
        Ok((_, r)) => return println!("restart: the journal did not apply: {r:?}"),
        Err(e) => return println!("restart: the snapshot did not load: {e}"),
    };
    println!(
        "restart: slot read in {} ms, snapshot and {} journal records loaded and the directory \
         built from them in {} ms ({} accounts)",
        read.as_millis(),
        slot.journal.len(),
        (t.elapsed() - read).as_millis(),
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
    phase_reset();
    let r = rt.block_on(syncer.sync(SyncKind::Incremental, settings, &shared, store, now()));
    println!(
        "first poll after the restart ({resumed}), 100 changes: {} ms ({}, {} entries read, \
         {} modified, error {:?})",
        t.elapsed().as_millis(),
        r.kind_text(),
        r.read,
        r.changes.modified_count(),
        r.error
    );
    print_phases("first poll after the restart");
}

fn main() {
    // First, so that what is counted freed was counted allocated (but for the runtime's few).
    COUNTING.store(
        std::env::var("HEAP").is_ok_and(|v| v == "1"),
        Ordering::Relaxed,
    );
    if slapd::require_slapd().is_none() {
        println!("ldap_sync bench: slapd not installed, nothing measured");
        return;
    }
    if let Some(bin) = std::env::var_os("POSTERN_BIN") {
        println!(
            "LDAP read in a child, {} (as the daemon does; its own memory is not counted)",
            std::path::Path::new(&bin).display()
        );
        postern::directory::ldap::fetch::isolate_in_child(bin.into());
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
    let syncprov = std::env::var("SYNCPROV").is_ok_and(|v| v == "1");
    let sessionlog: u32 = std::env::var("SESSIONLOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut ldap = if sessionlog > 0 {
        println!("slapd with syncprov, session log of {sessionlog} changes");
        slapd::Slapd::start_with_sessionlog(sessionlog)
    } else {
        println!(
            "slapd {} syncprov",
            if syncprov { "with" } else { "without" }
        );
        slapd::Slapd::start(syncprov)
    };
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
    let measure = Arc::new(Measure::new());
    let store: Arc<dyn SnapshotStore> = measure.clone();
    let mut syncer = Syncer::for_settings(&settings);
    postern::directory::ldap::set_phase_probe(on_phase);
    let (rss_before, _) = rss();
    let t = Instant::now();
    // Each phase resets VmHWM, so the sync's peak is the highest of its phases'.
    phase_reset();
    let r = rt.block_on(syncer.sync(SyncKind::Full, &settings, &shared, &store, now()));
    let full = t.elapsed();
    let (rss_after, hwm) = sync_rss();
    println!(
        "full sync: {:.2} s for {} entries ({} added, error {:?})",
        full.as_secs_f64(),
        r.read,
        r.changes.added_count(),
        r.error
    );
    println!(
        "RSS: {} MiB before, {} MiB after (+{} MiB), peak +{} MiB",
        rss_before / 1024,
        rss_after / 1024,
        rss_after.saturating_sub(rss_before) / 1024,
        hwm.saturating_sub(rss_before) / 1024
    );
    let size = measure.saved().data.len();
    println!(
        "snapshot on flash, with the sync state: {:.1} MiB ({} bytes per account; a 256 MiB \
         flash has a 16 MiB slot)",
        size as f64 / (1 << 20) as f64,
        size / n.max(1)
    );
    print_phases("full sync");

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
    phase_reset();
    let r = rt.block_on(syncer.sync(SyncKind::Incremental, &settings, &shared, &store, now()));
    println!(
        "poll with 100 changes: {} ms ({}, {} entries read, {} modified, error {:?})",
        t.elapsed().as_millis(),
        r.kind,
        r.read,
        r.changes.modified_count(),
        r.error
    );
    let slot = measure.saved();
    println!(
        "  written: {} journal records after the snapshot, the last {} bytes",
        slot.journal.len(),
        slot.journal.last().map_or(0, Vec::len)
    );
    print_phases("poll with 100 changes");

    let t = Instant::now();
    phase_reset();
    let r = rt.block_on(syncer.sync(SyncKind::Incremental, &settings, &shared, &store, now()));
    println!(
        "poll with no changes: {} ms ({}, {} entries read, error {:?})",
        t.elapsed().as_millis(),
        r.kind,
        r.read,
        r.error
    );
    print_phases("poll with no changes");

    // The periodic full sync (deletions are seen only by one, without syncprov): nothing
    // changed since the poll, so the new model takes every entry of the one it replaces.
    let (rss_before, _) = rss();
    let t = Instant::now();
    phase_reset();
    let r = rt.block_on(syncer.sync(SyncKind::Full, &settings, &shared, &store, now()));
    let (rss_after, hwm) = sync_rss();
    println!(
        "full sync again, nothing changed: {:.2} s ({} entries read, {} changes, error {:?}); \
         RSS {} MiB before, {} MiB after, peak +{} MiB over before",
        t.elapsed().as_secs_f64(),
        r.read,
        r.changes.total(),
        r.error,
        rss_before / 1024,
        rss_after / 1024,
        hwm.saturating_sub(rss_before) / 1024
    );
    print_phases("full sync again");

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
