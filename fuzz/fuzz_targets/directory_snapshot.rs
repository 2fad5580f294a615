//! The directory snapshot from flash bytes: never a panic, memory bounded by the input, and a
//! directory it accepts is written as a snapshot that reads back to the same directory (else the
//! next boot would lose what this one loaded). Version 4 carries the LDAP sync's model, from
//! which the LDAP entries are built while decoding: its string table may give out a bounded
//! number of bytes per input byte, so that build stays within the bound too.
//!
//! The same input is also a journal record after a fixed version 4 snapshot with a sync state
//! (`fuzz/data/directory_journal_base.bin`: the sync-state tests' `synced(model())`, every
//! shape of entry): never a panic, bounded the same way, and a directory it changes is written
//! as a snapshot that reads back to the same directory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::directory::Directory;
use postern_fuzz::{Counting, bounded, postcard_bound};

static BASE: &[u8] = include_bytes!("../data/directory_journal_base.bin");

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
    let journal = [data.to_vec()];
    let replayed = bounded(
        postcard_bound(BASE.len() + data.len()),
        "Directory::decode_journaled",
        || Directory::decode_journaled(BASE, &journal),
    );
    let (dir, replayed) = replayed.unwrap_or_else(|e| panic!("the base snapshot refused: {e}"));
    if replayed.applied == 1 {
        let snapshot = dir.encode();
        let back = Directory::decode(&snapshot)
            .unwrap_or_else(|e| panic!("own snapshot after a record refused: {e}"));
        assert_eq!(back.encode(), snapshot);
    }
});
