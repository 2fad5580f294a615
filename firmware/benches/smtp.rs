//! Cost of the SMTP core: command parsing plus the session state machine per pipelined
//! transaction, and DATA decoding throughput. Prints figures; never fails.
//!
//! `cargo bench -p postern --bench smtp` (add `--release`-like numbers with `--profile release`).

use std::hint::black_box;
use std::time::Instant;

use postern::smtp::Config;
use postern::smtp::data::DataDecoder;
use postern::smtp::loopback::{Loopback, tls13};

fn transaction(i: usize, body: &[u8]) -> Vec<u8> {
    let mut t = format!(
        "MAIL FROM:<sender{i}@example.org> SIZE={} BODY=8BITMIME\r\n\
         RCPT TO:<a{i}@example.com> NOTIFY=FAILURE\r\nRCPT TO:<b{i}@example.com>\r\nDATA\r\n",
        body.len()
    )
    .into_bytes();
    t.extend_from_slice(body);
    t.extend_from_slice(b".\r\n");
    t
}

fn body(size: usize) -> Vec<u8> {
    let line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n";
    let mut b = b"Subject: bench\r\nFrom: a@example.org\r\n\r\n".to_vec();
    while b.len() < size {
        b.extend_from_slice(line);
    }
    b
}

fn bench_sessions(n: usize, body_size: usize, chunk: usize) {
    let body = body(body_size);
    let mut input = b"EHLO client.example\r\n".to_vec();
    // Authenticated-style pipelining: the whole conversation may arrive at once.
    let mut config = Config::new("mx.bench");
    config.forbid_unauth_pipelining = false;
    for i in 0..n {
        input.extend_from_slice(&transaction(i, &body));
    }
    input.extend_from_slice(b"QUIT\r\n");
    let mut l = Loopback::new(config, Some(tls13()));
    l.record = false;
    let start = Instant::now();
    for piece in input.chunks(chunk) {
        l.send(piece);
        // Keep the spool's RAM flat: the loopback is a stand-in, not what is measured.
        l.stored.clear();
    }
    let elapsed = start.elapsed();
    black_box(&l.wire);
    let per_tx = elapsed.as_secs_f64() / n as f64;
    let body_size = body.len();
    println!(
        "session: {n} pipelined transactions, {body_size} B body, {chunk} B reads: \
         {:.2} µs/transaction, {:.0} transactions/s, {:.0} MB/s",
        per_tx * 1e6,
        1.0 / per_tx,
        input.len() as f64 / elapsed.as_secs_f64() / 1e6
    );
}

fn bench_data(size_mb: usize) {
    let one = body(64 * 1024);
    let mut input = Vec::new();
    while input.len() < size_mb * 1024 * 1024 {
        input.extend_from_slice(&one);
    }
    input.extend_from_slice(b".\r\n");
    let start = Instant::now();
    let mut d = DataDecoder::new();
    let mut out = Vec::with_capacity(input.len());
    for piece in input.chunks(16 * 1024) {
        black_box(d.decode(piece, &mut out));
    }
    let elapsed = start.elapsed();
    println!(
        "data decoder: {} MB in {:.1} ms: {:.0} MB/s",
        size_mb,
        elapsed.as_secs_f64() * 1e3,
        input.len() as f64 / elapsed.as_secs_f64() / 1e6
    );
}

fn main() {
    bench_sessions(10_000, 0, 16 * 1024);
    bench_sessions(10_000, 2_000, 16 * 1024);
    bench_sessions(2_000, 50_000, 16 * 1024);
    bench_sessions(1_000, 2_000, 1);
    bench_data(32);
}
