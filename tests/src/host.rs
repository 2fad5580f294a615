//! `postern run` in a temp dir, on ports the kernel picks.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `postern` binary under test: `$POSTERN_BIN`, else the one cargo built beside this test.
pub fn postern_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("POSTERN_BIN") {
        return PathBuf::from(p);
    }
    // target/<triple>/debug/deps/<test> -> target/<triple>/debug/postern
    let exe = std::env::current_exe().expect("test binary path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("postern"))
        .expect("target dir");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p postern` first (make test does)",
        bin.display()
    );
    bin
}

/// Runs `postern ARGS` to completion.
pub fn postern(args: &[&str]) -> Output {
    Command::new(postern_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run postern")
}

/// A host-mode daemon with its flash and control socket in a temp dir.
pub struct HostPostern {
    pub dir: PathBuf,
    pub flash: PathBuf,
    pub control: PathBuf,
    child: Option<Child>,
    extra: Vec<String>,
    /// Environment variables for the daemon (`SSL_CERT_FILE` for a test's own CA).
    env: Vec<(String, String)>,
    _tmp: Option<tempfile::TempDir>,
}

impl HostPostern {
    /// Starts a daemon on a fresh 64 MiB flash with SMTP on a port the kernel picks.
    pub fn start(extra: &[&str]) -> HostPostern {
        HostPostern::start_on("64M", extra)
    }

    /// Starts a daemon with `env` set in its environment.
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> HostPostern {
        HostPostern::start_on_with_env("64M", extra, env)
    }

    /// Starts a daemon on a fresh flash of `size` (e.g. "8M").
    pub fn start_on(size: &str, extra: &[&str]) -> HostPostern {
        HostPostern::start_on_with_env(size, extra, &[])
    }

    fn start_on_with_env(size: &str, extra: &[&str], env: &[(&str, &str)]) -> HostPostern {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let mut p = HostPostern {
            flash: dir.join("flash.img"),
            control: dir.join("control.sock"),
            dir,
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            _tmp: Some(tmp),
        };
        p.spawn(&["--flash-size", size]);
        p
    }

    fn spawn(&mut self, more: &[&str]) {
        let log = std::fs::File::create(self.dir.join("postern.log")).expect("log file");
        let mut cmd = Command::new(postern_bin());
        cmd.arg("run")
            .arg("--flash")
            .arg(&self.flash)
            .arg("--control")
            .arg(&self.control)
            .args(["--hostname", "mx.test.example"]);
        if !self.extra.iter().any(|a| a == "--smtp") {
            cmd.args(["--smtp", "127.0.0.1:0"]);
        }
        cmd.args(&self.extra)
            .args(more)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(cmd.spawn().expect("spawn postern run"));
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.control.exists() && self.admin(&["status"]).status.success() {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("postern exited early ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "postern did not come up:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs an admin command against this daemon.
    pub fn admin(&self, args: &[&str]) -> Output {
        let control = self.control.to_string_lossy().to_string();
        let mut all = vec!["--control", control.as_str()];
        all.extend_from_slice(args);
        postern(&all)
    }

    /// The stdout of an admin command that must succeed.
    pub fn admin_ok(&self, args: &[&str]) -> String {
        let out = self.admin(args);
        assert!(
            out.status.success(),
            "postern {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Where the daemon listens for the given service (smtp, submission, smtps).
    pub fn listener(&self, kind: &str) -> SocketAddr {
        let status = self.admin_ok(&["status"]);
        let prefix = format!("listener: {kind} ");
        status
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {kind} listener in status:\n{status}"))
    }

    /// Everything the daemon logged so far. Lines reach the file a little after they are
    /// logged (the console log gathers them for 10 ms, one write per batch), so this returns
    /// once the file has not grown for 100 ms (at most 3 s).
    pub fn log(&self) -> String {
        let path = self.dir.join("postern.log");
        let read = || std::fs::read_to_string(&path).unwrap_or_default();
        let start = Instant::now();
        let mut last = read();
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now = read();
            if now.len() == last.len() || start.elapsed() > Duration::from_secs(3) {
                return now;
            }
            last = now;
        }
    }

    /// Waits until the log holds `needle` `times` times (at most 10 s); the log then.
    pub fn wait_log(&self, needle: &str, times: usize) -> String {
        let path = self.dir.join("postern.log");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = std::fs::read_to_string(&path).unwrap_or_default();
            if log.matches(needle).count() >= times || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `postern prov ARGS` that change MTA settings, and waits until the running services
    /// took them (the daemon logs it once per change).
    pub fn mcf(&self, args: &[&str]) {
        const APPLIED: &str = "MTA settings changed, applied without a restart";
        let before = std::fs::read_to_string(self.dir.join("postern.log"))
            .unwrap_or_default()
            .matches(APPLIED)
            .count();
        let mut line = vec!["prov", "mcf"];
        line.extend_from_slice(args);
        self.admin_ok(&line);
        let log = self.wait_log(APPLIED, before + 1);
        assert!(
            log.matches(APPLIED).count() > before,
            "mcf {args:?} not applied:\n{log}"
        );
    }

    /// SIGKILL, as a power cut would stop it (the flash file is what survives).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the daemon again on the same flash and control socket.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn(&[]);
    }

    /// SIGTERM and wait: a clean stop.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("running");
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = child.wait().expect("wait postern");
        self.child = None;
        status
    }
}

impl Drop for HostPostern {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A line-oriented SMTP client for tests: sends raw lines, reads whole (multi-line) replies.
pub struct SmtpClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// The start of what was sent last, so a reply that never comes says which command it was.
    last_sent: String,
}

impl SmtpClient {
    pub fn connect(addr: SocketAddr) -> SmtpClient {
        SmtpClient::connect_waiting(addr, Duration::from_secs(30))
    }

    /// [`SmtpClient::connect`] to a peer that may take up to `wait` per reply (a guest under
    /// QEMU's emulation on a busy machine).
    pub fn connect_waiting(addr: SocketAddr, wait: Duration) -> SmtpClient {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(wait)).expect("timeout");
        SmtpClient {
            reader: BufReader::new(s.try_clone().expect("clone")),
            writer: s,
            last_sent: "(the greeting)".into(),
        }
    }

    /// Sends bytes exactly as given.
    pub fn send(&mut self, bytes: &[u8]) {
        self.last_sent = String::from_utf8_lossy(&bytes[..bytes.len().min(40)]).into_owned();
        self.writer.write_all(bytes).expect("send");
    }

    /// Reads one reply (all its lines), e.g. "250-mx\r\n250 OK\r\n" -> "250-mx\n250 OK".
    pub fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .unwrap_or_else(|e| panic!("reply to {:?}: {e}", self.last_sent));
            assert!(n > 0, "connection closed; got so far: {lines:?}");
            let line = line.trim_end().to_string();
            let last = line.len() < 4 || line.as_bytes()[3] != b'-';
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    /// Sends a command line (CRLF added) and returns the reply.
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }
}

/// A whole transaction from `helo` and `from` to `to`: the reply to the end of data, or the
/// refusal at RCPT.
pub fn send_message(addr: SocketAddr, helo: &str, from: &str, to: &str, message: &[u8]) -> String {
    let mut c = SmtpClient::connect(addr);
    assert!(c.reply().starts_with("220"));
    assert!(c.cmd(&format!("EHLO {helo}")).starts_with("250"));
    assert!(c.cmd(&format!("MAIL FROM:<{from}>")).starts_with("250"));
    let reply = c.cmd(&format!("RCPT TO:<{to}>"));
    if !reply.starts_with("250") {
        return reply;
    }
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(message);
    c.send(b".\r\n");
    let reply = c.reply();
    c.cmd("QUIT");
    reply
}

/// The Authentication-Results fields of a delivered message, unfolded.
pub fn auth_results(message: &str) -> Vec<String> {
    let message = message.replace("\r\n", "\n");
    let head = message.split("\n\n").next().unwrap_or("");
    let unfolded = head.replace("\n\t", " ").replace("\n ", " ");
    unfolded
        .lines()
        .filter(|l| {
            l.to_ascii_lowercase()
                .starts_with("authentication-results:")
        })
        .map(str::to_string)
        .collect()
}
