//! What file, block-device and MTD flash share: a device node or file read and programmed by
//! position, every range checked against the geometry. Only erasing and syncing differ between
//! them; each kind of device is a [`Medium`] that says how.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{ErrorType, Flash, FlashError, FlashGeometry, NorFlash, ReadNorFlash};

/// How one kind of device erases and makes its writes durable.
pub trait Medium: fmt::Debug {
    /// Erases `from..to`, already checked to be non-empty, block aligned and inside the device.
    fn erase(
        &mut self,
        file: &File,
        geometry: FlashGeometry,
        from: u32,
        to: u32,
    ) -> Result<(), FlashError>;

    /// Returns once every program and erase before it is durable.
    fn sync(&mut self, file: &File) -> Result<(), FlashError>;
}

/// A flash device behind an open file or device node.
#[derive(Debug)]
pub struct OsFlash<M> {
    file: Programs,
    path: PathBuf,
    geometry: FlashGeometry,
    medium: M,
}

/// Programs that continue one another are gathered and made with one system call: the spool
/// appends a message as several small records, and a call each cost more than the records.
/// Whatever erases, syncs or reads them sees them made first, and so does dropping the flash.
#[derive(Debug)]
struct Programs {
    file: File,
    /// Bytes to program at `at`, not made yet.
    pending: Vec<u8>,
    at: u32,
    /// Gathered programs failed when a read or an erase made them: no sync may succeed after
    /// that (it would vouch for records that are not there).
    lost: Option<FlashError>,
}

/// Most bytes gathered before they are programmed.
pub(crate) const GATHER_BYTES: usize = 64 * 1024;

impl Programs {
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        let continues = u64::from(self.at) + self.pending.len() as u64 == u64::from(offset);
        if !(continues && self.pending.len() + bytes.len() <= GATHER_BYTES) {
            self.make()?;
            self.at = offset;
        }
        if bytes.len() > GATHER_BYTES {
            return self.program(offset, bytes);
        }
        self.pending.extend_from_slice(bytes);
        Ok(())
    }

    /// Programs what was gathered.
    fn make(&mut self) -> Result<(), FlashError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let res = self.program(self.at, &pending);
        // The buffer is kept for the next run of programs (it is at most GATHER_BYTES).
        self.pending = pending;
        self.pending.clear();
        if let Err(e) = &res {
            self.lost.get_or_insert_with(|| e.clone());
        }
        res
    }

    fn program(&self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        self.file
            .write_all_at(bytes, offset.into())
            .map_err(|e| FlashError::io("write", offset, &e))
    }

    /// The file, with every gathered program made.
    fn file(&mut self) -> Result<&File, FlashError> {
        self.make()?;
        Ok(&self.file)
    }

    /// The file to read `len` bytes at `offset` from: the gathered programs are made only when
    /// the read overlaps them. Delivery reads committed (synced) bodies while new records gather,
    /// and making them for it split a turn's records into a system call each.
    fn file_to_read(&mut self, offset: u32, len: usize) -> Result<&File, FlashError> {
        let start = u64::from(self.at);
        let end = start + self.pending.len() as u64;
        let (from, to) = (u64::from(offset), u64::from(offset) + len as u64);
        if from < end && start < to {
            self.make()?;
        }
        Ok(&self.file)
    }

    /// The file to sync: every gathered program made, and none ever lost.
    fn file_to_sync(&mut self) -> Result<&File, FlashError> {
        self.make()?;
        match &self.lost {
            Some(e) => Err(e.clone()),
            None => Ok(&self.file),
        }
    }
}

impl Drop for Programs {
    fn drop(&mut self) {
        // A flash dropped without a sync still gets what it was given, as before gathering.
        let _ = self.make();
    }
}

impl<M> OsFlash<M> {
    pub(crate) fn new(file: File, path: PathBuf, geometry: FlashGeometry, medium: M) -> Self {
        OsFlash {
            file: Programs {
                file,
                pending: Vec::new(),
                at: 0,
                lost: None,
            },
            path,
            geometry,
            medium,
        }
    }

    /// The path the flash was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The kind of device, and what only it knows.
    pub fn medium(&self) -> &M {
        &self.medium
    }

    /// The same device seen as another kind (e.g. a [`super::FileFlash`] as a [`super::Device`]).
    pub(crate) fn map_medium<N>(self, f: impl FnOnce(M) -> N) -> OsFlash<N> {
        OsFlash {
            file: self.file,
            path: self.path,
            geometry: self.geometry,
            medium: f(self.medium),
        }
    }
}

/// Opens a file or device node for reading and programming.
pub(crate) fn open_rw(path: &Path) -> Result<File, FlashError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| FlashError::io("open", 0, &e))
}

impl<M: Medium> ErrorType for OsFlash<M> {
    type Error = FlashError;
}

impl<M: Medium> ReadNorFlash for OsFlash<M> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        self.geometry.check_range(offset, bytes.len())?;
        self.file
            .file_to_read(offset, bytes.len())?
            .read_exact_at(bytes, offset.into())
            .map_err(|e| FlashError::io("read", offset, &e))
    }

    fn capacity(&self) -> usize {
        self.geometry.size as usize
    }
}

impl<M: Medium> NorFlash for OsFlash<M> {
    const WRITE_SIZE: usize = 1;
    const ERASE_SIZE: usize = 1;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        self.geometry.check_erase(from, to)?;
        if from == to {
            return Ok(());
        }
        self.medium
            .erase(self.file.file()?, self.geometry, from, to)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        self.geometry.check_range(offset, bytes.len())?;
        self.file.write(offset, bytes)
    }
}

impl<M: Medium> Flash for OsFlash<M> {
    fn geometry(&self) -> FlashGeometry {
        self.geometry
    }

    fn sync(&mut self) -> Result<(), FlashError> {
        self.medium.sync(self.file.file_to_sync()?)
    }
}
