//! Delivery status notifications (RFC 3464) and delay warnings, as Postfix's bounce daemon makes
//! them: `multipart/report; report-type=delivery-status` with a human-readable part, a
//! `message/delivery-status` part, and the original message (RET=FULL) or its headers.
//!
//! Rules kept here, whoever asks: a notification is sent from the null sender; a message from
//! the null sender never gets one (no bounce for a bounce, no loops); NOTIFY=NEVER/SUCCESS/
//! FAILURE/DELAY decides per recipient who is reported.

mod dsn;

pub use dsn::{
    BOUNCE_SIZE_LIMIT, Dsn, DsnRequest, Kind, RETURNED_HEADERS_LIMIT, build, returned_bytes, wanted,
};
