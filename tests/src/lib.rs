//! Helpers for end-to-end tests: start Postern and real peers on loopback.
