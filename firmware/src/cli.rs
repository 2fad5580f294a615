//! The `postern` command line, the binary's entry when it is not PID 1 (then it is
//! `appliance`'s): `run` starts the gateway in the foreground (host mode); every other
//! command goes to the running daemon over its control socket, or, with `--flash`, is carried out
//! on the flash directly.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::admin::commands::parse_size;
use crate::admin::control::{self, DEFAULT_CONTROL, Reply};
use crate::admin::{AdminCommand, FlashCommand, LdapCommand, LogArgs, Secret, TlsCommand};
use crate::config::NetworkList;
use crate::daemon::{self, Daemon, FlashSpec, MetricsEndpoint, Options};
use crate::log::console::{say, say_text};

/// Postern mail gateway: MTA, split-domain router and directory cache in one binary.
#[derive(Debug, Parser)]
#[command(name = "postern", version, propagate_version = true)]
struct Cli {
    /// The control socket of the running daemon (where `run` listens, where other commands ask).
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_CONTROL)]
    control: PathBuf,

    /// The flash: a file (created if missing) or a block device. For `run`, what to run on; for
    /// other commands, work on this flash directly instead of asking a daemon (none may hold it).
    #[arg(long, global = true, value_name = "FILE")]
    flash: Option<PathBuf>,

    /// The flash size, e.g. 256M or 1G. A missing file is created this size (256M if not given);
    /// an existing one must already be this size.
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_size)]
    flash_size: Option<u64>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway in the foreground on this machine (host mode): flash in a file, logs on stderr.
    Run(RunArgs),
    #[command(flatten)]
    Admin(AdminCommand),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Listen for SMTP (port 25 service) here; may be given more than once.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:2525")]
    smtp: Vec<SocketAddr>,

    /// Listen for submission (port 587 service: STARTTLS, then AUTH before MAIL) here.
    #[arg(long, value_name = "ADDR")]
    submission: Vec<SocketAddr>,

    /// Listen for submission over implicit TLS (port 465 service) here.
    #[arg(long, value_name = "ADDR")]
    smtps: Vec<SocketAddr>,

    /// The name to greet with and write in Received headers (default: the machine's hostname).
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,

    /// Ask this DNS server (ADDR:PORT) instead of /etc/resolv.conf's; may be given more than once.
    #[arg(long = "dns", value_name = "ADDR")]
    dns_servers: Vec<SocketAddr>,

    /// Seconds one DNS lookup of the SMTP restrictions may take before it counts as failed for now.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    dns_timeout: u64,

    /// Answer Prometheus scrapes (`GET /metrics`) here.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,

    /// The client networks the metrics endpoint answers; everyone else is hung up on.
    #[arg(long, value_name = "NETS", default_value = "127.0.0.0/8 ::1/128")]
    metrics_allow: NetworkList,
}

/// The size a new flash file gets when none is given.
const DEFAULT_FLASH_SIZE: u64 = 256 << 20;

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return 0;
        }
        Err(e) => {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("error: bad arguments");
            say!("postern: {first} (try 'postern --help')");
            return 2;
        }
    };
    let flash = cli.flash.map(|path| {
        let size = match cli.flash_size {
            Some(s) => Some(s),
            None if !path.exists() => Some(DEFAULT_FLASH_SIZE),
            None => None,
        };
        FlashSpec { path, size }
    });
    let mut command = cli.command;
    if let Command::Admin(cmd) = &mut command
        && let Err(e) = read_stdin(cmd)
    {
        say!("postern: cannot read standard input: {e}");
        return 2;
    }
    match (command, flash) {
        (Command::Run(args), Some(flash)) => run(args, flash, cli.control),
        (Command::Run(_), None) => {
            say!("postern: run needs --flash FILE (try 'postern run --help')");
            2
        }
        (Command::Admin(cmd), None) => admin(&cli.control, cmd),
        (Command::Admin(cmd), Some(flash)) => offline(flash, cmd),
    }
}

fn run(args: RunArgs, flash: FlashSpec, control: PathBuf) -> i32 {
    let opts = Options {
        flash,
        smtp: args.smtp,
        submission: args.submission,
        smtps: args.smtps,
        control,
        hostname: args.hostname.unwrap_or_else(machine_hostname),
        dns_servers: args.dns_servers,
        dns_timeout: std::time::Duration::from_secs(args.dns_timeout.max(1)),
        metrics: args.metrics.map(|addr| MetricsEndpoint {
            addr,
            allow: args.metrics_allow,
        }),
    };
    let Some(runtime) = runtime(tokio::runtime::Builder::new_multi_thread()) else {
        return 1;
    };
    runtime.block_on(async {
        let daemon = match Daemon::start(opts).await {
            Ok(d) => d,
            Err(e) => {
                say!("postern: {e}");
                return 1;
            }
        };
        wait_for_stop_signal().await;
        daemon.shutdown().await;
        0
    })
}

