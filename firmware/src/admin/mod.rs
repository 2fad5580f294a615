//! The command line and the control socket a running daemon answers on.

pub mod cli;
