//! Installing a bundle into the slot that is not running.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Write};
use std::path::Path;

use super::bundle::{self, BundleError, Manifest, Version};
use super::slots::{self, SlotFile, SlotId};
use crate::log::{LogSink, Program};

/// How many times the boot loader tries a new slot before it falls back: once.
pub const TRIES: u32 = 1;
/// The name a slot is written under until it has been read back; no boot entry matches it.
const PARTIAL: &str = "postern-update.partial";
/// A progress line each time this much more of the slot is written: a write to slow flash
/// takes minutes, and an admin at the console should see it move.
pub const PROGRESS_STEP: u64 = 2 << 20;

/// What an install did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub slot: SlotId,
    pub version: Version,
    pub file_name: String,
    pub bytes: u64,
}

#[derive(Debug)]
pub enum InstallError {
    /// Refused before anything was written.
    Refused(BundleError),
    /// The ESP's slot directory cannot be read (not mounted?).
    Esp(io::Error),
    /// Writing, syncing or renaming the new slot failed; the running slot is untouched.
    Write(io::Error),
    /// The slot image read back from the ESP differs from the bundle's.
    ReadBack(BundleError),
}

impl fmt::Display for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstallError::Refused(e) => write!(f, "refused, nothing written: {e}"),
            InstallError::Esp(e) => write!(f, "cannot read the boot slots on the ESP: {e}"),
            InstallError::Write(e) => write!(
                f,
                "writing the new slot failed (the running slot is untouched): {e}"
            ),
            InstallError::ReadBack(e) => write!(
                f,
                "the new slot did not read back intact, so it was removed: {e}"
            ),
        }
    }
}

impl std::error::Error for InstallError {}

/// Checks `bundle` (signature, architecture, version, then the whole slot image's hash) and only
/// then writes the image into the slot that is not running, on trial for [`TRIES`] boot.
/// `selected` is the slot the boot loader says it booted ([`slots::selected`]). The write's
/// start, its progress every [`PROGRESS_STEP`] and its end go to `log`.
pub fn install(
    bundle_path: &Path,
    esp: &Path,
    selected: Option<SlotId>,
    key: Option<&[u8; 32]>,
    running_arch: &'static str,
    running: Version,
    log: &LogSink,
) -> Result<Installed, InstallError> {
    let manifest = verify(bundle_path, key, running_arch, running)?;
    let existing = slots::scan(esp).map_err(InstallError::Esp)?;
    let target = match slots::booted(&existing, selected, running) {
        Some(me) => me.slot.other(),
        // Not booted from this ESP (a developer's run): slot B, as after a fresh flash.
        None => SlotId::B,
    };
    let dir = esp.join(slots::SLOT_DIR);
    let partial = dir.join(PARTIAL);
    // Second pass: the file is read again while writing, and the hash checked again, so a file
    // changed between the two passes is caught.
    let mut reader = open_bundle(bundle_path, key, running_arch, running)?;
    log.line(
        Program::Master,
        &format!(
            "update: writing postern {} into slot {target} ({} MiB)",
            manifest.version,
            mib(manifest.slot_bytes)
        ),
    );
    let written = (|| {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&partial)?;
        let mut out = Progress::new(file, target, manifest.slot_bytes, log);
        bundle::copy_slot(&mut reader, &manifest, &mut out)
            .map_err(|e| io::Error::other(e.to_string()))?;
        out.file.flush()?;
        out.file.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&partial);
        log.line(
            Program::Master,
            &format!("update: writing slot {target} failed: {e}"),
        );
        return Err(InstallError::Write(e));
    }
    // Read back what the ESP holds now, against the signed hash.
    let read_back = File::open(&partial)
        .map_err(BundleError::Read)
        .and_then(|f| bundle::copy_slot(&mut BufReader::new(f), &manifest, &mut io::sink()));
    if let Err(e) = read_back {
        let _ = fs::remove_file(&partial);
        return Err(InstallError::ReadBack(e));
    }
    // Only now does the old content of the target slot go.
    for old in existing.iter().filter(|s| s.slot == target) {
        fs::remove_file(dir.join(&old.file_name)).map_err(InstallError::Write)?;
    }
    let name = SlotFile::name(target, manifest.version, Some(TRIES));
    fs::rename(&partial, dir.join(&name)).map_err(InstallError::Write)?;
    slots::sync_dir(&dir).map_err(InstallError::Write)?;
    log.line(
        Program::Master,
        &format!(
            "update: slot {target} holds postern {} ({name}), read back intact: on trial at the next boot",
            manifest.version
        ),
    );
    Ok(Installed {
        slot: target,
        version: manifest.version,
        file_name: name,
        bytes: manifest.slot_bytes,
    })
}

