//! Flash devices: erase blocks behind `embedded_storage::nor_flash::{ReadNorFlash, NorFlash}`.
//!
//! Every device here speaks NOR semantics: an erase sets a whole erase block to `0xFF`, programming
//! can only clear bits, and nothing is durable until [`Flash::sync`] returns. The spool relies on
//! exactly that and nothing more, so the same code runs on:
//!
//! - [`FileFlash`]: a regular file or a block device (`/dev/vda` in the image); erase writes `0xFF`,
//!   `sync` is `fdatasync`.
//! - [`MtdFlash`]: raw NOR through `/dev/mtdN` (`MEMGETINFO`, `MEMERASE`).
//! - [`Device`]: whichever of those two a path holds, opened and locked ([`Device::open`]): what
//!   the daemon and the offline admin commands run on.
//! - [`RamFlash`]: RAM, for tests, with fault injection: power cut after the Nth program/erase
//!   (torn writes), bit flips, worn-out blocks.
//!
//! File and MTD flash are one [`OsFlash`] (reads and programs by position, range checks) with a
//! [`Medium`] for what differs: how to erase and how to make writes durable.
//!
//! The geometry is run-time data ([`FlashGeometry`]), so the `NorFlash` constants are the smallest
//! units the trait allows (`WRITE_SIZE = 1`, `ERASE_SIZE = 1`): callers must align erases to
//! [`FlashGeometry::erase_size`] themselves, and devices refuse anything else with
//! [`FlashError::NotAligned`].

mod device;
mod file;
mod mtd;
mod os;
mod ram;

use std::fmt;
use std::io;

pub use device::{DEFAULT_ERASE_SIZE, Device, DeviceError, DeviceMedium, FlashLock, SizeProblem};
pub use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
pub use file::{FileFlash, FileMedium};
pub use mtd::{MtdFlash, MtdMedium};
pub use os::{Medium, OsFlash};
pub use ram::{FlashOp, RamFlash};

/// The shape of a flash device: how big it is and how big one erase block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlashGeometry {
    /// Bytes in one erase block (a power of two).
    pub erase_size: u32,
    /// Bytes in the whole device (a multiple of `erase_size`).
    pub size: u32,
}

impl FlashGeometry {
    /// A geometry, checked: `erase_size` a power of two of at least 256 bytes, `size` a non-zero
    /// multiple of it.
    pub fn new(erase_size: u32, size: u32) -> Result<FlashGeometry, FlashError> {
        if !erase_size.is_power_of_two() || erase_size < 256 {
            return Err(FlashError::BadGeometry(format!(
                "erase size {erase_size} is not a power of two of at least 256 bytes"
            )));
        }
        if size == 0 || !size.is_multiple_of(erase_size) {
            return Err(FlashError::BadGeometry(format!(
                "size {size} is not a non-zero multiple of the erase size {erase_size}"
            )));
        }
        Ok(FlashGeometry { erase_size, size })
    }

    /// Number of erase blocks.
    pub fn blocks(&self) -> u32 {
        self.size / self.erase_size
    }

    /// Checks an erase range: block aligned and inside the device.
    pub fn check_erase(&self, from: u32, to: u32) -> Result<(), FlashError> {
        if from > to || to > self.size {
            return Err(FlashError::OutOfBounds {
                offset: from,
                len: to.saturating_sub(from) as usize,
            });
        }
        if !from.is_multiple_of(self.erase_size) || !to.is_multiple_of(self.erase_size) {
            return Err(FlashError::NotAligned {
                offset: from,
                len: (to - from) as usize,
            });
        }
        Ok(())
    }

    /// Checks a read or program range: inside the device.
    pub fn check_range(&self, offset: u32, len: usize) -> Result<(), FlashError> {
        let end = u64::from(offset) + len as u64;
        if end > u64::from(self.size) {
            return Err(FlashError::OutOfBounds { offset, len });
        }
        Ok(())
    }
}

/// What every Postern flash device adds to `NorFlash`: its geometry and a durability barrier.
pub trait Flash: NorFlash<Error = FlashError> {
    /// Size and erase block size.
    fn geometry(&self) -> FlashGeometry;

