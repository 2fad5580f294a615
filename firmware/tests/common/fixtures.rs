//! Envelopes and recipients as an RCPT TO without options gives them: no ORCPT, default NOTIFY,
//! 7bit, no RET or ENVID. A test changes what it is about with struct update syntax.

use postern::mail::{BodyType, ClientInfo, Envelope, Notify, Recipient, Transport};

/// An arrival time (Unix seconds, late 2026) for tests that do not care when mail came in.
pub const ARRIVAL: u64 = 1_795_000_000;

/// A recipient of `address` whose next hop is `next_hop`.
pub fn recipient(address: &str, next_hop: &Transport) -> Recipient {
    Recipient {
        address: address.to_string(),
        original: None,
        orcpt: None,
        notify: Notify::DEFAULT,
        next_hop: next_hop.clone(),
    }
}

/// One recipient per address, all through `next_hop`.
pub fn recipients(addresses: &[&str], next_hop: &Transport) -> Vec<Recipient> {
    addresses.iter().map(|a| recipient(a, next_hop)).collect()
}

/// An envelope from `sender` (empty: the null sender) to `recipients`, arrived at `arrival`.
pub fn envelope(sender: &str, recipients: Vec<Recipient>, arrival: u64) -> Envelope {
    Envelope {
        sender: sender.to_string(),
        recipients,
        ret: None,
        envid: None,
        body_type: BodyType::SevenBit,
        smtputf8: false,
        arrival,
        client: ClientInfo::default(),
    }
}
