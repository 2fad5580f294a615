//! Hop counting ("Avoiding Loops in Delivery"): the `Received:` header fields of a message, read
//! from its header section as the body streams by.

use super::Rejection;

/// The most header bytes kept to count Received lines (Postfix's `header_size_limit`).
const HEADER_SCAN_LIMIT: usize = 102_400;

/// The number of `Received:` header fields in a message's header section (the bytes up to the
/// first empty line; a whole message may be passed).
pub fn hop_count(headers: &[u8]) -> usize {
    const NAME: &[u8] = b"received:";
    headers
        .split(|&b| b == b'\n')
        .take_while(|line| !matches!(line, [] | [b'\r']))
        .filter(|line| {
            line.get(..NAME.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(NAME))
        })
        .count()
}

/// The hop count, or the rejection when it is over `limit`.
pub fn check_hops(headers: &[u8], limit: u32) -> Result<usize, Rejection> {
    let count = hop_count(headers);
    if count > limit as usize {
        return Err(Rejection::TooManyHops { count, limit });
    }
    Ok(count)
}

/// The header section of one message as it streams by, up to 100 KiB (`header_size_limit`).
#[derive(Debug)]
pub struct HopCount {
    limit: u32,
    /// The header section, up to the first empty line.
    headers: Vec<u8>,
    /// The empty line that ends the headers was seen: `headers` is complete.
    done: bool,
}

impl HopCount {
    pub fn new(limit: u32) -> HopCount {
        HopCount {
            limit,
            headers: Vec::new(),
            done: false,
        }
    }

    /// Keeps the header section as it streams by. Only the newly appended bytes (and the three
    /// before them, for a CRLF CRLF split across chunks) are searched for its end.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.done || self.headers.len() >= HEADER_SCAN_LIMIT {
            return;
        }
        let from = self.headers.len().saturating_sub(3);
        let room = HEADER_SCAN_LIMIT - self.headers.len();
        self.headers
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
        if let Some(p) = self.headers[from..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
        {
            // Keep the last header's CRLF, drop the empty line and the body.
            self.headers.truncate(from + p + 2);
            self.done = true;
        }
    }

    pub fn verdict(&self) -> Result<(), Rejection> {
        check_hops(&self.headers, self.limit).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_received_headers_only_in_the_header_section() {
        let msg =
            b"Received: from a by b\r\n\tid 1\r\nreceived: from c\r\nSubject: Received: no\r\n\
X-Received: no\r\n\r\nReceived: in the body\r\n";
        assert_eq!(hop_count(msg), 2);
        assert_eq!(hop_count(b""), 0);
        let many: Vec<u8> = b"Received: x\r\n".repeat(51);
        assert!(check_hops(&many, 50).is_err());
        assert!(check_hops(&many[..many.len() - 13], 50).is_ok());
        assert_eq!(
            check_hops(&many, 50).unwrap_err().to_string(),
            "5.4.6 mail forwarding loop: 51 Received headers, hopcount_limit is 50"
        );
    }

    #[test]
    fn the_end_of_headers_is_found_across_chunks() {
        let msg = b"Received: a\r\nReceived: b\r\n\r\nReceived: body\r\nReceived: body\r\n";
        for split in 0..msg.len() {
            let mut h = HopCount::new(2);
            h.feed(&msg[..split]);
            h.feed(&msg[split..]);
            assert_eq!(h.verdict(), Ok(()), "split at {split}");
            let mut h = HopCount::new(1);
            h.feed(&msg[..split]);
            h.feed(&msg[split..]);
            assert!(h.verdict().is_err(), "split at {split}");
        }
    }
}
