//! Fetching an update bundle over HTTP and HTTPS from servers on 127.0.0.1: the file as served,
//! redirects followed, and each way a download goes wrong named.

use std::net::SocketAddr;
use std::sync::Arc;

use postern::inbound::tls::{self_signed, server_config};
use postern::update::fetch::{FetchError, fetch};
use postern::update::http::Url;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves each connection the reply `answer` gives for its request path.
async fn server(
    answer: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (answer, tls) = (answer.clone(), tls.clone());
            tokio::spawn(async move {
                match tls {
                    Some(config) => {
                        let Ok(s) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await
                        else {
                            return;
                        };
                        serve_one(s, &*answer).await;
                    }
                    None => serve_one(tcp, &*answer).await,
                }
            });
        }
    });
    addr
}

async fn serve_one<S>(mut s: S, answer: &(dyn Fn(&str) -> Vec<u8> + Send + Sync))
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let path = text.split(' ').nth(1).unwrap_or("/").to_string();
    let _ = s.write_all(&answer(&path)).await;
    let _ = s.shutdown().await;
}

fn ok(body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    r.extend_from_slice(body);
    r
}

fn bundle_bytes() -> Vec<u8> {
    (0..200_000u32).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn a_bundle_arrives_whole_over_http_following_redirects() {
    let body = bundle_bytes();
    let served = body.clone();
    let addr = server(
        move |path| match path {
            "/latest" => b"HTTP/1.1 302 Found\r\nLocation: /postern.bundle\r\n\r\n".to_vec(),
            "/postern.bundle" => ok(&served),
            // No Content-Length: the body ends when the server closes.
            "/unsized" => {
                let mut r = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
                r.extend_from_slice(&served);
                r
            }
            "/short" => b"HTTP/1.0 200 OK\r\nContent-Length: 100\r\n\r\nonly this".to_vec(),
            "/loop" => b"HTTP/1.1 301 Moved\r\nLocation: /loop\r\n\r\n".to_vec(),
            _ => b"HTTP/1.0 404 File not found\r\nContent-Length: 0\r\n\r\n".to_vec(),
        },
        None,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("b");
    let url = |p: &str| Url::parse(&format!("http://{addr}{p}")).unwrap();

    assert_eq!(
        fetch(&url("/latest"), &to).await.unwrap(),
        body.len() as u64
    );
    assert_eq!(std::fs::read(&to).unwrap(), body);
    assert_eq!(
        fetch(&url("/unsized"), &to).await.unwrap(),
        body.len() as u64
    );
    assert_eq!(std::fs::read(&to).unwrap(), body);

    let e = fetch(&url("/missing"), &to).await.unwrap_err();
    assert_eq!(e.to_string(), "the server answered 404 File not found");
    let e = fetch(&url("/short"), &to).await.unwrap_err();
    assert!(
        matches!(
            e,
            FetchError::Truncated {
                got: 9,
                expected: 100
            }
        ),
        "{e}"
    );
    let e = fetch(&url("/loop"), &to).await.unwrap_err();
    assert!(matches!(e, FetchError::TooManyRedirects), "{e}");

    // Nobody listening.
    let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = gone.local_addr().unwrap().port();
    drop(gone);
    let e = fetch(
        &Url::parse(&format!("http://127.0.0.1:{port}/b")).unwrap(),
        &to,
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().starts_with("cannot connect to 127.0.0.1:"),
        "{e}"
    );
}

#[tokio::test]
async fn https_checks_the_server_against_the_trusted_roots() {
    let identity = self_signed("localhost").unwrap();
    let stranger = self_signed("localhost").unwrap();
    let body = bundle_bytes();
    let served = body.clone();
    let addr = server(
        move |_| ok(&served),
        Some(server_config(&identity).unwrap()),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (trusted, untrusted) = (dir.path().join("ca.pem"), dir.path().join("other.pem"));
    std::fs::write(&trusted, &identity.cert_pem).unwrap();
    std::fs::write(&untrusted, &stranger.cert_pem).unwrap();
    let to = dir.path().join("b");
    let url = Url::parse(&format!("https://localhost:{}/b", addr.port())).unwrap();

    // The only test in this binary that reads SSL_CERT_FILE, so setting it races nothing.
    unsafe { std::env::set_var("SSL_CERT_FILE", &trusted) };
    // `localhost` resolves through the resolver itself (no DNS server is asked).
    assert_eq!(fetch(&url, &to).await.unwrap(), body.len() as u64);
    assert_eq!(std::fs::read(&to).unwrap(), body);

    unsafe { std::env::set_var("SSL_CERT_FILE", &untrusted) };
    let e = fetch(&url, &to).await.unwrap_err();
    assert!(matches!(e, FetchError::Tls(_)), "{e}");
}
