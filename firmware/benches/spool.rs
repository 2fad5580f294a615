//! Spool benchmark: prints figures, never fails.
//!
//! - commits/s and p50/p99 commit latency for 1, 10 and 50 concurrent writers of 5 KB messages on
//!   `FileFlash` over a file on this machine's disk, through the group-commit writer;
//! - the same load Postfix-style: one file + fsync per message, from as many threads;
//! - write amplification (flash bytes written / message bytes, before any compaction);
//! - recovery time and RSS for a spool holding 100 000 messages.
//!
//! Run: `CARGO_PROFILE_DEV_OPT_LEVEL=3 cargo bench -p postern --bench spool --profile dev`
//! (optimised code without the release profile's long LTO build), or plain `cargo bench`.
//! `SPOOL_BENCH_DIR` picks the disk (default: the current directory), `DELAY_US` the group-commit
//! delay, `NO_RECOVERY=1` skips the 100 000-message recovery run (it writes a 640 MiB file).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hal::flash::{FileFlash, FlashGeometry};
use postern::mail::Transport;
use postern::mail::{BodyType, ClientInfo, Envelope, Notify, Recipient};
use postern::spool::{Spool, SpoolGeometry, SpoolSettings, service};

const MSG: usize = 5 * 1024;
const ERASE: u32 = 64 * 1024;

fn envelope(n: usize) -> Envelope {
    Envelope {
        sender: format!("sender{n}@example.com"),
        recipients: vec![Recipient {
            address: "someone@example.org".into(),
            original: None,
            orcpt: None,
            notify: Notify::DEFAULT,
            next_hop: Transport::mx("example.org").expect("valid transport"),
        }],
        ret: None,
        envid: None,
        body_type: BodyType::SevenBit,
        smtputf8: false,
        arrival: 1_795_000_000,
        client: ClientInfo::default(),
    }
}

fn body(n: usize) -> Vec<u8> {
    (0..MSG).map(|i| b'a' + ((i + n) % 26) as u8).collect()
}

