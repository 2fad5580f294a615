//! Whole SMTP sessions on port-25 settings, fed in chunks the fuzzer chooses: nothing may panic,
//! and every message the loopback spool stored was answered with exactly one "queued as".
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::smtp::Config;
use postern::smtp::loopback::Loopback;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the settings, the next eight the chunk boundaries.
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (seed, input) = rest.split_at(rest.len().min(8));
    let mut config = Config::new("mx.fuzz");
    config.line_length_limit = 64 + usize::from(flags & 0x3f);
    config.max_message_size = 256;
    config.auth_required = flags & 0x40 != 0;
    let tls = (flags & 0x80 != 0).then(postern::smtp::loopback::tls13);
    let mut l = Loopback::new(config, tls);
    l.record = false;
    let cuts: Vec<usize> = seed.iter().map(|&b| usize::from(b) * 7).collect();
    l.send_chunked(input, &cuts);
    let queued = l.transcript().matches("Ok: queued as").count();
    assert_eq!(queued, l.stored.len());
});
