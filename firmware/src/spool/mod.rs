//! The flash store: an append-only log of records with group commit, recovery and compaction.
