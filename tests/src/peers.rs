//! Real peers the end-to-end tests start on 127.0.0.1: Postfix's smtp-sink and swaks.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use crate::appliance::free_port;

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

/// Postfix's smtp-sink, saving every message it takes as a file in its own directory.
pub struct Sink {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
    _tmp: tempfile::TempDir,
}

impl Sink {
    /// Starts a sink on `port` (0: any free port).
    pub fn start(port: u16) -> Sink {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("mail");
        std::fs::create_dir(&dir).expect("sink dir");
        let _ = Command::new("chmod").arg("777").arg(&dir).status();
        let port = if port == 0 { free_port() } else { port };
        let mut s = Sink {
            port,
            dir,
            child: None,
            _tmp: tmp,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let bin = "/usr/sbin/smtp-sink";
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing: make deps installs postfix"
        );
        let mut cmd = Command::new(bin);
        if is_root() {
            cmd.args(["-u", "nobody"]);
        }
        // %M: one file per message.
        let pattern = format!("{}/%M.", self.dir.display());
        cmd.args(["-d", &pattern, &format!("127.0.0.1:{}", self.port), "64"]);
        self.child = Some(
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start smtp-sink"),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "smtp-sink did not start on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The messages received so far, each as text.
    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    }

    /// The first message this sink got that `seen` does not hold, added to `seen` (smtp-sink
    /// names its files in no time order); waits up to 30 s for it.
    pub fn next_unseen(&self, seen: &mut Vec<String>) -> String {
        let all = self.wait_for(seen.len() + 1, Duration::from_secs(30));
        assert_eq!(all.len(), seen.len() + 1, "not delivered");
        let new = all
            .into_iter()
            .find(|m| !seen.contains(m))
            .unwrap_or_default();
        seen.push(new.clone());
        new
    }

    /// Waits until `n` messages are in, and returns them. smtp-sink writes a file as the data
    /// arrives: a message counts once its file is unchanged over two polls.
    pub fn wait_for(&self, n: usize, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        let mut previous = Vec::new();
        loop {
            let m = self.messages();
            if (m.len() >= n && m == previous) || Instant::now() > deadline {
                return m;
            }
            previous = m;
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs swaks with the given arguments (it must be installed: make deps does it).
pub fn swaks(args: &[&str]) -> Output {
    Command::new("swaks")
        .args(args)
        .args(["--timeout", "30"])
        .stdin(Stdio::null())
        .output()
        .expect("run swaks (apt-get install swaks)")
}

/// A loopback address of its own (127.77.x.y), so a peer can listen on the port a page's
/// transport names (25, 7025) without meeting another test's peer there. Linux answers on all of
/// 127.0.0.0/8 without configuring anything.
pub fn own_loopback() -> std::net::Ipv4Addr {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let pid = std::process::id();
    std::net::Ipv4Addr::new(127, 77, (pid % 251) as u8 + 1, (n % 250) as u8 + 1)
}

/// Whether this process runs as root (private Postfix and Dovecot instances need it).
pub fn running_as_root() -> bool {
    is_root()
}