fn scratch() -> PathBuf {
    let dir = std::env::var_os("SPOOL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::current_dir().unwrap_or_else(|_| ".".into()))
        .join(format!("spool-bench-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn new_flash(path: &Path, mib: u32) -> FileFlash {
    let _ = fs::remove_file(path);
    let g = FlashGeometry::new(ERASE, mib << 20).expect("geometry");
    let mut flash = FileFlash::create(path, g).expect("flash file");
    Spool::format(
        &mut flash,
        SpoolGeometry {
            config_slot_blocks: 1,
            directory_slot_blocks: 2,
            segment_blocks: 16,
            log_blocks: 0,
        },
    )
    .expect("format");
    flash
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Figures {
    rate: f64,
    p50: Duration,
    p99: Duration,
    extra: String,
}

fn spool_run(dir: &Path, writers: usize, per_writer: usize) -> Figures {
    let path = dir.join(format!("flash-{writers}.img"));
    let flash = new_flash(&path, 256);
    let settings = SpoolSettings {
        group_commit_delay: Duration::from_micros(
            std::env::var("DELAY_US")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(2000),
        ),
        ..SpoolSettings::default()
    };
    let (spool, _) = Spool::open(flash, settings).expect("open");
    let (handle, writer) = service::spawn(spool).expect("spawn");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let start = Instant::now();
    let mut lat: Vec<Duration> = rt.block_on(async {
        let mut tasks = Vec::new();
        for w in 0..writers {
            let h = handle.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_writer);
                for i in 0..per_writer {
                    let b = body(w + i);
                    let t = Instant::now();
                    let mut inc = h.begin(&envelope(i)).await.expect("begin");
                    // As from a socket: a few reads per message.
                    for piece in b.chunks(1460) {
                        inc.write(piece).await.expect("write");
                    }
                    inc.commit().await.expect("commit");
                    lat.push(t.elapsed());
                }
                lat
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("task"));
        }
        all
    });
    let elapsed = start.elapsed();
    let info = rt.block_on(handle.info()).expect("info");
    drop(handle);
    let _ = writer.join();
    let _ = fs::remove_file(&path);
    lat.sort();
    let msgs = lat.len();
    Figures {
        rate: msgs as f64 / elapsed.as_secs_f64(),
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        extra: format!(
            "{} syncs ({:.1} msgs/sync), write amplification {:.3}, {} compactions",
            info.syncs,
            msgs as f64 / info.syncs.max(1) as f64,
            info.bytes_written as f64 / (msgs * MSG) as f64,
            info.compactions
        ),
    }
}

fn postfix_run(dir: &Path, writers: usize, per_writer: usize) -> Figures {
    let qdir = Arc::new(dir.join(format!("queue-{writers}")));
    fs::create_dir_all(&*qdir).expect("queue dir");
    let start = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let qdir = Arc::clone(&qdir);
            std::thread::spawn(move || {
                let mut lat = Vec::with_capacity(per_writer);
                for i in 0..per_writer {
                    let b = body(w + i);
                    let t = Instant::now();
                    let path = qdir.join(format!("{w}-{i}"));
                    let mut f = File::create(&path).expect("queue file");
                    f.write_all(&b).expect("write");
                    f.sync_all().expect("fsync");
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap_or_default())
        .collect();
    let elapsed = start.elapsed();
    let _ = fs::remove_dir_all(&*qdir);
    lat.sort();
    Figures {
        rate: lat.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        extra: String::new(),
    }
}

fn rss_kib(field: &str) -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn recovery(dir: &Path, count: usize) {
    let path = dir.join("flash-recovery.img");
    let flash = new_flash(&path, 640);
    let (mut spool, _) = Spool::open(flash, SpoolSettings::default()).expect("open");
    let t = Instant::now();
    for n in 0..count {
        let q = spool
            .begin(&envelope(n), 1_795_000_000_000 + n as u64)
            .expect("begin");
        spool.append_body(q, &body(n)).expect("body");
        spool.commit(q).expect("commit");
        if n % 1000 == 999 {
            spool.sync().expect("sync");
        }
    }
    spool.sync().expect("sync");
    let fill = t.elapsed();
    let info = spool.info();
    drop(spool);
    println!(
        "recovery: filled {count} messages in {:.2} s (sync every 1000), write amplification {:.3}",
        fill.as_secs_f64(),
        info.bytes_written as f64 / (count * MSG) as f64,
    );
    // A fresh process, so its RSS is what a box that boots with this spool needs.
    match std::env::current_exe().and_then(|exe| {
        std::process::Command::new(exe)
            .arg("--recover-only")
            .arg(&path)
            .output()
    }) {
        Ok(out) => print!("{}", String::from_utf8_lossy(&out.stdout)),
        Err(e) => println!("recovery: could not start the recovery process: {e}"),
    }
    let _ = fs::remove_file(&path);
}

fn recover_only(path: &Path) {
    let g = FlashGeometry::new(ERASE, 640 << 20).expect("geometry");
    let flash = FileFlash::open(path, g).expect("flash");
    let base = rss_kib("VmRSS:");
    let t = Instant::now();
    let (spool, report) = Spool::open(flash, SpoolSettings::default()).expect("open");
    let took = t.elapsed();
    println!(
        "recovery: {} messages ({} MB of flash scanned, every CRC checked) in {:.3} s  [target <= 2 s]",
        report.messages,
        report.scanned_bytes >> 20,
        took.as_secs_f64()
    );
    println!(
        "          RSS of the recovered process {} MiB (index +{} MiB, peak {} MiB)",
        rss_kib("VmRSS:") / 1024,
        rss_kib("VmRSS:").saturating_sub(base) / 1024,
        rss_kib("VmHWM:") / 1024
    );
    drop(spool);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--recover-only") {
        if let Some(path) = args.get(i + 1) {
            recover_only(Path::new(path));
        }
        return;
    }
    let dir = scratch();
    println!(
        "spool bench: 5 KB messages, FileFlash over {}",
        dir.display()
    );
    println!(
        "{:>8}  {:>28}  {:>36}",
        "writers", "Postern spool (group commit)", "Postfix-style (file + fsync each)"
    );
    for (writers, per) in [(1usize, 1000usize), (10, 300), (50, 100)] {
        let s = spool_run(&dir, writers, per);
        let p = postfix_run(&dir, writers, per);
        println!(
            "{writers:>8}  {:>8.0}/s p50 {:>6.2} ms p99 {:>6.2} ms  {:>8.0}/s p50 {:>6.2} ms p99 {:>6.2} ms",
            s.rate,
            s.p50.as_secs_f64() * 1e3,
            s.p99.as_secs_f64() * 1e3,
            p.rate,
            p.p50.as_secs_f64() * 1e3,
            p.p99.as_secs_f64() * 1e3,
        );
        println!("          spool: {}", s.extra);
    }
    if std::env::var_os("NO_RECOVERY").is_none() {
        recovery(&dir, 100_000);
    }
    println!(
        "bench process RSS now {} MiB, peak {} MiB",
        rss_kib("VmRSS:") / 1024,
        rss_kib("VmHWM:") / 1024
    );
    let _ = fs::remove_dir_all(&dir);
}
