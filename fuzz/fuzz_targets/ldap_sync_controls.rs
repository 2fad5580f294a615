//! RFC 4533 control values from an LDAP server: any bytes decode to a value or an error, never a
//! panic (ldap3's own parsers panic on such input, which is why these exist).
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::directory::ldap::syncrepl::{decode_done, decode_info, decode_state};

fuzz_target!(|data: &[u8]| {
    let _ = decode_state(data);
    let _ = decode_done(data);
    let _ = decode_info(data);
});
