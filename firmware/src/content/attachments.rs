//! Attachment blocking (`zimbraMtaBlockedExtension`, `zimbraMtaCommonBlockedExtension`): every
//! MIME part's `filename` (Content-Disposition) and `name` (Content-Type) parameters, RFC 2047
//! and RFC 2231 (`name*=`) decoded by mail-parser, in attached messages too, and the members of
//! zip archives (see [`archive`]).

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

use super::Rejection;
use super::archive::{self, Budget};
use crate::config::ContentConfig;

/// Checks the whole message `raw` (headers and body, as received).
pub fn check_attachments(raw: &[u8], config: &ContentConfig) -> Result<(), Rejection> {
    let Some(message) = MessageParser::default().parse(raw) else {
        return Ok(());
    };
    let mut budget = Budget {
        unpacked: config.archive_max_unpacked,
    };
    check_message(&message, config, &mut budget)
}

fn check_message(
    message: &Message<'_>,
    config: &ContentConfig,
    budget: &mut Budget,
) -> Result<(), Rejection> {
    for part in &message.parts {
        let names = [
            part.content_disposition()
                .and_then(|d| d.attribute("filename")),
            part.content_type().and_then(|t| t.attribute("name")),
        ];
        for name in names.into_iter().flatten() {
            if config.blocks_name(name) {
                return Err(Rejection::BlockedAttachment {
                    name: name.to_string(),
                });
            }
        }
        match &part.body {
            // mail-parser nests attached messages (message/rfc822) as parsed messages.
            PartType::Message(inner) => check_message(inner, config, budget)?,
            PartType::Binary(data) | PartType::InlineBinary(data) if archive::is_zip(data) => {
                let shown = names.into_iter().flatten().next().unwrap_or("(unnamed)");
                archive::check_zip(data, shown, 0, config, budget)?;
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::archive::tests::zip_of;
    use super::*;
    use base64::Engine;

    fn with_part(headers: &str, body: &str) -> Vec<u8> {
        format!(
            "From: a@example.com\r\nTo: b@example.com\r\nSubject: files\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\n\
see attached\r\n--XX\r\n{headers}\r\n\r\n{body}\r\n--XX--\r\n"
        )
        .into_bytes()
    }

    fn blocked(raw: &[u8]) -> Option<String> {
        match check_attachments(raw, &ContentConfig::default()) {
            Err(Rejection::BlockedAttachment { name }) => Some(name),
            Err(other) => panic!("{other:?}"),
            Ok(()) => None,
        }
    }

    #[test]
    fn filename_and_name_parameters_in_every_spelling() {
        let cases = [
            (
                "Content-Type: application/octet-stream; name=\"setup.exe\"",
                "setup.exe",
            ),
            (
                "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=SETUP.EXE",
                "SETUP.EXE",
            ),
            (
                "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.scr",
                "résumé.scr",
            ),
            (
                "Content-Type: application/octet-stream; name*0=\"inv\"; name*1=\"oice.bat\"",
                "invoice.bat",
            ),
            (
                "Content-Type: application/octet-stream; name=\"=?UTF-8?B?cmVwb3J0LmpzZQ==?=\"",
                "report.jse",
            ),
            (
                "Content-Type: text/plain; name=\"notes.txt\"\r\nContent-Disposition: attachment; filename=\"notes.pif\"",
                "notes.pif",
            ),
        ];
        for (headers, name) in cases {
            assert_eq!(
                blocked(&with_part(headers, "AAAA")),
                Some(name.to_string()),
                "{headers}"
            );
        }
        for fine in [
            "Content-Type: application/pdf; name=\"exe.pdf\"",
            "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"a.exe.txt\"",
        ] {
            assert_eq!(blocked(&with_part(fine, "AAAA")), None, "{fine}");
        }
    }

    #[test]
    fn attached_messages_and_zips_are_looked_into() {
        let inner = String::from_utf8(with_part(
            "Content-Type: application/octet-stream; name=\"x.vbs\"",
            "AAAA",
        ))
        .unwrap();
        let forwarded = with_part("Content-Type: message/rfc822", &inner);
        assert_eq!(blocked(&forwarded), Some("x.vbs".into()));

        let zip = zip_of(&[("docs/readme.txt", b"hi"), ("docs/tool.Exe", b"MZ")]);
        let b64 = base64::engine::general_purpose::STANDARD.encode(zip);
        let zipped = with_part(
            "Content-Type: application/zip; name=\"docs.zip\"\r\nContent-Transfer-Encoding: base64",
            &b64,
        );
        assert_eq!(blocked(&zipped), Some("docs.zip/docs/tool.Exe".into()));
    }

    #[test]
    fn plain_mail_and_garbage_pass() {
        assert_eq!(blocked(b"Subject: hi\r\n\r\nno attachments\r\n"), None);
        assert_eq!(blocked(b""), None);
        assert_eq!(blocked(b"\xff\xfe\r\n\r\n--"), None);
    }
}