/// A slot file being written, saying how far it got every [`PROGRESS_STEP`] bytes.
struct Progress<'a> {
    file: File,
    slot: SlotId,
    written: u64,
    total: u64,
    next: u64,
    log: &'a LogSink,
}

impl<'a> Progress<'a> {
    fn new(file: File, slot: SlotId, total: u64, log: &'a LogSink) -> Progress<'a> {
        Progress {
            file,
            slot,
            written: 0,
            total,
            next: PROGRESS_STEP,
            log,
        }
    }
}

impl Write for Progress<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        // Only steps short of the end: the end has its own line once the slot is read back.
        while self.written >= self.next && self.next < self.total {
            self.log.line(
                Program::Master,
                &format!(
                    "update: slot {}: {} of {} MiB written",
                    self.slot,
                    mib(self.next),
                    mib(self.total)
                ),
            );
            self.next += PROGRESS_STEP;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Bytes as MiB with one decimal, as the progress lines show them.
fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / f64::from(1u32 << 20))
}

/// The whole bundle checked, nothing written: signature, architecture, version, slot hash.
pub fn verify(
    bundle_path: &Path,
    key: Option<&[u8; 32]>,
    running_arch: &'static str,
    running: Version,
) -> Result<Manifest, InstallError> {
    let f = File::open(bundle_path).map_err(|e| InstallError::Refused(BundleError::Read(e)))?;
    let mut r = BufReader::new(f);
    let m = bundle::open(&mut r, key, running_arch, running).map_err(InstallError::Refused)?;
    bundle::copy_slot(&mut r, &m, &mut io::sink()).map_err(InstallError::Refused)?;
    Ok(m)
}

