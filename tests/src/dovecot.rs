//! A private Dovecot LMTP instance: the Zimbra mailbox server of the pages
//! (`lmtp:zimbra.example.com:7025`), on port 7025 of its own loopback address, with a Maildir for
//! each user it is given (users are full addresses, as Zimbra's LMTP takes them). Needs root.

use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const DOVECOT: &str = "/usr/sbin/dovecot";
const LMTP: &str = "/usr/lib/dovecot/lmtp";

pub struct MailboxServer {
    pub ip: Ipv4Addr,
    pub port: u16,
    dir: PathBuf,
}

impl MailboxServer {
    /// None when Dovecot LMTP is missing or this is not root (the caller says SKIPPED).
    pub fn start(ip: Ipv4Addr, port: u16, users: &[&str]) -> Option<MailboxServer> {
        if !Path::new(DOVECOT).exists()
            || !Path::new(LMTP).exists()
            || !crate::peers::running_as_root()
        {
            return None;
        }
        let dir = PathBuf::from(format!("/var/tmp/postern-tests/dovecot-{ip}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("mail")).expect("dovecot dirs");
        std::fs::create_dir_all(dir.join("run")).expect("dovecot dirs");
        {
            use std::os::unix::fs::PermissionsExt;
            for d in [dir.clone(), dir.join("mail")] {
                let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777));
            }
        }
        let users: String = users
            .iter()
            .map(|u| format!("{u}:{{PLAIN}}x::::::\n"))
            .collect();
        std::fs::write(dir.join("users"), users).expect("users");
        let d = dir.display();
        let conf = format!(
            "protocols = lmtp\nbase_dir = {d}/run\nstate_dir = {d}/run/state\nlog_path = {d}/dovecot.log\n\
             ssl = no\nlisten = {ip}\ndefault_internal_user = dovecot\ndefault_login_user = dovenull\n\
             mail_location = maildir:{d}/mail/%u\nmail_uid = dovecot\nmail_gid = dovecot\nfirst_valid_uid = 1\n\
             userdb {{\n  driver = passwd-file\n  args = {d}/users\n  default_fields = uid=dovecot gid=dovecot home={d}/mail/%u\n}}\n\
             passdb {{\n  driver = passwd-file\n  args = {d}/users\n}}\n\
             service lmtp {{\n  inet_listener lmtp {{\n    address = {ip}\n    port = {port}\n  }}\n}}\n"
        );
        std::fs::write(dir.join("dovecot.conf"), conf).expect("dovecot.conf");
        let st = Command::new(DOVECOT)
            .arg("-c")
            .arg(dir.join("dovecot.conf"))
            .status()
            .expect("run dovecot");
        assert!(st.success(), "dovecot failed to start: see {d}/dovecot.log");
        let server = MailboxServer { ip, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((ip, port)).is_err() {
            assert!(Instant::now() < deadline, "dovecot lmtp did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }

    /// The messages delivered to `user` so far.
    pub fn messages(&self, user: &str) -> Vec<String> {
        let new = self.dir.join("mail").join(user).join("new");
        let mut files: Vec<PathBuf> = std::fs::read_dir(new)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    }

    /// Waits until `user` holds `n` messages, and returns them.
    pub fn wait_for(&self, user: &str, n: usize, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        loop {
            let m = self.messages(user);
            if m.len() >= n || Instant::now() > deadline {
                return m;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for MailboxServer {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("run/master.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while TcpStream::connect((self.ip, self.port)).is_ok() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
