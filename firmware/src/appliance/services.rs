//! Starting the services on the flash, the admin prompt on the console, and waiting for the
//! reason to stop (the console's `poweroff`/`reboot`, SIGTERM, or Ctrl-Alt-Del's SIGINT).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use hal::sys::power::PowerAction;
use tokio::signal::unix::{SignalKind, signal};

use super::cmdline::BootParams;
use super::input::ConsoleInput;
use super::{boot, esp};
use crate::admin::control::DEFAULT_CONTROL;
use crate::console::{self, ConsoleExit};
use crate::daemon::{Daemon, FlashSpec, Options};

/// How long to wait before trying the flash again.
const FLASH_RETRY: Duration = Duration::from_secs(5);
/// A slot on trial that cannot start its services this many times in a row reboots, so that
/// the boot loader, its try used up, boots the previous slot.
const TRIAL_ATTEMPTS: u32 = 3;

/// The daemon's options in the appliance: every service on every address, the flash from the
/// boot parameters.
pub fn options(p: &BootParams) -> Options {
    let any = |port| vec![SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))];
    Options {
        flash: FlashSpec {
            path: p.flash.clone(),
            size: p.flash_size,
        },
        smtp: any(25),
        submission: any(587),
        smtps: any(465),
        control: PathBuf::from(DEFAULT_CONTROL),
        hostname: p.hostname.clone(),
    }
}

/// Runs the services until something asks the box to stop; returns what to do then.
pub fn run(p: &BootParams) -> Result<PowerAction, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let mut input = ConsoleInput::spawn(std::io::BufReader::new(std::io::stdin()))
        .map_err(|e| format!("cannot read the console: {e}"))?;
    if let Some(parent) = PathBuf::from(DEFAULT_CONTROL).parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    runtime.block_on(async {
        let mut term = signal(SignalKind::terminate()).map_err(|e| format!("cannot catch SIGTERM: {e}"))?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("cannot catch SIGINT: {e}"))?;
        let mut child = signal(SignalKind::child()).map_err(|e| format!("cannot catch SIGCHLD: {e}"))?;
        tokio::spawn(async move {
            while child.recv().await.is_some() {
                hal::sys::reap::reap_all();
            }
        });
        let esp = esp::mount();
        let trial = esp.as_deref().and_then(esp::booted_on_trial);
        if let Some(t) = &trial {
            eprintln!("postern: slot {} (postern {}) is on trial: {}", t.slot, t.version, t.state());
        }
        let mut failures = 0;
        let daemon = loop {
            match start_daemon(p).await {
                Ok(d) => break d,
                Err(e) => {
                    eprintln!("postern: {e}");
                    failures += 1;
                    if let Some(t) = trial.as_ref().filter(|_| failures >= TRIAL_ATTEMPTS) {
                        return Err(format!(
                            "slot {} (postern {}) failed its health check ({e}); rebooting to the previous slot",
                            t.slot, t.version
                        ));
                    }
                    eprintln!(
                        "postern: services not running; retrying in {} s ('poweroff' or 'reboot' here stops the box)",
                        FLASH_RETRY.as_secs()
                    );
                    let wait = tokio::task::block_in_place(|| wait_for_console(&mut input, FLASH_RETRY));
                    if let Some(action) = wait {
                        return Ok(action);
                    }
                }
            }
        };
        eprintln!("postern: services up, {:.2} s after the kernel started", boot::uptime());
        if let Some(esp) = &esp {
            match smtp_answers().await {
                Ok(()) => esp::mark_good(esp),
                Err(e) if trial.is_some() => {
                    daemon.shutdown().await;
                    return Err(format!(
                        "the SMTP listener does not answer ({e}): health check failed, rebooting to the previous slot"
                    ));
                }
                Err(e) => eprintln!("postern: the SMTP listener does not answer: {e}"),
            }
        }
        let admin = daemon.admin().clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("console".into())
            .spawn(move || {
                let exit = console::run(input, std::io::stdout(), &admin);
                let _ = tx.send(exit);
            })
            .map_err(|e| format!("cannot start the console: {e}"))?;
        let action = tokio::select! {
            exit = rx => match exit {
                Ok(ConsoleExit::Poweroff) => PowerAction::Poweroff,
                Ok(ConsoleExit::Reboot) => PowerAction::Reboot,
                // No console (or it went away): keep serving until a signal says otherwise.
                Ok(ConsoleExit::Eof) | Err(_) => wait_for_signal(&mut term, &mut int).await,
            },
            action = wait_for_signal(&mut term, &mut int) => action,
        };
        daemon.shutdown().await;
        Ok(action)
    })
}

/// Checks the flash device is there before the daemon opens it: the daemon creates a missing
/// *file* of the given size, which on the appliance's /dev would be a file in RAM, not the flash.
async fn start_daemon(p: &BootParams) -> Result<Daemon, String> {
    let mut p = p.clone();
    if let Some(label) = &p.flash_partlabel {
        // The disk's driver may still be scanning its partition table.
        let mut found = None;
        boot::wait_for(
            || {
                found = boot::find_partition(label);
                found.is_some()
            },
            Duration::from_secs(2),
        );
        p.flash = found.ok_or_else(|| {
            format!("no partition named {label:?} for the flash (is the disk attached?)")
        })?;
    }
    let p = &p;
    if let (Some(device), Some(param)) = (&p.block2mtd, p.block2mtd_param())
        && !p.flash.exists()
    {
        boot::attach_block2mtd(device, &param, &p.flash)?;
    }
    let present = boot::wait_for(|| p.flash.exists(), Duration::from_secs(2));
    if !present {
        return Err(format!(
            "flash device {} not found (is the flash disk attached?)",
            p.flash.display()
        ));
    }
    Daemon::start(options(p)).await.map_err(|e| e.to_string())
}

/// Part of the health check: the SMTP service greets on port 25 of this box.
async fn smtp_answers() -> Result<(), String> {
    use tokio::io::AsyncBufReadExt;
    let attempt = async {
        let stream = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, 25))
            .await
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        tokio::io::BufReader::new(stream)
            .read_line(&mut line)
            .await
            .map_err(|e| e.to_string())?;
        if line.starts_with("220") {
            Ok(())
        } else {
            Err(format!("greeting {:?}", line.trim_end()))
        }
    };
    tokio::time::timeout(Duration::from_secs(10), attempt)
        .await
        .map_err(|_| "no greeting within 10 s".to_string())?
}

async fn wait_for_signal(
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
) -> PowerAction {
    tokio::select! {
        _ = term.recv() => PowerAction::Poweroff,
        _ = int.recv() => PowerAction::Reboot,
    }
}

/// While the services are down the console only powers off or reboots.
fn wait_for_console(input: &mut ConsoleInput, wait: Duration) -> Option<PowerAction> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return None;
        }
        match input.next_line_within(left) {
            Ok(Some(line)) => match line.trim() {
                "poweroff" => return Some(PowerAction::Poweroff),
                "reboot" => return Some(PowerAction::Reboot),
                "" => {}
                other => eprintln!(
                    "postern: services are not running: {other:?} cannot be done; 'poweroff' or 'reboot' can"
                ),
            },
            Ok(None) => return None,
            Err(()) => {
                std::thread::sleep(left);
                return None;
            }
        }
    }
}
