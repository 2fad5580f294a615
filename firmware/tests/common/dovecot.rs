//! A private Dovecot LMTP instance on 127.0.0.1 for delivery tests: its own config, users and
//! maildirs in a temp dir, a quota plugin whose full-mailbox answer is `452 4.2.2` (tempfail) or
//! `552 5.2.2`. Users: `bob` (no quota) and `full` (1 KiB quota unless `set_users` changes it).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const DOVECOT: &str = "/usr/sbin/dovecot";
const LMTP: &str = "/usr/lib/dovecot/lmtp";

pub struct Dovecot {
    pub dir: PathBuf,
    pub port: u16,
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // Stop the master we started (by its pid file), then remove the instance.
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("run/master.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Dovecot {
    /// Starts an instance, or returns None when Dovecot LMTP is not installed (failing the test
    /// under CI: see [`super::peers::missing`]).
    pub fn start(tempfail: bool) -> Option<Dovecot> {
        if !Path::new(DOVECOT).exists() || !Path::new(LMTP).exists() {
            super::peers::missing("Dovecot LMTP", "dovecot-lmtpd");
            return None;
        }
        let port = super::ports::free_port();
        let dir =
            std::env::temp_dir().join(format!("postern-dovecot-{port}-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("mail")).unwrap();
        std::fs::create_dir_all(dir.join("run")).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            // Mail is written as the `dovecot` user.
            for d in [dir.clone(), dir.join("mail")] {
                std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
            }
        }
        let dc = Dovecot { dir, port };
        dc.set_users("1K");
        let d = dc.dir.display();
        let conf = format!(
            "protocols = lmtp\nbase_dir = {d}/run\nstate_dir = {d}/run/state\nlog_path = {d}/dovecot.log\n\
             ssl = no\nlisten = 127.0.0.1\ndefault_internal_user = dovecot\ndefault_login_user = dovenull\n\
             mail_location = maildir:{d}/mail/%u\nmail_uid = dovecot\nmail_gid = dovecot\nfirst_valid_uid = 1\n\
             mail_plugins = quota\nquota_full_tempfail = {}\n\
             userdb {{\n  driver = passwd-file\n  args = {d}/users\n  default_fields = uid=dovecot gid=dovecot home={d}/mail/%u\n}}\n\
             passdb {{\n  driver = passwd-file\n  args = {d}/users\n}}\n\
             service lmtp {{\n  inet_listener lmtp {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n  unix_listener lmtp {{\n    mode = 0666\n  }}\n}}\n\
             plugin {{\n  quota = maildir:User quota\n}}\n",
            if tempfail { "yes" } else { "no" }
        );
        std::fs::write(dc.dir.join("dovecot.conf"), conf).unwrap();
        let st = Command::new(DOVECOT)
            .arg("-c")
            .arg(dc.dir.join("dovecot.conf"))
            .status()
            .expect("run dovecot");
        assert!(st.success(), "dovecot failed to start: see {d}/dovecot.log");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "dovecot lmtp did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(dc)
    }

    /// Rewrites the users file: `full`'s storage quota becomes `full_quota` (read per delivery).
    pub fn set_users(&self, full_quota: &str) {
        std::fs::write(
            self.dir.join("users"),
            format!("bob:{{PLAIN}}x::::::\nfull:{{PLAIN}}x::::::userdb_quota_rule=*:storage={full_quota}\n"),
        )
        .unwrap();
    }
}
