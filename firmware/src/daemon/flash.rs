//! Starting the spool on the flash the daemon runs on: open and lock the device (`hal::flash`
//! tells a file, a block device and an MTD device apart), format it if it is blank, recover, and
//! start the spool's writer.

use std::path::PathBuf;
use std::thread::JoinHandle;

use hal::flash::{Device, Flash, FlashLock};

use super::DaemonError;
use crate::log::console::say;
use crate::spool::{
    self, RecoveryReport, Spool, SpoolError, SpoolGeometry, SpoolHandle, SpoolSettings,
};

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
    writer: Option<JoinHandle<Spool<Device>>>,
    lock: FlashLock,
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
    pub fn take_writer(&mut self) -> Option<JoinHandle<Spool<Device>>> {
        self.writer.take()
    }

    /// The exclusive lock on the device: whoever holds it keeps other posterns off the flash.
    pub fn into_lock(self) -> FlashLock {
        self.lock
    }
}

/// Opens (creating a missing file when a size is given), locks, formats if blank, and recovers.
pub fn open(spec: &FlashSpec, settings: SpoolSettings) -> Result<OpenFlash, DaemonError> {
    let (mut flash, lock) = Device::open(&spec.path, spec.size).map_err(DaemonError::Device)?;
    let path = spec.path.clone();
    if let Some(mtd) = flash.mtd() {
        let g = flash.geometry();
        say!(
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
        lock,
    })
}

/// A flash whose first erase block is all 0xFF (erased) or all 0x00 (a new virtual disk) holds
/// nothing: formatting it loses nothing. Anything else is left for the spool to recognise or
/// refuse (a damaged superblock is never formatted over).
fn is_blank(flash: &mut impl Flash) -> Result<bool, SpoolError> {
    let mut block = vec![0u8; flash.geometry().erase_size as usize];
    flash.read(0, &mut block).map_err(SpoolError::Flash)?;
    Ok(block.iter().all(|&b| b == 0xFF) || block.iter().all(|&b| b == 0))
}

/// Erases the flash and lays out an empty spool (`postern flash format`, the console's factory
/// reset): every message, account and setting on it is gone. Only with no daemon on it.
/// `log_size` sizes the mail log's ring (bytes, rounded up to erase blocks); `None`: the default.
pub fn format(spec: &FlashSpec, log_size: Option<u64>) -> Result<(), DaemonError> {
    let (mut flash, _lock) = Device::open(&spec.path, spec.size).map_err(DaemonError::Device)?;
    let mut geometry = SpoolGeometry::for_flash(flash.geometry());
    if let Some(bytes) = log_size {
        let eb = u64::from(flash.geometry().erase_size);
        geometry.log_blocks = u32::try_from(bytes.div_ceil(eb)).unwrap_or(u32::MAX);
    }
    Spool::format(&mut flash, geometry).map_err(|e| DaemonError::Spool(spec.path.clone(), e))
}
