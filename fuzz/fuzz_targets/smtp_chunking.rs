//! The same input fed whole and in fuzzer-chosen chunks gives the same replies, the same events
//! and the same stored messages: the session never desyncs on how TCP splits the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::smtp::Config;
use postern::smtp::loopback::{Loopback, tls13};

fn run(input: &[u8], cuts: &[usize]) -> Loopback {
    let mut config = Config::new("mx.fuzz");
    config.line_length_limit = 64;
    config.max_message_size = 512;
    // This rule judges what arrived together, by design; nothing else may care.
    config.forbid_unauth_pipelining = false;
    let mut l = Loopback::new(config, Some(tls13()));
    l.send_chunked(input, cuts);
    l
}

fuzz_target!(|data: &[u8]| {
    let (seed, input) = data.split_at(data.len().min(6));
    let cuts: Vec<usize> = seed.iter().map(|&b| usize::from(b) * 3).collect();
    let whole = run(input, &[]);
    let chunked = run(input, &cuts);
    assert_eq!(whole.wire, chunked.wire);
    assert_eq!(whole.events, chunked.events);
    assert_eq!(whole.stored, chunked.stored);
});
