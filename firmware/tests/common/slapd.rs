//! A private OpenLDAP `slapd` on 127.0.0.1 for the sync tests: its own slapd.conf, database and
//! a minimal Zimbra-like schema (attribute names and OIDs from Zimbra's zimbra-attrs.xml and
//! zimbra-ocs.xml, arc 1.3.6.1.4.1.19348.2.1 for attributes and .2.2 for object classes).
//!
//! Without slapd installed the tests are skipped, except under `CI=true`, where a missing peer
//! fails the test and names the Debian package to install (see [`super::peers::missing`]).

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SLAPD: &str = "/usr/sbin/slapd";
pub const ROOT_DN: &str = "uid=zimbra,cn=admins,cn=zimbra";
pub const ROOT_PW: &str = "zimbra-test-secret";

/// `None` (skip) when slapd is missing outside CI; panics naming the package under CI=true.
pub fn require_slapd() -> Option<()> {
    if Path::new(SLAPD).exists() {
        return Some(());
    }
    super::peers::missing("OpenLDAP slapd", "slapd");
    None
}

pub use super::ports::free_port;

/// (attribute id in zimbra-attrs.xml, name, single-valued)
const ATTRS: &[(u32, &str, bool)] = &[
    (1, "zimbraId", true),
    (2, "zimbraAccountStatus", true),
    (11, "zimbraMemberOf", false),
    (12, "zimbraMailForwardingAddress", false),
    (13, "zimbraMailDeliveryAddress", false),
    (15, "zimbraMailStatus", true),
    (19, "zimbraDomainName", true),
    (20, "zimbraMailAlias", false),
    (40, "zimbraAliasTargetId", true),
    (42, "zimbraAuthMech", true),
    (43, "zimbraAuthLdapURL", false),
    (44, "zimbraAuthLdapBindDn", true),
    (212, "zimbraDomainType", true),
    (214, "zimbraMailCatchAllAddress", false),
    (215, "zimbraMailCatchAllForwardingAddress", true),
    (65, "zimbraServiceHostname", true),
    (197, "zimbraMtaDnsLookupsEnabled", true),
    (198, "zimbraMtaMaxMessageSize", true),
    (199, "zimbraMtaRelayHost", false),
    (226, "zimbraMtaRestriction", false),
    (247, "zimbraMailTransport", true),
    (311, "zimbraMtaMyNetworks", false),
    (343, "zimbraPrefMailForwardingAddress", true),
    (344, "zimbraPrefMailLocalDeliveryDisabled", true),
];

fn schema() -> String {
    let mut s = String::new();
    for (id, name, single) in ATTRS {
        s.push_str(&format!(
            "attributetype ( 1.3.6.1.4.1.19348.2.1.{id} NAME '{name}' \
             EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch \
             SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{{1024}}{} )\n",
            if *single { " SINGLE-VALUE" } else { "" }
        ));
    }
    let recipient = "zimbraMailDeliveryAddress $ zimbraMailAlias $ zimbraMailStatus $ \
                     zimbraMailTransport $ zimbraMailForwardingAddress $ \
                     zimbraMailCatchAllAddress $ zimbraMailCatchAllForwardingAddress";
    for (id, name, kind, must, may) in [
        (
            1,
            "zimbraAccount",
            "AUXILIARY",
            "zimbraId",
            "zimbraAccountStatus $ zimbraPrefMailForwardingAddress $ \
             zimbraPrefMailLocalDeliveryDisabled $ zimbraMemberOf $ uid",
        ),
        (
            4,
            "zimbraDomain",
            "AUXILIARY",
            "zimbraId $ zimbraDomainName",
            "zimbraDomainType $ zimbraMailStatus $ zimbraMailTransport $ \
             zimbraMailCatchAllAddress $ zimbraMailCatchAllForwardingAddress $ zimbraAuthMech $ \
             zimbraAuthLdapURL $ zimbraAuthLdapBindDn",
        ),
        (
            6,
            "zimbraDistributionList",
            "STRUCTURAL",
            "zimbraId",
            "uid $ cn",
        ),
        (7, "zimbraMailRecipient", "AUXILIARY", "cn", recipient),
        (
            11,
            "zimbraAlias",
            "STRUCTURAL",
            "zimbraId $ uid",
            "zimbraAliasTargetId",
        ),
        (27, "zimbraGroup", "AUXILIARY", "zimbraId", "uid $ cn"),
        (
            8,
            "zimbraServer",
            "STRUCTURAL",
            "cn",
            "zimbraId $ zimbraServiceHostname $ zimbraMtaRelayHost $ zimbraMtaMyNetworks $ \
             zimbraMtaDnsLookupsEnabled $ zimbraMtaRestriction",
        ),
        (
            9,
            "zimbraGlobalConfig",
            "AUXILIARY",
            "cn",
            "zimbraMtaRelayHost $ zimbraMtaMyNetworks $ zimbraMtaDnsLookupsEnabled $ \
             zimbraMtaMaxMessageSize $ zimbraMtaRestriction",
        ),
    ] {
        let sup = if kind == "STRUCTURAL" { "SUP top " } else { "" };
        s.push_str(&format!(
            "objectclass ( 1.3.6.1.4.1.19348.2.2.{id} NAME '{name}' {sup}{kind} \
             MUST ( {must} ) MAY ( {may} ) )\n"
        ));
    }
    s + OPENDKIM_SCHEMA
}

