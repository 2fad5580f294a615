//! SMTP AUTH against the directory: an enabled account's password hash (`userPassword`), or, in a
//! domain whose `zimbraAuthMech` is `ldap` or `ad`, a simple bind as the user over TLS (for
//! directories whose hashes the box cannot read). Never logs a password.

use super::{Lookup, MailStatus, SharedDirectory, ldap, password};
use crate::log::console::say;

impl SharedDirectory {
    /// Whether `pass` is the password of the enabled account `user` (by its address or an alias).
    /// Unknown users, disabled accounts, accounts without a hash and unreadable hashes all fail.
    pub async fn verify_password(&self, user: &str, pass: &str) -> bool {
        let (hash, bind) = match self.snapshot().lookup(user) {
            Lookup::Account {
                account, domain, ..
            } if account.status() == MailStatus::Enabled => (
                account.password().map(std::borrow::Cow::into_owned),
                domain.auth().and_then(|a| a.bind_dn_for(account.address())),
            ),
            _ => (None, None),
        };
        if let Some((url, dn)) = bind {
            let settings = self.ldap_settings();
            let names = self.ldap_server_names(std::slice::from_ref(&url));
            return match ldap::fetch::check_password(&settings, &names, &url, &dn, pass).await {
                Ok(ok) => ok,
                Err(e) => {
                    say!("postern/auth: bind as {dn} to check a password: {e}");
                    false
                }
            };
        }
        let Some(hash) = hash else {
            return false;
        };
        let pass = pass.to_string();
        // argon2 takes tens of milliseconds: off the runtime's workers.
        tokio::task::spawn_blocking(move || password::verify(&pass, &hash).unwrap_or(false))
            .await
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use crate::directory::{Directory, SharedDirectory, prov};

    fn provisioned(lines: &[&str]) -> SharedDirectory {
        let mut d = Directory::default();
        for line in lines {
            let args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
            if let Some(next) = prov::execute(&d, &args).unwrap().directory {
                d = next;
            }
        }
        SharedDirectory::new(d)
    }

    #[tokio::test]
    async fn only_enabled_accounts_with_the_right_password_pass() {
        let dir = provisioned(&[
            "cd example.com",
            "ca user@example.com secret",
            "aaa user@example.com alias@example.com",
            "ca off@example.com secret zimbraMailStatus disabled",
        ]);
        assert!(dir.verify_password("user@example.com", "secret").await);
        assert!(dir.verify_password("alias@example.com", "secret").await);
        assert!(!dir.verify_password("user@example.com", "wrong").await);
        assert!(!dir.verify_password("off@example.com", "secret").await);
        assert!(!dir.verify_password("nobody@example.com", "secret").await);
    }
}
