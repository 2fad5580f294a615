//! What recovery reads of begin and state records, with their strings borrowed from the segment
//! buffer. Decoding the whole `Envelope` made seven strings and a vector per message, a fifth of
//! recovering a million; a view makes one vector, and copies a next hop or a deferral reason
//! only when it is not the one before.
//!
//! postcard is not self-describing: every field is read in the stored type's order, with its
//! type, or the bytes mean something else. The tests below encode each type with every field set
//! and read it back through its view to the last byte.

use std::net::IpAddr;

use serde::Deserialize;

use crate::mail::{BodyType, Host, Notify, Protocol, Ret, Transport};

// Every field is decoded to keep postcard's place; recovery reads only some.
#[allow(dead_code)]
#[derive(Deserialize)]
pub(super) struct EnvelopeView<'a> {
    #[serde(borrow)]
    pub sender: &'a str,
    #[serde(borrow)]
    pub recipients: Vec<RecipientView<'a>>,
    pub ret: Option<Ret>,
    #[serde(borrow)]
    pub envid: Option<&'a str>,
    pub body_type: BodyType,
    pub smtputf8: bool,
    pub arrival: u64,
    #[serde(borrow)]
    pub client: ClientView<'a>,
}

// Every field is decoded to keep postcard's place; recovery reads only some.
#[allow(dead_code)]
#[derive(Deserialize)]
pub(super) struct RecipientView<'a> {
    #[serde(borrow)]
    pub address: &'a str,
    #[serde(borrow)]
    pub original: Option<&'a str>,
    #[serde(borrow)]
    pub orcpt: Option<(&'a str, &'a str)>,
    pub notify: Notify,
    #[serde(borrow)]
    pub next_hop: TransportView<'a>,
}

// Every field is decoded to keep postcard's place; recovery reads only some.
#[allow(dead_code)]
#[derive(Deserialize)]
pub(super) struct ClientView<'a> {
    pub addr: Option<IpAddr>,
    #[serde(borrow)]
    pub helo: &'a str,
    #[serde(borrow)]
    pub auth: Option<&'a str>,
    #[serde(borrow)]
    pub protocol: &'a str,
    #[serde(borrow)]
    pub tls: Option<&'a str>,
}

#[derive(Deserialize, PartialEq, Eq, Debug)]
pub(super) struct TransportView<'a> {
    pub protocol: Protocol,
    #[serde(borrow)]
    pub host: HostView<'a>,
    pub port: u16,
    pub mx: bool,
}

#[derive(Deserialize, PartialEq, Eq, Debug)]
pub(super) enum HostView<'a> {
    Name(&'a str),
    Ip(IpAddr),
}

/// A state record (`record::StateBody`) with its deferral reason borrowed.
#[derive(Deserialize)]
pub(super) struct StateView<'a> {
    pub version: u32,
    #[serde(borrow)]
    pub state: QueueStateView<'a>,
}

/// [`crate::mail::QueueState`], its variants in the same order.
#[derive(Deserialize, PartialEq, Eq, Debug)]
pub(super) enum QueueStateView<'a> {
    Active,
    Deferred { until: u64, reason: &'a str },
    Hold,
}

impl StateView<'_> {
    /// The state change of a state record's body, or `None` if it does not decode.
    pub fn decode(body: &[u8]) -> Option<StateView<'_>> {
        postcard::from_bytes(body).ok()
    }
}

impl EnvelopeView<'_> {
    /// The envelope of a begin record's body, or `None` if it does not decode.
    pub fn decode(body: &[u8]) -> Option<EnvelopeView<'_>> {
        postcard::from_bytes(body).ok()
    }

    /// See [`crate::mail::Envelope::is_bounce`].
    pub fn is_bounce(&self) -> bool {
        self.sender.is_empty()
    }
}

