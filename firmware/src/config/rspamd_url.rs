//! `posternRspamdUrl`: where rspamd answers HTTP, `http://IP:PORT`.
//!
//! An address, not a name, as for the other scanners: the box resolves nothing before it can
//! judge a message. Plain HTTP only: rspamd's workers speak no TLS themselves (a proxy in front
//! would), so the scanner belongs on the box's own host or a trusted LAN.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// rspamd's HTTP address. The controller worker (port 11334 by default) answers `/checkv2` and
/// the learn endpoints; the normal worker (11333) only `/checkv2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RspamdUrl {
    pub addr: SocketAddr,
}

/// Why a `posternRspamdUrl` value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRspamdUrl {
    /// `https://`: the client speaks plain HTTP only.
    Https,
    /// Not `http://IP:PORT` (a name, no port, a path).
    NotHttpAddress,
}

impl fmt::Display for BadRspamdUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadRspamdUrl::Https => f.write_str(
                "https is not supported: rspamd speaks plain HTTP; use http://IP:PORT on this \
                 host or a trusted network",
            ),
            BadRspamdUrl::NotHttpAddress => f.write_str(
                "use http://IP:PORT, e.g. http://127.0.0.1:11334 (an address, not a name)",
            ),
        }
    }
}

impl std::error::Error for BadRspamdUrl {}

impl FromStr for RspamdUrl {
    type Err = BadRspamdUrl;
    fn from_str(s: &str) -> Result<RspamdUrl, BadRspamdUrl> {
        let scheme_end = s.find("://").ok_or(BadRspamdUrl::NotHttpAddress)?;
        let (scheme, rest) = (&s[..scheme_end], &s[scheme_end + 3..]);
        if scheme.eq_ignore_ascii_case("https") {
            return Err(BadRspamdUrl::Https);
        }
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(BadRspamdUrl::NotHttpAddress);
        }
        let host_port = rest.strip_suffix('/').unwrap_or(rest);
        host_port
            .parse()
            .map(|addr| RspamdUrl { addr })
            .map_err(|_| BadRspamdUrl::NotHttpAddress)
    }
}

impl fmt::Display for RspamdUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_to_an_address() {
        let url: RspamdUrl = "http://127.0.0.1:11334".parse().unwrap();
        assert_eq!(url.addr, "127.0.0.1:11334".parse().unwrap());
        assert_eq!(url.to_string(), "http://127.0.0.1:11334");
        assert_eq!(
            "HTTP://[::1]:11333/"
                .parse::<RspamdUrl>()
                .unwrap()
                .to_string(),
            "http://[::1]:11333"
        );
        assert_eq!(
            "https://127.0.0.1:11334".parse::<RspamdUrl>(),
            Err(BadRspamdUrl::Https)
        );
        for bad in [
            "127.0.0.1:11334",
            "http://localhost:11334",
            "http://127.0.0.1",
            "http://127.0.0.1:11334/checkv2",
            "ftp://127.0.0.1:11334",
            "",
        ] {
            assert_eq!(
                bad.parse::<RspamdUrl>(),
                Err(BadRspamdUrl::NotHttpAddress),
                "{bad}"
            );
        }
    }
}
