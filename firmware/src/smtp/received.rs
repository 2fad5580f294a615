//! The `Received:` trace header (RFC 5321 §4.4) in the shape Postfix writes it, so admins and
//! their log tools read it as they always have:
//!
//! ```text
//! Received: from client.example (unknown [192.0.2.1])
//!         (using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))
//!         (No client certificate requested)
//!         (Authenticated sender: user@example.com)
//!         by mx.example.com (Postern) with ESMTPSA
//!         for <rcpt@example.com>; Sat, 21 Nov 2026 09:31:04 +0000 (UTC)
//! ```
//!
//! The queue id Postfix puts after `id` is not known before the spool's commit, so it is left out
//! (it is optional in RFC 5321). The client's reverse name is not looked up: `unknown`, as Postfix
//! writes when it has none. The time is given by the caller.

use std::borrow::Cow;

use crate::mail::ClientInfo;

/// The header, folded, ending with CRLF. `for_rcpt` is given only when the message has exactly one
/// recipient, as Postfix does (naming many would leak Bcc).
pub fn received_header(
    hostname: &str,
    client: &ClientInfo,
    for_rcpt: Option<&str>,
    unix_secs: u64,
) -> String {
    let addr = match client.addr {
        Some(std::net::IpAddr::V6(ip)) => format!("IPv6:{ip}"),
        Some(ip) => ip.to_string(),
        None => "127.0.0.1".to_string(),
    };
    let helo = if client.helo.is_empty() {
        "unknown"
    } else {
        client.helo.as_str()
    };
    let mut h = format!("Received: from {} (unknown [{addr}])\r\n", sanitize(helo));
    if let Some(tls) = &client.tls {
        h.push_str(&format!("\t(using {})\r\n", no_controls(tls)));
        // Postern never asks clients for certificates; Postfix says so in the same place.
        h.push_str("\t(No client certificate requested)\r\n");
    }
    if let Some(user) = &client.auth {
        h.push_str(&format!("\t(Authenticated sender: {})\r\n", sanitize(user)));
    }
    h.push_str(&format!(
        "\tby {} (Postern) with {}",
        sanitize(hostname),
        client.protocol
    ));
    if let Some(rcpt) = for_rcpt {
        h.push_str(&format!("\r\n\tfor <{}>", sanitize(rcpt)));
    }
    h.push_str(&format!("; {}\r\n", rfc5322_date(unix_secs)));
    h
}

/// `Sat, 21 Nov 2026 09:31:04 +0000 (UTC)`.
pub fn rfc5322_date(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let wday = DAYS.get((days % 7) as usize).copied().unwrap_or("Thu");
    let month = MONTHS
        .get(m.saturating_sub(1) as usize)
        .copied()
        .unwrap_or("Jan");
    format!(
        "{wday}, {d} {month} {y} {:02}:{:02}:{:02} +0000 (UTC)",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `2026-11-21T09:31:04+00:00`: RFC 3339, as Postfix stamps its own log file (the box keeps UTC).
pub fn iso8601_utc(unix_secs: u64) -> String {
    let (y, m, d) = civil_from_days(unix_secs / 86_400);
    let secs = unix_secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+00:00",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31): Howard Hinnant's algorithm.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

fn no_controls(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect()
}

/// Header text must not break the header: no CR, LF or other controls, no stray parentheses in
/// what the client claimed.
fn sanitize(s: &str) -> Cow<'_, str> {
    // Most text needs nothing replaced: it is then not copied.
    if !s
        .chars()
        .any(|c: char| c.is_control() || c == '(' || c == ')')
    {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| {
                if c.is_control() || c == '(' || c == ')' {
                    '_'
                } else {
                    c
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc5322() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000 (UTC)");
        assert_eq!(
            rfc5322_date(1_795_253_464),
            "Sat, 21 Nov 2026 09:31:04 +0000 (UTC)"
        );
        assert_eq!(
            rfc5322_date(951_782_400),
            "Tue, 29 Feb 2000 00:00:00 +0000 (UTC)"
        );
        assert_eq!(iso8601_utc(1_795_253_464), "2026-11-21T09:31:04+00:00");
        assert_eq!(iso8601_utc(951_782_400), "2000-02-29T00:00:00+00:00");
    }

    #[test]
    fn header_has_postfix_shape_and_cannot_be_broken() {
        let client = ClientInfo {
            addr: Some("192.0.2.1".parse().unwrap()),
            helo: "evil\r\nX-Injected: yes".into(),
            auth: Some("user@example.com".into()),
            protocol: "ESMTPSA".into(),
            tls: Some("TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)".into()),
        };
        let h = received_header("mx.example.com", &client, Some("r@example.com"), 0);
        assert_eq!(
            h,
            "Received: from evil__X-Injected: yes (unknown [192.0.2.1])\r\n\
             \t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n\
             \t(No client certificate requested)\r\n\
             \t(Authenticated sender: user@example.com)\r\n\
             \tby mx.example.com (Postern) with ESMTPSA\r\n\
             \tfor <r@example.com>; Thu, 1 Jan 1970 00:00:00 +0000 (UTC)\r\n"
        );
    }
}
