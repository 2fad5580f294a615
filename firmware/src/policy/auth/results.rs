//! `Authentication-Results:` fields that arrive with a message and claim the box's own name: a
//! forgery meant to make the mailbox server trust a check the box never made (RFC 8601 §5). They
//! are removed before the box adds its own, as OpenDMARC and OpenDKIM do.

/// The header section `head` without the `Authentication-Results:` fields whose authserv-id is
/// `authserv_id` (case-insensitive); every other byte as it was.
pub fn strip_forged(head: &[u8], authserv_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len());
    for field in (Fields { rest: head }) {
        if !is_ours(field, authserv_id) {
            out.extend_from_slice(field);
        }
    }
    out
}

/// Splits a header section into fields, each with its continuation lines and line ends (the
/// empty line that ends the section comes out as a "field" of its own).
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let mut end = line_end(self.rest, 0);
        // A field goes on while the next line starts with a blank (folding), unless this line is
        // the empty one.
        if !matches!(&self.rest[..end], b"\r\n" | b"\n") {
            while end < self.rest.len() && matches!(self.rest[end], b' ' | b'\t') {
                end = line_end(self.rest, end);
            }
        }
        let (field, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(field)
    }
}

fn line_end(bytes: &[u8], from: usize) -> usize {
    bytes[from..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |p| from + p + 1)
}

fn is_ours(field: &[u8], authserv_id: &str) -> bool {
    const NAME: &[u8] = b"authentication-results";
    let Some(colon) = field.iter().position(|&b| b == b':') else {
        return false;
    };
    let name = field[..colon].trim_ascii_end();
    if !name.eq_ignore_ascii_case(NAME) {
        return false;
    }
    // The authserv-id is the value's first token, up to `;`, blanks, line ends or a comment.
    let value = field[colon + 1..].trim_ascii_start();
    let id_end = value
        .iter()
        .position(|&b| matches!(b, b';' | b' ' | b'\t' | b'\r' | b'\n' | b'('))
        .unwrap_or(value.len());
    value[..id_end].eq_ignore_ascii_case(authserv_id.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fields_with_our_name_go_and_the_rest_stay() {
        let head = b"Received: from a\r\n\
Authentication-Results: MX.example.com;\r\n\tdkim=pass header.d=bank.example\r\n\
Authentication-Results: other.example; spf=fail\r\n\
authentication-results : mx.example.com (forged); spf=pass\r\n\
Subject: hi\r\n\
\r\n";
        let out = strip_forged(head, "mx.example.com");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Received: from a\r\nAuthentication-Results: other.example; spf=fail\r\nSubject: hi\r\n\r\n"
        );
        // A name that only starts like ours is someone else's.
        let other = b"Authentication-Results: mx.example.com.evil; spf=pass\r\n\r\n";
        assert_eq!(strip_forged(other, "mx.example.com"), other);
    }

    proptest! {
        #[test]
        fn without_such_fields_nothing_changes(head in "[A-Za-z: \t\r\n-]{0,200}") {
            let head = head.replace("uthentication", "");
            prop_assert_eq!(strip_forged(head.as_bytes(), "mx.example.com"), head.as_bytes());
        }
    }
}
