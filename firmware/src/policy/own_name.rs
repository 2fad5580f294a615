//! Mail to the box's own name (`x@mx.example.com` when mx.example.com is not one of its mail
//! domains): only `postmaster@` and `abuse@` are taken, for the admin's address; everything else
//! is refused at RCPT, never accepted and bounced later (no backscatter), and never relayed to
//! itself.

use crate::directory::Directory;

use super::refusal::RcptRefusal;

/// What the box makes of a recipient, as far as its own name goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnName {
    /// Not addressed to the box's own name: route it as usual.
    Other,
    /// `postmaster@` or `abuse@` the box: deliver to this address instead.
    Admin(String),
    /// Any other address at the box's own name, or postmaster with no admin address set.
    Unknown(RcptRefusal),
}

/// The local parts RFC 2142 and RFC 5321 §4.5.1 say a mail host must take.
const ROLES: [&str; 2] = ["postmaster", "abuse"];

/// Whether `recipient` is addressed to one of `own` names (the daemon's hostname,
/// `zimbraMtaMyHostname`) that is not a mail domain in the directory; a bare `postmaster` always is.
pub fn classify(recipient: &str, own: &[&str], dir: &Directory) -> OwnName {
    let (local, domain) = match recipient.rsplit_once('@') {
        Some((l, d)) => (l, d.trim_end_matches('.')),
        None if recipient.eq_ignore_ascii_case("postmaster") => (recipient, ""),
        None => return OwnName::Other,
    };
    let ours = domain.is_empty()
        || own
            .iter()
            .any(|o| !o.is_empty() && o.trim_end_matches('.').eq_ignore_ascii_case(domain));
    // An admin who made the box's name a mail domain routes it like any other.
    let routed = !domain.is_empty() && dir.domain(domain).is_some()
        || domain.is_empty() && own.iter().any(|o| dir.domain(o).is_some());
    if !ours || routed {
        return OwnName::Other;
    }
    let role = ROLES.iter().any(|r| r.eq_ignore_ascii_case(local));
    match (&dir.config().postmaster_address, role) {
        (Some(admin), true) => OwnName::Admin(admin.clone()),
        _ => OwnName::Unknown(RcptRefusal::UnknownLocalUser(recipient.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(admin: Option<&str>, domains: &[&str]) -> Directory {
        let mut d = Directory::default();
        let mut c = d.config().clone();
        if let Some(a) = admin {
            c.set("posternPostmasterAddress", &[a.to_string()]).unwrap();
        }
        d.set_config(c);
        for name in domains {
            d.add_domain(crate::directory::Domain::new(name).unwrap())
                .unwrap();
        }
        d
    }

    #[test]
    fn only_postmaster_and_abuse_of_the_box_reach_the_admin() {
        let own = ["mx.example.com", "localhost"];
        let d = dir(Some("admin@example.com"), &["example.com"]);
        let admin = OwnName::Admin("admin@example.com".into());
        assert_eq!(classify("Postmaster@MX.example.com", &own, &d), admin);
        assert_eq!(classify("abuse@mx.example.com.", &own, &d), admin);
        assert_eq!(classify("postmaster", &own, &d), admin);
        assert_eq!(
            classify("root@mx.example.com", &own, &d).clone(),
            OwnName::Unknown(RcptRefusal::UnknownLocalUser("root@mx.example.com".into()))
        );
        assert_eq!(classify("user@example.com", &own, &d), OwnName::Other);
        assert_eq!(classify("x@elsewhere.example", &own, &d), OwnName::Other);
        // No admin address: refused, not accepted into nowhere.
        let d = dir(None, &[]);
        assert!(matches!(
            classify("postmaster@mx.example.com", &own, &d),
            OwnName::Unknown(_)
        ));
        // The box's name made a mail domain: the directory decides.
        let d = dir(None, &["mx.example.com"]);
        assert_eq!(classify("root@mx.example.com", &own, &d), OwnName::Other);
        assert_eq!(classify("postmaster", &own, &d), OwnName::Other);
    }
}
