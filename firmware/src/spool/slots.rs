//! The config and directory regions: two slots each, written alternately. The newest slot whose
//! CRC holds wins, so a write torn by a power cut leaves the previous contents in force.
//!
//! ```text
//! | magic u32 | seq u64 | len u32 | crc u32 | data ... | journal record | journal record | ...
//! journal record: | magic u32 | seq u64 | index u32 | len u32 | crc u32 | data ... |
//! ```
//!
//! A slot's data may be followed by journal records appended later into its erased tail (the
//! directory's small changes: rewriting a 13 MiB slot for a poll's 100 changes costs most of a
//! second). Each record carries the slot's seq and its own index under its CRC, so records are
//! read in order up to the first that is not sound; one torn by a power cut ends the journal
//! there and the changes before it stand. Nothing is ever appended after bytes that are not
//! erased: past a torn record the slot takes no more appends, and the next write is a whole one
//! into the other slot.

use std::fmt;

use hal::crc32c::Crc32c;
use hal::flash::Flash;

use super::format::{le32, le64};
use super::store::Spool;
use super::{Region, SpoolError};

const SLOT_MAGIC: u32 = 0x3154_4c53; // "SLT1"
pub(crate) const SLOT_HEADER: usize = 20;

const JOURNAL_MAGIC: u32 = 0x314a_4c53; // "SLJ1"
pub(crate) const JOURNAL_HEADER: usize = 24;
/// Journal bytes a slot takes beyond its data's quarter: then the next write is a whole one,
/// so reading a slot back never replays much more than it reads anyway.
const JOURNAL_EXTRA: usize = 256 << 10;

/// The newest valid slot of a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Newest {
    pub slot: u32,
    pub seq: u64,
    pub len: u32,
    /// Journal records after the data, and their bytes (headers included).
    pub records: u32,
    pub journal_len: u32,
    /// Whether the bytes after the last record were erased when read: only then may more go
    /// there.
    pub open: bool,
}

/// A slot's data and the journal records after it, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Journaled {
    pub data: Vec<u8>,
    pub journal: Vec<Vec<u8>>,
}

/// Why an append was not made (nothing was written; write the whole data instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendRefused {
    /// Nothing was ever written to the region.
    Empty,
    /// The slot's tail is not erased (a torn record, or bytes written by something else).
    Closed,
    /// The journal would outgrow its share of the slot.
    Full,
}

impl std::fmt::Display for AppendRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AppendRefused::Empty => "the region holds nothing to append to",
            AppendRefused::Closed => "the slot's tail is not erased",
            AppendRefused::Full => "the slot's journal is full",
        })
    }
}

