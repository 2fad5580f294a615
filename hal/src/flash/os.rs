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
    file: File,
    path: PathBuf,
    geometry: FlashGeometry,
    medium: M,
}

impl<M> OsFlash<M> {
    pub(crate) fn new(file: File, path: PathBuf, geometry: FlashGeometry, medium: M) -> Self {
        OsFlash {
            file,
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
        self.medium.erase(&self.file, self.geometry, from, to)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        self.geometry.check_range(offset, bytes.len())?;
        self.file
            .write_all_at(bytes, offset.into())
            .map_err(|e| FlashError::io("write", offset, &e))
    }
}

impl<M: Medium> Flash for OsFlash<M> {
    fn geometry(&self) -> FlashGeometry {
        self.geometry
    }

    fn sync(&mut self) -> Result<(), FlashError> {
        self.medium.sync(&self.file)
    }
}
