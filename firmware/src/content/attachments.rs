//! Attachment blocking (`zimbraMtaBlockedExtension`, `zimbraMtaCommonBlockedExtension`): every
//! MIME part's `filename` (Content-Disposition) and `name` (Content-Type) parameters, RFC 2047
//! and RFC 2231 (`name*=`) decoded by mail-parser, in attached messages too, and the members of
//! zip archives (see [`archive`]).
//!
//! The check walks the MIME structure as the message streams by ([`AttachmentWalk`]), so it never
//! holds the message: one line, one part's header section, and a zip attachment while it arrives
//! (its directory is at its end), up to `posternContentScanLimit`. Each part's header section is
//! read by mail-parser, so names decode as they would for the whole message.

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use mail_parser::{MessageParser, MimeHeaders};

use super::Rejection;
use super::archive::{self, Budget};
use super::blocked::BlockedNames;
use super::headers::HEAD_LIMIT;
use crate::config::ContentConfig;

/// Longest line kept whole: a boundary line is far shorter, so a longer line is part content.
const LINE_KEEP: usize = 8 * 1024;

/// Multiparts open at once before the walk stops opening more (mail-parser stops at 50 too).
const MAX_NESTING: usize = 50;

/// Base64 as mail clients write it: padding optional, stray bits tolerated.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Checks the whole message `raw` (headers and body, as received) at once.
pub fn check_attachments(raw: &[u8], config: &ContentConfig) -> Result<(), Rejection> {
    let mut walk = AttachmentWalk::new(config);
    walk.feed(raw, config);
    walk.finish(config).map(|_| ())
}

/// The `Content-*` fields of a header section, folded lines and all: all the walk reads of it.
/// mail-parser would otherwise parse every Received, Date and address field of the message's own
/// header section, for each message, and they tell nothing of its parts.
fn content_fields(head: &[u8]) -> Vec<u8> {
    const PREFIX: &[u8] = b"content-";
    let mut fields = Vec::new();
    let mut keep = false;
    for line in head.split_inclusive(|&b| b == b'\n') {
        if !matches!(line.first(), Some(b' ' | b'\t')) {
            keep = line
                .get(..PREFIX.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(PREFIX));
        }
        if keep {
            fields.extend_from_slice(line);
        }
    }
    fields
}

/// An archive that could not be opened: it was bigger than `posternContentScanLimit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unopened {
    pub name: String,
}

/// One message's attachment check, fed its bytes as they arrive.
#[derive(Debug)]
pub struct AttachmentWalk {
    /// The line being read, up to [`LINE_KEEP`].
    line: Vec<u8>,
    /// The current line is longer than [`LINE_KEEP`]: it is content, never a boundary.
    long_line: bool,
    at: Place,
    /// Boundaries of the open multiparts, innermost last.
    boundaries: Vec<Vec<u8>>,
    budget: Budget,
    /// Names with a blocked extension: the message is refused, and the walk goes on only to
    /// name them all.
    blocked: BlockedNames,
    /// A refusal that ends the walk (an archive that cannot be judged).
    refused: Option<Rejection>,
    unopened: Option<Unopened>,
}

/// Where in the MIME structure the walk is.
#[derive(Debug)]
enum Place {
    /// A header section (the message's, a part's, an attached message's), up to [`HEAD_LIMIT`].
    Header(Vec<u8>),
    /// A preamble, an epilogue or a part that cannot hold an archive: until the next boundary.
    Skip,
    /// A part's content, looked at for a zip.
    Leaf(Leaf),
}

/// A part's content as it arrives: kept only while it may be a zip.
#[derive(Debug)]
struct Leaf {
    name: String,
    base64: bool,
    /// Base64 text not yet decoded (whitespace dropped).
    text: Vec<u8>,
    /// The decoded content, while it starts like a zip.
    data: Vec<u8>,
    /// Still collecting: nothing ruled out a zip, and it fits in the limit.
    keep: bool,
    /// It was a zip, but bigger than the limit.
    over: bool,
}

impl AttachmentWalk {
    pub fn new(config: &ContentConfig) -> AttachmentWalk {
        AttachmentWalk {
            line: Vec::new(),
            long_line: false,
            at: Place::Header(Vec::new()),
            boundaries: Vec::new(),
            budget: Budget {
                unpacked: config.archive_max_unpacked,
            },
            blocked: BlockedNames::default(),
            refused: None,
            unopened: None,
        }
    }