/// The journal bytes a slot of `capacity` data bytes holding `len` takes before a whole write.
fn journal_limit(len: usize, capacity: usize) -> usize {
    (len / 4 + JOURNAL_EXTRA).min(capacity.saturating_sub(len))
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

/// Slot headers and journal records are framed alike: their fields, then a CRC over where they
/// sit (`place`: the region, and a tag for a journal record), the slot, the fields and the data.
fn frame_crc(nonce: u64, place: &[u8], slot: u32, fields: &[u8], data: &[u8]) -> u32 {
    let mut crc = frame_crc_before_data(nonce, place, slot, fields);
    crc.update(data);
    crc.finalize()
}

/// [`frame_crc`] up to the data, for data given in parts: the same CRC once they are added.
fn frame_crc_before_data(nonce: u64, place: &[u8], slot: u32, fields: &[u8]) -> Crc32c {
    let mut crc = Crc32c::new();
    for part in [&nonce.to_le_bytes()[..], place, &slot.to_le_bytes(), fields] {
        crc.update(part);
    }
    crc
}

/// The fields, their CRC, then the data.
fn frame(nonce: u64, place: &[u8], slot: u32, fields: &[u8], data: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(fields.len() + 4 + data.len());
    bytes.extend_from_slice(fields);
    bytes.extend_from_slice(&frame_crc(nonce, place, slot, fields, data).to_le_bytes());
    bytes.extend_from_slice(data);
    bytes
}

/// Whether `header` (`fields` bytes of fields, then the CRC) vouches for `data`.
fn frame_ok(
    nonce: u64,
    place: &[u8],
    slot: u32,
    header: &[u8],
    fields: usize,
    data: &[u8],
) -> bool {
    header.len() >= fields + 4
        && frame_crc(nonce, place, slot, &header[..fields], data)
            == le32(&header[fields..fields + 4])
}

fn journal_place(region: Region) -> [u8; 2] {
    [region_id(region), 0x4a]
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
    frame_ok(
        nonce,
        &[region_id(region)],
        slot,
        header,
        SLOT_HEADER - 4,
        data,
    )
}

/// A journal record's data length, if `header` is record `index` of the slot written with
/// `seq` and its data fits in `room` bytes.
pub(crate) fn decode_journal_header(
    header: &[u8],
    seq: u64,
    index: u32,
    room: usize,
) -> Option<usize> {
    let header = header.get(..JOURNAL_HEADER)?;
    let len = le32(&header[16..20]) as usize;
    (le32(&header[0..4]) == JOURNAL_MAGIC
        && le64(&header[4..12]) == seq
        && le32(&header[12..16]) == index
        && len <= room.saturating_sub(JOURNAL_HEADER))
    .then_some(len)
}

/// Whether `data` is what the journal record's header says was written there.
pub(crate) fn journal_data_ok(
    nonce: u64,
    region: Region,
    slot: u32,
    header: &[u8],
    data: &[u8],
) -> bool {
    frame_ok(
        nonce,
        &journal_place(region),
        slot,
        header,
        JOURNAL_HEADER - 4,
        data,
    )
}

/// A journal record as appended: header then data.
pub(crate) fn encode_journal(
    nonce: u64,
    region: Region,
    slot: u32,
    seq: u64,
    index: u32,
    data: &[u8],
) -> Vec<u8> {
    let mut fields = [0u8; JOURNAL_HEADER - 4];
    fields[0..4].copy_from_slice(&JOURNAL_MAGIC.to_le_bytes());
    fields[4..12].copy_from_slice(&seq.to_le_bytes());
    fields[12..16].copy_from_slice(&index.to_le_bytes());
    fields[16..20].copy_from_slice(&(data.len() as u32).to_le_bytes());
    frame(nonce, &journal_place(region), slot, &fields, data)
}

/// A slot as written: header then data.
pub(crate) fn encode_slot(nonce: u64, region: Region, slot: u32, seq: u64, data: &[u8]) -> Vec<u8> {
    let mut bytes = slot_header(nonce, region, slot, seq, data).to_vec();
    bytes.extend_from_slice(data);
    bytes
}

/// A slot header's fields before its CRC: magic, sequence number, data length.
fn slot_fields(seq: u64, len: usize) -> [u8; 16] {
    let mut fields = [0u8; 16];
    fields[0..4].copy_from_slice(&SLOT_MAGIC.to_le_bytes());
    fields[4..12].copy_from_slice(&seq.to_le_bytes());
    fields[12..16].copy_from_slice(&(len as u32).to_le_bytes());
    fields
}

/// What [`encode_slot`] puts before the data: written apart from it, so a snapshot of many
/// megabytes is not copied once more to be framed.
fn slot_header(nonce: u64, region: Region, slot: u32, seq: u64, data: &[u8]) -> [u8; SLOT_HEADER] {
    let mut header = [0u8; SLOT_HEADER];
    header[..16].copy_from_slice(&slot_fields(seq, data.len()));
    let crc = frame_crc(nonce, &[region_id(region)], slot, &header[..16], data);
    header[16..20].copy_from_slice(&crc.to_le_bytes());
    header
}

fn view_index(region: Region) -> usize {
    match region {
        Region::Config => 0,
        Region::Directory => 1,
    }
}

/// A slot being written in parts ([`Spool::begin_slot`]).
pub struct SlotWriting {
    region: Region,
    slot: u32,
    seq: u64,
    from: u32,
    len: usize,
    written: usize,
    /// Magic, sequence number and length: the header before its CRC.
    fields: [u8; 16],
    crc: Crc32c,
}

impl SlotWriting {
    pub fn region(&self) -> Region {
        self.region
    }
}

impl fmt::Debug for SlotWriting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlotWriting")
            .field("region", &self.region)
            .field("slot", &self.slot)
            .field("seq", &self.seq)
            .field("len", &self.len)
            .field("written", &self.written)
            .finish()
    }
}

/// What [`walk_journal`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Walked {
    pub records: Vec<Vec<u8>>,
    /// Bytes the sound records take.
    pub len: usize,
    /// Whether what follows them is erased (or there is no room left).
    pub open: bool,
}

/// Reads journal records from the `room` bytes after a slot's data (`read(offset, buf)` reads
/// from there), in order, up to the first that is not sound. Flash is outside input: nothing
/// is trusted before its header and CRC are checked, and nothing is read past `room`.
pub(crate) fn walk_journal<E>(
    seq: u64,
    room: usize,
    mut read: impl FnMut(usize, &mut [u8]) -> Result<(), E>,
    crc_ok: impl Fn(&[u8], &[u8]) -> bool,
) -> Result<Walked, E> {
    let (mut at, mut records) = (0usize, Vec::new());
    let open = loop {
        let left = room - at;
        let mut header = [0u8; JOURNAL_HEADER];
        let head = left.min(JOURNAL_HEADER);
        read(at, &mut header[..head])?;
        if header[..head].iter().all(|&b| b == 0xFF) {
            break true;
        }
        let Some(n) = decode_journal_header(&header, seq, records.len() as u32, left) else {
            break false;
        };
        let mut data = vec![0u8; n];
        read(at + JOURNAL_HEADER, &mut data)?;
        if !crc_ok(&header, &data) {
            break false;
        }
        records.push(data);
        at += JOURNAL_HEADER + n;
    };
    Ok(Walked {
        records,
        len: at,
        open,
    })
}

