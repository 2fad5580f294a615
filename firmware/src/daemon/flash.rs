//! Opening the flash the daemon runs on (a file in host mode, a block device or an MTD character
//! device such as `/dev/mtd0` in the appliance): lock it, format it if it is blank, and start the
//! spool on it.
//!
//! A character device is taken for MTD raw flash and opened as [`MtdFlash`], whose geometry comes
//! from the kernel; anything else (regular files, block devices) is [`FileFlash`] with
//! [`DEFAULT_ERASE_SIZE`] blocks.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use hal::flash::{
    ErrorType, FileFlash, Flash, FlashError, FlashGeometry, MtdFlash, NorFlash, ReadNorFlash,
};

use super::DaemonError;
use crate::spool::{
    self, RecoveryReport, Spool, SpoolError, SpoolGeometry, SpoolHandle, SpoolSettings,
};

/// The erase block the spool uses on files and block devices (NOR parts have 4 to 256 KiB).
pub const DEFAULT_ERASE_SIZE: u32 = 64 << 10;

/// Which flash to open and how big it must be.
#[derive(Debug, Clone)]
pub struct FlashSpec {
    pub path: PathBuf,
    /// The size the flash must have. A missing file is created this size; a file or device of
    /// another size is refused. `None` takes the size as found (block devices, existing files).
    pub size: Option<u64>,
}

/// The flash, held exclusively while the daemon runs.
pub struct OpenFlash {
    pub path: PathBuf,
    pub size: u64,
    pub spool: SpoolHandle,
    pub recovery: RecoveryReport,
    /// The spool was formatted by this start (a new or blank flash).
    pub formatted: bool,
    writer: Option<JoinHandle<Spool<DeviceFlash>>>,
    _lock: File,
}

impl std::fmt::Debug for OpenFlash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenFlash")
            .field("path", &self.path)
            .field("size", &self.size)
            .finish()
    }
}

impl OpenFlash {
    /// Takes the spool writer's thread so that shutdown can wait for its last sync.
    pub fn take_writer(&mut self) -> Option<JoinHandle<Spool<DeviceFlash>>> {
        self.writer.take()
    }

    /// The exclusive lock on the device: whoever holds it keeps other posterns off the flash.
    pub fn into_lock(self) -> File {
        self._lock
    }
}

/// Opens (creating a missing file when a size is given), locks, formats if blank, and recovers.
pub fn open(spec: &FlashSpec, settings: SpoolSettings) -> Result<OpenFlash, DaemonError> {
    let (mut flash, lock) = open_device(spec)?;
    let path = spec.path.clone();
    if let DeviceFlash::Mtd(mtd) = &flash {
        let g = mtd.geometry();
        eprintln!(
            "postern: flash {} is MTD raw flash: {} bytes in {}-byte erase blocks{}",
            path.display(),
            g.size,
            g.erase_size,
            mtd.backing_device()
                .map(|d| format!(", synced through {} (block2mtd)", d.display()))
                .unwrap_or_default()
        );
    }
    let spool_err = |e: SpoolError| DaemonError::Spool(path.clone(), e);
    let formatted = is_blank(&mut flash).map_err(spool_err)?;
    if formatted {
        let geometry = SpoolGeometry::for_flash(flash.geometry());
        Spool::format(&mut flash, geometry).map_err(spool_err)?;
    }
    let size = u64::from(flash.geometry().size);
    let (spool, recovery) = Spool::open(flash, settings).map_err(spool_err)?;
    let (handle, writer) = spool::service::spawn(spool).map_err(spool_err)?;
    Ok(OpenFlash {
        path,
        size,
        spool: handle,
        recovery,
        formatted,
        writer: Some(writer),
        _lock: lock,
    })
}

/// The flash devices the daemon runs on, one type for the spool and its writer thread.
#[derive(Debug)]
pub enum DeviceFlash {
    /// A regular file or a block device, with [`DEFAULT_ERASE_SIZE`] blocks.
    File(FileFlash),
    /// An MTD character device (raw NOR, or block2mtd in QEMU).
    Mtd(MtdFlash),
}

impl ErrorType for DeviceFlash {
    type Error = FlashError;
}

impl ReadNorFlash for DeviceFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        match self {
            DeviceFlash::File(f) => f.read(offset, bytes),
            DeviceFlash::Mtd(f) => f.read(offset, bytes),
        }
    }

    fn capacity(&self) -> usize {
        match self {
            DeviceFlash::File(f) => f.capacity(),
            DeviceFlash::Mtd(f) => f.capacity(),
        }
    }
}

impl NorFlash for DeviceFlash {
    const WRITE_SIZE: usize = 1;
    const ERASE_SIZE: usize = 1;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        match self {
            DeviceFlash::File(f) => f.erase(from, to),
            DeviceFlash::Mtd(f) => f.erase(from, to),
        }
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        match self {
            DeviceFlash::File(f) => f.write(offset, bytes),
            DeviceFlash::Mtd(f) => f.write(offset, bytes),
        }
    }
}