/// Builds a tokio runtime, or says why not.
fn runtime(mut builder: tokio::runtime::Builder) -> Option<tokio::runtime::Runtime> {
    builder
        .enable_all()
        .build()
        .map_err(|e| say!("postern: cannot start the runtime: {e}"))
        .ok()
}

/// Waits for SIGTERM or SIGINT.
async fn wait_for_stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            // Without signal handlers, run until killed.
            std::future::pending::<()>().await;
        }
    }
}

fn admin(control_path: &Path, cmd: AdminCommand) -> i32 {
    if !confirmed(&cmd) {
        return 2;
    }
    if let AdminCommand::Log(args) = &cmd
        && args.follow
    {
        return follow(control_path, args.clone());
    }
    // A long listing is printed part by part as the daemon sends it.
    let printed = control::request_to(control_path, &cmd, |part| {
        let mut out = std::io::stdout().lock();
        // The reader went away (`| head`): stop asking.
        out.write_all(part.as_bytes()).is_ok()
    });
    match printed {
        Ok(reply) => show(reply),
        Err(e) => {
            say!("postern: {e}");
            1
        }
    }
}

/// `postern log --follow`: the newest lines, then new ones as they come, until interrupted.
fn follow(control_path: &Path, mut args: LogArgs) -> i32 {
    let mut after = 0;
    loop {
        args.after = Some(after);
        let reply = match control::request(control_path, &AdminCommand::Log(args.clone())) {
            Ok(r) => r,
            Err(e) => {
                say!("postern: {e}");
                return 1;
            }
        };
        if reply.exit != 0 {
            return show(reply);
        }
        let (lines, next) = crate::admin::maillog::unnumbered(&reply.text, after);
        after = next;
        let mut out = std::io::stdout().lock();
        if out.write_all(lines.as_bytes()).is_err() {
            // The reader went away (`| head`): done.
            return 0;
        }
        let _ = out.flush();
        // After the first answer, everything new, however much.
        args.lines = usize::MAX;
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// Carries out a command on the flash itself, with no daemon (which would hold the flash).
fn offline(flash: FlashSpec, cmd: AdminCommand) -> i32 {
    if !confirmed(&cmd) {
        return 2;
    }
    if let AdminCommand::Flash(FlashCommand::Format { log_size, .. }) = cmd {
        return match daemon::flash::format(&flash, log_size) {
            Ok(()) => {
                println!("flash {} formatted", flash.path.display());
                0
            }
            Err(e) => {
                say!("postern: {e}");
                1
            }
        };
    }
    let Some(runtime) = runtime(tokio::runtime::Builder::new_current_thread()) else {
        return 1;
    };
    runtime.block_on(async {
        match daemon::offline(&flash, machine_hostname()).await {
            Ok(offline) => show(offline.admin().execute(cmd).await),
            Err(e) => {
                say!("postern: {e}");
                1
            }
        }
    })
}

/// What a command takes on standard input goes into the command: `--password-stdin`'s first
/// line (so a password shows neither in `ps` nor in the shell's history), `tls install-pem`'s
/// whole PEM (the daemon may not see the admin's files).
fn read_stdin(cmd: &mut AdminCommand) -> std::io::Result<()> {
    match cmd {
        AdminCommand::Ldap(LdapCommand::Test {
            password_stdin: true,
            password,
            ..
        }) => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            *password = Some(Secret(line.trim_end_matches(['\r', '\n']).to_string()));
        }
        AdminCommand::Tls(TlsCommand::InstallPem { pem }) => {
            let mut text = String::new();
            // A little over what install-pem takes, so too much is refused as such.
            std::io::stdin()
                .lock()
                .take(65 << 10)
                .read_to_string(&mut text)?;
            *pem = Some(Secret(text));
        }
        _ => {}
    }
    Ok(())
}

fn confirmed(cmd: &AdminCommand) -> bool {
    match cmd.confirmation() {
        Some(question) if !confirm(question) => {
            say!("postern: not done");
            false
        }
        _ => true,
    }
}

fn show(reply: Reply) -> i32 {
    if reply.exit == 0 {
        print!("{}", reply.text);
    } else {
        say_text(&reply.text);
    }
    reply.exit
}

/// Asks a yes/no question on the terminal; anything but "y"/"yes" (or no terminal) is a no.
fn confirm(question: &str) -> bool {
    if !std::io::stdin().is_terminal() {
        say!("postern: {question} Refusing without a terminal: add --yes.");
        return false;
    }
    say_text(&format!("{question} [y/N] "));
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// The machine's hostname as the kernel has it.
fn machine_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("1000"), Ok(1000));
        for bad in ["", "M", "0", "12Q", "-1", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn command_tree_is_consistent() {
        Cli::command().debug_assert();
    }
}
