//! What the content stage reads from outside never panics: clamd's and spamd's replies, a
//! message's MIME structure and zip archives (attachment blocking), and the header split and edit
//! that tag spam. The first byte picks the parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::config::ContentConfig;
use postern::content::headers::{self, HeadSplit, Split};
use postern::content::{Accepted, attachments, clamd, spamd};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    match pick % 4 {
        0 => {
            let _ = clamd::protocol::parse_reply(rest);
        }
        1 => {
            let _ = spamd::protocol::parse_reply(rest);
        }
        2 => {
            let mut config = ContentConfig::default();
            config.archive_max_unpacked = 1 << 16;
            let _ = attachments::check_attachments(rest, &config);
        }
        _ => {
            let cut = rest.len() / 2;
            let mut split = HeadSplit::default();
            let mut out = Vec::new();
            for piece in [&rest[..cut], &rest[cut..]] {
                match split.feed(piece) {
                    Split::Body(b) => out.extend_from_slice(b),
                    Split::Release { head, rest } => {
                        out.extend_from_slice(&head);
                        out.extend_from_slice(rest);
                    }
                }
            }
            if let Some(head) = split.take_head() {
                let accepted = Accepted {
                    headers: vec!["X-Spam-Flag: YES".into()],
                    subject_tag: Some("[SPAM]".into()),
                    ..Accepted::default()
                };
                let edited = headers::edit(&head, &accepted);
                assert!(edited.len() >= head.len());
                out.splice(0..0, head);
            }
            assert_eq!(out, rest, "the split loses or reorders no byte");
        }
    }
});
