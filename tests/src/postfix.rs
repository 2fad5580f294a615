//! A private Postfix instance playing the "existing mail system" of the Zimbra pages
//! (`mail.example.com`): it listens on port 25 of its own loopback address, accepts mail for the
//! mailboxes it is given, stores each in a Maildir with Postfix's `virtual` agent, and refuses
//! unknown addresses at RCPT as a primary does. Needs root (Postfix's private instances do); its
//! configuration directory must be listed in the default main.cf's
//! `alternate_config_directories`, which [`MailStore::start`] adds and `Drop` takes out again.

use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Edits of /etc/postfix/main.cf, one at a time within this process.
static MAIN_CF: Mutex<()> = Mutex::new(());

const MASTER_CF: &str = "\
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
virtual unix - n n - - virtual
";

pub struct MailStore {
    pub ip: Ipv4Addr,
    pub dir: PathBuf,
}

impl MailStore {
    /// Starts Postfix as `hostname` on `ip`:25, with a Maildir for each of `mailboxes`. None
    /// when Postfix is missing or this is not root (the caller says SKIPPED).
    pub fn start(hostname: &str, ip: Ipv4Addr, mailboxes: &[&str]) -> Option<MailStore> {
        if !Path::new("/usr/sbin/postfix").exists() || !crate::peers::running_as_root() {
            return None;
        }
        let dir = PathBuf::from(format!("/var/tmp/postern-tests/postfix-{ip}"));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["data", "queue", "mail"] {
            std::fs::create_dir_all(dir.join(sub)).expect("postfix dirs");
        }
        chown("postfix", &dir.join("data"));
        chown("nobody:nogroup", &dir.join("mail"));
        let mut domains: Vec<&str> = mailboxes
            .iter()
            .filter_map(|m| m.split_once('@').map(|(_, d)| d))
            .collect();
        domains.dedup();
        let maps: Vec<String> = mailboxes
            .iter()
            .map(|m| format!("{m}={}/", m.replace('@', "_")))
            .collect();
        let d = dir.display();
        let main = format!(
            "compatibility_level = 3.6\nqueue_directory = {d}/queue\ndata_directory = {d}/data\n\
             mail_owner = postfix\nsetgid_group = postdrop\ninet_interfaces = all\ninet_protocols = ipv4\n\
             myhostname = {hostname}\nmydestination =\nmynetworks = 127.0.0.0/8\n\
             smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n\
             maillog_file = {d}/maillog\nalias_maps =\nalias_database =\n\
             smtp_tls_security_level = none\nsmtpd_tls_security_level = none\n\
             virtual_mailbox_domains = {}\nvirtual_mailbox_base = {d}/mail\n\
             virtual_mailbox_maps = inline:{{{}}}\nvirtual_uid_maps = static:65534\n\
             virtual_gid_maps = static:65534\nvirtual_minimum_uid = 1\n",
            domains.join(" "),
            maps.join(",")
        );
        std::fs::write(dir.join("main.cf"), main).expect("main.cf");
        std::fs::write(
            dir.join("master.cf"),
            format!("{ip}:25 inet n - n - - smtpd\n{MASTER_CF}"),
        )
        .expect("master.cf");
        {
            let _one = MAIN_CF.lock().unwrap_or_else(|e| e.into_inner());
            let mut dirs = alternate_dirs();
            dirs.push(d.to_string());
            set_alternate_dirs(&dirs);
        }
        let st = Command::new("postfix")
            .args(["-c", &d.to_string(), "start"])
            .output()
            .expect("run postfix");
        assert!(
            st.status.success(),
            "postfix -c {d} start failed: {}",
            String::from_utf8_lossy(&st.stderr)
        );
        let store = MailStore { ip, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect((ip, 25)).is_err() {
            assert!(
                Instant::now() < deadline,
                "postfix did not listen on {ip}:25"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(store)
    }

    /// The messages delivered to `mailbox` so far.
    pub fn messages(&self, mailbox: &str) -> Vec<String> {
        let new = self
            .dir
            .join("mail")
            .join(mailbox.replace('@', "_"))
            .join("new");
        let mut files: Vec<PathBuf> = std::fs::read_dir(new)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    }

    /// Waits until `mailbox` holds `n` messages, and returns them.
    pub fn wait_for(&self, mailbox: &str, n: usize, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        loop {
            let m = self.messages(mailbox);
            if m.len() >= n || Instant::now() > deadline {
                return m;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Postfix's own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("maillog")).unwrap_or_default()
    }
}

impl Drop for MailStore {
    fn drop(&mut self) {
        let d = self.dir.display().to_string();
        let _ = Command::new("postfix").args(["-c", &d, "stop"]).output();
        let _one = MAIN_CF.lock().unwrap_or_else(|e| e.into_inner());
        let dirs: Vec<String> = alternate_dirs().into_iter().filter(|x| *x != d).collect();
        set_alternate_dirs(&dirs);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn chown(owner: &str, path: &Path) {
    let _ = Command::new("chown").arg(owner).arg(path).status();
}

fn alternate_dirs() -> Vec<String> {
    if !Path::new("/etc/postfix/main.cf").exists() {
        // A "no configuration" install has no default main.cf; Postfix needs one to name ours.
        let _ = std::fs::write("/etc/postfix/main.cf", "compatibility_level = 3.6\n");
    }
    let out = Command::new("postconf")
        .args(["-h", "alternate_config_directories"])
        .output()
        .expect("run postconf");
    String::from_utf8_lossy(&out.stdout)
        .split([' ', ',', '\n'])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn set_alternate_dirs(dirs: &[String]) {
    let _ = Command::new("postconf")
        .arg("-e")
        .arg(format!("alternate_config_directories = {}", dirs.join(" ")))
        .status();
}