    /// Message bytes, in order, exactly as received.
    pub fn feed(&mut self, mut chunk: &[u8], config: &ContentConfig) {
        while !chunk.is_empty() && self.refused.is_none() && !self.seen_all() {
            let (piece, ended) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (&chunk[..=i], true),
                None => (chunk, false),
            };
            chunk = &chunk[piece.len()..];
            if self.long_line {
                self.text(piece, config);
                self.long_line = !ended;
                continue;
            }
            if self.line.len() + piece.len() > LINE_KEEP {
                let line = std::mem::take(&mut self.line);
                self.text(&line, config);
                self.text(piece, config);
                self.long_line = !ended;
                continue;
            }
            self.line.extend_from_slice(piece);
            if ended {
                let line = std::mem::take(&mut self.line);
                self.whole_line(&line, config);
                self.line = line;
                self.line.clear();
            }
        }
    }

    /// Whether the rest of the message can hold no part: skipping with no multipart open (the
    /// body of a message that is not multipart, or a multipart's epilogue). Most mail is such a
    /// body, so the walk reads only its header section.
    fn seen_all(&self) -> bool {
        matches!(self.at, Place::Skip) && self.boundaries.is_empty()
    }

    /// The verdict at the end of the message: refused, or passed (naming an archive too big to
    /// open, if there was one).
    pub fn finish(mut self, config: &ContentConfig) -> Result<Option<Unopened>, Rejection> {
        if self.refused.is_none() {
            // The last line, when no line end came after it.
            let line = std::mem::take(&mut self.line);
            match (line.is_empty(), self.long_line) {
                (true, _) => {}
                (false, false) => self.whole_line(&line, config),
                (false, true) => self.text(&line, config),
            }
            if let Place::Header(head) = &mut self.at {
                let head = std::mem::take(head);
                self.header_section(&head, config);
            }
            if self.refused.is_none() {
                self.end_part(config);
            }
        }
        // A blocked name is the clearer answer: the sender can do something about it.
        match self.blocked.rejection().or(self.refused) {
            Some(refused) => Err(refused),
            None => Ok(self.unopened),
        }
    }

    fn whole_line(&mut self, line: &[u8], config: &ContentConfig) {
        if let Some((depth, closing)) = self.boundary(line) {
            self.end_part(config);
            self.boundaries.truncate(depth + 1);
            if closing {
                self.boundaries.pop();
                self.at = Place::Skip;
            } else {
                self.at = Place::Header(Vec::new());
            }
            return;
        }
        // mail-parser ends a header section at a line of nothing but white space.
        if let Place::Header(head) = &mut self.at
            && line.iter().all(u8::is_ascii_whitespace)
        {
            let head = std::mem::take(head);
            self.header_section(&head, config);
            return;
        }
        self.text(line, config);
    }

    /// Which open multipart `line` is a boundary of (the innermost that matches) and whether it
    /// closes it. As mail-parser, a line that starts with the delimiter is one.
    fn boundary(&self, line: &[u8]) -> Option<(usize, bool)> {
        let rest = line.strip_prefix(b"--")?;
        self.boundaries.iter().enumerate().rev().find_map(|(i, b)| {
            let after = rest.strip_prefix(&b[..])?;
            Some((i, after.starts_with(b"--")))
        })
    }

    /// Bytes that are neither a boundary nor the end of a header section.
    fn text(&mut self, bytes: &[u8], config: &ContentConfig) {
        match &mut self.at {
            Place::Header(head) => {
                let room = HEAD_LIMIT.saturating_sub(head.len());
                head.extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
            Place::Skip => {}
            Place::Leaf(leaf) => leaf.content(bytes, config.scan_limit),
        }
    }

    /// A complete header section: its names are checked, and it says what follows.
    fn header_section(&mut self, head: &[u8], config: &ContentConfig) {
        self.at = Place::Skip;
        let fields = content_fields(head);
        let Some(part) = MessageParser::default().parse_headers(&fields[..]) else {
            return;
        };
        let names = [
            part.content_disposition()
                .and_then(|d| d.attribute("filename")),
            part.content_type().and_then(|t| t.attribute("name")),
        ];
        let mut refused = false;
        for name in names
            .into_iter()
            .flatten()
            .filter(|n| config.blocks_name(n))
        {
            self.blocked.add(name);
            refused = true;
        }
        if refused {
            return;
        }
        let encoding = part
            .content_transfer_encoding()
            .unwrap_or("7bit")
            .to_ascii_lowercase();
        let (ctype, subtype) = part
            .content_type()
            .map_or((String::new(), String::new()), |t| {
                (
                    t.ctype().to_ascii_lowercase(),
                    t.subtype().unwrap_or("").to_ascii_lowercase(),
                )
            });
        let boundary = part.content_type().and_then(|t| t.attribute("boundary"));
        match (ctype.as_str(), boundary) {
            ("multipart", Some(b)) if !b.is_empty() && self.boundaries.len() < MAX_NESTING => {
                self.boundaries.push(b.as_bytes().to_vec());
            }
            // An attached message: its own header section follows.
            ("message", _)
                if matches!(subtype.as_str(), "rfc822" | "global")
                    && matches!(encoding.as_str(), "7bit" | "8bit" | "binary") =>
            {
                self.at = Place::Header(Vec::new());
            }
            // mail-parser reads these as text, never as a file that could be an archive.
            ("" | "text" | "multipart", _) => {}
            _ => {
                let name = names.into_iter().flatten().next().unwrap_or("(unnamed)");
                self.at = Place::Leaf(Leaf::new(name, encoding == "base64"));
            }
        }
    }

    /// The current part ended: an archive in it is opened now.
    fn end_part(&mut self, config: &ContentConfig) {
        let Place::Leaf(leaf) = std::mem::replace(&mut self.at, Place::Skip) else {
            return;
        };
        let name = leaf.name.clone();
        match leaf.archive(config.scan_limit) {
            Archive::None => {}
            Archive::TooBig => {
                self.unopened.get_or_insert(Unopened { name });
            }
            Archive::Zip(data) => {
                let checked = archive::check_zip(
                    &data,
                    &name,
                    0,
                    config,
                    &mut self.budget,
                    &mut self.blocked,
                );
                self.refused = checked.err();
            }
        }
    }
}

