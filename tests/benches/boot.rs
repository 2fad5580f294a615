//! Boot benchmark of the x86_64 appliance under QEMU (TCG): over 3 boots, seconds from QEMU's
//! start to the console banner, the console prompt and the first SMTP greeting through the
//! forwarded port; then the image's sizes. Prints figures, never fails the build.
//!
//! `cargo bench -p tests --bench boot` (or `tests/bench/boot.sh`); needs `make image` first.
//!
//! With POSTERN_BENCH_FLASH=FILE, a flash holding a backlog (`tests/bench/boot.sh` has the
//! queued_mail bench fill one with 100 000 deferred messages), it also boots on a copy of that
//! flash and times the spool's recovery line and the first SMTP greeting.

use std::path::Path;
use std::time::{Duration, Instant};

use qemu::{Machine, POWEROFF_GRACE};
use tests::appliance::{image_dir, quit, test_boot, wait_for_banner};

const BOOTS: usize = 3;
const LIMIT: Duration = Duration::from_secs(180);

struct Boot {
    banner: f64,
    prompt: f64,
    smtp: f64,
}

fn main() {
    let image = image_dir();
    if !image.join("kernel").exists() {
        println!(
            "boot bench: no image in {} (make image); nothing measured",
            image.display()
        );
        return;
    }
    let mut boots = Vec::new();
    for i in 1..=BOOTS {
        match one_boot() {
            Ok(b) => {
                println!(
                    "boot {i}: console banner {:.2} s, prompt {:.2} s, SMTP 220 {:.2} s",
                    b.banner, b.prompt, b.smtp
                );
                boots.push(b);
            }
            Err(e) => println!("boot {i}: failed: {e}"),
        }
    }
    if !boots.is_empty() {
        let stats = |f: fn(&Boot) -> f64| {
            let v: Vec<f64> = boots.iter().map(f).collect();
            let min = v.iter().copied().fold(f64::INFINITY, f64::min);
            let max = v.iter().copied().fold(0.0, f64::max);
            (min, v.iter().sum::<f64>() / v.len() as f64, max)
        };
        for (name, f) in [
            ("console banner", (|b: &Boot| b.banner) as fn(&Boot) -> f64),
            ("console prompt", |b: &Boot| b.prompt),
            ("SMTP 220 via hostfwd", |b: &Boot| b.smtp),
        ] {
            let (min, mean, max) = stats(f);
            println!(
                "{name:>22}: min {min:.2} s, mean {mean:.2} s, max {max:.2} s over {} boots",
                boots.len()
            );
        }
    }
    if let Some(flash) = std::env::var_os("POSTERN_BENCH_FLASH") {
        for i in 1..=2 {
            match queued_boot(Path::new(&flash)) {
                Ok(q) => println!(
                    "boot {i} on {} ({}): console banner {:.2} s, spool recovered {:.2} s, \
                     SMTP 220 {:.2} s",
                    Path::new(&flash).display(),
                    q.recovered_line,
                    q.banner,
                    q.recovered,
                    q.smtp
                ),
                Err(e) => println!("boot {i} on a backlog: failed: {e}"),
            }
        }
    }
    match std::fs::read_to_string(image.join("manifest.txt")) {
        Ok(manifest) => {
            for key in [
                "kernel_bytes",
                "initramfs_bytes",
                "initramfs_cpio_bytes",
                "firmware_bytes",
            ] {
                if let Some(v) = manifest
                    .lines()
                    .find_map(|l| l.strip_prefix(key))
                    .and_then(|v| v.trim().parse::<f64>().ok())
                {
                    println!("{key:>22}: {:.2} MiB", v / f64::from(1 << 20));
                }
            }
        }
        Err(e) => println!("no manifest.txt: {e}"),
    }
}

