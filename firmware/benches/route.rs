//! Routing benchmark: decisions per second and RAM per account with 100 000 accounts and 50 000
//! aliases. Prints figures; never fails. Targets: ≥ 1 M decisions/s, ≤ 150 bytes per account
//! beyond the address strings.
//!
//! RAM is measured with a counting global allocator (bytes requested, so malloc's own overhead
//! is not in the figure). Run: `cargo bench -p postern --bench route`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use postern::directory::{Account, Directory, Domain};
use postern::mail::ClientInfo;
use postern::policy::{ConnectionLimits, Policy};
use postern::route::{self, Decision};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static CALLS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are plain
// atomics and do not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Relaxed);
        CALLS.fetch_add(1, Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract, which is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        // SAFETY: `ptr` came from this allocator, which is the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Relaxed);
        LIVE.fetch_sub(layout.size(), Relaxed);
        CALLS.fetch_add(1, Relaxed);
        // SAFETY: as for `dealloc` and `alloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const ACCOUNTS: usize = 100_000;
const ALIASES: usize = 50_000;
const DOMAINS: usize = 10;

fn account_name(i: usize) -> String {
    format!("user{i}@dept{}.example.com", i % DOMAINS)
}

fn alias_name(i: usize) -> String {
    format!("alias{i}@dept{}.example.com", i % DOMAINS)
}

/// The directory of a mid-size site: a third of the accounts live on another system.
fn build() -> (Directory, usize) {
    let mut d = Directory::default();
    for i in 0..DOMAINS {
        let mut dom = Domain::new(&format!("dept{i}.example.com")).expect("domain");
        dom.set(
            "zimbraMailTransport",
            &["lmtp:store.example.com:7025".into()],
        )
        .expect("transport");
        d.add_domain(dom).expect("add domain");
    }
    let mut strings = 0;
    for i in 0..ACCOUNTS {
        let mut a = Account::new(&account_name(i)).expect("account");
        if i % 3 == 0 {
            let t = format!("smtp:mail{}.example.com:25", i % 5);
            a.set("zimbraMailTransport", &[t]).expect("transport");
        }
        strings += a.address().len();
        d.add_account(a).expect("add account");
    }
    for i in 0..ALIASES {
        let alias = alias_name(i);
        strings += alias.len();
        d.add_alias(&account_name(i * 2), &alias).expect("alias");
    }
    (d, strings)
}

/// CPU time this thread has run, from the kernel's scheduler statistics: on a loaded machine wall
/// time says more about the neighbours than about the code. `None` where the file is missing.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn per_second(n: usize, secs: f64) -> String {
    format!("{:.2} M/s", n as f64 / secs / 1e6)
}

fn main() {
    let before = LIVE.load(Relaxed);
    let t = Instant::now();
    let (dir, strings) = build();
    let build_time = t.elapsed();
    let live = LIVE.load(Relaxed) - before;
    let beyond = live.saturating_sub(strings) as f64 / ACCOUNTS as f64;
    println!("directory: {ACCOUNTS} accounts, {ALIASES} aliases, {DOMAINS} domains");
    println!("  built one by one in {build_time:.2?}");
    println!(
        "  heap {:.1} MB, address strings {:.1} MB, beyond the strings {beyond:.0} bytes/account (target <= 150)",
        live as f64 / 1e6,
        strings as f64 / 1e6
    );

    let t = Instant::now();
    let bytes = dir.encode();
    let enc = t.elapsed();
    let before = LIVE.load(Relaxed);
    let t = Instant::now();
    let loaded = Directory::decode(&bytes).expect("decode");
    let dec = t.elapsed();
    let live = LIVE.load(Relaxed) - before;
    println!(
        "  snapshot {:.1} MB, encode {enc:.2?}, decode {dec:.2?}; as loaded at boot: {:.0} bytes/account beyond the strings",
        bytes.len() as f64 / 1e6,
        live.saturating_sub(strings) as f64 / ACCOUNTS as f64
    );
    drop(bytes);
    let t = Instant::now();
    let copy = black_box(loaded.clone());
    println!("  clone (the cost of one prov change) {:.2?}", t.elapsed());
    drop(copy);

    // Recipients as they arrive: accounts, aliases, unknown addresses and other domains.
    let mut local = Vec::new();
    let mut mixed = Vec::new();
    for i in 0..200_000usize {
        let n = i.wrapping_mul(7919) % ACCOUNTS;
        local.push(if i % 3 == 0 {
            alias_name(n % ALIASES).to_uppercase()
        } else {
            account_name(n)
        });
        mixed.push(match i % 10 {
            0..=5 => account_name(n),
            6 | 7 => alias_name(n % ALIASES),
            8 => format!("nobody{n}@dept{}.example.com", n % DOMAINS),
            _ => format!("someone{n}@example.net"),
        });
    }
    // Each RCPT asks the policy stage (may this client relay?) and then the router, as a session does.
    let policy = Policy::new(ConnectionLimits::default());
    let outside = ClientInfo {
        addr: Some("198.51.100.7".parse().expect("ip")),
        ..ClientInfo::default()
    };
    let authed = ClientInfo {
        auth: Some("user@example.com".into()),
        ..outside.clone()
    };
    let rounds = 10;
    for (name, set, who) in [
        (
            "accounts and aliases (RCPT to local users)",
            &local,
            &outside,
        ),
        (
            "mixed: 60% accounts, 20% aliases, 10% unknown, 10% relay denied",
            &mixed,
            &outside,
        ),
        (
            "mixed, authenticated client (10% relayed via MX)",
            &mixed,
            &authed,
        ),
    ] {
        let calls = CALLS.load(Relaxed);
        let cpu = cpu_ns();
        let t = Instant::now();
        let mut accepted = 0usize;
        for _ in 0..rounds {
            for a in set.iter() {
                let relay = policy.rcpt(who, loaded.config());
                if let Decision::Accept(_) =
                    route::route(black_box(a), &loaded, loaded.config(), relay)
                {
                    accepted += 1;
                }
            }
        }
        let secs = t.elapsed().as_secs_f64();
        let cpu_secs = cpu
            .zip(cpu_ns())
            .map(|(a, b)| b.saturating_sub(a) as f64 / 1e9);
        let n = rounds * set.len();
        let allocs = (CALLS.load(Relaxed) - calls) as f64 / n as f64;
        let cpu_rate = cpu_secs.map_or("n/a".to_string(), |c| {
            format!("{} ({:.0} ns each)", per_second(n, c), c * 1e9 / n as f64)
        });
        println!(
            "route {name}:\n  wall {} ({:.0} ns each), on-CPU {cpu_rate}, {:.0}% accepted, {allocs:.2} allocations/decision",
            per_second(n, secs),
            secs * 1e9 / n as f64,
            accepted as f64 * 100.0 / n as f64
        );
    }
}
