//! The `modifyTimestamp` high-water mark of a poll, and the filter that asks for what changed
//! since. `>=` the mark is always safe but reads again every entry stamped in the mark's second
//! (after a bulk import: all of them, every poll). Once the mark's second is well past, no later
//! change can carry it, and the poll asks for strictly newer entries only.

/// How far the LDAP server's clock may be behind ours (AD's Kerberos allows five minutes). A
/// change stamped in the mark's second after the previous poll needs a clock further behind;
/// the periodic full sync would still find it.
pub const CLOCK_SKEW: u64 = 10 * 60;

/// GeneralizedTime as servers write it: digits, a fraction, a zone. Anything else is not put
/// into a filter.
pub fn is_plain(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b"Z.,+-".contains(&b))
}

/// Unix seconds of a UTC GeneralizedTime (`YYYYMMDDHHMMSS[.frac]Z`); `None` for anything
/// else (another zone, a shorter form): those keep the `>=` filter.
pub fn unix_seconds(s: &str) -> Option<u64> {
    let digits = s.get(..14)?;
    let rest = s.get(14..)?;
    let zulu = rest == "Z"
        || rest
            .strip_prefix(['.', ','])
            .and_then(|f| f.strip_suffix('Z'))
            .is_some_and(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
    if !zulu || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| digits.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (h, mi, sec) = (n(8..10)?, n(10..12)?, n(12..14)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((mo + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + sec).ok()
}

/// The filter of a poll from the mark `stamp` at `now` (Unix seconds).
pub fn poll_filter(schema_filter: &str, stamp: &str, now: u64) -> String {
    let settled = unix_seconds(stamp).is_some_and(|t| t + CLOCK_SKEW < now);
    match settled {
        true => format!("(&{schema_filter}(modifyTimestamp>={stamp})(!(modifyTimestamp={stamp})))"),
        false => format!("(&{schema_filter}(modifyTimestamp>={stamp}))"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generalized_time_reads_as_unix_seconds() {
        assert_eq!(unix_seconds("19700101000000Z"), Some(0));
        assert_eq!(unix_seconds("20261201133329Z"), Some(1_796_132_009));
        assert_eq!(unix_seconds("20240229235959.123Z"), Some(1_709_251_199));
        assert_eq!(unix_seconds("20261201133329+0100"), None);
        assert_eq!(unix_seconds("2026120113Z"), None);
        assert_eq!(unix_seconds("20261301000000Z"), None);
        assert_eq!(unix_seconds("20261201133329.Z"), None);
        assert_eq!(unix_seconds(""), None);
    }

    #[test]
    fn a_settled_mark_asks_for_strictly_newer_entries() {
        let mark = "20261201100000Z";
        let t = unix_seconds(mark).unwrap();
        let recent = poll_filter("(x=*)", mark, t + 5);
        assert_eq!(recent, "(&(x=*)(modifyTimestamp>=20261201100000Z))");
        let settled = poll_filter("(x=*)", mark, t + CLOCK_SKEW + 1);
        assert_eq!(
            settled,
            "(&(x=*)(modifyTimestamp>=20261201100000Z)(!(modifyTimestamp=20261201100000Z)))"
        );
        // A zone other than Z is never judged settled.
        let other = poll_filter("(x=*)", "20261201100000+0000", u64::MAX / 2);
        assert!(!other.contains('!'));
    }
}
