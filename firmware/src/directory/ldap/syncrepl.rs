//! RFC 4533 (LDAP Content Synchronization) values, encoded and decoded here rather than by
//! ldap3, whose parsers `panic!` on malformed input. Decoding takes any bytes and returns a value
//! or [`BadControl`], never panics (fuzzed: `fuzz/fuzz_targets/ldap_sync_controls.rs`).
//!
//! ```text
//! syncRequestValue ::= SEQUENCE { mode ENUMERATED { refreshOnly (1), refreshAndPersist (3) },
//!                                 cookie syncCookie OPTIONAL, reloadHint BOOLEAN DEFAULT FALSE }
//! syncStateValue   ::= SEQUENCE { state ENUMERATED { present (0), add (1), modify (2),
//!                                 delete (3) }, entryUUID syncUUID, cookie syncCookie OPTIONAL }
//! syncDoneValue    ::= SEQUENCE { cookie syncCookie OPTIONAL, refreshDeletes BOOLEAN DEFAULT FALSE }
//! syncInfoValue    ::= CHOICE { newcookie [0] syncCookie,
//!                               refreshDelete  [1] SEQUENCE { cookie OPTIONAL, refreshDone BOOLEAN DEFAULT TRUE },
//!                               refreshPresent [2] SEQUENCE { cookie OPTIONAL, refreshDone BOOLEAN DEFAULT TRUE },
//!                               syncIdSet [3] SEQUENCE { cookie OPTIONAL, refreshDeletes BOOLEAN DEFAULT FALSE,
//!                                                        syncUUIDs SET OF syncUUID } }
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

pub const SYNC_REQUEST_OID: &str = "1.3.6.1.4.1.4203.1.9.1.1";
pub const SYNC_STATE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.2";
pub const SYNC_DONE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.3";
pub const SYNC_INFO_OID: &str = "1.3.6.1.4.1.4203.1.9.1.4";
/// `e-syncRefreshRequired`: the cookie is no good any more; start over.
pub const REFRESH_REQUIRED: u32 = 4096;

/// A control value that is not what RFC 4533 says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BadControl {
    Truncated,
    /// A tag other than the one the grammar has at that place.
    UnexpectedTag(u8),
    /// A length form this decoder does not take (indefinite, or longer than 4 bytes).
    BadLength,
    /// An ENUMERATED or BOOLEAN out of range, or a UUID that is not 16 bytes.
    BadValue,
}

impl fmt::Display for BadControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadControl::Truncated => f.write_str("sync control truncated"),
            BadControl::UnexpectedTag(t) => write!(f, "sync control: unexpected tag {t:#04x}"),
            BadControl::BadLength => f.write_str("sync control: bad length"),
            BadControl::BadValue => f.write_str("sync control: value out of range"),
        }
    }
}

impl std::error::Error for BadControl {}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OCTET_STRING: u8 = 0x04;
const BOOLEAN: u8 = 0x01;
const ENUMERATED: u8 = 0x0a;

/// A BER reader over a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }

    /// One TLV: its tag and contents.
    fn tlv(&mut self) -> Result<(u8, &'a [u8]), BadControl> {
        let (&tag, rest) = self.0.split_first().ok_or(BadControl::Truncated)?;
        let (&first, mut rest) = rest.split_first().ok_or(BadControl::Truncated)?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return Err(BadControl::BadLength);
            }
            let (bytes, after) = rest.split_at_checked(n).ok_or(BadControl::Truncated)?;
            rest = after;
            bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
        };
        let (body, after) = rest.split_at_checked(len).ok_or(BadControl::Truncated)?;
        self.0 = after;
        Ok((tag, body))
    }

    fn expect(&mut self, want: u8) -> Result<&'a [u8], BadControl> {
        match self.tlv()? {
            (tag, body) if tag == want => Ok(body),
            (tag, _) => Err(BadControl::UnexpectedTag(tag)),
        }
    }

    fn optional(&mut self, want: u8) -> Result<Option<&'a [u8]>, BadControl> {
        match self.peek() {
            Some(t) if t == want => self.expect(want).map(Some),
            _ => Ok(None),
        }
    }

    fn boolean(&mut self, default: bool) -> Result<bool, BadControl> {
        match self.optional(BOOLEAN)? {
            None => Ok(default),
            Some([b]) => Ok(*b != 0),
            Some(_) => Err(BadControl::BadValue),
        }
    }

    /// The whole input must be one `tag` and nothing after it.
    fn only(bytes: &'a [u8], tag: u8) -> Result<Reader<'a>, BadControl> {
        let mut r = Reader(bytes);
        let body = r.expect(tag)?;
        if !r.is_empty() {
            return Err(BadControl::BadLength);
        }
        Ok(Reader(body))
    }
}

fn uuid(bytes: &[u8]) -> Result<[u8; 16], BadControl> {
    bytes.try_into().map_err(|_| BadControl::BadValue)
}

