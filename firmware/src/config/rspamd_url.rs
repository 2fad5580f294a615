//! `posternRspamdUrl`: where rspamd answers HTTP, `http://IP:PORT` or `https://IP:PORT`, and
//! `posternRspamdPassword`, the controller's password.
//!
//! An address, not a name, as for the other scanners: the box resolves nothing before it can
//! judge a message. rspamd's workers speak no TLS themselves; `https://` is for rspamd behind a
//! TLS proxy on another host. The proxy's certificate must name the address (an IP
//! subjectAltName) and chain to the box's trust store.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// rspamd's HTTP address. The controller worker (port 11334 by default) answers `/checkv2` and
/// the learn endpoints; the normal worker (11333) only `/checkv2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RspamdUrl {
    pub addr: SocketAddr,
    /// `https://`: TLS from the first byte, the server's certificate checked.
    pub tls: bool,
}

/// Why a `posternRspamdUrl` value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRspamdUrl {
    /// Not `http://IP:PORT` or `https://IP:PORT` (a name, no port, a path).
    NotHttpAddress,
}

impl fmt::Display for BadRspamdUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadRspamdUrl::NotHttpAddress => f.write_str(
                "use http://IP:PORT or https://IP:PORT, e.g. http://127.0.0.1:11334 (an \
                 address, not a name)",
            ),
        }
    }
}

impl std::error::Error for BadRspamdUrl {}

impl FromStr for RspamdUrl {
    type Err = BadRspamdUrl;
    fn from_str(s: &str) -> Result<RspamdUrl, BadRspamdUrl> {
        let (scheme, rest) = s.split_once("://").ok_or(BadRspamdUrl::NotHttpAddress)?;
        let tls = if scheme.eq_ignore_ascii_case("https") {
            true
        } else if scheme.eq_ignore_ascii_case("http") {
            false
        } else {
            return Err(BadRspamdUrl::NotHttpAddress);
        };
        let host_port = rest.strip_suffix('/').unwrap_or(rest);
        host_port
            .parse()
            .map(|addr| RspamdUrl { addr, tls })
            .map_err(|_| BadRspamdUrl::NotHttpAddress)
    }
}

impl fmt::Display for RspamdUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.addr)
    }
}

/// `posternRspamdPassword`: sent as rspamd's `Password:` request field. Never shown in debug
/// output; `gacf` shows it to the admin who set it.
#[derive(Clone, PartialEq, Eq)]
pub struct RspamdPassword(String);

/// Why a password was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadRspamdPassword;

impl fmt::Display for BadRspamdPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // It goes into an HTTP request field: one line of printable text.
        f.write_str("printable characters on one line, at most 256")
    }
}

impl FromStr for RspamdPassword {
    type Err = BadRspamdPassword;
    fn from_str(s: &str) -> Result<RspamdPassword, BadRspamdPassword> {
        let printable = s.chars().all(|c| c.is_ascii_graphic() || c == ' ');
        if s.is_empty() || s.len() > 256 || !printable || s.trim() != s {
            return Err(BadRspamdPassword);
        }
        Ok(RspamdPassword(s.to_string()))
    }
}

impl RspamdPassword {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RspamdPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RspamdPassword(********)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_or_https_to_an_address() {
        let url: RspamdUrl = "http://127.0.0.1:11334".parse().unwrap();
        assert_eq!(url.addr, "127.0.0.1:11334".parse().unwrap());
        assert!(!url.tls);
        assert_eq!(url.to_string(), "http://127.0.0.1:11334");
        assert_eq!(
            "HTTP://[::1]:11333/"
                .parse::<RspamdUrl>()
                .unwrap()
                .to_string(),
            "http://[::1]:11333"
        );
        let https: RspamdUrl = "HTTPS://192.0.2.9:443".parse().unwrap();
        assert!(https.tls);
        assert_eq!(https.to_string(), "https://192.0.2.9:443");
        for bad in [
            "127.0.0.1:11334",
            "http://localhost:11334",
            "https://rspamd.example.com:443",
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

    #[test]
    fn a_password_is_one_printable_line_and_never_debug_printed() {
        let p: RspamdPassword = "s3cret pass!".parse().unwrap();
        assert_eq!(p.as_str(), "s3cret pass!");
        assert!(!format!("{p:?}").contains("s3cret"));
        for bad in [
            "",
            "a\r\nX-Evil: 1",
            " padded",
            "caf\u{e9}",
            &"x".repeat(257),
        ] {
            assert_eq!(
                bad.parse::<RspamdPassword>(),
                Err(BadRspamdPassword),
                "{bad}"
            );
        }
    }
}
