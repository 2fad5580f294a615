//! SASL PLAIN (RFC 4616) and LOGIN decoding for SMTP AUTH (RFC 4954): base64 in, a user name and
//! password out. The check itself is the directory's (`inbound::Authenticator`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The mechanisms offered (after TLS only, as Zimbra's `zimbraMtaTlsAuthOnly=TRUE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

/// A password as the client sent it. Its `Debug` never shows it, so events can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(plain: String) -> Password {
        Password(plain)
    }

    /// The password itself, for the authenticator only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// Why a SASL response was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslError {
    /// Not valid base64 (`501 5.5.2 Cannot decode response`).
    Base64,
    /// Decoded, but not the shape the mechanism needs, or not UTF-8.
    Malformed,
    /// The client sent `*` (`501 5.7.0 Authentication aborted`).
    Cancelled,
}

/// Decodes one base64 client response line (without its CRLF). `=` is the empty response.
pub fn decode_response(line: &[u8]) -> Result<Vec<u8>, SaslError> {
    let line = line.trim_ascii();
    if line == b"*" {
        return Err(SaslError::Cancelled);
    }
    if line == b"=" {
        return Ok(Vec::new());
    }
    STANDARD.decode(line).map_err(|_| SaslError::Base64)
}

/// Splits a PLAIN response `authzid NUL authcid NUL passwd`. A different authzid (acting for
/// another user) is not supported and refused.
pub fn parse_plain(decoded: &[u8]) -> Result<(String, String), SaslError> {
    let mut parts = decoded.split(|&b| b == 0);
    let (Some(authz), Some(user), Some(pass), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed);
    };
    if user.is_empty() || (!authz.is_empty() && authz != user) {
        return Err(SaslError::Malformed);
    }
    let user = String::from_utf8(user.to_vec()).map_err(|_| SaslError::Malformed)?;
    let pass = String::from_utf8(pass.to_vec()).map_err(|_| SaslError::Malformed)?;
    Ok((user, pass))
}

/// A LOGIN user name or password.
pub fn parse_login_item(decoded: Vec<u8>) -> Result<String, SaslError> {
    if decoded.contains(&0) {
        return Err(SaslError::Malformed);
    }
    String::from_utf8(decoded).map_err(|_| SaslError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_splits_user_and_password() {
        let d = decode_response(b"AHVzZXJAZXhhbXBsZS5jb20Ac2VjcmV0").unwrap();
        assert_eq!(
            parse_plain(&d),
            Ok(("user@example.com".into(), "secret".into()))
        );
        assert_eq!(parse_plain(b"other\0user\0pw"), Err(SaslError::Malformed));
        assert_eq!(
            parse_plain(b"user\0user\0pw"),
            Ok(("user".into(), "pw".into()))
        );
        assert_eq!(parse_plain(b"\0\0pw"), Err(SaslError::Malformed));
        assert_eq!(parse_plain(b"nonul"), Err(SaslError::Malformed));
    }

    #[test]
    fn passwords_do_not_show_in_debug_output() {
        let p = Password::new("hunter2".into());
        assert_eq!(format!("{p:?}"), "Password(***)");
        assert_eq!(p.expose(), "hunter2");
    }

    #[test]
    fn broken_base64_and_cancel_are_told_apart() {
        assert_eq!(decode_response(b"!!!"), Err(SaslError::Base64));
        assert_eq!(decode_response(b"*"), Err(SaslError::Cancelled));
        assert_eq!(decode_response(b"="), Ok(Vec::new()));
    }
}
