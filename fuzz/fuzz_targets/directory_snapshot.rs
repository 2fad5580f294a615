//! The directory snapshot from flash bytes: never a panic, memory bounded by the input, and a
//! directory it accepts is written as a snapshot that reads back to the same directory (else the
//! next boot would lose what this one loaded).
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::directory::Directory;
use postern_fuzz::{Counting, bounded, postcard_bound};

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|data: &[u8]| {
    let decoded = bounded(postcard_bound(data.len()), "Directory::decode", || {
        Directory::decode(data)
    });
    if let Ok(dir) = decoded {
        let snapshot = dir.encode();
        let back =
            Directory::decode(&snapshot).unwrap_or_else(|e| panic!("own snapshot refused: {e}"));
        assert_eq!(back.encode(), snapshot);
    }
});