    /// Returns once every program and erase before it is durable (survives a power cut).
    fn sync(&mut self) -> Result<(), FlashError>;
}

/// Why a flash operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlashError {
    /// The operating system refused an operation.
    Io {
        op: &'static str,
        offset: u32,
        kind: io::ErrorKind,
        errno: Option<i32>,
    },
    /// An erase not on erase-block boundaries.
    NotAligned { offset: u32, len: usize },
    /// Past the end of the device.
    OutOfBounds { offset: u32, len: usize },
    /// Programming would have to set a bit that is 0: the range was not erased first (a bug in
    /// the caller; real NOR would silently store the AND of old and new).
    NotErased { offset: u32 },
    /// The block no longer takes programs or erases (worn out).
    WornOut { block: u32 },
    /// The power is off (RamFlash after an injected power cut).
    PowerLost,
    /// The device or file is not the size the configuration says.
    WrongSize {
        path: String,
        expected: u64,
        actual: u64,
    },
    /// A geometry that cannot be used.
    BadGeometry(String),
    /// The device is not what it was opened as (e.g. not an MTD character device).
    Unsupported(String),
}

impl FlashError {
    pub(crate) fn io(op: &'static str, offset: u32, e: &io::Error) -> FlashError {
        FlashError::Io {
            op,
            offset,
            kind: e.kind(),
            errno: e.raw_os_error(),
        }
    }
}

impl fmt::Display for FlashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlashError::Io {
                op,
                offset,
                kind,
                errno,
            } => {
                write!(f, "flash {op} at offset {offset:#x} failed: {kind}")?;
                if let Some(e) = errno {
                    write!(f, " (errno {e})")?;
                }
                Ok(())
            }
            FlashError::NotAligned { offset, len } => write!(
                f,
                "flash erase of {len} bytes at {offset:#x} is not on erase-block boundaries"
            ),
            FlashError::OutOfBounds { offset, len } => {
                write!(
                    f,
                    "flash access of {len} bytes at {offset:#x} is past the end"
                )
            }
            FlashError::NotErased { offset } => {
                write!(
                    f,
                    "flash program at {offset:#x} over bytes that were not erased"
                )
            }
            FlashError::WornOut { block } => write!(f, "flash erase block {block} is worn out"),
            FlashError::PowerLost => f.write_str("flash has no power"),
            FlashError::WrongSize {
                path,
                expected,
                actual,
            } => write!(
                f,
                "{path} is {actual} bytes but the flash is configured as {expected} bytes"
            ),
            FlashError::BadGeometry(why) => write!(f, "bad flash geometry: {why}"),
            FlashError::Unsupported(why) => write!(f, "unsupported flash device: {why}"),
        }
    }
}

impl std::error::Error for FlashError {}

impl NorFlashError for FlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            FlashError::NotAligned { .. } => NorFlashErrorKind::NotAligned,
            FlashError::OutOfBounds { .. } => NorFlashErrorKind::OutOfBounds,
            _ => NorFlashErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_is_checked() {
        assert!(FlashGeometry::new(4096, 4096 * 8).is_ok());
        assert!(FlashGeometry::new(4095, 4095 * 8).is_err());
        assert!(FlashGeometry::new(128, 1024).is_err());
        assert!(FlashGeometry::new(4096, 4096 * 8 + 1).is_err());
        assert!(FlashGeometry::new(4096, 0).is_err());
        let g = FlashGeometry::new(4096, 4096 * 8).unwrap();
        assert_eq!(g.blocks(), 8);
        assert!(g.check_erase(4096, 8192).is_ok());
        assert_eq!(
            g.check_erase(4095, 8192).unwrap_err().kind(),
            NorFlashErrorKind::NotAligned
        );
        assert_eq!(
            g.check_erase(0, 4096 * 9).unwrap_err().kind(),
            NorFlashErrorKind::OutOfBounds
        );
        assert!(g.check_range(4096 * 8 - 1, 1).is_ok());
        assert!(g.check_range(4096 * 8 - 1, 2).is_err());
    }
}
