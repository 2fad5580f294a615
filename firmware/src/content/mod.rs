//! Content checks: size, attachment blocking, spam score, virus scan, header edits.
