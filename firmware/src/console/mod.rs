//! The serial console: an admin prompt that takes the same commands as the CLI.