/// One slot as read: its seq, data and journal.
struct SlotRead {
    seq: u64,
    read: Journaled,
    journal_len: u32,
    open: bool,
}

impl SlotRead {
    fn newest(&self, slot: u32) -> Newest {
        Newest {
            slot,
            seq: self.seq,
            len: self.read.data.len() as u32,
            records: self.read.journal.len() as u32,
            journal_len: self.journal_len,
            open: self.open,
        }
    }
}

impl<F: Flash> Spool<F> {
    /// Reads one slot: its sequence number, data and journal, if the slot holds a sound write.
    fn read_one_slot(&mut self, region: Region, slot: u32) -> Result<Option<SlotRead>, SpoolError> {
        let (from, to) = self.layout.slot_range(region, slot);
        let mut header = [0u8; SLOT_HEADER];
        self.flash.read(from, &mut header)?;
        let capacity = ((to - from) as usize).saturating_sub(SLOT_HEADER);
        let Some((seq, len)) = decode_slot_header(&header, capacity) else {
            return Ok(None);
        };
        let mut data = vec![0u8; len];
        self.flash.read(from + SLOT_HEADER as u32, &mut data)?;
        if !slot_data_ok(self.layout.nonce, region, slot, &header, &data) {
            return Ok(None);
        }
        let limit = journal_limit(len, capacity);
        let start = from + (SLOT_HEADER + len) as u32;
        let room = limit.min((to - start) as usize);
        let flash = &mut self.flash;
        let nonce = self.layout.nonce;
        let walked = walk_journal(
            seq,
            room,
            |at, buf| flash.read(start + at as u32, buf),
            |header, data| journal_data_ok(nonce, region, slot, header, data),
        )?;
        Ok(Some(SlotRead {
            seq,
            read: Journaled {
                data,
                journal: walked.records,
            },
            journal_len: walked.len as u32,
            open: walked.open,
        }))
    }

    /// The newest sound slot of a region, read.
    fn read_newest(&mut self, region: Region) -> Result<Option<(u32, SlotRead)>, SpoolError> {
        let mut best: Option<(u32, SlotRead)> = None;
        for slot in 0..2 {
            if let Some(r) = self.read_one_slot(region, slot)?
                && best.as_ref().is_none_or(|(_, b)| r.seq > b.seq)
            {
                best = Some((slot, r));
            }
        }
        Ok(best)
    }

    /// Finds the newest sound slot of a region (done at open).
    pub(crate) fn scan_slots(&mut self, region: Region) -> Result<SlotView, SpoolError> {
        Ok(SlotView {
            newest: self.read_newest(region)?.map(|(slot, r)| r.newest(slot)),
        })
    }

    /// The newest data written to a region, or `None` if nothing sound was ever written. A
    /// region that takes appends is read with [`Spool::read_slot_journaled`]; this refuses one
    /// whose slot holds journal records, as its data alone is not what was last written.
    pub fn read_slot(&mut self, region: Region) -> Result<Option<Vec<u8>>, SpoolError> {
        match self.read_newest(region)? {
            Some((_, r)) if !r.read.journal.is_empty() => Err(SpoolError::SlotJournaled(region)),
            other => Ok(other.map(|(_, r)| r.read.data)),
        }
    }

    /// The newest data written to a region and the journal records appended after it.
    pub fn read_slot_journaled(&mut self, region: Region) -> Result<Option<Journaled>, SpoolError> {
        Ok(self.read_newest(region)?.map(|(_, r)| r.read))
    }

    /// Writes a region's data into the slot that does not hold the newest, and syncs. Its
    /// journal starts empty.
    pub fn write_slot(&mut self, region: Region, data: &[u8]) -> Result<(), SpoolError> {
        let mut w = self.begin_slot(region, data.len())?;
        self.write_slot_part(&mut w, data)?;
        self.finish_slot(w)
    }

