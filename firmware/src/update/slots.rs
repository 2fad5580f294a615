//! The two boot slots as files on the ESP: `/EFI/Linux/postern-VERSION-SLOT[+LEFT[-DONE]].efi`.
//!
//! systemd-boot reads the `+LEFT-DONE` suffix as its boot counter: it renames the file on each
//! try, and an entry with no tries left sorts after the others. Entries otherwise sort newest
//! version first, so the default is the newest slot that is good or still on trial.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::bundle::Version;

/// Where the slots sit, relative to the ESP's root.
pub const SLOT_DIR: &str = "EFI/Linux";
/// systemd-boot's record of the entry it booted (efivarfs, the Boot Loader Interface's vendor
/// GUID): 4 bytes of attributes, then the entry id in UTF-16LE.
pub const LOADER_ENTRY_SELECTED: &str =
    "/sys/firmware/efi/efivars/LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotId {
    A,
    B,
}

impl SlotId {
    pub fn other(self) -> SlotId {
        match self {
            SlotId::A => SlotId::B,
            SlotId::B => SlotId::A,
        }
    }

    fn letter(self) -> &'static str {
        match self {
            SlotId::A => "a",
            SlotId::B => "b",
        }
    }
}

impl fmt::Display for SlotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SlotId::A => "A",
            SlotId::B => "B",
        })
    }
}

/// One slot file as named on the ESP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotFile {
    pub slot: SlotId,
    pub version: Version,
    /// The boot counter: `None` for a slot marked good, else (tries left, tries done).
    pub counter: Option<(u32, u32)>,
    pub file_name: String,
}

impl SlotFile {
    /// The file name for a slot: with `tries` left for one on trial, none for a good one.
    pub fn name(slot: SlotId, version: Version, tries: Option<u32>) -> String {
        match tries {
            Some(n) => format!("postern-{version}-{}+{n}.efi", slot.letter()),
            None => format!("postern-{version}-{}.efi", slot.letter()),
        }
    }

    pub fn parse(file_name: &str) -> Option<SlotFile> {
        let stem = file_name.strip_prefix("postern-")?.strip_suffix(".efi")?;
        let (entry, counter) = match stem.split_once('+') {
            None => (stem, None),
            Some((entry, count)) => {
                let (left, done) = match count.split_once('-') {
                    Some((l, d)) => (l.parse().ok()?, d.parse().ok()?),
                    None => (count.parse().ok()?, 0),
                };
                (entry, Some((left, done)))
            }
        };
        let (version, letter) = entry.rsplit_once('-')?;
        let slot = match letter {
            "a" => SlotId::A,
            "b" => SlotId::B,
            _ => return None,
        };
        Some(SlotFile {
            slot,
            version: Version::parse(version)?,
            counter,
            file_name: file_name.to_string(),
        })
    }

    /// Why the boot loader would (not) pick it: good, on trial, or out of tries.
    pub fn state(&self) -> &'static str {
        match self.counter {
            None => "good",
            Some((0, _)) => "failed (no tries left: the boot loader skips it)",
            Some(_) => "on trial (marked good after its health check)",
        }
    }
}

/// The slot files in `esp`'s slot directory (other files are ignored).
pub fn scan(esp: &Path) -> io::Result<Vec<SlotFile>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(esp.join(SLOT_DIR))? {
        let entry = entry?;
        if let Some(f) = entry.file_name().to_str().and_then(SlotFile::parse) {
            found.push(f);
        }
    }
    found.sort_by_key(|f| f.slot.letter());
    Ok(found)
}

/// The slot systemd-boot says it booted, from the contents of [`LOADER_ENTRY_SELECTED`].
pub fn parse_loader_entry(var: &[u8]) -> Option<SlotId> {
    let units: Vec<u16> = var
        .get(4..)?
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    let id = String::from_utf16(&units).ok()?;
    // The id is the file name, with or without its boot counter and suffix.
    let id = id.strip_suffix(".efi").unwrap_or(&id);
    SlotFile::parse(&format!("{id}.efi")).map(|f| f.slot)
}

/// The slot the boot loader picked this boot, if it says (efivarfs mounted, booted by it).
pub fn selected() -> Option<SlotId> {
    parse_loader_entry(&fs::read(LOADER_ENTRY_SELECTED).ok()?)
}

/// The slot this firmware booted from: the one the boot loader names, else the one holding this
/// firmware's version.
pub fn booted(slots: &[SlotFile], selected: Option<SlotId>, running: Version) -> Option<&SlotFile> {
    match selected {
        Some(id) => slots.iter().find(|s| s.slot == id),
        None => slots.iter().find(|s| s.version == running),
    }
}

