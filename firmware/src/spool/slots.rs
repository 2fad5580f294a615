//! The config and directory regions: two slots each, written alternately. The newest slot whose
//! CRC holds wins, so a write torn by a power cut leaves the previous contents in force.
//!
//! ```text
//! | magic u32 | seq u64 | len u32 | crc u32 | data ... |
//! ```

use hal::flash::Flash;

use super::format::{keyed_crc, le32, le64};
use super::store::Spool;
use super::{Region, SpoolError};

const SLOT_MAGIC: u32 = 0x3154_4c53; // "SLT1"
pub(crate) const SLOT_HEADER: usize = 20;

/// The newest valid slot of a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Newest {
    pub slot: u32,
    pub seq: u64,
    pub len: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SlotView {
    pub newest: Option<Newest>,
}

fn region_id(region: Region) -> u8 {
    match region {
        Region::Config => 1,
        Region::Directory => 2,
    }
}

fn slot_crc(nonce: u64, region: Region, slot: u32, header: &[u8], data: &[u8]) -> u32 {
    keyed_crc(
        nonce,
        &[
            &[region_id(region)],
            &slot.to_le_bytes(),
            &header[..16],
            data,
        ],
    )
}

/// A slot's header: `(seq, data length)`, if it carries the magic and its length fits the
/// `capacity` of the slot (data bytes after the header). Flash is outside input after a power cut
/// or decay: nothing here may trust the length before checking it.
pub(crate) fn decode_slot_header(header: &[u8], capacity: usize) -> Option<(u64, usize)> {
    let header = header.get(..SLOT_HEADER)?;
    if le32(&header[0..4]) != SLOT_MAGIC {
        return None;
    }
    let len = le32(&header[12..16]) as usize;
    (len <= capacity).then(|| (le64(&header[4..12]), len))
}

/// Whether `data` is what the slot's header says was written there.
pub(crate) fn slot_data_ok(
    nonce: u64,
    region: Region,
    slot: u32,
    header: &[u8],
    data: &[u8],
) -> bool {
    header.len() >= SLOT_HEADER
        && slot_crc(nonce, region, slot, header, data) == le32(&header[16..20])
}

/// A slot as written: header then data.
pub(crate) fn encode_slot(nonce: u64, region: Region, slot: u32, seq: u64, data: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(SLOT_HEADER + data.len());
    bytes.extend_from_slice(&SLOT_MAGIC.to_le_bytes());
    bytes.extend_from_slice(&seq.to_le_bytes());
    bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
    let crc = slot_crc(nonce, region, slot, &bytes, data);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes.extend_from_slice(data);
    bytes
}

fn view_index(region: Region) -> usize {
    match region {
        Region::Config => 0,
        Region::Directory => 1,
    }
}

impl<F: Flash> Spool<F> {
    /// Reads one slot: its sequence number and data, if the slot holds a sound write.
    fn read_one_slot(
        &mut self,
        region: Region,
        slot: u32,
    ) -> Result<Option<(u64, Vec<u8>)>, SpoolError> {
        let (from, to) = self.layout.slot_range(region, slot);
        let mut header = [0u8; SLOT_HEADER];
        self.flash.read(from, &mut header)?;
        let capacity = ((to - from) as usize).saturating_sub(SLOT_HEADER);
        let Some((seq, len)) = decode_slot_header(&header, capacity) else {
            return Ok(None);
        };
        let mut data = vec![0u8; len];
        self.flash.read(from + SLOT_HEADER as u32, &mut data)?;
        Ok(slot_data_ok(self.layout.nonce, region, slot, &header, &data).then_some((seq, data)))
    }

    /// Finds the newest sound slot of a region (done at open).
    pub(crate) fn scan_slots(&mut self, region: Region) -> Result<SlotView, SpoolError> {
        let mut newest: Option<Newest> = None;
        for slot in 0..2 {
            if let Some((seq, data)) = self.read_one_slot(region, slot)?
                && newest.is_none_or(|n| seq > n.seq)
            {
                newest = Some(Newest {
                    slot,
                    seq,
                    len: data.len() as u32,
                });
            }
        }
        Ok(SlotView { newest })
    }

    /// The newest data written to a region, or `None` if nothing sound was ever written.
    pub fn read_slot(&mut self, region: Region) -> Result<Option<Vec<u8>>, SpoolError> {
        let mut best: Option<(u64, Vec<u8>)> = None;
        for slot in 0..2 {
            if let Some((seq, data)) = self.read_one_slot(region, slot)?
                && best.as_ref().is_none_or(|(s, _)| seq > *s)
            {
                best = Some((seq, data));
            }
        }
        Ok(best.map(|(_, d)| d))
    }

    /// Writes a region's data into the slot that does not hold the newest, and syncs.
    pub fn write_slot(&mut self, region: Region, data: &[u8]) -> Result<(), SpoolError> {
        self.check_writable()?;
        let (from, to) = self.layout.slot_range(region, 0);
        let capacity = (to - from) as usize - SLOT_HEADER;
        if data.len() > capacity {
            return Err(SpoolError::SlotTooLarge {
                region,
                len: data.len(),
                capacity,
            });
        }
        let view = self.slots[view_index(region)];
        let slot = view.newest.map_or(0, |n| 1 - n.slot);
        let seq = view.newest.map_or(1, |n| n.seq + 1);
        let (from, to) = self.layout.slot_range(region, slot);
        let bytes = encode_slot(self.layout.nonce, region, slot, seq, data);
        self.flash.erase(from, to)?;
        self.stats.erases += 1;
        self.flash.write(from, &bytes)?;
        self.stats.bytes_written += bytes.len() as u64;
        self.sync_flash()?;
        self.slots[view_index(region)].newest = Some(Newest {
            slot,
            seq,
            len: data.len() as u32,
        });
        Ok(())
    }
}