fn open_bundle(
    bundle_path: &Path,
    key: Option<&[u8; 32]>,
    running_arch: &'static str,
    running: Version,
) -> Result<BufReader<File>, InstallError> {
    let f = File::open(bundle_path).map_err(|e| InstallError::Refused(BundleError::Read(e)))?;
    let mut r = BufReader::new(f);
    bundle::open(&mut r, key, running_arch, running).map_err(InstallError::Refused)?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::bundle::tests::{bundle_for, public, test_key};

    const RUNNING: Version = Version(0, 1, 0);

    fn esp_with_slot_a() -> tempfile::TempDir {
        let esp = tempfile::tempdir().unwrap();
        let dir = esp.path().join(slots::SLOT_DIR);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("postern-0.1.0-a.efi"), b"running firmware").unwrap();
        esp
    }

    fn listing(esp: &Path) -> Vec<(String, Vec<u8>)> {
        let mut all: Vec<_> = fs::read_dir(esp.join(slots::SLOT_DIR))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        all.sort();
        all
    }

    #[test]
    fn a_good_bundle_goes_into_the_other_slot_on_trial() {
        let esp = esp_with_slot_a();
        let k = test_key(1);
        let file = esp.path().join("update.bundle");
        fs::write(
            &file,
            bundle_for(&k, "x86_64", Version(0, 2, 0), b"new firmware"),
        )
        .unwrap();
        let done = install(
            &file,
            esp.path(),
            None,
            Some(&public(&k)),
            "x86_64",
            RUNNING,
            &LogSink::memory(),
        )
        .unwrap();
        assert_eq!(done.slot, SlotId::B);
        assert_eq!(done.file_name, "postern-0.2.0-b+1.efi");
        assert_eq!(
            listing(esp.path()),
            [
                ("postern-0.1.0-a.efi".into(), b"running firmware".to_vec()),
                ("postern-0.2.0-b+1.efi".into(), b"new firmware".to_vec()),
            ]
        );
        // The new firmware, once healthy, keeps its slot; the next update replaces slot A.
        slots::mark_good(esp.path(), Some(SlotId::B), Version(0, 2, 0)).unwrap();
        fs::write(
            &file,
            bundle_for(&k, "x86_64", Version(0, 3, 0), b"newer firmware"),
        )
        .unwrap();
        let done = install(
            &file,
            esp.path(),
            Some(SlotId::B),
            Some(&public(&k)),
            "x86_64",
            Version(0, 2, 0),
            &LogSink::memory(),
        )
        .unwrap();
        assert_eq!(done.slot, SlotId::A);
        let names: Vec<_> = listing(esp.path()).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["postern-0.2.0-b.efi", "postern-0.3.0-a+1.efi"]);
    }

    #[test]
    fn refused_bundles_write_nothing() {
        let k = test_key(1);
        let good = bundle_for(&k, "x86_64", Version(0, 2, 0), b"new firmware");
        let mut bad_signature = good.clone();
        bad_signature[25] ^= 0x20;
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("bad signature", bad_signature),
            (
                "wrong arch",
                bundle_for(&k, "aarch64", Version(0, 2, 0), b"new firmware"),
            ),
            ("truncated", good[..good.len() - 5].to_vec()),
            (
                "not newer",
                bundle_for(&k, "x86_64", Version(0, 1, 0), b"same"),
            ),
        ];
        for (what, bytes) in cases {
            let esp = esp_with_slot_a();
            let before = listing(esp.path());
            let file = esp.path().join("update.bundle");
            fs::write(&file, bytes).unwrap();
            let log = LogSink::memory();
            let e = install(
                &file,
                esp.path(),
                None,
                Some(&public(&k)),
                "x86_64",
                RUNNING,
                &log,
            )
            .unwrap_err();
            assert_eq!(log.lines(), Vec::<String>::new(), "{what}");
            assert!(matches!(e, InstallError::Refused(_)), "{what}: {e}");
            assert!(
                e.to_string().starts_with("refused, nothing written: "),
                "{e}"
            );
            assert_eq!(listing(esp.path()), before, "{what}");
        }
    }

    #[test]
    fn the_write_says_how_far_it_got_every_few_mib() {
        let esp = esp_with_slot_a();
        let k = test_key(1);
        let file = esp.path().join("update.bundle");
        let slot: Vec<u8> = (0..9 << 20).map(|i| (i % 251) as u8).collect();
        fs::write(&file, bundle_for(&k, "x86_64", Version(0, 2, 0), &slot)).unwrap();
        let log = LogSink::memory();
        install(
            &file,
            esp.path(),
            None,
            Some(&public(&k)),
            "x86_64",
            RUNNING,
            &log,
        )
        .unwrap();
        assert_eq!(
            log.lines(),
            [
                "postern: update: writing postern 0.2.0 into slot B (9.0 MiB)",
                "postern: update: slot B: 2.0 of 9.0 MiB written",
                "postern: update: slot B: 4.0 of 9.0 MiB written",
                "postern: update: slot B: 6.0 of 9.0 MiB written",
                "postern: update: slot B: 8.0 of 9.0 MiB written",
                "postern: update: slot B holds postern 0.2.0 (postern-0.2.0-b+1.efi), read back \
                 intact: on trial at the next boot",
            ]
        );
    }

    #[test]
    fn a_partial_file_from_a_power_cut_is_no_slot_and_is_replaced() {
        let esp = esp_with_slot_a();
        let dir = esp.path().join(slots::SLOT_DIR);
        fs::write(dir.join(PARTIAL), b"half a slot").unwrap();
        assert_eq!(slots::scan(esp.path()).unwrap().len(), 1);
        let k = test_key(1);
        let file = esp.path().join("update.bundle");
        fs::write(
            &file,
            bundle_for(&k, "x86_64", Version(0, 2, 0), b"new firmware"),
        )
        .unwrap();
        install(
            &file,
            esp.path(),
            None,
            Some(&public(&k)),
            "x86_64",
            RUNNING,
            &LogSink::memory(),
        )
        .unwrap();
        assert!(!dir.join(PARTIAL).exists());
    }
}
