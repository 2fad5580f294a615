//! SMTP and LMTP client sessions with per-recipient results.