impl TransportView<'_> {
    pub fn is(&self, t: &Transport) -> bool {
        let host = match (&self.host, &t.host) {
            (HostView::Name(a), Host::Name(b)) => *a == b,
            (HostView::Ip(a), Host::Ip(b)) => a == b,
            _ => false,
        };
        host && self.protocol == t.protocol && self.port == t.port && self.mx == t.mx
    }

    pub fn to_transport(&self) -> Transport {
        Transport {
            protocol: self.protocol,
            host: match self.host {
                HostView::Name(n) => Host::Name(n.to_string()),
                HostView::Ip(ip) => Host::Ip(ip),
            },
            port: self.port,
            mx: self.mx,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::{ClientInfo, Envelope, Recipient};

    /// Every field set, none at its default: a field read out of order or with another type
    /// would not come back equal, and a field added to `Envelope` would be left over.
    fn full() -> Envelope {
        let rcpt = |address: &str, next_hop: &str| Recipient {
            address: address.into(),
            original: Some(format!("orig-{address}")),
            orcpt: Some(("rfc822".into(), format!("o-{address}"))),
            notify: Notify {
                success: true,
                failure: false,
                delay: true,
                explicit: true,
            },
            next_hop: next_hop.parse().expect("a transport"),
        };
        Envelope {
            sender: "sender@example.com".into(),
            recipients: vec![
                rcpt("a@example.com", "lmtp:mailbox.example.com:7025"),
                rcpt("b@example.net", "smtp:[192.0.2.7]:2525"),
                rcpt("c@example.org", "smtp:example.org"),
            ],
            ret: Some(Ret::Headers),
            envid: Some("envid-1".into()),
            body_type: BodyType::BinaryMime,
            smtputf8: true,
            arrival: 1_796_123_700,
            client: ClientInfo {
                addr: Some("2001:db8::5".parse().expect("an address")),
                helo: "client.example.com".into(),
                auth: Some("user@example.com".into()),
                protocol: "ESMTPSA".into(),
                tls: Some("TLSv1.3 TLS_AES_256_GCM_SHA384".into()),
            },
        }
    }

    #[test]
    fn the_view_reads_every_field_of_an_envelope_in_order() {
        let env = full();
        let bytes = postcard::to_allocvec(&env).expect("encodes");
        let (v, rest): (EnvelopeView<'_>, _) = postcard::take_from_bytes(&bytes).expect("decodes");
        assert!(rest.is_empty(), "{} bytes left over", rest.len());
        assert_eq!(v.sender, env.sender);
        assert_eq!(v.ret, env.ret);
        assert_eq!(v.envid, env.envid.as_deref());
        assert_eq!(v.body_type, env.body_type);
        assert_eq!(v.smtputf8, env.smtputf8);
        assert_eq!(v.arrival, env.arrival);
        assert!(!v.is_bounce());
        let c = &env.client;
        assert_eq!(
            (
                v.client.addr,
                v.client.helo,
                v.client.auth,
                v.client.protocol,
                v.client.tls
            ),
            (
                c.addr,
                c.helo.as_str(),
                c.auth.as_deref(),
                c.protocol.as_str(),
                c.tls.as_deref()
            )
        );
        assert_eq!(v.recipients.len(), env.recipients.len());
        for (rv, r) in v.recipients.iter().zip(&env.recipients) {
            assert_eq!(rv.address, r.address);
            assert_eq!(rv.original, r.original.as_deref());
            assert_eq!(
                rv.orcpt,
                r.orcpt.as_ref().map(|(t, a)| (t.as_str(), a.as_str()))
            );
            assert_eq!(rv.notify, r.notify);
            assert!(rv.next_hop.is(&r.next_hop));
            assert_eq!(rv.next_hop.to_transport(), r.next_hop);
        }
        // Hops that differ in one part each are not the same hop.
        let hop = &env.recipients[0].next_hop;
        for other in &env.recipients[1..] {
            assert!(!v.recipients[0].next_hop.is(&other.next_hop));
        }
        for change in [
            |t: &mut Transport| t.port += 1,
            |t: &mut Transport| t.mx = !t.mx,
            |t: &mut Transport| t.protocol = Protocol::Smtp,
            |t: &mut Transport| t.host = Host::Name("other.example.com".into()),
        ] {
            let mut t = hop.clone();
            change(&mut t);
            assert!(!v.recipients[0].next_hop.is(&t), "{t:?}");
        }
    }

    #[test]
    fn the_view_reads_every_state_change() {
        use super::super::super::record::StateBody;
        use crate::mail::QueueState;
        let states = [
            (QueueState::Active, QueueStateView::Active),
            (
                QueueState::Deferred {
                    until: 1_796_123_700,
                    reason: "connect to mx.example.com[192.0.2.1]:25: Connection refused".into(),
                },
                QueueStateView::Deferred {
                    until: 1_796_123_700,
                    reason: "connect to mx.example.com[192.0.2.1]:25: Connection refused",
                },
            ),
            (QueueState::Hold, QueueStateView::Hold),
        ];
        for (version, (state, view)) in (7..).zip(states) {
            let bytes = postcard::to_allocvec(&StateBody { version, state }).expect("encodes");
            let (v, rest): (StateView<'_>, _) = postcard::take_from_bytes(&bytes).expect("decodes");
            assert!(rest.is_empty(), "{} bytes left over", rest.len());
            assert_eq!((v.version, v.state), (version, view));
            assert!(StateView::decode(&bytes[..bytes.len() - 1]).is_none());
        }
    }

    #[test]
    fn a_bounce_and_a_cut_envelope() {
        let mut env = full();
        env.sender.clear();
        let bytes = postcard::to_allocvec(&env).expect("encodes");
        assert!(EnvelopeView::decode(&bytes).is_some_and(|v| v.is_bounce()));
        for cut in 0..bytes.len() {
            assert!(
                EnvelopeView::decode(&bytes[..cut]).is_none(),
                "cut at {cut}"
            );
        }
    }
}