/// What a part turned out to hold.
enum Archive {
    None,
    TooBig,
    Zip(Vec<u8>),
}

impl Leaf {
    fn new(name: &str, base64: bool) -> Leaf {
        Leaf {
            name: name.to_string(),
            base64,
            text: Vec::new(),
            data: Vec::new(),
            keep: true,
            over: false,
        }
    }

    fn content(&mut self, bytes: &[u8], limit: u64) {
        if !self.keep {
            return;
        }
        if self.base64 {
            self.text
                .extend(bytes.iter().filter(|b| !b.is_ascii_whitespace()));
            // Decoded in runs of whole groups; enough to see the zip's first bytes early.
            if self.text.len() >= 4096 || self.data.is_empty() && self.text.len() >= 8 {
                self.decode(false);
            }
        } else {
            self.data.extend_from_slice(bytes);
        }
        self.settle(limit);
    }

    /// Decodes the base64 text taken so far (all of it at the end, else whole groups only).
    fn decode(&mut self, last: bool) {
        let upto = if last {
            self.text.len()
        } else {
            self.text.len() / 4 * 4
        };
        let run: Vec<u8> = self.text.drain(..upto).collect();
        // Padding inside the text ends the encoded data, as decoders read it.
        let run = match run.iter().position(|&b| b == b'=') {
            Some(p) => &run[..p],
            None => &run[..],
        };
        if LENIENT_BASE64.decode_vec(run, &mut self.data).is_err() {
            self.drop_data();
        }
    }

    /// Stops keeping the content once it cannot be a zip we may hold.
    fn settle(&mut self, limit: u64) {
        if self.data.len() >= 4 && !archive::is_zip(&self.data) {
            self.drop_data();
        } else if self.data.len() as u64 > limit {
            self.over = true;
            self.drop_data();
        }
    }

    fn drop_data(&mut self) {
        self.keep = false;
        self.text = Vec::new();
        self.data = Vec::new();
    }

