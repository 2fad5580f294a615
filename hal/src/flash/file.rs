//! Flash in a regular file or a block device: erase writes `0xFF`, sync is `fdatasync`.
//!
//! The size comes from the configuration and is checked against the file, never taken from it: a
//! flash file of the wrong size (a typo in a path, a truncated copy) is an error, not a new flash.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::os::{Medium, OsFlash, open_rw};
use super::{FlashError, FlashGeometry};

/// A flash device backed by a file or a block device.
pub type FileFlash = OsFlash<FileMedium>;

/// A file or block device: erasing writes an erased block over each block.
#[derive(Debug)]
pub struct FileMedium {
    erased: Vec<u8>,
}

impl FileFlash {
    /// Opens an existing file or block device that must be exactly `geometry.size` bytes.
    pub fn open(path: impl AsRef<Path>, geometry: FlashGeometry) -> Result<FileFlash, FlashError> {
        let path = path.as_ref().to_path_buf();
        let mut file = open_rw(&path)?;
        // Seeking to the end gives the size of block devices too (their metadata says 0).
        let actual = file
            .seek(SeekFrom::End(0))
            .map_err(|e| FlashError::io("size", 0, &e))?;
        if actual != u64::from(geometry.size) {
            return Err(FlashError::WrongSize {
                path: path.display().to_string(),
                expected: geometry.size.into(),
                actual,
            });
        }
        let medium = FileMedium {
            erased: vec![0xFF; geometry.erase_size as usize],
        };
        Ok(OsFlash::new(file, path, geometry, medium))
    }

    /// Creates a new flash file of `geometry.size` bytes, all erased. Fails if the file exists, so
    /// an existing spool is never overwritten by accident.
    pub fn create(
        path: impl AsRef<Path>,
        geometry: FlashGeometry,
    ) -> Result<FileFlash, FlashError> {
        let path = path.as_ref().to_path_buf();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| FlashError::io("create", 0, &e))?;
        let block = vec![0xFF; 1 << 20];
        let mut left = u64::from(geometry.size);
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            file.write_all(&block[..n])
                .map_err(|e| FlashError::io("create", 0, &e))?;
            left -= n as u64;
        }
        file.sync_all()
            .map_err(|e| FlashError::io("create", 0, &e))?;
        drop(file);
        // The new directory entry must be durable too, or a power cut could lose the whole file.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| FlashError::io("create", 0, &e))?;
        }
        FileFlash::open(path, geometry)
    }
}

impl Medium for FileMedium {
    fn erase(
        &mut self,
        file: &File,
        geometry: FlashGeometry,
        from: u32,
        to: u32,
    ) -> Result<(), FlashError> {
        let mut at = from;
        while at < to {
            file.write_all_at(&self.erased, at.into())
                .map_err(|e| FlashError::io("erase", at, &e))?;
            at += geometry.erase_size;
        }
        Ok(())
    }

    fn sync(&mut self, file: &File) -> Result<(), FlashError> {
        file.sync_data().map_err(|e| FlashError::io("sync", 0, &e))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::os::GATHER_BYTES;
    use super::super::{Flash, NorFlash, ReadNorFlash};
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("hal-fileflash-{}-{name}", std::process::id()))
    }

    #[test]
    fn create_then_program_erase_and_reopen() {
        let path = temp_path("rw");
        let _ = std::fs::remove_file(&path);
        let g = FlashGeometry::new(4096, 4096 * 4).unwrap();
        let mut f = FileFlash::create(&path, g).unwrap();
        let mut buf = [0u8; 8];
        f.read(4090, &mut buf).unwrap();
        assert_eq!(buf, [0xFF; 8], "a new flash file reads as erased");
        f.write(4090, b"postern!").unwrap();
        f.sync().unwrap();
        drop(f);

        let mut f = FileFlash::open(&path, g).unwrap();
        f.read(4090, &mut buf).unwrap();
        assert_eq!(&buf, b"postern!");
        f.erase(4096, 8192).unwrap();
        f.read(4090, &mut buf).unwrap();
        assert_eq!(&buf, b"poster\xFF\xFF", "only the erased block is erased");
        assert!(f.erase(100, 4096).is_err(), "unaligned erase is refused");
        assert!(
            f.read(4096 * 4 - 2, &mut buf).is_err(),
            "reads past the end are refused"
        );
        std::fs::remove_file(&path).unwrap();
    }

    /// Programs are gathered, but nothing can tell: a read, an erase, a sync or dropping the
    /// flash sees every one of them, in order, runs that do not continue one another included.
    #[test]
    fn gathered_programs_are_seen_by_reads_erases_syncs_and_drop() {
        let path = temp_path("gather");
        let _ = std::fs::remove_file(&path);
        let g = FlashGeometry::new(4096, 4096 * 40).unwrap();
        let mut f = FileFlash::create(&path, g).unwrap();
        f.write(10, b"abc").unwrap();
        f.write(13, b"def").unwrap();
        // Not continuing: the run before is made first.
        f.write(100, b"xyz").unwrap();
        let mut buf = [0u8; 6];
        f.read(10, &mut buf).unwrap();
        assert_eq!(&buf, b"abcdef");
        let mut buf = [0u8; 3];
        f.read(100, &mut buf).unwrap();
        assert_eq!(&buf, b"xyz");
        // A program larger than the gathering bound, after a small one it continues.
        f.write(4096, b"12").unwrap();
        let big = vec![7u8; GATHER_BYTES + 5];
        f.write(4098, &big).unwrap();
        f.write(4098 + big.len() as u32, b"end").unwrap();
        f.sync().unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(&on_disk[4096..4098], b"12");
        assert_eq!(&on_disk[4098..4098 + big.len()], &big[..]);
        assert_eq!(&on_disk[4098 + big.len()..4101 + big.len()], b"end");
        // Erasing sees a gathered program (and wipes it).
        f.write(8192, b"gone").unwrap();
        f.erase(8192, 12288).unwrap();
        let mut buf = [0u8; 4];
        f.read(8192, &mut buf).unwrap();
        assert_eq!(buf, [0xFF; 4]);
        // A read beside the gathered run leaves it gathered; one that overlaps it makes it.
        f.write(300, b"run").unwrap();
        let mut buf = [0u8; 3];
        f.read(296, &mut buf).unwrap();
        assert_eq!(buf, [0xFF; 3]);
        assert_eq!(
            &std::fs::read(&path).unwrap()[300..303],
            [0xFF; 3],
            "still gathered"
        );
        let mut buf = [0u8; 2];
        f.read(302, &mut buf).unwrap();
        assert_eq!(&buf, b"n\xFF");
        assert_eq!(&std::fs::read(&path).unwrap()[300..303], b"run");
        // Dropped without a sync: still written.
        f.write(200, b"last").unwrap();
        drop(f);
        assert_eq!(&std::fs::read(&path).unwrap()[200..204], b"last");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn wrong_size_is_a_clear_error_and_create_never_overwrites() {
        let path = temp_path("size");
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, vec![0xFFu8; 4096 * 3]).unwrap();
        let g = FlashGeometry::new(4096, 4096 * 4).unwrap();
        match FileFlash::open(&path, g) {
            Err(FlashError::WrongSize {
                expected, actual, ..
            }) => {
                assert_eq!((expected, actual), (4096 * 4, 4096 * 3));
            }
            other => panic!("expected WrongSize, got {other:?}"),
        }
        assert!(FileFlash::create(&path, g).is_err());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096 * 3);
        std::fs::remove_file(&path).unwrap();
        assert!(
            FileFlash::open(&path, g).is_err(),
            "a missing file is not created by open"
        );
    }
}
