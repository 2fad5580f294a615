//! The on-flash layout: superblock, regions, segment headers and the checksum every byte on flash
//! is protected by.
//!
//! ```text
//! block 0          superblock (two copies, written once by `format`)
//! config           2 slots × config_slot_blocks      (settings, newest valid slot wins)
//! directory        2 slots × directory_slot_blocks   (directory cache snapshot)
//! mail log         log_blocks                        (ring of log lines; version 2)
//! spool log        N segments × segment_blocks       (ring of record logs)
//! ```
//!
//! Version 1 had no mail log region; its superblock still loads, as a layout without one.
//!
//! Everything fixed-size here is little-endian and laid out by hand, so that a later format version
//! can still read the version number of an older one; variable parts are postcard.

use hal::crc32c::{Crc32c, crc32c};
use hal::flash::FlashGeometry;
use serde::{Deserialize, Serialize};

use super::error::SpoolError;

/// The layout version this code writes. It also reads version 1 (no mail log region).
pub const FORMAT_VERSION: u32 = 2;

const SUPER_MAGIC: &[u8; 8] = b"PSTRNFL\x01";
/// magic (8) + version (4) + body length (4) + crc (4).
const SUPER_HEADER: usize = 20;

/// A CRC keyed with the spool's nonce, so that bytes a client sent (a message body) can never pass
/// for a record header even if a scan has to resynchronise inside a body.
pub(crate) fn keyed_crc(nonce: u64, parts: &[&[u8]]) -> u32 {
    let mut d = Crc32c::new();
    d.update(&nonce.to_le_bytes());
    for p in parts {
        d.update(p);
    }
    d.finalize()
}

/// How `format` divides a flash device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolGeometry {
    /// Erase blocks per config slot (there are two).
    pub config_slot_blocks: u32,
    /// Erase blocks per directory snapshot slot (there are two).
    pub directory_slot_blocks: u32,
    /// Erase blocks per spool segment.
    pub segment_blocks: u32,
    /// Erase blocks of the mail log ring (0: no log kept on flash; otherwise at least 2, so
    /// that erasing the oldest block never takes the newest lines with it).
    pub log_blocks: u32,
}

impl SpoolGeometry {
    /// A reasonable split for a device: 64 KiB config slots, 1/16 of the device per directory
    /// slot, segments of about 1 MiB (at least 8 segments).
    pub fn for_flash(flash: FlashGeometry) -> SpoolGeometry {
        let eb = flash.erase_size;
        let blocks = flash.blocks();
        let config_slot_blocks = (65536 / eb).max(1);
        let directory_slot_blocks = (blocks / 16).max(1);
        let rest = blocks.saturating_sub(1 + 2 * config_slot_blocks + 2 * directory_slot_blocks);
        // The mail log: 1/64 of the device, at least two blocks (4 MiB of a 256 MiB flash).
        let log_blocks = (blocks / 64).max(2).min(rest / 4);
        let log_blocks = if log_blocks >= 2 { log_blocks } else { 0 };
        let rest = rest.saturating_sub(log_blocks);
        let segment_blocks = ((1 << 20) / eb).clamp(1, (rest / 8).max(1));
        SpoolGeometry {
            config_slot_blocks,
            directory_slot_blocks,
            segment_blocks,
            log_blocks,
        }
    }
}

/// The superblock: where each region starts, written once by `format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Layout {
    /// Random, per format: keys every CRC on this flash.
    pub nonce: u64,
    pub erase_size: u32,
    pub blocks: u32,
    pub config_start: u32,
    pub config_slot_blocks: u32,
    pub directory_start: u32,
    pub directory_slot_blocks: u32,
    pub spool_start: u32,
    pub segment_blocks: u32,
    pub segments: u32,
    /// The mail log ring (version 2); no blocks in a version 1 layout.
    pub log_start: u32,
    pub log_blocks: u32,
    /// The format version the superblock was read with (for `flash info`); not in its body.
    #[serde(skip)]
    pub version: u32,
}

