//! Zip archives inside a message: the names of their members, checked against the blocked
//! extensions, and archives inside them opened in turn, to a depth and an unpacked-size budget so
//! a crafted archive (a zip bomb, a zip quine) costs bounded RAM and time.
//!
//! Only member names are needed, and the zip central directory has them without unpacking
//! anything; a member is unpacked only when it is itself a zip (its first bytes say so), and then
//! only up to what is left of the budget.

use std::io::{Cursor, Read};

use zip::ZipArchive;

use super::Rejection;
use super::blocked::BlockedNames;
use crate::config::ContentConfig;

/// The local file header signature every zip starts with.
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

/// Whether `bytes` look like a zip archive.
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(ZIP_MAGIC)
}

/// What may still be unpacked for one message.
#[derive(Debug)]
pub struct Budget {
    /// Bytes left to unpack (`posternArchiveMaxUnpackedSize`).
    pub unpacked: u64,
}

/// Checks the archive `bytes`, shown to the client as `path`, and every archive inside it: member
/// names with a blocked extension go into `blocked`, an archive that cannot be judged is refused.
/// `depth` is how many archives enclose this one (0 for one attached to the message).
pub fn check_zip(
    bytes: &[u8],
    path: &str,
    depth: u32,
    config: &ContentConfig,
    budget: &mut Budget,
    blocked: &mut BlockedNames,
) -> Result<(), Rejection> {
    if depth >= config.archive_max_depth {
        return Err(Rejection::ArchiveTooDeep {
            name: path.to_string(),
        });
    }
    // A file that starts like a zip but has no readable directory is not an archive we can
    // vouch for; clamd gets to look at it as it is.
    let Ok(mut archive) = ZipArchive::new(Cursor::new(bytes)) else {
        return Ok(());
    };
    for i in 0..archive.len() {
        let (member, encrypted) = match archive.by_index_raw(i) {
            Ok(f) => (
                format!("{path}/{}", String::from_utf8_lossy(f.name_raw())),
                f.encrypted(),
            ),
            Err(_) => continue,
        };
        if config.blocks_name(&member) {
            // Refused already; the rest is looked at only to name every blocked file.
            blocked.add(&member);
            continue;
        }
        if encrypted {
            if config.block_encrypted_archive {
                return Err(Rejection::EncryptedArchive {
                    name: path.to_string(),
                });
            }
            continue;
        }
        let Some(inner) = unpack_if_zip(&mut archive, i, &member, budget)? else {
            continue;
        };
        check_zip(&inner, &member, depth + 1, config, budget, blocked)?;
    }
    Ok(())
}

