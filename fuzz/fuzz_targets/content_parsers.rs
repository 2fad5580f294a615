//! What the content stage reads from outside never panics: clamd's and spamd's replies, a
//! message's MIME structure and zip archives (attachment blocking), and the header split and edit
//! that tag spam, and where a training mail's attached messages lie. The first byte picks the
//! parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::config::ContentConfig;
use postern::content::headers::{self, HeadSplit, Split};
use postern::content::lessons::LessonWalk;
use postern::content::{Accepted, attachments, clamd, spamd};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    match pick % 5 {
        0 => {
            let _ = clamd::protocol::parse_reply(rest);
        }
        1 => {
            let _ = spamd::protocol::parse_reply(rest);
        }
        2 => {
            let config = ContentConfig {
                archive_max_unpacked: 1 << 16,
                ..ContentConfig::default()
            };
            let _ = attachments::check_attachments(rest, &config);
        }
        3 => {
            // Whole or in pieces (the pick's high bits set their size), the same lessons, each
            // within the mail.
            let mut whole = LessonWalk::default();
            whole.feed(rest);
            let whole = whole.finish();
            let mut pieces = LessonWalk::default();
            for p in rest.chunks(usize::from(pick >> 3) + 1) {
                pieces.feed(p);
            }
            assert_eq!(pieces.finish(), whole, "the pieces change nothing");
            for l in whole {
                assert!(l.part <= l.start && l.start <= l.end && l.end <= rest.len() as u64);
            }
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