/// The superblock body of format version 1: no mail log region.
#[derive(Deserialize)]
struct LayoutV1 {
    nonce: u64,
    erase_size: u32,
    blocks: u32,
    config_start: u32,
    config_slot_blocks: u32,
    directory_start: u32,
    directory_slot_blocks: u32,
    spool_start: u32,
    segment_blocks: u32,
    segments: u32,
}

/// The fewest segments a spool can work with: the ring, a compaction reserve and a delivery
/// reserve.
pub(crate) const MIN_SEGMENTS: u32 = 4;

impl Layout {
    pub fn new(flash: FlashGeometry, g: SpoolGeometry, nonce: u64) -> Result<Layout, SpoolError> {
        if g.log_blocks == 1 {
            return Err(SpoolError::BadGeometry(
                "the mail log needs 0 or at least 2 erase blocks".into(),
            ));
        }
        if g.config_slot_blocks == 0 || g.directory_slot_blocks == 0 || g.segment_blocks == 0 {
            return Err(SpoolError::BadGeometry(
                "every region needs at least one erase block".into(),
            ));
        }
        let blocks = flash.blocks();
        if [
            g.config_slot_blocks,
            g.directory_slot_blocks,
            g.segment_blocks,
        ]
        .iter()
        .any(|&b| b > blocks)
        {
            return Err(SpoolError::BadGeometry(format!(
                "a region is larger than the device ({blocks} erase blocks)"
            )));
        }
        let config_start = 1;
        let directory_start = config_start + 2 * g.config_slot_blocks;
        let log_start = directory_start + 2 * g.directory_slot_blocks;
        let spool_start = log_start.saturating_add(g.log_blocks);
        let segments = blocks.saturating_sub(spool_start) / g.segment_blocks;
        if segments < MIN_SEGMENTS {
            return Err(SpoolError::BadGeometry(format!(
                "{blocks} erase blocks leave room for {segments} segments of {} blocks; at least {MIN_SEGMENTS} are needed",
                g.segment_blocks
            )));
        }
        if u64::from(g.segment_blocks) * u64::from(flash.erase_size) > u64::from(u32::MAX / 2) {
            return Err(SpoolError::BadGeometry("segments are too large".into()));
        }
        Ok(Layout {
            nonce,
            erase_size: flash.erase_size,
            blocks,
            config_start,
            config_slot_blocks: g.config_slot_blocks,
            directory_start,
            directory_slot_blocks: g.directory_slot_blocks,
            spool_start,
            segment_blocks: g.segment_blocks,
            segments,
            log_start,
            log_blocks: g.log_blocks,
            version: FORMAT_VERSION,
        })
    }

    /// Flash range of the mail log ring (empty when the layout has none).
    pub fn log_range(&self) -> (u32, u32) {
        let from = self.log_start * self.erase_size;
        (from, from + self.log_blocks * self.erase_size)
    }

    pub fn segment_size(&self) -> u32 {
        self.segment_blocks * self.erase_size
    }

    pub fn segment_addr(&self, segment: u32) -> u32 {
        (self.spool_start + segment * self.segment_blocks) * self.erase_size
    }

    /// The segment holding flash address `addr`.
    pub fn segment_of(&self, addr: u32) -> u32 {
        (addr / self.erase_size - self.spool_start) / self.segment_blocks
    }

    /// Flash range of slot `slot` (0 or 1) of a two-slot region.
    pub fn slot_range(&self, region: super::Region, slot: u32) -> (u32, u32) {
        let (start, blocks) = match region {
            super::Region::Config => (self.config_start, self.config_slot_blocks),
            super::Region::Directory => (self.directory_start, self.directory_slot_blocks),
        };
        let from = (start + slot * blocks) * self.erase_size;
        (from, from + blocks * self.erase_size)
    }

