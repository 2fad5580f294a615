//! The body hashes a message's DKIM and ARC signatures ask for, computed as its body streams
//! by, so verifying a message holds its header section in RAM and not its body.
//!
//! mail-auth verifies an [`AuthenticatedMessage`], whose `body_hashes` it fills from a body held
//! whole. Here the message is parsed from its header section alone, and each `(c=, a=, l=)` it
//! asks for is hashed piece by piece with mail-auth's own canonicalizing hasher, then put in its
//! place ([`BodyHashes::finish`]): the signatures are checked as if the body had been held.

use mail_auth::AuthenticatedMessage;
use mail_auth::common::crypto::{HashAlgorithm, HashContext, HashImpl, Sha1, Sha256};
use mail_auth::dkim::canonicalize::BodyHasher;

type Sha1Hasher = BodyHasher<<Sha1 as HashImpl>::Context>;
type Sha256Hasher = BodyHasher<<Sha256 as HashImpl>::Context>;

enum Hasher {
    Sha1(Sha1Hasher),
    Sha256(Sha256Hasher),
}

/// One hasher per body hash the parsed header section asks for, in its order.
pub struct BodyHashes {
    hashers: Vec<Hasher>,
}

/// A message parsed from its header section alone (`head`, through its empty line), with no
/// body: its body hashes are to be filled by [`BodyHashes`]. `None` when mail-auth cannot read
/// it as a message.
pub fn parse_head(head: &[u8]) -> Option<AuthenticatedMessage<'_>> {
    AuthenticatedMessage::parse(head)
}

impl BodyHashes {
    /// The hashers `message`'s signatures need.
    pub fn for_message(message: &AuthenticatedMessage<'_>) -> BodyHashes {
        let hashers = message
            .body_hashes
            .iter()
            .map(|(c, a, l, _)| match a {
                HashAlgorithm::Sha1 => Hasher::Sha1(BodyHasher::new(Sha1::hasher(), *c, *l)),
                HashAlgorithm::Sha256 => Hasher::Sha256(BodyHasher::new(Sha256::hasher(), *c, *l)),
            })
            .collect();
        BodyHashes { hashers }
    }

    /// Whether no signature asks for a body hash (nothing to read).
    pub fn is_empty(&self) -> bool {
        self.hashers.is_empty()
    }

    /// The next body bytes, in order.
    pub fn write(&mut self, chunk: &[u8]) {
        for h in &mut self.hashers {
            match h {
                Hasher::Sha1(h) => h.write(chunk),
                Hasher::Sha256(h) => h.write(chunk),
            }
        }
    }

    /// Puts the hashes of the whole body into `message` (the one they were made for).
    pub fn finish(self, message: &mut AuthenticatedMessage<'_>) {
        for (slot, h) in message.body_hashes.iter_mut().zip(self.hashers) {
            slot.3 = match h {
                Hasher::Sha1(h) => h.finish().0.complete().as_ref().to_vec(),
                Hasher::Sha256(h) => h.finish().0.complete().as_ref().to_vec(),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Streamed in any piece sizes, the hashes are those mail-auth computes from the whole body,
    /// for each canonicalization, algorithm and length limit a signature can ask for.
    #[test]
    fn streamed_hashes_are_mail_auths_own() {
        let head = "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=a.test; s=s; h=from; bh=AAAA; b=AAAA\r\n\
                    DKIM-Signature: v=1; a=rsa-sha1; c=simple/simple; d=a.test; s=s; h=from; bh=AAAA; b=AAAA\r\n\
                    DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/simple; d=a.test; s=s; h=from; l=7; bh=AAAA; b=AAAA\r\n\
                    From: a@a.test\r\n\r\n";
        let body: &[u8] = b"Line  one \t\r\n\r\n two\r\n.dot\r\n\r\n\r\n";
        let mut whole = head.as_bytes().to_vec();
        whole.extend_from_slice(body);
        let expected = AuthenticatedMessage::parse_with_opts(&whole, None, false)
            .unwrap()
            .body_hashes;
        assert_eq!(expected.len(), 3);
        for piece in [1, 2, 3, 5, 64] {
            let mut parsed =
                AuthenticatedMessage::parse_with_opts(head.as_bytes(), None, false).unwrap();
            let mut hashes = BodyHashes::for_message(&parsed);
            for p in body.chunks(piece) {
                hashes.write(p);
            }
            hashes.finish(&mut parsed);
            assert_eq!(parsed.body_hashes, expected, "pieces of {piece}");
        }
    }
}
