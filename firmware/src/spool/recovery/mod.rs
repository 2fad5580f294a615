//! Opening a spool: read the superblock, then recover in named steps:
//!
//! 1. [`scan`]: read every segment header: in the log (in which order), free, or to erase.
//! 2. [`gather`]: read the log's records, check every CRC, and gather them per queue id.
//! 3. [`rebuild`]: rebuild the index from what was gathered; report what was lost.
//! 4. repair: write sound copies of the records taken back at the log's end, and read the slots.
//!
//! Damage after the last sound record of the newest segment is taken for a write the power cut
//! tore, except when the record is one bit off: decay in the last commit synced looks just like
//! that, so such a record is taken back as written and a sound copy is written at open. A segment
//! header one bit off still counts, so that decay in its magic cannot pass for the dead mark.

mod borrowed;
mod gather;
mod rebuild;
mod scan;

use hal::flash::Flash;

use crate::mail::QueueId;

use super::format::{Layout, SEG_HEADER, SpoolGeometry};
use super::index::Index;
use super::record::{HEADER, Kind};
use super::slots::SlotView;
use super::store::{Purpose, SegState, Spool, Stats};
use super::{RecoveryReport, Region, SpoolError, SpoolSettings};
use gather::{Gathered, Repaired};
use scan::Segments;

impl<F: Flash> Spool<F> {
    /// Opens a formatted flash: recovery scans the whole spool and rebuilds the index.
    pub fn open(
        mut flash: F,
        settings: SpoolSettings,
    ) -> Result<(Spool<F>, RecoveryReport), SpoolError> {
        let layout = read_superblock(&mut flash)?;
        let settings = fit_settings(settings, &layout);
        let mut report = RecoveryReport::default();
        let mut buf = vec![0u8; layout.segment_size() as usize];
        let mut segments = scan::scan_segments(&mut flash, &layout, &mut buf, &mut report)?;
        let gathered =
            gather::gather_records(&mut flash, &layout, &mut segments, &mut buf, &mut report)?;
        let Gathered {
            seen,
            interned,
            repaired,
            head,
            max_qid,
        } = gathered;
        let (index, recovered) = rebuild::rebuild_index(seen, interned, &mut report);
        summarise(&mut report, &segments, &index, max_qid);
        let mut spool = Spool::recovered(flash, layout, settings, segments, head, max_qid);
        spool.take_index(index);
        spool.recovered = Some(recovered);
        spool.rewrite_repaired(repaired)?;
        spool.slots = [
            spool.scan_slots(Region::Config)?,
            spool.scan_slots(Region::Directory)?,
        ];
        spool.open_log()?;
        Ok((spool, report))
    }

    /// The spool as recovery found it, with an empty index.
    fn recovered(
        flash: F,
        layout: Layout,
        settings: SpoolSettings,
        segments: Segments,
        head: Option<u32>,
        max_qid: u64,
    ) -> Spool<F> {
        Spool {
            flash,
            layout,
            settings,
            next_seq: segments.log.last().map_or(1, |(seq, _)| seq + 1),
            segs: segments.segs,
            head,
            index: Index::default(),
            recovered: None,
            last_qid: max_qid,
            pending: Vec::new(),
            slots: [SlotView::default(); 2],
            stats: Stats::default(),
            failed: false,
            ring: Default::default(),
            scratch: Vec::new(),
        }
    }

    /// Takes the rebuilt index, counting the bytes each segment still holds for it.
    fn take_index(&mut self, index: Index) {
        for e in index.values() {
            for loc in e.locs() {
                self.add_live(loc);
            }
        }
        self.index = index;
    }
}

/// Settings the layout can honour: a chunk fits a segment twice, and at least two segments are
/// held back.
fn fit_settings(mut settings: SpoolSettings, layout: &Layout) -> SpoolSettings {
    let capacity = layout.segment_size() - SEG_HEADER - HEADER - 4;
    settings.chunk_size = settings.chunk_size.clamp(64, (capacity / 2).max(64));
    settings.reserve_segments = settings.reserve_segments.max(2);
    settings
}

/// The totals of the report.
fn summarise(report: &mut RecoveryReport, segments: &Segments, index: &Index, max_qid: u64) {
    report.segments_used = segments.log.len() as u32;
    report.segments_free = segments
        .segs
        .iter()
        .filter(|s| s.state == SegState::Free)
        .count() as u32;
    report.max_qid = (max_qid > 0).then_some(QueueId(max_qid));
    report.messages = index.len();
}

impl<F: Flash> Spool<F> {
    /// Step 4: writes sound copies of the records recovery repaired, and syncs: on flash the originals
    /// still fail their CRC, and compaction and body reads trust only sound records. Copies of
    /// records no message needs any more are not made, except end records, which keep a removed
    /// message removed.
    fn rewrite_repaired(&mut self, repaired: Vec<Repaired>) -> Result<(), SpoolError> {
        let mut wrote = false;
        for (old, h, bytes) in repaired {
            let qid = QueueId(h.qid);
            let live = self
                .index
                .get(&qid)
                .is_some_and(|e| e.locs().any(|l| l.addr == old.addr));
            if !live && h.kind != Kind::End {
                continue;
            }
            let new = self.put(&bytes, h.len, Purpose::Compaction)?;
            wrote = true;
            if live && let Some(mut e) = self.index.get_mut(&qid) {
                e.relocate(old.addr, new);
                self.sub_live(old);
                self.add_live(new);
            }
        }
        if wrote {
            self.sync_flash()?;
        }
        Ok(())
    }
}

fn read_superblock<F: Flash>(flash: &mut F) -> Result<Layout, SpoolError> {
    let fg = flash.geometry();
    let mut block = vec![0u8; fg.erase_size as usize];
    flash.read(0, &mut block)?;
    let [a, b] = Layout::superblock_offsets(fg.erase_size);
    let copies = [
        Layout::decode(&block[a as usize..b as usize]),
        Layout::decode(&block[b as usize..]),
    ];
    let layout = match copies {
        [Ok(Some(l)), _] | [_, Ok(Some(l))] => l,
        [Ok(None), Ok(None)] => return Err(SpoolError::NotFormatted),
        [Err(e @ SpoolError::UnsupportedVersion(_)), _]
        | [_, Err(e @ SpoolError::UnsupportedVersion(_))] => return Err(e),
        [Err(e), _] | [_, Err(e)] => return Err(e),
    };
    // Everything else follows from the geometry: recompute it rather than trust the numbers.
    let again = Layout::new(
        fg,
        SpoolGeometry {
            config_slot_blocks: layout.config_slot_blocks,
            directory_slot_blocks: layout.directory_slot_blocks,
            segment_blocks: layout.segment_blocks,
            log_blocks: layout.log_blocks,
        },
        layout.nonce,
    );
    if layout.erase_size == fg.erase_size
        && layout.blocks == fg.blocks()
        && again.as_ref().ok() != Some(&layout)
    {
        return Err(SpoolError::BadSuperblock(
            "superblock regions do not add up".into(),
        ));
    }
    if layout.erase_size != fg.erase_size || layout.blocks != fg.blocks() {
        return Err(SpoolError::GeometryMismatch(format!(
            "superblock says {} blocks of {} bytes, the device has {} blocks of {} bytes",
            layout.blocks,
            layout.erase_size,
            fg.blocks(),
            fg.erase_size
        )));
    }
    Ok(layout)
}