    /// The superblock as written to flash: header then postcard body.
    pub fn encode(&self) -> Result<Vec<u8>, SpoolError> {
        let body = postcard::to_allocvec(self)
            .map_err(|e| SpoolError::BadGeometry(format!("superblock: {e}")))?;
        let mut out = Vec::with_capacity(SUPER_HEADER + body.len());
        out.extend_from_slice(SUPER_MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        let crc = crc32c(&[&out[8..16], &body[..]]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Where the two superblock copies sit in block 0.
    pub fn superblock_offsets(erase_size: u32) -> [u32; 2] {
        [0, erase_size / 2]
    }

    /// Reads a superblock copy. `Ok(None)` if the bytes are erased (no superblock was ever there).
    pub fn decode(bytes: &[u8]) -> Result<Option<Layout>, SpoolError> {
        if bytes.iter().take(SUPER_HEADER).all(|&b| b == 0xFF) {
            return Ok(None);
        }
        let header = bytes
            .get(..SUPER_HEADER)
            .ok_or_else(|| damaged("too short"))?;
        if &header[..8] != SUPER_MAGIC {
            return Err(SpoolError::BadSuperblock(
                "no Postern superblock (the flash holds something else)".into(),
            ));
        }
        let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        let len = u32::from_le_bytes([header[12], header[13], header[14], header[15]]) as usize;
        let crc = u32::from_le_bytes([header[16], header[17], header[18], header[19]]);
        let body = bytes
            .get(SUPER_HEADER..SUPER_HEADER.saturating_add(len))
            .ok_or_else(|| damaged("length out of range"))?;
        if crc32c(&[&header[8..16], body]) != crc {
            return Err(damaged("checksum mismatch"));
        }
        let body_err = |e: postcard::Error| damaged(&format!("body: {e}"));
        let layout = match version {
            1 => {
                let v1: LayoutV1 = postcard::from_bytes(body).map_err(body_err)?;
                Layout {
                    nonce: v1.nonce,
                    erase_size: v1.erase_size,
                    blocks: v1.blocks,
                    config_start: v1.config_start,
                    config_slot_blocks: v1.config_slot_blocks,
                    directory_start: v1.directory_start,
                    directory_slot_blocks: v1.directory_slot_blocks,
                    spool_start: v1.spool_start,
                    segment_blocks: v1.segment_blocks,
                    segments: v1.segments,
                    log_start: v1.spool_start,
                    log_blocks: 0,
                    version: 1,
                }
            }
            FORMAT_VERSION => Layout {
                version: FORMAT_VERSION,
                ..postcard::from_bytes(body).map_err(body_err)?
            },
            v => return Err(SpoolError::UnsupportedVersion(v)),
        };
        Ok(Some(layout))
    }
}

fn damaged(why: &str) -> SpoolError {
    SpoolError::BadSuperblock(format!("superblock damaged: {why}"))
}

/// Segment header: part A (written right after the erase: magic, erase count) and part B (written
/// when the segment is taken into use: sequence number, highest queue id so far). Records follow.
pub(crate) const SEG_A: usize = 16;
pub(crate) const SEG_B: usize = 24;
pub(crate) const SEG_HEADER: u32 = (SEG_A + SEG_B) as u32;
const SEG_MAGIC: u32 = 0x5347_4531; // "1EGS"

pub(crate) fn encode_seg_a(nonce: u64, segment: u32, erase_count: u32) -> [u8; SEG_A] {
    let mut a = [0xFFu8; SEG_A];
    a[0..4].copy_from_slice(&SEG_MAGIC.to_le_bytes());
    a[4..8].copy_from_slice(&erase_count.to_le_bytes());
    let crc = keyed_crc(nonce, &[&segment.to_le_bytes(), &a[0..12]]);
    a[12..16].copy_from_slice(&crc.to_le_bytes());
    a
}

/// The erase count in a valid part A, or `None`.
pub(crate) fn decode_seg_a(nonce: u64, segment: u32, a: &[u8]) -> Option<u32> {
    let a = a.get(..SEG_A)?;
    if le32(&a[0..4]) != SEG_MAGIC {
        return None;
    }
    (keyed_crc(nonce, &[&segment.to_le_bytes(), &a[0..12]]) == le32(&a[12..16]))
        .then(|| le32(&a[4..8]))
}

/// What part A of a segment header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SegA {
    /// Sound: the erase count.
    Sound(u32),
    /// One bit off a sound part A (decay, even in the magic): the segment counts, and this is its
    /// erase count. A part A can only be made good by erasing the segment.
    Repaired(u32),
    /// Magic intact, rest damaged (decay): the segment counts, its erase count is lost.
    Damaged,
    /// Erased.
    Absent,
    /// Magic cleared (compaction marks a segment dead before erasing it) or unreadable.
    Dead,
}

pub(crate) fn classify_seg_a(nonce: u64, segment: u32, a: &[u8]) -> SegA {
    let Some(a) = a.get(..SEG_A) else {
        return SegA::Dead;
    };
    if let Some(count) = decode_seg_a(nonce, segment, a) {
        return SegA::Sound(count);
    }
    // A decayed magic must not pass for the dead mark (all zeroes, many bits away), or a whole
    // segment of acknowledged mail would be taken for garbage.
    let mut fixed = [0u8; SEG_A];
    fixed.copy_from_slice(a);
    for bit in 0..SEG_A * 8 {
        fixed[bit / 8] ^= 1 << (bit % 8);
        if let Some(count) = decode_seg_a(nonce, segment, &fixed) {
            return SegA::Repaired(count);
        }
        fixed[bit / 8] ^= 1 << (bit % 8);
    }
    if a.iter().all(|&b| b == 0xFF) {
        SegA::Absent
    } else if le32(&a[0..4]) == SEG_MAGIC {
        SegA::Damaged
    } else {
        SegA::Dead
    }
}

pub(crate) fn encode_seg_b(nonce: u64, segment: u32, seq: u64, qid_floor: u64) -> [u8; SEG_B] {
    let mut b = [0xFFu8; SEG_B];
    b[0..8].copy_from_slice(&seq.to_le_bytes());
    b[8..16].copy_from_slice(&qid_floor.to_le_bytes());
    let crc = keyed_crc(nonce, &[&segment.to_le_bytes(), &b[0..20]]);
    b[20..24].copy_from_slice(&crc.to_le_bytes());
    b
}

/// `(seq, qid_floor)` from a valid part B, or `None`.
pub(crate) fn decode_seg_b(nonce: u64, segment: u32, b: &[u8]) -> Option<(u64, u64)> {
    let b = b.get(..SEG_B)?;
    (keyed_crc(nonce, &[&segment.to_le_bytes(), &b[0..20]]) == le32(&b[20..24]))
        .then(|| (le64(&b[0..8]), le64(&b[8..16])))
}

pub(crate) fn le32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

pub(crate) fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

pub(crate) fn align4(n: u32) -> u32 {
    (n + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        let flash = FlashGeometry::new(4096, 4096 * 64).unwrap();
        let g = SpoolGeometry {
            config_slot_blocks: 1,
            directory_slot_blocks: 2,
            segment_blocks: 4,
            log_blocks: 0,
        };
        Layout::new(flash, g, 42).unwrap()
    }

    /// A version-1 superblock as the firmware before the mail log wrote it.
    fn encode_v1(l: &Layout) -> Vec<u8> {
        let body = postcard::to_allocvec(&(
            l.nonce,
            l.erase_size,
            l.blocks,
            l.config_start,
            l.config_slot_blocks,
            l.directory_start,
            l.directory_slot_blocks,
            l.spool_start,
            l.segment_blocks,
            l.segments,
        ))
        .unwrap();
        let mut out = SUPER_MAGIC.to_vec();
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        let crc = crc32c(&[&out[8..16], &body[..]]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn a_version_1_superblock_loads_without_a_mail_log() {
        let l = layout();
        let read = Layout::decode(&encode_v1(&l)).unwrap();
        // `flash info` names the version the flash was read with, not the one this code writes.
        assert_eq!(read, Some(Layout { version: 1, ..l }));
        assert_eq!(l.log_range().0, l.log_range().1);
        assert_eq!(
            Layout::decode(&l.encode().unwrap())
                .unwrap()
                .map(|r| r.version),
            Some(FORMAT_VERSION)
        );
    }

    #[test]
    fn the_mail_log_sits_between_directory_and_spool() {
        let flash = FlashGeometry::new(4096, 4096 * 64).unwrap();
        let g = SpoolGeometry {
            config_slot_blocks: 1,
            directory_slot_blocks: 2,
            segment_blocks: 4,
            log_blocks: 3,
        };
        let l = Layout::new(flash, g, 42).unwrap();
        assert_eq!((l.log_start, l.spool_start), (7, 10));
        assert_eq!(l.log_range(), (7 * 4096, 10 * 4096));
        assert_eq!(Layout::decode(&l.encode().unwrap()).unwrap(), Some(l));
        let one = SpoolGeometry { log_blocks: 1, ..g };
        assert!(Layout::new(flash, one, 42).is_err());
        let auto = SpoolGeometry::for_flash(FlashGeometry::new(65536, 256 << 20).unwrap());
        assert_eq!(auto.log_blocks, 64, "4 MiB of a 256 MiB flash");
    }

    #[test]
    fn superblock_round_trips_and_damage_is_reported() {
        let l = layout();
        assert_eq!(l.spool_start, 7);
        assert_eq!(l.segments, (64 - 7) / 4);
        let bytes = l.encode().unwrap();
        assert_eq!(Layout::decode(&bytes).unwrap(), Some(l));
        assert_eq!(Layout::decode(&[0xFF; 64]).unwrap(), None);
        let mut bad = bytes.clone();
        bad[25] ^= 1;
        assert!(matches!(
            Layout::decode(&bad),
            Err(SpoolError::BadSuperblock(_))
        ));
        let mut other = bytes.clone();
        other[0] = b'X';
        assert!(matches!(
            Layout::decode(&other),
            Err(SpoolError::BadSuperblock(_))
        ));
    }

    #[test]
    fn unknown_version_is_reported_as_such() {
        let mut bytes = layout().encode().unwrap();
        bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
        let crc = crc32c(&[&bytes[8..16], &bytes[20..]]);
        bytes[16..20].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            Layout::decode(&bytes),
            Err(SpoolError::UnsupportedVersion(7))
        ));
    }

    #[test]
    fn segment_headers_check_their_crc_and_segment() {
        let a = encode_seg_a(9, 3, 17);
        assert_eq!(decode_seg_a(9, 3, &a), Some(17));
        assert_eq!(
            decode_seg_a(9, 4, &a),
            None,
            "a header belongs to its segment"
        );
        assert_eq!(decode_seg_a(8, 3, &a), None, "and to its spool");
        for bit in 0..SEG_A * 8 {
            let mut bad = a;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(classify_seg_a(9, 3, &bad), SegA::Repaired(17), "bit {bit}");
        }
        let mut dead = a;
        dead[..4].fill(0);
        assert_eq!(classify_seg_a(9, 3, &dead), SegA::Dead, "the dead mark");
        let b = encode_seg_b(9, 3, 100, 55);
        assert_eq!(decode_seg_b(9, 3, &b), Some((100, 55)));
        assert_eq!(decode_seg_b(9, 3, &[0xFF; SEG_B]), None);
    }

    #[test]
    fn too_small_a_flash_is_refused() {
        let flash = FlashGeometry::new(4096, 4096 * 8).unwrap();
        let g = SpoolGeometry {
            config_slot_blocks: 1,
            directory_slot_blocks: 1,
            segment_blocks: 2,
            log_blocks: 0,
        };
        assert!(matches!(
            Layout::new(flash, g, 0),
            Err(SpoolError::BadGeometry(_))
        ));
    }
}
