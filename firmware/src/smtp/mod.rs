//! SMTP and LMTP protocol core, sans-IO: bytes and time in, replies and events out (RFC 5321, 6531, 2033).
