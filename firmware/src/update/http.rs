//! What fetching a bundle needs of HTTP, without I/O: the URL, the request, and the response
//! head. The request is HTTP/1.0 so the server sends the body as it is (no chunked coding) and
//! ends it by closing or with Content-Length; redirects are followed by the caller.

use std::fmt;

/// The largest response head read: a bundle server's is a few hundred bytes.
pub const MAX_HEAD: usize = 16 * 1024;

/// `http://` or `https://`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// A URL a bundle is fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub scheme: Scheme,
    /// A name or an address (IPv6 without its brackets).
    pub host: String,
    pub port: u16,
    /// From the first `/`, with the query; `/` when the URL had none.
    pub path: String,
}

/// Why a URL or a response is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// Not `http://` or `https://`.
    Scheme,
    BadUrl(&'static str),
    /// The head is longer than [`MAX_HEAD`], or not HTTP.
    BadResponse(&'static str),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Scheme => f.write_str("only http:// and https:// URLs are fetched"),
            HttpError::BadUrl(why) => write!(f, "bad URL: {why}"),
            HttpError::BadResponse(why) => write!(f, "bad HTTP response: {why}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl Url {
    pub fn parse(text: &str) -> Result<Url, HttpError> {
        let (scheme, rest) = if let Some(r) = strip_prefix_ci(text, "https://") {
            (Scheme::Https, r)
        } else if let Some(r) = strip_prefix_ci(text, "http://") {
            (Scheme::Http, r)
        } else {
            return Err(HttpError::Scheme);
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        // Without the fragment, which is never sent.
        let path = path.split('#').next().unwrap_or("/").to_string();
        if path.bytes().any(|b| b <= b' ' || b == 0x7F) {
            return Err(HttpError::BadUrl(
                "spaces or control characters in the path",
            ));
        }
        if authority.contains('@') {
            return Err(HttpError::BadUrl("user names in URLs are not supported"));
        }
        let default_port = match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or(HttpError::BadUrl("an IPv6 address without its ']'"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => parse_port(p)?,
                None if after.is_empty() => default_port,
                None => return Err(HttpError::BadUrl("text after the IPv6 address")),
            };
            (host.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), parse_port(p)?),
                None => (authority.to_string(), default_port),
            }
        };
        let hostname_ok = |h: &str| {
            !h.is_empty()
                && h.len() <= 253
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b))
        };
        if !hostname_ok(&host) {
            return Err(HttpError::BadUrl(
                "no host, or one with characters hosts do not have",
            ));
        }
        Ok(Url {
            scheme,
            host,
            port,
            path,
        })
    }

    /// Where a redirect's `Location` points, from this URL.
    pub fn join(&self, location: &str) -> Result<Url, HttpError> {
        if location.starts_with('/') && !location.starts_with("//") {
            let mut next = self.clone();
            next.path = location.to_string();
            return Url::parse(&next.to_string());
        }
        Url::parse(location)
    }

    /// The request for this URL.
    pub fn request(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!(
            "GET {} HTTP/1.0\r\nHost: {host}:{}\r\nUser-Agent: postern/{}\r\nAccept: */*\r\n\r\n",
            self.path,
            self.port,
            env!("CARGO_PKG_VERSION")
        )
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text.get(prefix.len()..))
        .flatten()
}

fn parse_port(p: &str) -> Result<u16, HttpError> {
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(HttpError::BadUrl(
            "the port is not a number from 1 to 65535",
        )),
        Ok(n) => Ok(n),
    }
}

/// A response's status line and the headers the fetch needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: String,
    pub content_length: Option<u64>,
    pub location: Option<String>,
}

/// Parses a response head from the start of `buf`: `Ok(None)` until its empty line has arrived,
/// then the head and how many bytes of `buf` it took (the body follows).
pub fn parse_head(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, HttpError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err(HttpError::BadResponse("the head is too long"));
        }
        return Ok(None);
    };
    if end > MAX_HEAD {
        return Err(HttpError::BadResponse("the head is too long"));
    }
    let text = std::str::from_utf8(&buf[..end])
        .map_err(|_| HttpError::BadResponse("the head is not text"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut words = status_line.splitn(3, ' ');
    let version = words.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(HttpError::BadResponse("not an HTTP/1 status line"));
    }
    let status = words
        .next()
        .filter(|c| c.len() == 3)
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|c| (100..600).contains(c))
        .ok_or(HttpError::BadResponse("no status code"))?;
    let reason = words.next().unwrap_or_default().trim().to_string();
    let mut head = ResponseHead {
        status,
        reason,
        content_length: None,
        location: None,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(HttpError::BadResponse("a header line without ':'"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse::<u64>()
                .map_err(|_| HttpError::BadResponse("Content-Length is not a number"))?;
            if head.content_length.is_some_and(|m| m != n) {
                return Err(HttpError::BadResponse("two different Content-Lengths"));
            }
            head.content_length = Some(n);
        } else if name.eq_ignore_ascii_case("location") {
            head.location = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && !value.eq_ignore_ascii_case("identity")
        {
            // An HTTP/1.0 request never gets a chunked body from a server that follows the RFC.
            return Err(HttpError::BadResponse(
                "a transfer coding on a reply to HTTP/1.0",
            ));
        }
    }
    Ok(Some((head, end + 4)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_as_admins_type_them() {
        let u = Url::parse("https://updates.example.com/postern/x86_64.bundle?v=2#top").unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port, u.path.as_str()),
            (
                Scheme::Https,
                "updates.example.com",
                443,
                "/postern/x86_64.bundle?v=2"
            )
        );
        let u = Url::parse("HTTP://10.0.2.2:8080").unwrap();
        assert_eq!((u.port, u.path.as_str()), (8080, "/"));
        let u = Url::parse("http://[2001:db8::1]:81/b").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("2001:db8::1", 81));
        assert!(u.request().contains("Host: [2001:db8::1]:81\r\n"));
        for bad in [
            "ftp://x/y",
            "http://",
            "http://host:0/",
            "http://host:99999/",
            "http://user@host/",
            "http://ho st/",
            "http://host/a b",
            "http://[::1/",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn redirects_resolve_absolute_paths_and_urls() {
        let u = Url::parse("http://a.example:8080/x/y").unwrap();
        assert_eq!(u.join("/z").unwrap().to_string(), "http://a.example:8080/z");
        assert_eq!(
            u.join("https://b.example/q").unwrap().to_string(),
            "https://b.example:443/q"
        );
    }

    #[test]
    fn response_heads_are_read_whole_or_refused() {
        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello";
        for split in 0..reply.len() {
            let got = parse_head(&reply[..split]).unwrap();
            assert!(got.is_none() || split >= reply.len() - 5, "{split}");
        }
        let (head, used) = parse_head(reply).unwrap().unwrap();
        assert_eq!(
            (head.status, head.content_length, used),
            (200, Some(5), reply.len() - 5)
        );
        let (head, _) = parse_head(b"HTTP/1.0 302 Found\r\nLocation: /b\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.location.as_deref(), Some("/b"));
        for bad in [
            &b"SMTP 220 hi\r\n\r\n"[..],
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        ] {
            assert!(parse_head(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert!(parse_head(&vec![b'a'; MAX_HEAD + 1]).is_err());
    }
}
