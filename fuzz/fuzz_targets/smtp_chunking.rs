//! The same input fed whole and in fuzzer-chosen chunks gives the same replies, the same stored
//! messages and the same events, except for how much of a refused message was streamed before its
//! abort (the contract on `postern::smtp::Event`): the session never desyncs on how TCP splits the
//! stream, and never passes on more than the size limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::smtp::Config;
use postern::smtp::loopback::{Loopback, tls13};

const MAX_MESSAGE_SIZE: u64 = 512;

fn run(input: &[u8], cuts: &[usize]) -> Loopback {
    let mut config = Config::new("mx.fuzz");
    config.line_length_limit = 64;
    config.max_message_size = MAX_MESSAGE_SIZE;
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
    whole.assert_event_contract(MAX_MESSAGE_SIZE);
    chunked.assert_event_contract(MAX_MESSAGE_SIZE);
    assert_eq!(whole.wire, chunked.wire);
    assert_eq!(whole.stored, chunked.stored);
    assert_eq!(whole.kept_events(), chunked.kept_events());
});
