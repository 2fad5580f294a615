//! The mail log kept on flash: a ring of erase blocks in the layout's mail log region, so that
//! `postern log` and `postern track` work on a box with no disk and after a reboot or a kill -9.
//!
//! ```text
//! block:  | magic u32 | seq u32 | first line u64 | crc u32 | entries ... (erased tail: 0xFF)
//! entry:  | len u32 | line u64 | crc u32 | text, padded to 4 |
//! ```
//!
//! Lines are appended to the newest block; when it is full the oldest block is erased and
//! becomes the newest, so the ring always holds the newest lines and loses the oldest block's.
//! Every header and entry has a CRC keyed with the spool's nonce. At open the newest sound block
//! is found by its sequence number and its entries are read up to the first erased or torn one:
//! a line torn by a power cut is dropped, and writing goes on in the next block. Lines are not
//! synced on their own; the spool's next sync (any commit) makes them durable.

use hal::flash::Flash;

use super::SpoolError;
use super::format::{align4, keyed_crc, le32, le64};
use super::store::Spool;

const BLOCK_MAGIC: u32 = 0x474c_4d50; // "PMLG"
const BLOCK_HEADER: u32 = 20;
const ENTRY_HEADER: u32 = 16;
const ERASED: u32 = u32::MAX;

/// Mail log lines with their numbers, oldest first.
pub type LogLines = Vec<(u64, String)>;

/// Where the ring writes next.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LogRing {
    /// The newest block (index in the region) and its sequence number, if any was written.
    head: Option<(u32, u32)>,
    /// Offset in the head block where the next entry goes.
    pos: u32,
    /// The number of the next line (1 for the first line ever).
    next_line: u64,
}

impl LogRing {
    /// Bytes of the region in use: the full blocks behind the head, and the head up to `pos`.
    pub(crate) fn used(&self, blocks: u32, block_size: u32) -> u64 {
        match self.head {
            None => 0,
            Some((_, seq)) => {
                let full = u64::from(seq.min(blocks).saturating_sub(1));
                full * u64::from(block_size) + u64::from(self.pos)
            }
        }
    }
}

fn header_crc(nonce: u64, block: u32, h: &[u8]) -> u32 {
    keyed_crc(nonce, &[b"log-block", &block.to_le_bytes(), &h[..16]])
}

fn entry_crc(nonce: u64, h: &[u8], text: &[u8]) -> u32 {
    keyed_crc(nonce, &[b"log-line", &h[..12], text])
}

impl<F: Flash> Spool<F> {
    fn log_block_size(&self) -> u32 {
        self.layout.erase_size
    }

    fn log_block_addr(&self, block: u32) -> u32 {
        self.layout.log_range().0 + block * self.log_block_size()
    }

    /// A block's sequence number and first line, if its header is sound.
    fn log_block_header(&mut self, block: u32) -> Result<Option<(u32, u64)>, SpoolError> {
        let mut h = [0u8; BLOCK_HEADER as usize];
        self.flash.read(self.log_block_addr(block), &mut h)?;
        if le32(&h[0..4]) != BLOCK_MAGIC
            || header_crc(self.layout.nonce, block, &h) != le32(&h[16..20])
        {
            return Ok(None);
        }
        Ok(Some((le32(&h[4..8]), le64(&h[8..16]))))
    }

    /// The sound entries of a block in order, and the offset after the last one; `None` as the
    /// offset when the block ends in a torn entry (nothing more may be written there).
    fn log_block_entries(&mut self, block: u32) -> Result<(LogLines, Option<u32>), SpoolError> {
        let size = self.log_block_size();
        let mut data = vec![0u8; size as usize];
        self.flash.read(self.log_block_addr(block), &mut data)?;
        let mut out = Vec::new();
        let mut pos = BLOCK_HEADER;
        while pos + ENTRY_HEADER <= size {
            let h = &data[pos as usize..(pos + ENTRY_HEADER) as usize];
            let len = le32(&h[0..4]);
            if len == ERASED {
                return Ok((out, Some(pos)));
            }
            let end = pos + ENTRY_HEADER + len;
            if len > size || end > size {
                return Ok((out, None));
            }
            let text = &data[(pos + ENTRY_HEADER) as usize..end as usize];
            if entry_crc(self.layout.nonce, h, text) != le32(&h[12..16]) {
                return Ok((out, None));
            }
            out.push((le64(&h[4..12]), String::from_utf8_lossy(text).into_owned()));
            pos = align4(end);
        }
        Ok((out, Some(pos.min(size))))
    }

