//! Recipient to next hop: directory lookup, aliases, forwarding, catch-all, transports, relay host,
//! MX, loop checks. A pure function of the address, the directory and the config: no sockets, no flash.

mod transport;

pub use transport::{Host, Protocol, Transport, TransportError};
