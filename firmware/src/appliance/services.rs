//! Setting the box up from its flash (the first-boot wizard, the stored network), starting the
//! services, the console, and waiting for the reason to stop (the console's `poweroff`/`reboot`, SIGTERM, or Ctrl-Alt-Del's SIGINT).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use hal::sys::power::PowerAction;
use tokio::signal::unix::{SignalKind, signal};

use super::cmdline::BootParams;
use super::console::SerialConsole;
use super::input::ConsoleInput;
use super::network;
use super::watchdog;
use super::{boot, esp};
use crate::admin::control::DEFAULT_CONTROL;
use crate::config::box_settings::NetworkSettings;
use crate::config::stored::BoxConfig;
use crate::console::{self, ConsoleExit, Start};
use crate::daemon::{self, Daemon, FlashSpec, Offline, Options};
use crate::log::console::{say, say_text};

/// How long to wait before trying the flash again.
const FLASH_RETRY: Duration = Duration::from_secs(5);
/// A slot on trial that cannot start its services this many times in a row reboots, so that
/// the boot loader, its try used up, boots the previous slot.
const TRIAL_ATTEMPTS: u32 = 3;

/// The daemon's options in the appliance: every service on every address, the flash from the
/// boot parameters, the host name and resolvers the box was set up with.
pub fn options(p: &BootParams, settings: &Settings) -> Options {
    let any = |port| vec![SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))];
    Options {
        flash: flash_spec(p),
        smtp: any(25),
        submission: any(587),
        smtps: any(465),
        control: PathBuf::from(DEFAULT_CONTROL),
        hostname: settings.hostname.clone(),
        // resolv.conf, which the network keeps (stored, from the lease, changed at the console):
        // a running daemon asks the servers of the moment.
        dns_servers: Vec::new(),
        dns_timeout: crate::policy::dns::DEFAULT_DEADLINE,
        metrics: None,
    }
}

fn flash_spec(p: &BootParams) -> FlashSpec {
    FlashSpec {
        path: p.flash.clone(),
        size: p.flash_size,
    }
}

/// What the box runs with: its stored settings, or the boot parameters that override them.
#[derive(Debug, Clone)]
pub struct Settings {
    pub hostname: String,
    pub network: Option<NetworkSettings>,
    /// Whether the console asks for a password.
    pub login: bool,
}

