//! The box's own config slot (TLS certificate and key) from flash bytes: never a panic, memory
//! bounded by the input, and what it accepts is written back to the same settings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::config::stored::BoxConfig;
use postern_fuzz::{Counting, bounded, postcard_bound};

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|data: &[u8]| {
    let decoded = bounded(postcard_bound(data.len()), "BoxConfig::decode", || {
        BoxConfig::decode(data)
    });
    if let Ok(config) = decoded {
        let again = config.encode();
        assert_eq!(BoxConfig::decode(&again).as_ref(), Ok(&config));
    }
});