/// The member's bytes when it is itself a zip, charged to the budget; `None` otherwise.
fn unpack_if_zip(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    index: usize,
    member: &str,
    budget: &mut Budget,
) -> Result<Option<Vec<u8>>, Rejection> {
    let Ok(file) = archive.by_index(index) else {
        return Ok(None);
    };
    let mut head = Vec::with_capacity(ZIP_MAGIC.len());
    let mut reader = file.take(budget.unpacked.saturating_add(1));
    if (&mut reader)
        .take(ZIP_MAGIC.len() as u64)
        .read_to_end(&mut head)
        .is_err()
        || !is_zip(&head)
    {
        return Ok(None);
    }
    let mut inner = head;
    // An unreadable member (bad deflate data) is not an archive we can open; clamd sees it.
    if reader.read_to_end(&mut inner).is_err() {
        return Ok(None);
    }
    if inner.len() as u64 > budget.unpacked {
        return Err(Rejection::DecompressionBomb {
            name: member.to_string(),
        });
    }
    budget.unpacked -= inner.len() as u64;
    Ok(Some(inner))
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use std::io::Write;
    use zip::write::{SimpleFileOptions, ZipWriter};

    /// A deflated zip holding `members` (name, contents).
    pub fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in members {
            w.start_file(*name, SimpleFileOptions::default()).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    /// `zip` with the encryption flag set on every member, as `zip -e` leaves it (the flag is
    /// what readers go by; the data need not really be enciphered for this check).
    pub fn flag_encrypted(mut zip: Vec<u8>) -> Vec<u8> {
        let mut i = 0;
        while i + 4 <= zip.len() {
            match &zip[i..i + 4] {
                b"PK\x03\x04" => zip[i + 6] |= 1,
                b"PK\x01\x02" => zip[i + 8] |= 1,
                _ => {}
            }
            i += 1;
        }
        zip
    }

    fn check(bytes: &[u8], config: &ContentConfig) -> Result<(), Rejection> {
        let mut budget = Budget {
            unpacked: config.archive_max_unpacked,
        };
        let mut blocked = BlockedNames::default();
        let checked = check_zip(bytes, "a.zip", 0, config, &mut budget, &mut blocked);
        blocked.rejection().map_or(checked, Err)
    }

    #[test]
    fn names_inside_nested_archives_are_checked() {
        let config = ContentConfig::default();
        let plain = zip_of(&[("readme.txt", b"hello"), ("doc.pdf", b"%PDF")]);
        assert_eq!(check(&plain, &config), Ok(()));
        let exe = zip_of(&[("readme.txt", b"hello"), ("setup.EXE", b"MZ")]);
        assert_eq!(
            check(&exe, &config),
            Err(Rejection::BlockedAttachment {
                name: "a.zip/setup.EXE".into(),
                more: vec![]
            })
        );
        let nested = zip_of(&[("inner.zip", &zip_of(&[("dir/run.vbs", b"x")]))]);
        assert_eq!(
            check(&nested, &config),
            Err(Rejection::BlockedAttachment {
                name: "a.zip/inner.zip/dir/run.vbs".into(),
                more: vec![]
            })
        );
        // Every blocked member is named, the first in the reply.
        let two = zip_of(&[("a.exe", b"MZ"), ("ok.txt", b"x"), ("b.scr", b"MZ")]);
        assert_eq!(
            check(&two, &config),
            Err(Rejection::BlockedAttachment {
                name: "a.zip/a.exe".into(),
                more: vec!["a.zip/b.scr".into()]
            })
        );
        // An archive with another name is still opened: its bytes say what it is.
        let renamed = zip_of(&[("photo.jpg", &zip_of(&[("x.scr", b"x")]))]);
        assert!(check(&renamed, &config).is_err());
    }

    #[test]
    fn depth_budget_and_encryption_are_limits() {
        let mut config = ContentConfig::default();
        let mut z = zip_of(&[("leaf.txt", b"x")]);
        for _ in 0..5 {
            z = zip_of(&[("z.zip", &z)]);
        }
        assert!(matches!(
            check(&z, &config),
            Err(Rejection::ArchiveTooDeep { .. })
        ));
        config.archive_max_depth = 10;
        assert_eq!(check(&z, &config), Ok(()));

        let bomb = zip_of(&[("b.zip", &zip_of(&[("zeros", &vec![0u8; 1 << 20])]))]);
        config.archive_max_unpacked = 1000;
        assert!(matches!(
            check(&bomb, &config),
            Err(Rejection::DecompressionBomb { .. })
        ));

        let secret = flag_encrypted(zip_of(&[("secret.txt", b"x")]));
        let config = ContentConfig::default();
        assert_eq!(
            check(&secret, &config),
            Err(Rejection::EncryptedArchive {
                name: "a.zip".into()
            })
        );
        let mut lenient = config.clone();
        lenient.block_encrypted_archive = false;
        assert_eq!(check(&secret, &lenient), Ok(()));
        // The names of encrypted members are in the clear, and still checked.
        let secret_exe = flag_encrypted(zip_of(&[("x.exe", b"x")]));
        assert!(matches!(
            check(&secret_exe, &lenient),
            Err(Rejection::BlockedAttachment { .. })
        ));
    }

    #[test]
    fn garbage_that_starts_like_a_zip_is_no_archive() {
        let config = ContentConfig::default();
        let mut junk = b"PK\x03\x04".to_vec();
        junk.extend([0xff; 200]);
        assert_eq!(check(&junk, &config), Ok(()));
        let mut cut = zip_of(&[("a.txt", b"x")]);
        cut.truncate(cut.len() / 2);
        assert_eq!(check(&cut, &config), Ok(()));
    }
}
