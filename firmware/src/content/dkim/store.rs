//! The DKIM keys in the box config slot: read, add, remove, keeping the rest of the box config.

use std::fmt;

use crate::config::stored::{BoxConfig, DkimKeyRecord, StoredError};
use crate::spool::{Region, SpoolError, SpoolHandle};

/// Why the keys could not be read or written.
#[derive(Debug)]
pub enum StoreError {
    Stored(StoredError),
    Flash(SpoolError),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Stored(e) => e.fmt(f),
            StoreError::Flash(e) => write!(f, "flash: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

async fn box_config(spool: &SpoolHandle) -> Result<BoxConfig, StoreError> {
    match spool.read_slot(Region::Config).await {
        Ok(Some(bytes)) => BoxConfig::decode(&bytes).map_err(StoreError::Stored),
        Ok(None) => Ok(BoxConfig::default()),
        Err(e) => Err(StoreError::Flash(e)),
    }
}

/// The stored keys.
pub async fn load(spool: &SpoolHandle) -> Result<Vec<DkimKeyRecord>, StoreError> {
    Ok(box_config(spool).await?.dkim_keys)
}

/// Applies `change` to the stored keys and writes them back; the keys as they are now.
pub async fn update(
    spool: &SpoolHandle,
    change: impl FnOnce(&mut Vec<DkimKeyRecord>),
) -> Result<Vec<DkimKeyRecord>, StoreError> {
    let mut config = box_config(spool).await?;
    change(&mut config.dkim_keys);
    spool
        .write_slot(Region::Config, config.encode())
        .await
        .map_err(StoreError::Flash)?;
    Ok(config.dkim_keys)
}
