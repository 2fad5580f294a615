//! Opening the flash the daemon runs on: a file in host mode, a block device in the appliance.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use super::DaemonError;

/// Which flash to open and how big it must be.
#[derive(Debug, Clone)]
pub struct FlashSpec {
    pub path: PathBuf,
    /// The size the flash must have. A missing file is created this size; a file or device of
    /// another size is refused. `None` takes the size as found (block devices, existing files).
    pub size: Option<u64>,
}

/// The open flash, held exclusively for the daemon's lifetime.
#[derive(Debug)]
pub struct FlashFacts {
    pub path: PathBuf,
    pub size: u64,
    _file: File,
}

/// Opens (creating if missing and a size is given) and locks the flash.
pub fn open(spec: &FlashSpec) -> Result<FlashFacts, DaemonError> {
    let path = &spec.path;
    let err = |e| DaemonError::FlashOpen(path.clone(), e);
    let exists = path.exists();
    let file = match (exists, spec.size) {
        (false, Some(size)) => {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(err)?;
            f.set_len(size).map_err(err)?;
            f
        }
        (false, None) => {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such file (give --flash-size to create it)",
            )));
        }
        (true, _) => OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(err)?,
    };
    lock(&file, path)?;
    let actual = device_size(&file, path)?;
    if let Some(expected) = spec.size
        && expected != actual
    {
        return Err(DaemonError::FlashSize {
            path: path.clone(),
            expected,
            actual,
        });
    }
    if actual == 0 {
        return Err(DaemonError::FlashGeometry(
            path.clone(),
            "it is empty".into(),
        ));
    }
    Ok(FlashFacts {
        path: path.clone(),
        size: actual,
        _file: file,
    })
}

fn lock(file: &File, path: &Path) -> Result<(), DaemonError> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(DaemonError::FlashBusy(path.to_path_buf())),
        Err(TryLockError::Error(e)) => Err(DaemonError::FlashOpen(path.to_path_buf(), e)),
    }
}

/// The size of a regular file or a block device (whose metadata says 0: seek to its end).
fn device_size(file: &File, path: &Path) -> Result<u64, DaemonError> {
    use std::io::{Seek, SeekFrom};
    let err = |e| DaemonError::FlashOpen(path.to_path_buf(), e);
    let meta = file.metadata().map_err(err)?;
    if meta.is_file() {
        return Ok(meta.len());
    }
    let mut f = file;
    f.seek(SeekFrom::End(0)).map_err(err)
}