    /// Finds where the ring goes on (done at open).
    pub(crate) fn open_log(&mut self) -> Result<(), SpoolError> {
        let mut newest: Option<(u32, u32, u64)> = None;
        for b in 0..self.layout.log_blocks {
            if let Some((seq, first)) = self.log_block_header(b)?
                && newest.is_none_or(|(_, s, _)| seq > s)
            {
                newest = Some((b, seq, first));
            }
        }
        self.ring = match newest {
            None => LogRing {
                head: None,
                pos: 0,
                next_line: 1,
            },
            Some((b, seq, first)) => {
                let (entries, pos) = self.log_block_entries(b)?;
                let next_line = entries.last().map_or(first, |(l, _)| l + 1);
                LogRing {
                    head: Some((b, seq)),
                    pos: pos.unwrap_or(self.log_block_size()),
                    next_line,
                }
            }
        };
        Ok(())
    }

    /// Appends one line (cut to what a block holds). No log region: the line is not kept.
    pub fn log_append(&mut self, text: &str) -> Result<(), SpoolError> {
        if self.layout.log_blocks < 2 {
            return Ok(());
        }
        let size = self.log_block_size();
        let max = (size - BLOCK_HEADER - ENTRY_HEADER) as usize;
        let mut cut = text.len().min(max);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let text = &text.as_bytes()[..cut];
        let need = align4(ENTRY_HEADER + text.len() as u32);
        if self.ring.head.is_none() || self.ring.pos + need > size {
            self.log_next_block()?;
        }
        let Some((block, _)) = self.ring.head else {
            return Ok(());
        };
        // In the records' buffer: a busy relay keeps several lines per message.
        let mut entry = std::mem::take(&mut self.scratch);
        entry.clear();
        entry.reserve(need as usize);
        entry.extend_from_slice(&(text.len() as u32).to_le_bytes());
        entry.extend_from_slice(&self.ring.next_line.to_le_bytes());
        let crc = entry_crc(self.layout.nonce, &entry, text);
        entry.extend_from_slice(&crc.to_le_bytes());
        entry.extend_from_slice(text);
        // The pad as the erased bytes it is: the next line continues this one (one system call).
        entry.resize(need as usize, 0xFF);
        let at = self.log_block_addr(block) + self.ring.pos;
        let written = self.flash.write(at, &entry);
        self.scratch = entry;
        written?;
        self.ring.pos += need;
        self.ring.next_line += 1;
        Ok(())
    }

    /// Erases the oldest block and makes it the newest.
    fn log_next_block(&mut self) -> Result<(), SpoolError> {
        let (block, seq) = match self.ring.head {
            None => (0, 1),
            Some((b, s)) => ((b + 1) % self.layout.log_blocks, s.wrapping_add(1)),
        };
        let at = self.log_block_addr(block);
        self.flash.erase(at, at + self.log_block_size())?;
        let mut h = Vec::with_capacity(BLOCK_HEADER as usize);
        h.extend_from_slice(&BLOCK_MAGIC.to_le_bytes());
        h.extend_from_slice(&seq.to_le_bytes());
        h.extend_from_slice(&self.ring.next_line.to_le_bytes());
        let crc = header_crc(self.layout.nonce, block, &h);
        h.extend_from_slice(&crc.to_le_bytes());
        self.flash.write(at, &h)?;
        self.ring.head = Some((block, seq));
        self.ring.pos = BLOCK_HEADER;
        Ok(())
    }

    /// The kept lines numbered above `after`, oldest first, at most `limit` of the newest.
    pub fn log_read(&mut self, after: u64, limit: usize) -> Result<LogLines, SpoolError> {
        let mut blocks = Vec::new();
        for b in 0..self.layout.log_blocks {
            if let Some((seq, first)) = self.log_block_header(b)? {
                blocks.push((seq, b, first));
            }
        }
        // Oldest first; sequence numbers only wrap after 2^32 blocks.
        blocks.sort_unstable();
        let mut out = Vec::new();
        for (i, &(_, b, _)) in blocks.iter().enumerate() {
            // A block whose successor starts at or below `after + 1` has nothing new: --follow
            // reads only the head, not the whole region, each time it asks.
            if blocks
                .get(i + 1)
                .is_some_and(|&(_, _, next)| next <= after + 1)
            {
                continue;
            }
            let (entries, _) = self.log_block_entries(b)?;
            out.extend(entries.into_iter().filter(|(l, _)| *l > after));
        }
        out.sort_by_key(|(l, _)| *l);
        out.dedup_by_key(|(l, _)| *l);
        let skip = out.len().saturating_sub(limit);
        Ok(out.split_off(skip))
    }

