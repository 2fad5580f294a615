//! The scanner daemons the content-stage tests start on 127.0.0.1: clamd with a one-line
//! signature database for EICAR (no database is packaged offline), and spamd (`spamd -L`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::peers::free_port;

/// The EICAR test file: every scanner reports it, and it harms nothing.
pub const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// Says that `daemon` is missing. Under CI (`CI=true`) that fails the test, naming the Debian
/// package; elsewhere the test prints SKIPPED and returns.
pub fn missing(daemon: &str, package: &str) {
    let message = format!("{daemon} is not installed (apt-get install {package}, or make deps)");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true and {message}");
    }
    eprintln!("SKIPPED: {message}");
}

/// A clamd of the test's own on a free port.
pub struct Clamd {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Clamd {
    /// Starts clamd, or `None` (after [`missing`]) when it is not installed.
    pub fn start() -> Option<Clamd> {
        if !Path::new("/usr/sbin/clamd").exists() {
            missing("clamd", "clamav-daemon");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("db");
        std::fs::create_dir(&db).expect("db dir");
        let hex: String = EICAR.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(
            db.join("eicar.ndb"),
            format!("Eicar-Test-Signature:0:*:{hex}\n"),
        )
        .expect("signature");
        let mut c = Clamd {
            port: free_port(),
            dir,
            child: None,
        };
        c.spawn();
        Some(c)
    }

    fn spawn(&mut self) {
        let conf = self.dir.path().join("clamd.conf");
        let user = if is_root() { "User root\n" } else { "" };
        std::fs::write(
            &conf,
            format!(
                "Foreground yes\nTCPSocket {}\nTCPAddr 127.0.0.1\nDatabaseDirectory {}\n\
StreamMaxLength 25M\n{user}",
                self.port,
                self.dir.path().join("db").display()
            ),
        )
        .expect("clamd.conf");
        let child = Command::new("/usr/sbin/clamd")
            .arg("--config-file")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start clamd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.pongs() {
            assert!(Instant::now() < deadline, "clamd did not answer PING");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn pongs(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut reply = Vec::new();
        s.write_all(b"zPING\0").is_ok()
            && s.read_to_end(&mut reply).is_ok()
            && reply.starts_with(b"PONG")
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// The GTUBE line: SpamAssassin scores a message holding it at 1000.
pub const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

/// A spamd of the test's own (`spamd -L`: no network tests), in its own process group so a test
/// can freeze it whole.
pub struct Spamd {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Spamd {
    /// Starts spamd, or `None` (after [`missing`]) when it is not installed.
    pub fn start() -> Option<Spamd> {
        if !Path::new("/usr/sbin/spamd").exists() {
            missing("spamd", "spamd");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let _ = Command::new("chmod").arg("777").arg(dir.path()).status();
        let mut s = Spamd {
            port: free_port(),
            dir,
            child: None,
        };
        let home = s.dir.path().display().to_string();
        let bayes = format!("bayes_path {home}/bayes");
        let mut cmd = Command::new("/usr/sbin/spamd");
        cmd.args(["-L", "-i", "127.0.0.1", "-p", &s.port.to_string()])
            .args(["-m", "2", "--allow-tell", "-s", "stderr"])
            .arg(format!("--helper-home-dir={home}"))
            .arg(format!("--cf={bayes}"));
        if is_root() {
            cmd.args(["-u", "nobody"]);
        }
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start spamd");
        s.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", s.port)).is_err() {
            assert!(Instant::now() < deadline, "spamd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(s)
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Sends `signal` (STOP, CONT, TERM) to spamd and its children.
    pub fn signal(&self, signal: &str) {
        if let Some(c) = &self.child {
            // The whole process group: the parent and its preforked children.
            let _ = Command::new("kill")
                .args(["-s", signal, "--", &format!("-{}", c.id())])
                .status();
        }
    }
}

impl Drop for Spamd {
    fn drop(&mut self) {
        self.signal("CONT");
        self.signal("TERM");
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// An rspamd of the test's own: only its controller worker (it answers `/checkv2` and the learn
/// endpoints) on a free port, its config, databases and Bayes statistics (sqlite, no redis) in a
/// temp dir, DNS pointed at a closed port so nothing leaves the box. In its own process group so
/// a test can freeze it whole.
pub struct Rspamd {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// The top of the config: Debian's shipped rules and modules, one controller worker.
const RSPAMD_CONF: &str = r#".include "$CONFDIR/common.conf"
options {
    pidfile = "$RUNDIR/rspamd.pid";
    .include "$CONFDIR/options.inc"
    .include(try=true; priority=10) "$LOCAL_CONFDIR/override.d/options.inc"
}
logging {
    type = "console";
    level = "notice";
}
worker "controller" {
    bind_socket = "127.0.0.1:@PORT@";
    count = 1;
    @ACCESS@
    static_dir = "${WWWDIR}";
}
"#;

/// Bayes in sqlite files (rspamd 3.4 still has the backend): learning works without redis. The
/// learn cache (which messages were learned) too, else it lands in /var/lib/rspamd and outlives
/// the test.
const RSPAMD_BAYES: &str = r#"backend = "sqlite3";
cache { path = "$DBDIR/learn_cache.sqlite"; }
statfile { symbol = "BAYES_HAM"; spam = false; path = "$DBDIR/bayes.ham.sqlite"; }
statfile { symbol = "BAYES_SPAM"; spam = true; path = "$DBDIR/bayes.spam.sqlite"; }
"#;

/// Only the core's regexp rules (GTUBE among them); DNS to a closed local port.
const RSPAMD_OPTIONS: &str = r#"filters = "regexp";
dns { nameserver = ["127.0.0.1:1"]; timeout = 0.2s; retransmits = 1; }
"#;

impl Rspamd {
    /// Starts rspamd, or `None` (after [`missing`]) when it is not installed. Requests from
    /// 127.0.0.1 need no password (`secure_ip`).
    pub fn start() -> Option<Rspamd> {
        Rspamd::start_with(r#"secure_ip = "127.0.0.1";"#)
    }

    /// Starts rspamd whose controller wants `password` for every request, from anywhere.
    pub fn start_with_password(password: &str) -> Option<Rspamd> {
        Rspamd::start_with(&format!("password = \"{password}\";"))
    }

    fn start_with(access: &str) -> Option<Rspamd> {
        if !Path::new("/usr/bin/rspamd").exists() {
            missing("rspamd", "rspamd");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let root = dir.path();
        for sub in ["override.d", "db", "run", "log"] {
            std::fs::create_dir(root.join(sub)).expect("rspamd dir");
        }
        let conf = root.join("rspamd.conf");
        let conf_text = RSPAMD_CONF
            .replace("@PORT@", &port.to_string())
            .replace("@ACCESS@", access);
        std::fs::write(&conf, conf_text).expect("conf");
        std::fs::write(root.join("override.d/classifier-bayes.conf"), RSPAMD_BAYES).expect("bayes");
        std::fs::write(root.join("override.d/options.inc"), RSPAMD_OPTIONS).expect("options");
        let var = |name: &str, sub: &str| format!("{name}={}", root.join(sub).display());
        let mut cmd = Command::new("/usr/bin/rspamd");
        cmd.arg("-f").arg("-c").arg(&conf);
        for (name, sub) in [
            ("LOCAL_CONFDIR", ""),
            ("DBDIR", "db"),
            ("RUNDIR", "run"),
            ("LOGDIR", "log"),
        ] {
            cmd.arg("--var").arg(var(name, sub));
        }
        if is_root() {
            cmd.args(["-u", "root", "-g", "root"]);
        }
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rspamd");
        let r = Rspamd {
            port,
            dir,
            child: Some(child),
        };
        // It loads its Lua rules for 20 s or more on a busy box.
        let deadline = Instant::now() + Duration::from_secs(180);
        while !r.pongs() {
            assert!(Instant::now() < deadline, "rspamd did not answer /ping");
            std::thread::sleep(Duration::from_millis(200));
        }
        Some(r)
    }

    fn pongs(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut reply = Vec::new();
        s.write_all(b"GET /ping HTTP/1.0\r\n\r\n").is_ok()
            && s.read_to_end(&mut reply).is_ok()
            && String::from_utf8_lossy(&reply).contains("pong")
    }

    /// `posternRspamdUrl`'s value.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The directory its Bayes statistics are kept in.
    pub fn db_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("db")
    }

    /// Sends `signal` (STOP, CONT, TERM) to rspamd's main process and its workers.
    pub fn signal(&self, signal: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args(["-s", signal, "--", &format!("-{}", c.id())])
                .status();
        }
    }

    /// Stops it for good: returns once its port refuses connections (its workers may outlive
    /// the main process by a moment).
    pub fn stop(&mut self) {
        self.signal("CONT");
        self.signal("KILL");
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
            let deadline = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Drop for Rspamd {
    fn drop(&mut self) {
        self.stop();
    }
}