impl Flash for DeviceFlash {
    fn geometry(&self) -> FlashGeometry {
        match self {
            DeviceFlash::File(f) => f.geometry(),
            DeviceFlash::Mtd(f) => f.geometry(),
        }
    }

    fn sync(&mut self) -> Result<(), FlashError> {
        match self {
            DeviceFlash::File(f) => f.sync(),
            DeviceFlash::Mtd(f) => f.sync(),
        }
    }
}

/// The device, opened and locked so that no second postern (daemon or offline `prov --flash`)
/// writes to it at the same time.
pub fn open_device(spec: &FlashSpec) -> Result<(DeviceFlash, File), DaemonError> {
    let path = &spec.path;
    let err = |e| DaemonError::FlashOpen(path.clone(), e);
    if !path.exists() {
        let Some(size) = spec.size else {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such file (give --flash-size to create it)",
            )));
        };
        let geometry = geometry(path, size)?;
        FileFlash::create(path, geometry).map_err(|e| DaemonError::Flash(path.clone(), e))?;
    }
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(err)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Err(DaemonError::FlashBusy(path.clone())),
        Err(TryLockError::Error(e)) => return Err(err(e)),
    }
    let is_char_device = lock.metadata().map_err(err)?.file_type().is_char_device();
    if is_char_device {
        let flash = MtdFlash::open(path).map_err(|e| DaemonError::Flash(path.clone(), e))?;
        let actual = u64::from(flash.geometry().size);
        check_size(spec, actual)?;
        return Ok((DeviceFlash::Mtd(flash), lock));
    }
    let actual = (&lock).seek(SeekFrom::End(0)).map_err(err)?;
    check_size(spec, actual)?;
    let flash = FileFlash::open(path, geometry(path, actual)?)
        .map_err(|e| DaemonError::Flash(path.clone(), e))?;
    Ok((DeviceFlash::File(flash), lock))
}

/// A size given on the command line must be the size the device has: never guessed, never grown.
fn check_size(spec: &FlashSpec, actual: u64) -> Result<(), DaemonError> {
    match spec.size {
        Some(expected) if expected != actual => Err(DaemonError::FlashSize {
            path: spec.path.clone(),
            expected,
            actual,
        }),
        _ => Ok(()),
    }
}

fn geometry(path: &Path, size: u64) -> Result<FlashGeometry, DaemonError> {
    let bad = |why: String| DaemonError::FlashGeometry(path.to_path_buf(), why);
    let size = u32::try_from(size).map_err(|_| {
        bad(format!(
            "{size} bytes is more than the 4 GiB a spool addresses"
        ))
    })?;
    if size < 16 * DEFAULT_ERASE_SIZE {
        return Err(bad(format!(
            "{size} bytes is too small: the spool needs at least 1 MiB"
        )));
    }
    if size % DEFAULT_ERASE_SIZE != 0 {
        return Err(bad(format!(
            "{size} bytes is not a whole number of {DEFAULT_ERASE_SIZE}-byte erase blocks"
        )));
    }
    FlashGeometry::new(DEFAULT_ERASE_SIZE, size).map_err(|e| bad(e.to_string()))
}

/// A flash whose first erase block is all 0xFF (erased) or all 0x00 (a new virtual disk) holds
/// nothing: formatting it loses nothing. Anything else is left for the spool to recognise or
/// refuse (a damaged superblock is never formatted over).
fn is_blank(flash: &mut impl Flash) -> Result<bool, SpoolError> {
    let mut block = vec![0u8; flash.geometry().erase_size as usize];
    flash.read(0, &mut block).map_err(SpoolError::Flash)?;
    Ok(block.iter().all(|&b| b == 0xFF) || block.iter().all(|&b| b == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("postern-flash-{name}-{}", std::process::id()))
    }

    #[test]
    fn a_file_is_file_flash_with_the_default_erase_block() {
        let path = temp("file");
        let _ = std::fs::remove_file(&path);
        let spec = FlashSpec {
            path: path.clone(),
            size: Some(2 << 20),
        };
        let (flash, _lock) = open_device(&spec).unwrap();
        assert!(matches!(flash, DeviceFlash::File(_)));
        assert_eq!(flash.geometry().erase_size, DEFAULT_ERASE_SIZE);
        assert_eq!(flash.geometry().size, 2 << 20);
        drop(flash);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_character_device_that_is_not_mtd_is_refused_clearly() {
        let spec = FlashSpec {
            path: PathBuf::from("/dev/null"),
            size: None,
        };
        let err = open_device(&spec).unwrap_err().to_string();
        assert!(err.contains("MEMGETINFO"), "{err}");
    }
}