    /// Whether this flash keeps a mail log (formatted with a mail log region).
    pub fn has_log(&self) -> bool {
        self.layout.log_blocks >= 2
    }
}

#[cfg(test)]
mod tests {
    use hal::flash::{FlashGeometry, RamFlash};

    use crate::spool::{Spool, SpoolGeometry, SpoolSettings};

    fn spool(log_blocks: u32) -> Spool<RamFlash> {
        let mut flash = RamFlash::new(FlashGeometry::new(512, 512 * 48).unwrap());
        let g = SpoolGeometry {
            config_slot_blocks: 1,
            directory_slot_blocks: 1,
            segment_blocks: 2,
            log_blocks,
        };
        Spool::format(&mut flash, g).unwrap();
        Spool::open(flash, SpoolSettings::default()).unwrap().0
    }

    fn reopen(s: Spool<RamFlash>) -> Spool<RamFlash> {
        Spool::open(s.into_flash(), SpoolSettings::default())
            .unwrap()
            .0
    }

    fn line(n: u64) -> String {
        format!("Dec  1 10:00:00 mx postern/qmgr[1]: 4Q{n:06}: line number {n}")
    }

    #[test]
    fn wrapping_keeps_the_newest_lines_in_order_across_reopens() {
        let mut s = spool(3);
        for n in 1..=200 {
            s.log_append(&line(n)).unwrap();
            if n % 50 == 0 {
                s = reopen(s);
            }
        }
        let kept = s.log_read(0, usize::MAX).unwrap();
        let numbers: Vec<u64> = kept.iter().map(|(l, _)| *l).collect();
        // Three 512-byte blocks hold a little under 20 lines of this length.
        assert!(numbers.len() >= 10 && numbers.len() < 20, "{numbers:?}");
        assert_eq!(*numbers.last().unwrap(), 200, "the newest line is kept");
        assert!(
            numbers.windows(2).all(|w| w[1] == w[0] + 1),
            "no gaps: {numbers:?}"
        );
        for (l, text) in &kept {
            assert_eq!(text, &line(*l));
        }
        assert_eq!(s.log_read(198, 10).unwrap().len(), 2);
        assert_eq!(s.log_read(0, 3).unwrap()[0].0, 198, "the newest of a limit");
    }

    #[test]
    fn a_torn_line_is_dropped_and_writing_goes_on() {
        let mut s = spool(2);
        s.log_append(&line(1)).unwrap();
        s.log_append(&line(2)).unwrap();
        // A power cut in the middle of line 2: one bit of its text never made it.
        let (from, _) = s.layout.log_range();
        let mut flash = s.into_flash();
        let at = from + 20 + super::align4(16 + line(1).len() as u32) + 30;
        flash.flip_bit(at, 3);
        let mut s = Spool::open(flash, SpoolSettings::default()).unwrap().0;
        s.log_append(&line(3)).unwrap();
        let kept: Vec<u64> = s.log_read(0, 10).unwrap().iter().map(|(l, _)| *l).collect();
        assert_eq!(
            kept,
            [1, 2],
            "line 2 torn; line 3 got number 2 in the next block"
        );
        let texts = s.log_read(0, 10).unwrap();
        assert_eq!(texts[1].1, line(3));
    }

    #[test]
    fn long_lines_are_cut_and_a_flash_without_a_log_keeps_none() {
        let mut s = spool(2);
        s.log_append(&"é".repeat(400)).unwrap();
        let kept = s.log_read(0, 10).unwrap();
        assert!(kept[0].1.len() <= 512 - 36 && kept[0].1.starts_with('é'));
        let mut none = spool(0);
        assert!(!none.has_log());
        none.log_append("x").unwrap();
        assert!(none.log_read(0, 10).unwrap().is_empty());
    }
}