/// Drops the boot counter of the running slot, so the boot loader keeps choosing it. Returns the
/// slot if it was on trial (None: it was good already, or is not on this ESP).
pub fn mark_good(
    esp: &Path,
    selected: Option<SlotId>,
    running: Version,
) -> io::Result<Option<SlotFile>> {
    let slots = scan(esp)?;
    let Some(me) = booted(&slots, selected, running) else {
        return Ok(None);
    };
    if me.counter.is_none() {
        return Ok(None);
    }
    let dir = esp.join(SLOT_DIR);
    let good = SlotFile::name(me.slot, me.version, None);
    fs::rename(dir.join(&me.file_name), dir.join(&good))?;
    sync_dir(&dir)?;
    Ok(Some(me.clone()))
}

/// Makes a rename in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// The path of a slot file.
pub fn path(esp: &Path, file_name: &str) -> PathBuf {
    esp.join(SLOT_DIR).join(file_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_with_and_without_counters() {
        let f = SlotFile::parse("postern-0.2.0-b+1.efi").unwrap();
        assert_eq!(
            (f.slot, f.version, f.counter),
            (SlotId::B, Version(0, 2, 0), Some((1, 0)))
        );
        let f = SlotFile::parse("postern-0.2.0-b+0-1.efi").unwrap();
        assert_eq!(f.counter, Some((0, 1)));
        assert!(f.state().starts_with("failed"));
        let f = SlotFile::parse("postern-10.0.1-a.efi").unwrap();
        assert_eq!((f.slot, f.counter), (SlotId::A, None));
        for bad in [
            "postern-0.2.0-c.efi",
            "postern-0.2-a.efi",
            "postern-0.2.0-a+x.efi",
            "postern-0.2.0-a.tmp",
            "other.efi",
        ] {
            assert_eq!(SlotFile::parse(bad), None, "{bad}");
        }
        assert_eq!(
            SlotFile::name(SlotId::B, Version(0, 2, 0), Some(1)),
            "postern-0.2.0-b+1.efi"
        );
    }

    #[test]
    fn marking_good_drops_the_counter_of_the_running_slot_only() {
        let esp = tempfile::tempdir().unwrap();
        let dir = esp.path().join(SLOT_DIR);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("postern-0.1.0-a.efi"), b"old").unwrap();
        fs::write(dir.join("postern-0.2.0-b+0-1.efi"), b"new").unwrap();
        let marked = mark_good(esp.path(), None, Version(0, 2, 0))
            .unwrap()
            .unwrap();
        assert_eq!(marked.slot, SlotId::B);
        let names: Vec<_> = scan(esp.path())
            .unwrap()
            .into_iter()
            .map(|s| s.file_name)
            .collect();
        assert_eq!(names, ["postern-0.1.0-a.efi", "postern-0.2.0-b.efi"]);
        assert_eq!(mark_good(esp.path(), None, Version(0, 2, 0)).unwrap(), None);
        assert_eq!(mark_good(esp.path(), None, Version(0, 3, 0)).unwrap(), None);
        // The boot loader's word beats the version: a slot may hold any build.
        fs::rename(
            dir.join("postern-0.1.0-a.efi"),
            dir.join("postern-0.1.0-a+0-1.efi"),
        )
        .unwrap();
        let marked = mark_good(esp.path(), Some(SlotId::A), Version(0, 2, 0))
            .unwrap()
            .unwrap();
        assert_eq!(marked.slot, SlotId::A);
        assert!(dir.join("postern-0.1.0-a.efi").exists());
    }

    #[test]
    fn the_loader_entry_names_the_slot() {
        let var = |id: &str| {
            let mut v = vec![7, 0, 0, 0];
            for u in id.encode_utf16().chain([0]) {
                v.extend_from_slice(&u.to_le_bytes());
            }
            v
        };
        assert_eq!(
            parse_loader_entry(&var("postern-0.2.0-b+1.efi")),
            Some(SlotId::B)
        );
        assert_eq!(
            parse_loader_entry(&var("postern-0.2.0-b.efi")),
            Some(SlotId::B)
        );
        assert_eq!(parse_loader_entry(&var("postern-0.1.0-a")), Some(SlotId::A));
        assert_eq!(parse_loader_entry(&var("auto-efi-shell")), None);
        assert_eq!(parse_loader_entry(&[1, 2]), None);
    }
}