fn one_boot() -> Result<Boot, String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (opts, smtp_port) = test_boot(tmp.path());
    let mut machine = Machine::boot(&opts).map_err(|e| e.to_string())?;
    let started = machine.started();
    let smtp = probe_greeting(smtp_port);
    let console = machine.console().ok_or("no console")?;
    console
        .wait_for("Type 'help'", LIMIT)
        .map_err(|e| e.to_string())?;
    let banner = started.elapsed().as_secs_f64();
    console
        .wait_for("postern> ", LIMIT)
        .map_err(|e| e.to_string())?;
    let prompt = started.elapsed().as_secs_f64();
    let smtp_at = smtp.join().map_err(|_| "probe thread died".to_string())??;
    let console = machine.console().ok_or("no console")?;
    console.send_line("poweroff").map_err(|e| e.to_string())?;
    machine
        .wait_exit(POWEROFF_GRACE)
        .map_err(|e| e.to_string())?;
    Ok(Boot {
        banner,
        prompt,
        smtp: smtp_at.duration_since(started).as_secs_f64(),
    })
}

struct QueuedBoot {
    banner: f64,
    recovered: f64,
    /// The daemon's line, as it counted the backlog.
    recovered_line: String,
    smtp: f64,
}

/// Boots on a copy of `flash` (sparse), stamping when the console banner and the spool's
/// recovery line first show, and when the first SMTP greeting comes.
fn queued_boot(flash: &Path) -> Result<QueuedBoot, String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (mut opts, smtp_port) = test_boot(tmp.path());
    let copy = tmp.path().join("backlog.flash");
    let copied = std::process::Command::new("cp")
        .arg("--sparse=always")
        .arg(flash)
        .arg(&copy)
        .status()
        .map_err(|e| e.to_string())?;
    if !copied.success() {
        return Err(format!("cannot copy {}", flash.display()));
    }
    opts.flash_size = std::fs::metadata(&copy).map_err(|e| e.to_string())?.len();
    opts.flash = copy;
    let mut machine = Machine::boot(&opts).map_err(|e| e.to_string())?;
    let started = machine.started();
    let smtp = probe_greeting(smtp_port);
    let console = machine.console().ok_or("no console")?;
    let (mut banner, mut recovered) = (None, None);
    // The prompt too: `poweroff` is typed at it.
    while banner.is_none() || recovered.is_none() || !console.transcript().contains("postern> ") {
        if started.elapsed() > LIMIT {
            return Err(format!(
                "no banner or recovery line in\n{}",
                console.transcript()
            ));
        }
        let _ = console.read_for(Duration::from_millis(50));
        let t = console.transcript();
        if banner.is_none() && t.contains("Type 'help'") {
            banner = Some(started.elapsed().as_secs_f64());
        }
        if recovered.is_none() && t.contains("spool recovered:") {
            recovered = Some(started.elapsed().as_secs_f64());
        }
    }
    let recovered_line = console
        .transcript()
        .lines()
        .find_map(|l| {
            l.split_once("spool recovered: ")
                .map(|(_, r)| r.trim().to_string())
        })
        .unwrap_or_default();
    let smtp_at = smtp.join().map_err(|_| "probe thread died".to_string())??;
    let console = machine.console().ok_or("no console")?;
    if std::env::var_os("POSTERN_BENCH_TRANSCRIPT").is_some() {
        println!("{}", console.transcript());
    }
    console.send_line("poweroff").map_err(|e| e.to_string())?;
    machine
        .wait_exit(POWEROFF_GRACE)
        .map_err(|e| e.to_string())?;
    Ok(QueuedBoot {
        banner: banner.unwrap_or_default(),
        recovered: recovered.unwrap_or_default(),
        recovered_line,
        smtp: smtp_at.duration_since(started).as_secs_f64(),
    })
}

/// Waits for the first SMTP greeting on another thread, while the caller reads the console; when
/// it came.
fn probe_greeting(port: u16) -> std::thread::JoinHandle<Result<Instant, String>> {
    std::thread::spawn(move || {
        wait_for_banner(port, LIMIT).map(|(_, stream)| {
            let at = Instant::now();
            let _ = quit(stream);
            at
        })
    })
}
