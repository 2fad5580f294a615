//! A small SMTP load generator for what smtp-source cannot do: STARTTLS.
//!
//! `smtp-load --sessions S --messages N --size BYTES [--starttls] HOST:PORT` sends N messages over
//! S concurrent sessions, one message per connection, as `smtp-source -s S -m N -l SIZE` does
//! (MAIL, RCPT and DATA pipelined). With `--starttls` each session upgrades first, a full
//! handshake every time (no resumption); the certificate is not checked (a bench talks to
//! 127.0.0.1), the handshake's signature is. Exits 0 when every message got its 250, 1 otherwise.
//!
//! tests/bench/relay.py builds it (`cargo build --release -p postern --example smtp-load`) and
//! runs it for the STARTTLS case. It replaced tests/bench/smtp_load.py,
//! whose Python took ~1.5 ms of CPU per message, most of one of the bench machine's two cores:
//! the case measured the client more than the servers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use postern::delivery::AnyCertificate;
use postern::log::console::say_args;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

struct Args {
    sessions: usize,
    messages: usize,
    size: usize,
    starttls: bool,
    target: String,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        sessions: 10,
        messages: 1000,
        size: 5120,
        starttls: false,
        target: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--sessions" => a.sessions = number("--sessions")?.max(1),
            "--messages" => a.messages = number("--messages")?,
            "--size" => a.size = number("--size")?,
            "--starttls" => a.starttls = true,
            t if !t.starts_with('-') && a.target.is_empty() => a.target = t.to_string(),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.target.is_empty() {
        return Err(
            "usage: smtp-load [--sessions S] [--messages N] [--size BYTES] [--starttls] HOST:PORT"
                .into(),
        );
    }
    Ok(a)
}

/// The message as smtp_load.py made it: a header section, 72-byte lines, the end of data.
fn body(size: usize) -> Vec<u8> {
    let head: &[u8] =
        b"From: <sender@bench.invalid>\r\nTo: <rcpt@example.com>\r\nSubject: bench\r\n\r\n";
    let line = [b"X".repeat(70), b"\r\n".to_vec()].concat();
    let mut out = head.to_vec();
    for _ in 0..size.saturating_sub(head.len()) / line.len() {
        out.extend_from_slice(&line);
    }
    out.extend_from_slice(b".\r\n");
    out
}

fn tls_config() -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    // A full handshake per message, as a client meeting the server for the first time.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// Reads a (multi-line) reply; an error unless its code starts with `code`.
fn expect(r: &mut impl BufRead, code: &str) -> Result<(), String> {
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err("connection closed".into());
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    }
    if line.starts_with(code) {
        Ok(())
    } else {
        Err(line.trim_end().to_string())
    }
}

/// After the greeting (and the upgrade): one message, then QUIT.
fn transaction<S: Read + Write>(r: &mut BufReader<S>, data: &[u8]) -> Result<(), String> {
    let w = |r: &mut BufReader<S>, bytes: &[u8]| {
        let s = r.get_mut();
        s.write_all(bytes)
            .and_then(|()| s.flush())
            .map_err(|e| e.to_string())
    };
    w(r, b"EHLO load.bench.invalid\r\n")?;
    expect(r, "250")?;
    w(
        r,
        b"MAIL FROM:<sender@bench.invalid>\r\nRCPT TO:<rcpt@example.com>\r\nDATA\r\n",
    )?;
    expect(r, "250")?;
    expect(r, "250")?;
    expect(r, "354")?;
    w(r, data)?;
    expect(r, "250")?;
    w(r, b"QUIT\r\n")
}

fn one(target: &str, data: &[u8], tls: Option<&Arc<ClientConfig>>) -> Result<(), String> {
    let tcp = TcpStream::connect(target).map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let mut r = BufReader::new(tcp);
    expect(&mut r, "220")?;
    let Some(config) = tls else {
        return transaction(&mut r, data);
    };
    // EHLO ends a group (RFC 2920): its reply first, then STARTTLS.
    for (command, code) in [
        (&b"EHLO load.bench.invalid\r\n"[..], "250"),
        (b"STARTTLS\r\n", "220"),
    ] {
        r.get_mut().write_all(command).map_err(|e| e.to_string())?;
        expect(&mut r, code)?;
    }
    if !r.buffer().is_empty() {
        return Err("bytes after the 220 to STARTTLS".into());
    }
    let name = ServerName::try_from("bench.invalid").map_err(|e| e.to_string())?;
    let conn = ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
    let mut r = BufReader::new(StreamOwned::new(conn, r.into_inner()));
    transaction(&mut r, data)?;
    let s = r.get_mut();
    s.conn.send_close_notify();
    let _ = s.flush();
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            say_args(format_args!("smtp-load: {e}"));
            return ExitCode::from(2);
        }
    };
    let tls = if args.starttls {
        match tls_config() {
            Ok(c) => Some(c),
            Err(e) => {
                say_args(format_args!("smtp-load: TLS: {e}"));
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    let data = body(args.size);
    let left = AtomicUsize::new(args.messages);
    let failed = AtomicUsize::new(0);
    let first_error = std::sync::Mutex::new(None::<String>);
    std::thread::scope(|s| {
        for _ in 0..args.sessions.min(args.messages.max(1)) {
            s.spawn(|| {
                while left
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                    .is_ok()
                {
                    if let Err(e) = one(&args.target, &data, tls.as_ref()) {
                        failed.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut first) = first_error.lock() {
                            first.get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    let failed = failed.into_inner();
    if failed > 0 {
        let first = first_error.into_inner().ok().flatten().unwrap_or_default();
        say_args(format_args!(
            "smtp-load: {failed} of {} messages got no 250 (first: {first})",
            args.messages
        ));
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