/// `5f3c...-....` as OpenLDAP shows `entryUUID`.
pub fn uuid_text(u: &[u8; 16]) -> String {
    // Once per entry at every snapshot read and write: one allocation, not one per byte.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s
}

/// `5f3c1122-...` back to its 16 bytes, only when [`uuid_text`] writes that very text
/// (lowercase hex, dashes after bytes 4, 6, 8 and 10).
pub fn uuid_bytes(text: &str) -> Option<[u8; 16]> {
    let b = text.as_bytes();
    if b.len() != 36 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 16];
    let mut at = 0;
    for (i, o) in out.iter_mut().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            if b.get(at) != Some(&b'-') {
                return None;
            }
            at += 1;
        }
        *o = nibble(*b.get(at)?)? << 4 | nibble(*b.get(at + 1)?)?;
        at += 2;
    }
    Some(out)
}

/// What happened to one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryState {
    Present,
    Add,
    Modify,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    pub state: EntryState,
    pub uuid: [u8; 16],
    pub cookie: Option<Vec<u8>>,
}

pub fn decode_state(bytes: &[u8]) -> Result<SyncState, BadControl> {
    let mut r = Reader::only(bytes, SEQUENCE)?;
    let state = match r.expect(ENUMERATED)? {
        [0] => EntryState::Present,
        [1] => EntryState::Add,
        [2] => EntryState::Modify,
        [3] => EntryState::Delete,
        _ => return Err(BadControl::BadValue),
    };
    let uuid = uuid(r.expect(OCTET_STRING)?)?;
    let cookie = r.optional(OCTET_STRING)?.map(<[u8]>::to_vec);
    Ok(SyncState {
        state,
        uuid,
        cookie,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncDone {
    pub cookie: Option<Vec<u8>>,
    /// False: the refresh had a present phase, so what was not reported present is gone.
    pub refresh_deletes: bool,
}

pub fn decode_done(bytes: &[u8]) -> Result<SyncDone, BadControl> {
    let mut r = Reader::only(bytes, SEQUENCE)?;
    let cookie = r.optional(OCTET_STRING)?.map(<[u8]>::to_vec);
    let refresh_deletes = r.boolean(false)?;
    Ok(SyncDone {
        cookie,
        refresh_deletes,
    })
}

/// An intermediate Sync Info message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncInfo {
    NewCookie(Vec<u8>),
    /// The end of a delete phase (`refreshDelete`) or a present phase (`refreshPresent`).
    RefreshPhase {
        present: bool,
        cookie: Option<Vec<u8>>,
        done: bool,
    },
    /// Entries present (`refresh_deletes` false) or deleted (true), by UUID.
    IdSet {
        cookie: Option<Vec<u8>>,
        refresh_deletes: bool,
        uuids: Vec<[u8; 16]>,
    },
}

pub fn decode_info(bytes: &[u8]) -> Result<SyncInfo, BadControl> {
    let mut outer = Reader(bytes);
    let (tag, body) = outer.tlv()?;
    if !outer.is_empty() {
        return Err(BadControl::BadLength);
    }
    let mut r = Reader(body);
    let info = match tag {
        // [0] primitive: the cookie itself.
        0x80 => return Ok(SyncInfo::NewCookie(body.to_vec())),
        0xa1 | 0xa2 => {
            let cookie = r.optional(OCTET_STRING)?.map(<[u8]>::to_vec);
            let done = r.boolean(true)?;
            SyncInfo::RefreshPhase {
                present: tag == 0xa2,
                cookie,
                done,
            }
        }
        0xa3 => {
            let cookie = r.optional(OCTET_STRING)?.map(<[u8]>::to_vec);
            let refresh_deletes = r.boolean(false)?;
            let mut set = Reader(r.expect(SET)?);
            let mut uuids = Vec::new();
            while !set.is_empty() {
                uuids.push(uuid(set.expect(OCTET_STRING)?)?);
            }
            SyncInfo::IdSet {
                cookie,
                refresh_deletes,
                uuids,
            }
        }
        other => return Err(BadControl::UnexpectedTag(other)),
    };
    if !r.is_empty() {
        return Err(BadControl::BadLength);
    }
    Ok(info)
}

fn push_tlv(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    match body.len() {
        n if n < 0x80 => out.push(n as u8),
        n if n <= 0xff => out.extend([0x81, n as u8]),
        n if n <= 0xffff => out.extend([0x82, (n >> 8) as u8, n as u8]),
        n => out.extend([
            0x84,
            (n >> 24) as u8,
            (n >> 16) as u8,
            (n >> 8) as u8,
            n as u8,
        ]),
    }
    out.extend_from_slice(body);
}

/// A refreshOnly request, with the cookie of the last sync if there is one.
pub fn encode_request(cookie: Option<&[u8]>) -> Vec<u8> {
    let mut body = Vec::new();
    push_tlv(&mut body, ENUMERATED, &[1]);
    if let Some(c) = cookie {
        push_tlv(&mut body, OCTET_STRING, c);
    }
    let mut out = Vec::new();
    push_tlv(&mut out, SEQUENCE, &body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const U: [u8; 16] = [
        0x5f, 0x3c, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
        0xee,
    ];

    fn state_bytes(state: u8, cookie: Option<&[u8]>) -> Vec<u8> {
        let mut body = Vec::new();
        push_tlv(&mut body, ENUMERATED, &[state]);
        push_tlv(&mut body, OCTET_STRING, &U);
        if let Some(c) = cookie {
            push_tlv(&mut body, OCTET_STRING, c);
        }
        let mut out = Vec::new();
        push_tlv(&mut out, SEQUENCE, &body);
        out
    }

    #[test]
    fn values_as_openldap_sends_them_decode() {
        let s = decode_state(&state_bytes(2, Some(b"rid=000,csn=x"))).unwrap();
        assert_eq!(s.state, EntryState::Modify);
        assert_eq!(uuid_text(&s.uuid), "5f3c1122-3344-5566-7788-99aabbccddee");
        assert_eq!(s.cookie.as_deref(), Some(&b"rid=000,csn=x"[..]));
        assert_eq!(
            decode_state(&state_bytes(7, None)),
            Err(BadControl::BadValue)
        );
        // syncDoneValue with a cookie and refreshDeletes TRUE; and empty.
        let done = [0x30, 0x08, 0x04, 0x03, b'c', b'=', b'1', 0x01, 0x01, 0xff];
        assert_eq!(
            decode_done(&done),
            Ok(SyncDone {
                cookie: Some(b"c=1".to_vec()),
                refresh_deletes: true
            })
        );
        assert_eq!(
            decode_done(&[0x30, 0x00]).map(|d| d.refresh_deletes),
            Ok(false)
        );
        // syncIdSet of two UUIDs, deleted.
        let mut set = Vec::new();
        push_tlv(&mut set, OCTET_STRING, &U);
        push_tlv(&mut set, OCTET_STRING, &U);
        let mut body = vec![0x01, 0x01, 0xff];
        push_tlv(&mut body, SET, &set);
        let mut info = Vec::new();
        push_tlv(&mut info, 0xa3, &body);
        match decode_info(&info).unwrap() {
            SyncInfo::IdSet {
                refresh_deletes,
                uuids,
                cookie,
            } => {
                assert!(refresh_deletes && cookie.is_none());
                assert_eq!(uuids, vec![U, U]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decode_info(&[0x80, 0x02, b'c', b'2']),
            Ok(SyncInfo::NewCookie(b"c2".to_vec()))
        );
        assert_eq!(
            decode_info(&[0xa2, 0x03, 0x01, 0x01, 0x00]),
            Ok(SyncInfo::RefreshPhase {
                present: true,
                cookie: None,
                done: false
            })
        );
        assert_eq!(
            encode_request(Some(b"c")),
            [0x30, 0x06, 0x0a, 0x01, 0x01, 0x04, 0x01, b'c']
        );
    }

    #[test]
    fn malformed_values_are_errors() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x05, 0x0a],
            &[0x30, 0x80, 0x00, 0x00],
            &[0x30, 0x85, 1, 2, 3, 4, 5],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x31, 0x00],
            &[0x30, 0x00, 0x00],
        ] {
            assert!(decode_state(bad).is_err(), "{bad:?}");
            assert!(decode_info(bad).is_err(), "{bad:?}");
        }
        assert!(decode_done(&[0x30, 0x03, 0x01, 0x02, 0xff, 0xff]).is_err());
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_state(&bytes);
            let _ = decode_done(&bytes);
            let _ = decode_info(&bytes);
        }
    }
}

