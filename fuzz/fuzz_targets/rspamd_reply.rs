//! rspamd's HTTP answers never panic the content stage: the `/checkv2` and learn parsers and the
//! completeness check the reader stops on. A score that comes back is a finite number.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::content::rspamd::protocol::{is_complete, parse_check_reply, parse_learn_reply};

fuzz_target!(|data: &[u8]| {
    let _ = is_complete(data);
    if let Ok(reply) = parse_check_reply(data) {
        assert!(reply.score.is_finite());
        assert!(
            reply
                .symbols
                .iter()
                .all(|s| s.bytes().all(|b| b.is_ascii_graphic()))
        );
    }
    let _ = parse_learn_reply(data);
});
