//! An independent DKIM implementation for the tests: Debian's python3-dkim (dkimpy, the library
//! behind `dkimverify` and `dkimsign`), run by /usr/bin/python3 with the DNS answer handed in, so
//! nothing leaves the machine. Keys for messages the tests sign come from the openssl command.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::scanners::missing;

const PYTHON: &str = "/usr/bin/python3";

/// Whether dkimpy can be used; says it is missing otherwise (a failure under `CI=true`).
pub fn available() -> bool {
    let ok = Command::new(PYTHON)
        .args(["-c", "import dkim, nacl"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        missing("dkimpy (dkimverify)", "python3-dkim python3-nacl");
    }
    ok
}

fn python(script: &str, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new(PYTHON)
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write to python3");
    let out = child.wait_with_output().expect("python3 output");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// dkimpy's verdict on `message` (as delivered) when DNS holds `txt` at `name`: `true` when
/// the first signature verifies.
pub fn verify(message: &[u8], name: &str, txt: &str) -> bool {
    let script = r#"
import sys, dkim
name, txt = sys.argv[1].rstrip('.').lower(), sys.argv[2].encode()
def dns(q, timeout=5):
    q = q.decode() if isinstance(q, bytes) else q
    return txt if q.rstrip('.').lower() == name else None
msg = sys.stdin.buffer.read()
print("pass" if dkim.verify(msg, dnsfunc=dns) else "fail")
"#;
    let out = python(script, &[name, txt], message);
    String::from_utf8_lossy(&out).trim() == "pass"
}

/// `message` with a DKIM-Signature dkimpy made with `key_pem` (RSA) for `domain`/`selector`.
pub fn sign(message: &[u8], domain: &str, selector: &str, key_pem: &str) -> Vec<u8> {
    let script = r#"
import sys, dkim
domain, selector, key = sys.argv[1].encode(), sys.argv[2].encode(), sys.argv[3].encode()
msg = sys.stdin.buffer.read()
sig = dkim.sign(msg, selector, domain, key, include_headers=[b'from', b'to', b'subject'])
sys.stdout.buffer.write(sig + msg)
"#;
    python(script, &[domain, selector, key_pem], message)
}

/// A new RSA key: its PEM and the `v=DKIM1; k=rsa; p=...` record of its public half.
pub fn rsa_key() -> (String, String) {
    let pem = Command::new("openssl")
        .args(["genrsa", "2048"])
        .stderr(Stdio::null())
        .output()
        .expect("openssl genrsa");
    assert!(pem.status.success(), "openssl genrsa failed");
    let mut child = Command::new("openssl")
        .args(["pkey", "-pubout"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl pkey");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&pem.stdout)
        .expect("key to openssl");
    // The PEM's base64 lines are the SubjectPublicKeyInfo DKIM publishes.
    let public = child.wait_with_output().expect("openssl output").stdout;
    let p: String = String::from_utf8_lossy(&public)
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    (
        String::from_utf8_lossy(&pem.stdout).into_owned(),
        format!("v=DKIM1; k=rsa; p={p}"),
    )
}