    /// Starts writing `len` bytes of a region's data into the slot that does not hold the
    /// newest (erasing it), to be given in parts: a snapshot is then never whole in RAM. The
    /// slot's header is written last, by [`Spool::finish_slot`]: until then, and if the power
    /// goes, the slot is not sound and the newest data stays in force.
    pub fn begin_slot(&mut self, region: Region, len: usize) -> Result<SlotWriting, SpoolError> {
        self.check_writable()?;
        let (from, to) = self.layout.slot_range(region, 0);
        let capacity = (to - from) as usize - SLOT_HEADER;
        if len > capacity {
            return Err(SpoolError::SlotTooLarge {
                region,
                len,
                capacity,
            });
        }
        let view = self.slots[view_index(region)];
        let slot = view.newest.map_or(0, |n| 1 - n.slot);
        let seq = view.newest.map_or(1, |n| n.seq + 1);
        let (from, to) = self.layout.slot_range(region, slot);
        self.flash.erase(from, to)?;
        self.stats.erases += 1;
        let fields = slot_fields(seq, len);
        // The CRC is `frame_crc`'s, the data added as it is given.
        let crc = frame_crc_before_data(self.layout.nonce, &[region_id(region)], slot, &fields);
        Ok(SlotWriting {
            region,
            slot,
            seq,
            from,
            len,
            written: 0,
            fields,
            crc,
        })
    }

    /// Whether `w` still writes into the slot it began in: not if another write of its region
    /// was finished since (the slot it erased may now hold the newest data).
    fn check_writing(&self, w: &SlotWriting) -> Result<(), SpoolError> {
        let newest = self.slots[view_index(w.region)].newest;
        match newest.map_or(1, |n| n.seq + 1) == w.seq && newest.is_none_or(|n| n.slot != w.slot) {
            true => Ok(()),
            false => Err(SpoolError::SlotWriteBroken(w.region)),
        }
    }

    /// Writes the next part of a slot's data.
    pub fn write_slot_part(&mut self, w: &mut SlotWriting, data: &[u8]) -> Result<(), SpoolError> {
        self.check_writing(w)?;
        if w.written + data.len() > w.len {
            return Err(SpoolError::SlotWriteBroken(w.region));
        }
        let at = w.from + (SLOT_HEADER + w.written) as u32;
        self.flash.write(at, data)?;
        w.crc.update(data);
        w.written += data.len();
        self.stats.bytes_written += data.len() as u64;
        Ok(())
    }

    /// Writes the header of a slot whose data is all written, and syncs: its data is now the
    /// newest.
    pub fn finish_slot(&mut self, w: SlotWriting) -> Result<(), SpoolError> {
        self.check_writing(&w)?;
        if w.written != w.len {
            return Err(SpoolError::SlotWriteBroken(w.region));
        }
        let mut header = [0u8; SLOT_HEADER];
        header[..16].copy_from_slice(&w.fields);
        header[16..20].copy_from_slice(&w.crc.finalize().to_le_bytes());
        self.flash.write(w.from, &header)?;
        self.stats.bytes_written += SLOT_HEADER as u64;
        self.sync_flash()?;
        self.slots[view_index(w.region)].newest = Some(Newest {
            slot: w.slot,
            seq: w.seq,
            len: w.len as u32,
            records: 0,
            journal_len: 0,
            open: true,
        });
        Ok(())
    }

    /// Appends a journal record after the newest slot's data and records, and syncs; `Ok(Err)`
    /// when the slot takes no more (nothing was written: write the whole data instead).
    pub fn append_slot(
        &mut self,
        region: Region,
        data: &[u8],
    ) -> Result<Result<(), AppendRefused>, SpoolError> {
        self.check_writable()?;
        let Some(n) = self.slots[view_index(region)].newest else {
            return Ok(Err(AppendRefused::Empty));
        };
        if !n.open {
            return Ok(Err(AppendRefused::Closed));
        }
        let (from, to) = self.layout.slot_range(region, n.slot);
        let capacity = (to - from) as usize - SLOT_HEADER;
        let used = n.journal_len as usize;
        let want = JOURNAL_HEADER + data.len();
        if used + want > journal_limit(n.len as usize, capacity) {
            return Ok(Err(AppendRefused::Full));
        }
        let at = from + (SLOT_HEADER + n.len as usize + used) as u32;
        // A torn write may have programmed bytes past what the last sound record covers.
        let mut tail = vec![0u8; want];
        self.flash.read(at, &mut tail)?;
        if tail.iter().any(|&b| b != 0xFF) {
            self.set_newest(region, Newest { open: false, ..n });
            return Ok(Err(AppendRefused::Closed));
        }
        let bytes = encode_journal(self.layout.nonce, region, n.slot, n.seq, n.records, data);
        self.flash.write(at, &bytes)?;
        self.stats.bytes_written += bytes.len() as u64;
        if let Err(e) = self.sync_flash() {
            // Whatever reached the flash is not to be appended after.
            self.set_newest(region, Newest { open: false, ..n });
            return Err(e);
        }
        self.set_newest(
            region,
            Newest {
                records: n.records + 1,
                journal_len: (used + want) as u32,
                ..n
            },
        );
        Ok(Ok(()))
    }

    fn set_newest(&mut self, region: Region, newest: Newest) {
        self.slots[view_index(region)].newest = Some(newest);
    }
}