/// OpenDKIM's LDAP schema (its contrib/ldap), which `zmdkimkeyutil` uses on Zimbra's domain
/// entries: an auxiliary class `DKIM` with the selector, the PEM key and the signing domain.
const OPENDKIM_SCHEMA: &str = "\
attributetype ( 1.3.6.1.4.1.29426.2.2.1.1 NAME 'DKIMSelector' EQUALITY caseIgnoreMatch \
SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.29426.2.2.1.2 NAME 'DKIMKey' EQUALITY caseExactMatch \
SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.29426.2.2.1.3 NAME 'DKIMDomain' EQUALITY caseIgnoreMatch \
SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.29426.2.2.1.4 NAME 'DKIMIdentity' EQUALITY caseIgnoreMatch \
SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.29426.2.2.2.1 NAME 'DKIM' AUXILIARY \
MAY ( DKIMSelector $ DKIMKey $ DKIMDomain $ DKIMIdentity ) )
";

/// A running slapd.
pub struct Slapd {
    pub ip: IpAddr,
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// Once slapd has run, its port is the one the daemon under test was given.
    started: bool,
    _tmp: tempfile::TempDir,
}

/// Another process held slapd's port.
struct PortTaken;

/// Whether an LDAP server on the port answers an anonymous simple bind with success.
fn ldap_answers(ip: IpAddr, port: u16) -> bool {
    use std::io::{Read, Write};
    // BindRequest, message 1: version 3, empty name, empty simple password.
    const BIND: [u8; 14] = [
        0x30, 0x0c, 0x02, 0x01, 0x01, 0x60, 0x07, 0x02, 0x01, 0x03, 0x04, 0x00, 0x80, 0x00,
    ];
    let Ok(mut s) = TcpStream::connect((ip, port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(&BIND).is_err() {
        return false;
    }
    let mut reply = [0u8; 64];
    let mut got = 0;
    while got < 14 {
        match s.read(&mut reply[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    // BindResponse (tag 0x61) for message 1 with resultCode success (ENUMERATED 0).
    let reply = &reply[..got];
    reply.len() >= 10
        && reply[0] == 0x30
        && reply[2..5] == [0x02, 0x01, 0x01]
        && reply[5] == 0x61
        && reply[7..10] == [0x0a, 0x01, 0x00]
}

impl Slapd {
    /// Starts slapd with an empty database (the whole DIT under the empty suffix, as Zimbra's).
    pub fn start(syncprov: bool) -> Slapd {
        Slapd::start_with(syncprov, None)
    }

    /// The same, answering StartTLS with this certificate and key (PEM).
    pub fn start_with(syncprov: bool, tls: Option<(&str, &str)>) -> Slapd {
        Slapd::start_on(IpAddr::from([127, 0, 0, 1]), syncprov, tls)
    }

    /// The same, listening on `ip` (`::1` for the IPv6 tests).
    pub fn start_on(ip: IpAddr, syncprov: bool, tls: Option<(&str, &str)>) -> Slapd {
        Slapd::launch(ip, syncprov.then_some(0), tls)
    }

    /// With syncprov keeping a session log of `entries` changes (`olcSpSessionlog`, as
    /// providers for replicas are often set up): a refresh from a cookie it covers gets only the
    /// changes, no present phase naming every entry.
    #[allow(dead_code)]
    pub fn start_with_sessionlog(entries: u32) -> Slapd {
        Slapd::launch(IpAddr::from([127, 0, 0, 1]), Some(entries), None)
    }

    /// `syncprov`: None without the overlay, Some(0) without a session log.
    fn launch(ip: IpAddr, syncprov: Option<u32>, tls: Option<(&str, &str)>) -> Slapd {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        std::fs::create_dir(dir.join("db")).expect("db dir");
        std::fs::write(dir.join("zimbra.schema"), schema()).expect("schema");
        let d = dir.display();
        let tls_conf = match tls {
            Some((cert, key)) => {
                std::fs::write(dir.join("cert.pem"), cert).expect("cert");
                std::fs::write(dir.join("key.pem"), key).expect("key");
                format!("TLSCertificateFile {d}/cert.pem\nTLSCertificateKeyFile {d}/key.pem\n")
            }
            None => String::new(),
        };
        // A provider indexes entryCSN and entryUUID, as the OpenLDAP admin guide asks: a
        // refresh looks entries up by them.
        let (load, overlay) = match syncprov {
            Some(0) => (
                "moduleload syncprov\n",
                "index entryCSN,entryUUID eq\noverlay syncprov\n".to_string(),
            ),
            Some(n) => (
                "moduleload syncprov\n",
                format!("index entryCSN,entryUUID eq\noverlay syncprov\nsyncprov-sessionlog {n}\n"),
            ),
            None => ("", String::new()),
        };
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include /etc/ldap/schema/misc.schema\n\
             include {d}/zimbra.schema\n\
             pidfile {d}/slapd.pid\n\
             argsfile {d}/slapd.args\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n{load}\
             {tls_conf}\
             sizelimit unlimited\n\
             database mdb\n\
             maxsize 1073741824\n\
             suffix \"\"\n\
             rootdn \"{ROOT_DN}\"\n\
             rootpw {ROOT_PW}\n\
             directory {d}/db\n\
             index objectClass eq\n\
             access to * by * read\n{overlay}"
        );
        std::fs::write(dir.join("slapd.conf"), conf).expect("slapd.conf");
        let mut s = Slapd {
            ip,
            port: free_port(),
            dir,
            child: None,
            started: false,
            _tmp: tmp,
        };
        s.spawn();
        s
    }

    pub fn url(&self) -> String {
        format!("ldap://{}", SocketAddr::new(self.ip, self.port))
    }

    /// Starts slapd on the chosen port. The port was free when picked, but another test's
    /// listener on port 0 may take it before slapd binds it: slapd then exits, and a first start
    /// moves to a new port. A restart keeps its port, which the daemon under test is set to.
    fn spawn(&mut self) {
        for _ in 0..5 {
            match self.try_spawn() {
                Ok(()) => return,
                Err(PortTaken) if !self.started => self.port = free_port(),
                Err(PortTaken) => {
                    panic!("slapd: port {} was taken while slapd was down", self.port)
                }
            }
        }
        panic!("slapd: every port tried was taken before slapd could bind it");
    }

    fn try_spawn(&mut self) -> Result<(), PortTaken> {
        let child = Command::new(SLAPD)
            .arg("-d")
            .arg("0")
            .arg("-h")
            .arg(format!("ldap://{}/", SocketAddr::new(self.ip, self.port)))
            .arg("-f")
            .arg(self.dir.join("slapd.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start slapd");
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            // Something answering LDAP on the port is not enough: it must be this slapd,
            // still running once it has answered.
            let answers = ldap_answers(self.ip, self.port);
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                let stderr = self.child.take().and_then(|mut c| c.stderr.take());
                if TcpStream::connect((self.ip, self.port)).is_ok() {
                    return Err(PortTaken);
                }
                let mut err = String::new();
                if let Some(mut e) = stderr {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                panic!("slapd exited ({status}): {err}");
            }
            if answers {
                self.started = true;
                return Ok(());
            }
            assert!(
                Instant::now() < until,
                "slapd did not answer on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and database.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Loads LDIF offline (slapd stopped), as the benchmark does for many entries.
    pub fn slapadd(&mut self, ldif: &str) {
        let running = self.child.is_some();
        self.stop();
        let path = self.dir.join("load.ldif");
        std::fs::write(&path, ldif).expect("ldif");
        let out = Command::new("/usr/sbin/slapadd")
            .arg("-q")
            .arg("-f")
            .arg(self.dir.join("slapd.conf"))
            .arg("-l")
            .arg(&path)
            .output()
            .expect("slapadd");
        assert!(
            out.status.success(),
            "slapadd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if running {
            self.spawn();
        }
    }

    /// Runs `ldapmodify -a` with the LDIF as the admin: entries without a changetype are added.
    pub fn ldapmodify(&self, ldif: &str) {
        use std::io::Write;
        let mut child = Command::new("ldapmodify")
            .args(["-x", "-a", "-H", &self.url(), "-D", ROOT_DN, "-w", ROOT_PW])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ldapmodify (Debian package ldap-utils)");
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(ldif.as_bytes())
                .expect("ldif to ldapmodify");
        }
        let out = child.wait_with_output().expect("ldapmodify");
        assert!(
            out.status.success(),
            "ldapmodify: {}\n{ldif}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// LDIF for the containers of a Zimbra-like DIT: cn=zimbra, and the `dc=` parents of the test
/// domains (Zimbra makes an entry for every label above a domain).
pub fn base_ldif() -> String {
    let mut s = "dn: cn=zimbra\nobjectClass: organizationalRole\ncn: zimbra\n\n\
                 dn: cn=admins,cn=zimbra\nobjectClass: organizationalRole\ncn: admins\n\n\
                 dn: cn=servers,cn=zimbra\nobjectClass: organizationalRole\ncn: servers\n\n\
                 dn: cn=config,cn=zimbra\nobjectClass: organizationalRole\n\
                 objectClass: zimbraGlobalConfig\ncn: config\n\n"
        .to_string();
    for dn in ["dc=com", "dc=net", "dc=org", "dc=example,dc=net"] {
        let dc = dn[3..].split(',').next().unwrap_or("x");
        s += &format!(
            "dn: {dn}\nobjectClass: dcObject\nobjectClass: organization\ndc: {dc}\no: {dc}\n\n"
        );
    }
    s
}

/// A domain entry (`dc=` parts for its DN, as Zimbra makes them).
pub fn domain_ldif(name: &str, id: &str, extra: &str) -> String {
    let dn: Vec<String> = name.split('.').map(|p| format!("dc={p}")).collect();
    let dn = dn.join(",");
    let first = name.split('.').next().unwrap_or(name);
    format!(
        "dn: {dn}\nobjectClass: dcObject\nobjectClass: organization\nobjectClass: zimbraDomain\n\
         dc: {first}\no: {name}\nzimbraId: {id}\nzimbraDomainName: {name}\n\
         zimbraDomainType: local\nzimbraMailStatus: enabled\n{extra}\n\
         dn: ou=people,{dn}\nobjectClass: organizationalUnit\nou: people\n\n"
    )
}

/// An account entry under `ou=people` of its domain.
pub fn account_ldif(address: &str, id: &str, extra: &str) -> String {
    let (uid, domain) = address.split_once('@').expect("an address");
    let dn: Vec<String> = domain.split('.').map(|p| format!("dc={p}")).collect();
    format!(
        "dn: uid={uid},ou=people,{}\nobjectClass: inetOrgPerson\nobjectClass: zimbraAccount\n\
         objectClass: zimbraMailRecipient\nuid: {uid}\ncn: {uid}\nsn: {uid}\nzimbraId: {id}\n\
         zimbraMailDeliveryAddress: {address}\nzimbraMailStatus: enabled\n\
         zimbraAccountStatus: active\n{extra}\n",
        dn.join(",")
    )
}