impl Settings {
    fn new(p: &BootParams, stored: &BoxConfig) -> Settings {
        let hostname = match &stored.hostname {
            Some(h) if !p.hostname_given => h.to_string(),
            _ => p.hostname.clone(),
        };
        let network = match &stored.network {
            Some(n) if !p.network_given => Some(n.clone()),
            _ => boot::params_network(p),
        };
        Settings {
            hostname,
            network,
            login: stored.console_password.is_some(),
        }
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
            say!("postern: slot {} (postern {}) is on trial: {}", t.slot, t.version, t.state());
        }
        let mut failures = 0;
        let (daemon, settings, p) = loop {
            let started = match find_flash(p) {
                Ok(p) => match set_up(&p, &mut input).await {
                    Ok(Prepared::Stop(action)) => return Ok(action),
                    Ok(Prepared::Settings(settings, offline)) => {
                        Daemon::start_from(options(&p, &settings), *offline)
                            .await
                            .map(|d| (d, settings, p))
                            .map_err(|e| e.to_string())
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            match started {
                Ok(d) => break d,
                Err(e) => {
                    say!("postern: {e}");
                    failures += 1;
                    if let Some(t) = trial.as_ref().filter(|_| failures >= TRIAL_ATTEMPTS) {
                        return Err(format!(
                            "slot {} (postern {}) failed its health check ({e}); rebooting to the previous slot",
                            t.slot, t.version
                        ));
                    }
                    say!(
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
        let p = &p;
        say!("postern: services up, {:.2} s after the kernel started", boot::uptime());
        if let Some(esp) = &esp {
            match smtp_answers().await {
                Ok(()) => esp::mark_good(esp),
                Err(e) if trial.is_some() => {
                    daemon.shutdown().await;
                    return Err(format!(
                        "the SMTP listener does not answer ({e}): health check failed, rebooting to the previous slot"
                    ));
                }
                Err(e) => say!("postern: the SMTP listener does not answer: {e}"),
            }
        }
        let admin = daemon.admin().clone();
        let keeper = watchdog::start(admin.clone());
        super::clock::start(admin.clone());
        let start = if p.console_prompt {
            Start::CommandLine
        } else if settings.login {
            Start::Login
        } else {
            Start::Menu
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("console".into())
            .spawn(move || {
                let exit = console::run(input, std::io::stdout(), &admin, &SerialConsole, start);
                let _ = tx.send(exit);
            })
            .map_err(|e| format!("cannot start the console: {e}"))?;
        let action = tokio::select! {
            exit = rx => match exit {
                Ok(ConsoleExit::Poweroff) => PowerAction::Poweroff,
                Ok(ConsoleExit::Reboot) => PowerAction::Reboot,
                Ok(ConsoleExit::FactoryReset) => {
                    daemon.shutdown().await;
                    if let Some(k) = keeper {
                        tokio::task::block_in_place(|| k.disarm());
                    }
                    return Ok(factory_reset(p));
                }
                // No console (or it went away): keep serving until a signal says otherwise.
                Ok(ConsoleExit::Eof | ConsoleExit::SetUp) | Err(_) => wait_for_signal(&mut term, &mut int).await,
            },
            action = wait_for_signal(&mut term, &mut int) => action,
        };
        daemon.shutdown().await;
        if let Some(k) = keeper {
            tokio::task::block_in_place(|| k.disarm());
        }
        Ok(action)
    })
}

/// What [`set_up`] ended with.
enum Prepared {
    /// With the flash still open, for the services to take over.
    Settings(Settings, Box<Offline>),
    /// The admin asked for power off or reboot during the wizard.
    Stop(PowerAction),
}

/// Opens the flash without the services, runs the first-boot wizard on a box never set up, and
/// applies the stored host name and network: the services then start as the box is set up.
async fn set_up(p: &BootParams, input: &mut ConsoleInput) -> Result<Prepared, String> {
    check_flash(p)?;
    let offline = daemon::offline(&flash_spec(p), p.hostname.clone())
        .await
        .map_err(|e| e.to_string())?;
    let admin = offline.admin().clone();
    let read = |admin: &crate::admin::Admin| {
        let admin = admin.clone();
        tokio::task::block_in_place(move || admin.box_config_blocking())
    };
    let mut stored = read(&admin).map_err(|e| format!("flash {}: {e}", p.flash.display()))?;
    let mut just_set_up = false;
    if stored.console_password.is_none() && !p.console_prompt {
        let exit = tokio::task::block_in_place(|| {
            console::run(
                &mut *input,
                std::io::stdout(),
                &admin,
                &SerialConsole,
                Start::FirstBoot,
            )
        });
        match exit {
            ConsoleExit::Poweroff => return Ok(Prepared::Stop(PowerAction::Poweroff)),
            ConsoleExit::Reboot => return Ok(Prepared::Stop(PowerAction::Reboot)),
            // Set up, or no console to set up from: serve as the flash says.
            _ => {}
        }
        stored = read(&admin).map_err(|e| format!("flash {}: {e}", p.flash.display()))?;
        just_set_up = exit == ConsoleExit::SetUp;
    }
    drop(admin);
    let mut settings = Settings::new(p, &stored);
    // The admin who just chose the password is at the console: straight to the menu.
    settings.login &= !just_set_up;
    boot::set_hostname(&settings.hostname);
    if let Some(n) = &settings.network {
        say_text(&network::apply(n));
    }
    Ok(Prepared::Settings(settings, Box::new(offline)))
}

/// Erases the flash (the services are stopped) and reboots into a blank box.
fn factory_reset(p: &BootParams) -> PowerAction {
    match daemon::flash::format(&flash_spec(p), None) {
        Ok(()) => say!("postern: factory reset: flash {} erased", p.flash.display()),
        Err(e) => say!("postern: factory reset failed: {e}"),
    }
    PowerAction::Reboot
}

/// The boot parameters with the flash found: `postern.flash=PARTLABEL=NAME` names the disk
/// image's flash partition, whose device node appears once the disk's driver has read the table.
fn find_flash(p: &BootParams) -> Result<BootParams, String> {
    let mut p = p.clone();
    if let Some(label) = &p.flash_partlabel {
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
    Ok(p)
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

/// Checks the flash device is there before it is opened: the daemon creates a missing *file* of
/// the given size, which on the appliance's /dev would be a file in RAM, not the flash.
fn check_flash(p: &BootParams) -> Result<(), String> {
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
    Ok(())
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
                other => say!(
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
