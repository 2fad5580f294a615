//! Starting the services on the flash, the admin prompt on the console, and waiting for the
//! reason to stop (the console's `poweroff`/`reboot`, SIGTERM, or Ctrl-Alt-Del's SIGINT).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use hal::sys::power::PowerAction;
use tokio::signal::unix::{SignalKind, signal};

use super::boot;
use super::cmdline::BootParams;
use super::input::ConsoleInput;
use crate::admin::control::DEFAULT_CONTROL;
use crate::console::{self, ConsoleExit};
use crate::daemon::{Daemon, FlashSpec, Options};

/// How long to wait before trying the flash again.
const FLASH_RETRY: Duration = Duration::from_secs(5);

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
        dns_servers: Vec::new(),
        dns_timeout: crate::policy::dns::DEFAULT_DEADLINE,
        metrics: None,
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
        let daemon = loop {
            match start_daemon(p).await {
                Ok(d) => break d,
                Err(e) => {
                    eprintln!("postern: {e}");
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
