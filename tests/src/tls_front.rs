//! A TLS front for a plain-TCP peer, as a proxy (nginx, stunnel) puts in front of rspamd: it
//! takes TLS on 127.0.0.1 with a certificate for 127.0.0.1 from a CA of its own (written as a PEM
//! bundle for `SSL_CERT_FILE`) and passes each request to the peer, one request per connection
//! (`Connection: close`, as the box's scanner clients ask).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;

pub struct TlsFront {
    pub port: u16,
    /// The CA that signed the front's certificate, as a PEM bundle.
    pub ca_bundle: PathBuf,
    _dir: tempfile::TempDir,
}

impl TlsFront {
    /// A front on a free port passing requests to `127.0.0.1:upstream`.
    pub fn start(upstream: u16) -> TlsFront {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("CA cert");
        let ca_bundle = dir.path().join("ca.pem");
        std::fs::write(&ca_bundle, ca.pem()).expect("CA bundle");
        let key = rcgen::KeyPair::generate().expect("key");
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("cert");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls_pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
            )
            .expect("server config");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("port").port();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let config = config.clone();
                std::thread::spawn(move || pass(client, config, upstream));
            }
        });
        TlsFront {
            port,
            ca_bundle,
            _dir: dir,
        }
    }
}

/// One request in, one answer back.
fn pass(client: TcpStream, config: Arc<rustls::ServerConfig>, upstream: u16) {
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(conn, client);
    let Some(request) = read_request(&mut tls) else {
        return;
    };
    let Ok(mut peer) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let mut answer = Vec::new();
    if peer.write_all(&request).is_err() || peer.read_to_end(&mut answer).is_err() {
        return;
    }
    let _ = tls.write_all(&answer);
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

/// The head and `Content-Length` bytes of body.
fn read_request(tls: &mut impl Read) -> Option<Vec<u8>> {
    let mut request = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = tls.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        request.extend_from_slice(&buf[..n]);
        let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if request.len() >= end + 4 + len {
            return Some(request);
        }
    }
}