    fn archive(mut self, limit: u64) -> Archive {
        if self.over {
            return Archive::TooBig;
        }
        if !self.keep {
            return Archive::None;
        }
        if self.base64 {
            self.decode(true);
            self.settle(limit);
        } else if self.data.ends_with(b"\r\n") {
            // The line end before a boundary belongs to the boundary.
            self.data.truncate(self.data.len() - 2);
        } else if self.data.ends_with(b"\n") {
            self.data.pop();
        }
        match (self.over, self.keep && archive::is_zip(&self.data)) {
            (true, _) => Archive::TooBig,
            (false, true) => Archive::Zip(self.data),
            (false, false) => Archive::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::archive::tests::zip_of;
    use super::*;
    use base64::Engine;

    fn with_part(headers: &str, body: &str) -> Vec<u8> {
        format!(
            "From: a@example.com\r\nTo: b@example.com\r\nSubject: files\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\n\
see attached\r\n--XX\r\n{headers}\r\n\r\n{body}\r\n--XX--\r\n"
        )
        .into_bytes()
    }

    /// The walk fed `raw` in pieces of `size` bytes.
    fn walk_in_pieces(raw: &[u8], size: usize, config: &ContentConfig) -> AttachmentWalk {
        let mut walk = AttachmentWalk::new(config);
        for piece in raw.chunks(size) {
            walk.feed(piece, config);
        }
        walk
    }

    /// The blocked name, the same whether the message comes whole or a few bytes at a time.
    fn blocked(raw: &[u8]) -> Option<String> {
        let config = ContentConfig::default();
        for size in [1, 3, 7, 1009] {
            let streamed = walk_in_pieces(raw, size, &config).finish(&config);
            assert_eq!(
                streamed.map(|_| ()),
                check_attachments(raw, &config),
                "pieces of {size}"
            );
        }
        match check_attachments(raw, &config) {
            Err(Rejection::BlockedAttachment { name, .. }) => Some(name),
            Err(other) => panic!("{other:?}"),
            Ok(()) => None,
        }
    }

    #[test]
    fn filename_and_name_parameters_in_every_spelling() {
        let cases = [
            (
                "Content-Type: application/octet-stream; name=\"setup.exe\"",
                "setup.exe",
            ),
            (
                "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=SETUP.EXE",
                "SETUP.EXE",
            ),
            (
                "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.scr",
                "résumé.scr",
            ),
            (
                "Content-Type: application/octet-stream; name*0=\"inv\"; name*1=\"oice.bat\"",
                "invoice.bat",
            ),
            (
                "Content-Type: application/octet-stream; name=\"=?UTF-8?B?cmVwb3J0LmpzZQ==?=\"",
                "report.jse",
            ),
            (
                "Content-Type: text/plain; name=\"notes.txt\"\r\nContent-Disposition: attachment; filename=\"notes.pif\"",
                "notes.pif",
            ),
        ];
        for (headers, name) in cases {
            assert_eq!(
                blocked(&with_part(headers, "AAAA")),
                Some(name.to_string()),
                "{headers}"
            );
        }
        for fine in [
            "Content-Type: application/pdf; name=\"exe.pdf\"",
            "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"a.exe.txt\"",
        ] {
            assert_eq!(blocked(&with_part(fine, "AAAA")), None, "{fine}");
        }
    }

    #[test]
    fn attached_messages_and_zips_are_looked_into() {
        let inner = String::from_utf8(with_part(
            "Content-Type: application/octet-stream; name=\"x.vbs\"",
            "AAAA",
        ))
        .unwrap();
        let forwarded = with_part("Content-Type: message/rfc822", &inner);
        assert_eq!(blocked(&forwarded), Some("x.vbs".into()));

        let zip = zip_of(&[("docs/readme.txt", b"hi"), ("docs/tool.Exe", b"MZ")]);
        let b64 = base64::engine::general_purpose::STANDARD.encode(zip);
        let zipped = with_part(
            "Content-Type: application/zip; name=\"docs.zip\"\r\nContent-Transfer-Encoding: base64",
            &b64,
        );
        assert_eq!(blocked(&zipped), Some("docs.zip/docs/tool.Exe".into()));
    }

    /// The walk goes on past the first blocked name to name them all, the first in the reply.
    #[test]
    fn every_blocked_file_is_named() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: application/octet-stream; name=one.exe\r\n\r\nMZ\r\n--b\r\n\
Content-Type: text/plain\r\n\r\nhi\r\n--b\r\n\
Content-Disposition: attachment; filename=two.scr\r\n\r\nMZ\r\n--b--\r\n";
        let config = ContentConfig::default();
        let refused = check_attachments(raw, &config).unwrap_err();
        assert_eq!(refused.blocked_names(), ["one.exe", "two.scr"]);
        assert_eq!(
            refused.reply().to_string(),
            "554 5.7.1 Message content rejected: blocked attachment \"one.exe\" and 1 more"
        );
        assert_eq!(blocked(raw), Some("one.exe".into()));
    }

    #[test]
    fn plain_mail_and_garbage_pass() {
        assert_eq!(blocked(b"Subject: hi\r\n\r\nno attachments\r\n"), None);
        assert_eq!(blocked(b""), None);
        assert_eq!(blocked(b"\xff\xfe\r\n\r\n--"), None);
    }

    #[test]
    fn only_the_content_fields_are_parsed_with_their_folded_lines() {
        let head = b"Received: from a\r\n\tby b; Thu, 1 Jan 2026 00:00:00 +0000\r\n\
CONTENT-TYPE: application/octet-stream;\r\n name=\"a.exe\"\r\nSubject: x\r\n \
Content-Type: text/plain\r\ncontent-disposition: attachment\r\n";
        assert_eq!(
            content_fields(head),
            b"CONTENT-TYPE: application/octet-stream;\r\n name=\"a.exe\"\r\n\
content-disposition: attachment\r\n"
        );
        // A name folded onto its own line is still read.
        let raw = b"Received: from a\r\nContent-Type: application/octet-stream;\r\n\tname=\"b.exe\"\r\n\r\nAAAA\r\n";
        assert_eq!(blocked(raw), Some("b.exe".into()));
    }

    #[test]
    fn the_walk_stops_reading_where_no_part_can_follow() {
        let config = ContentConfig::default();
        let mut walk = AttachmentWalk::new(&config);
        walk.feed(
            b"Subject: plain\r\nContent-Type: text/plain\r\n\r\n",
            &config,
        );
        assert!(walk.seen_all());
        // Nothing of the body is kept, however it looks.
        walk.feed(
            b"--b\r\nContent-Type: application/octet-stream; name=x.exe\r\n\r\n",
            &config,
        );
        assert!(walk.line.is_empty());
        assert_eq!(walk.finish(&config), Ok(None));
        // A multipart is read to its closing delimiter, then no further.
        let mut walk = AttachmentWalk::new(&config);
        walk.feed(
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n",
            &config,
        );
        assert!(!walk.seen_all());
        walk.feed(b"--b--\r\n", &config);
        assert!(walk.seen_all());
    }

    #[test]
    fn nested_multiparts_and_boundaries_that_close_several_levels() {
        let raw = b"Content-Type: multipart/mixed; boundary=outer\r\n\r\npreamble\r\n\
--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n--inner\r\n\
Content-Type: text/plain\r\n\r\nhi\r\n--outer\r\n\
Content-Type: application/octet-stream; name=late.cmd\r\n\r\nAAAA\r\n--outer--\r\n";
        assert_eq!(blocked(raw), Some("late.cmd".into()));
        // After the closing delimiter, part headers are text of the epilogue, not a part.
        let epilogue = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n\
--b--\r\nContent-Type: application/octet-stream; name=no.exe\r\n";
        assert_eq!(blocked(epilogue), None);
    }

    #[test]
    fn a_zip_over_the_scan_limit_is_named_not_opened_and_nothing_big_is_held() {
        let config = ContentConfig {
            scan_limit: 1000,
            ..ContentConfig::default()
        };
        let filler: Vec<(String, Vec<u8>)> = (0..40)
            .map(|i| (format!("docs/{i}.txt"), vec![b'x'; 50]))
            .collect();
        let members: Vec<(&str, &[u8])> =
            filler.iter().map(|(n, d)| (n.as_str(), &d[..])).collect();
        let zip = zip_of(&members);
        assert!(zip.len() > 1000);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&zip);
        let raw = with_part(
            "Content-Type: application/zip; name=\"big.zip\"\r\nContent-Transfer-Encoding: base64",
            &b64,
        );
        let walk = walk_in_pieces(&raw, 100, &config);
        assert_eq!(
            walk.finish(&config),
            Ok(Some(Unopened {
                name: "big.zip".into()
            }))
        );

        // A big attachment that is not a zip is looked at, not kept.
        let pdf = base64::engine::general_purpose::STANDARD.encode(vec![b'%'; 300_000]);
        let raw = with_part(
            "Content-Type: application/pdf; name=\"a.pdf\"\r\nContent-Transfer-Encoding: base64",
            &pdf,
        );
        let mut walk = AttachmentWalk::new(&config);
        for piece in raw.chunks(1009) {
            walk.feed(piece, &config);
            let held = walk.line.capacity()
                + match &walk.at {
                    Place::Leaf(l) => l.data.capacity() + l.text.capacity(),
                    Place::Header(h) => h.capacity(),
                    Place::Skip => 0,
                };
            assert!(held <= 2 * LINE_KEEP + 8192, "{held} bytes held");
        }
        assert_eq!(walk.finish(&config), Ok(None));
        // All at once, one 400 KB line: the line buffer still stays small.
        let mut walk = AttachmentWalk::new(&config);
        walk.feed(&raw, &config);
        assert!(
            walk.line.capacity() <= LINE_KEEP,
            "{}",
            walk.line.capacity()
        );
        assert_eq!(walk.finish(&config), Ok(None));
    }
}
