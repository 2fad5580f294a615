//! Flash devices: erase blocks behind `embedded_storage::nor_flash::{ReadNorFlash, NorFlash}`.