/// What one refreshOnly search returned besides the entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncOutcome {
    /// The Sync State of each entry, in the order of the entries.
    pub states: Vec<Option<SyncState>>,
    pub infos: Vec<SyncInfo>,
    pub done: Option<SyncDone>,
    /// `e-syncRefreshRequired`, or the cookie refused otherwise: drop it, refresh everything.
    pub refresh_required: bool,
    /// The server does not do RFC 4533 (no syncprov): poll by modifyTimestamp instead.
    pub unsupported: bool,
    /// Sync Info messages that did not decode (the sync falls back to a full refresh).
    pub bad_infos: usize,
}

impl SyncOutcome {
    /// The cookie to keep: the last one the server gave.
    pub fn cookie(&self) -> Option<Vec<u8>> {
        let from_infos = self.infos.iter().rev().find_map(|i| match i {
            SyncInfo::NewCookie(c) => Some(c.clone()),
            SyncInfo::RefreshPhase { cookie, .. } | SyncInfo::IdSet { cookie, .. } => {
                cookie.clone()
            }
        });
        self.done
            .as_ref()
            .and_then(|d| d.cookie.clone())
            .or(from_infos)
            .or_else(|| {
                self.states
                    .iter()
                    .rev()
                    .flatten()
                    .find_map(|s| s.cookie.clone())
            })
    }
}
