//! Flash in RAM for tests, with fault injection in the manner of smoltcp's `FaultInjector`.
//!
//! - Power cut: after [`RamFlash::cut_power_at`], the program or erase with that index is torn (a
//!   seeded part of it reaches the array, one byte half-programmed or half-erased) and every later
//!   operation fails with [`FlashError::PowerLost`] until [`RamFlash::power_cycle`].
//! - Bit flips ([`RamFlash::flip_bit`]) and worn-out blocks ([`RamFlash::wear_out`]).
//! - A journal of every program and erase ([`RamFlash::record_journal`]), so a test can run a
//!   workload once and rebuild the flash as it would be after a cut at any operation.
//!
//! NOR semantics are enforced: programming may only clear bits, so writing over bytes that were not
//! erased is reported as [`FlashError::NotErased`] (real NOR would store the AND and corrupt data).

use super::{ErrorType, Flash, FlashError, FlashGeometry, NorFlash, ReadNorFlash};

/// One program or erase, as recorded in the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlashOp {
    Erase { from: u32, to: u32 },
    Write { offset: u32, data: Vec<u8> },
}

/// A flash device in RAM.
#[derive(Debug, Clone)]
pub struct RamFlash {
    data: Vec<u8>,
    geometry: FlashGeometry,
    ops: u64,
    syncs: u64,
    cut: Option<(u64, u64)>,
    powered: bool,
    worn: Vec<bool>,
    erase_counts: Vec<u32>,
    journal: Option<Vec<FlashOp>>,
    durable: Option<Vec<u8>>,
}

impl RamFlash {
    /// A new device, all erased.
    pub fn new(geometry: FlashGeometry) -> RamFlash {
        RamFlash::with_image(geometry, vec![0xFF; geometry.size as usize])
    }

    /// A device holding `image` (e.g. what another `RamFlash` held when its power was cut).
    pub fn from_image(geometry: FlashGeometry, image: Vec<u8>) -> Result<RamFlash, FlashError> {
        if image.len() != geometry.size as usize {
            return Err(FlashError::WrongSize {
                path: "RAM image".into(),
                expected: geometry.size.into(),
                actual: image.len() as u64,
            });
        }
        Ok(RamFlash::with_image(geometry, image))
    }

    fn with_image(geometry: FlashGeometry, data: Vec<u8>) -> RamFlash {
        let blocks = geometry.blocks() as usize;
        RamFlash {
            data,
            geometry,
            ops: 0,
            syncs: 0,
            cut: None,
            powered: true,
            worn: vec![false; blocks],
            erase_counts: vec![0; blocks],
            journal: None,
            durable: None,
        }
    }

    /// The whole array as it is now.
    pub fn image(&self) -> &[u8] {
        &self.data
    }

    /// Programs and erases done so far (the index the next one will get).
    pub fn ops(&self) -> u64 {
        self.ops
    }

    /// Syncs done so far.
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    /// Erases per erase block since this device was made.
    pub fn erase_counts(&self) -> &[u32] {
        &self.erase_counts
    }

    /// Cuts the power during the program or erase with index `op`: `seed` decides how much of it
    /// lands (see [`RamFlash::apply_torn`]). Every operation after it fails.
    pub fn cut_power_at(&mut self, op: u64, seed: u64) {
        self.cut = Some((op, seed));
    }

    /// Whether the power is on.
    pub fn is_powered(&self) -> bool {
        self.powered
    }

    /// Turns the power back on after a cut, keeping what the array holds.
    pub fn power_cycle(&mut self) {
        self.powered = true;
        self.cut = None;
    }

    /// Flips one bit, as a charge leak or a cosmic ray would.
    pub fn flip_bit(&mut self, offset: u32, bit: u8) {
        if let Some(b) = self.data.get_mut(offset as usize) {
            *b ^= 1 << (bit & 7);
        }
    }

    /// Makes an erase block refuse every later program and erase.
    pub fn wear_out(&mut self, block: u32) {
        if let Some(w) = self.worn.get_mut(block as usize) {
            *w = true;
        }
    }

    /// Starts keeping a copy of the array as of the last sync: what a disk with a volatile write
    /// cache would hold after a power cut ([`RamFlash::durable_image`]).
    pub fn track_durable(&mut self) {
        self.durable = Some(self.data.clone());
    }

    /// The array as of the last sync (if [`RamFlash::track_durable`] was called).
    pub fn durable_image(&self) -> Option<&[u8]> {
        self.durable.as_deref()
    }

    /// Starts keeping a journal of programs and erases.
    pub fn record_journal(&mut self) {
        self.journal = Some(Vec::new());
    }

    /// The journal so far (empty unless [`RamFlash::record_journal`] was called); clears it.
    pub fn take_journal(&mut self) -> Vec<FlashOp> {
        self.journal
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Performs a journalled operation, exactly as `write` or `erase` would.
    pub fn apply(&mut self, op: &FlashOp) -> Result<(), FlashError> {
        match op {
            FlashOp::Erase { from, to } => self.erase(*from, *to),
            FlashOp::Write { offset, data } => self.write(*offset, data),
        }
    }

    /// Performs part of an operation, as a power cut in its middle leaves it: a part chosen by
    /// `seed` lands (a prefix of a program; a prefix or a suffix of an erase), the byte next to it
    /// is half done (some bits programmed or erased), the rest is untouched. Bypasses the power
    /// and wear checks.
    pub fn apply_torn(&mut self, op: &FlashOp, seed: u64) {
        let partial = (seed >> 32) as u8;
        match op {
            FlashOp::Erase { from, to } => {
                let (from, to) = (*from as usize, (*to as usize).min(self.data.len()));
                let len = to.saturating_sub(from);
                let keep = (seed % (len as u64 + 1)) as usize;
                // Erase has no order on real chips: half the cuts erase from the end backwards,
                // leaving the start of the block (where headers live) intact.
                let (done, half) = if seed >> 63 == 0 {
                    (from..from + keep, from + keep)
                } else {
                    (to - keep..to, (to - keep).wrapping_sub(1))
                };
                for b in &mut self.data[done] {
                    *b = 0xFF;
                }
                if keep < len
                    && let Some(b) = self.data.get_mut(half)
                {
                    *b |= partial;
                }
            }
            FlashOp::Write { offset, data } => {
                let at = *offset as usize;
                let keep = (seed % (data.len() as u64 + 1)) as usize;
                for (i, new) in data.iter().take(keep).enumerate() {
                    if let Some(b) = self.data.get_mut(at + i) {
                        *b &= *new;
                    }
                }
                if let (Some(new), Some(b)) = (data.get(keep), self.data.get_mut(at + keep)) {
                    *b &= *new | partial;
                }
            }
        }
    }

    /// Counts an operation and decides whether it runs, is torn, or finds the power off.
    fn begin_op(&mut self, op: FlashOp) -> Result<Option<FlashOp>, FlashError> {
        if !self.powered {
            return Err(FlashError::PowerLost);
        }
        let index = self.ops;
        self.ops += 1;
        if let Some(j) = self.journal.as_mut() {
            j.push(op.clone());
        }
        match self.cut {
            Some((at, seed)) if at == index => {
                self.apply_torn(&op, seed);
                self.powered = false;
                Err(FlashError::PowerLost)
            }
            _ => Ok(Some(op)),
        }
    }

    fn check_worn(&self, offset: u32, len: usize) -> Result<(), FlashError> {
        let first = offset / self.geometry.erase_size;
        let last = (offset as usize + len.max(1) - 1) as u32 / self.geometry.erase_size;
        for block in first..=last {
            if self.worn.get(block as usize).copied().unwrap_or(false) {
                return Err(FlashError::WornOut { block });
            }
        }
        Ok(())
    }
}

impl ErrorType for RamFlash {
    type Error = FlashError;
}

impl ReadNorFlash for RamFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        if !self.powered {
            return Err(FlashError::PowerLost);
        }
        self.geometry.check_range(offset, bytes.len())?;
        let at = offset as usize;
        bytes.copy_from_slice(&self.data[at..at + bytes.len()]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.geometry.size as usize
    }
}

impl NorFlash for RamFlash {
    const WRITE_SIZE: usize = 1;
    const ERASE_SIZE: usize = 1;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        self.geometry.check_erase(from, to)?;
        self.check_worn(from, (to - from) as usize)?;
        if self.begin_op(FlashOp::Erase { from, to })?.is_some() {
            self.data[from as usize..to as usize].fill(0xFF);
            let eb = self.geometry.erase_size;
            for block in from / eb..to / eb {
                self.erase_counts[block as usize] += 1;
            }
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        self.geometry.check_range(offset, bytes.len())?;
        self.check_worn(offset, bytes.len())?;
        let at = offset as usize;
        let old = &self.data[at..at + bytes.len()];
        if let Some(i) = old.iter().zip(bytes).position(|(o, n)| o & n != *n) {
            return Err(FlashError::NotErased {
                offset: offset + i as u32,
            });
        }
        if self
            .begin_op(FlashOp::Write {
                offset,
                data: bytes.to_vec(),
            })?
            .is_some()
        {
            for (b, n) in self.data[at..at + bytes.len()].iter_mut().zip(bytes) {
                *b &= *n;
            }
        }
        Ok(())
    }
}

impl Flash for RamFlash {
    fn geometry(&self) -> FlashGeometry {
        self.geometry
    }

    fn sync(&mut self) -> Result<(), FlashError> {
        if !self.powered {
            return Err(FlashError::PowerLost);
        }
        self.syncs += 1;
        if let Some(d) = self.durable.as_mut() {
            d.copy_from_slice(&self.data);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flash() -> RamFlash {
        RamFlash::new(FlashGeometry::new(256, 256 * 4).unwrap())
    }

    #[test]
    fn programming_only_clears_bits_and_unerased_writes_are_reported() {
        let mut f = flash();
        f.write(10, &[0b1010_1010]).unwrap();
        f.write(10, &[0b0010_1000]).unwrap();
        assert_eq!(f.image()[10], 0b0010_1000);
        assert_eq!(
            f.write(10, &[0b0110_1000]),
            Err(FlashError::NotErased { offset: 10 })
        );
        assert_eq!(
            f.image()[10],
            0b0010_1000,
            "a refused write changes nothing"
        );
        f.erase(0, 256).unwrap();
        assert_eq!(f.image()[10], 0xFF);
        assert_eq!(f.erase_counts(), &[1, 0, 0, 0]);
        assert!(f.erase(1, 256).is_err());
    }

    #[test]
    fn power_cut_tears_the_operation_and_stops_everything_after() {
        let mut f = flash();
        f.cut_power_at(1, 5);
        f.write(0, b"first").unwrap();
        assert_eq!(f.write(100, b"second op"), Err(FlashError::PowerLost));
        assert_eq!(
            &f.image()[100..105],
            b"secon",
            "5 bytes of the torn write landed"
        );
        assert_eq!(&f.image()[106..109], &[0xFF; 3], "the rest never did");
        assert_eq!(f.write(200, b"x"), Err(FlashError::PowerLost));
        assert_eq!(f.sync(), Err(FlashError::PowerLost));
        let mut buf = [0u8; 1];
        assert!(f.read(0, &mut buf).is_err());
        f.power_cycle();
        assert_eq!(&f.image()[0..5], b"first");
        assert_eq!(f.image()[200], 0xFF);
        f.write(200, b"x").unwrap();
    }

    #[test]
    fn torn_erase_leaves_old_bytes_behind() {
        let mut f = flash();
        f.write(256, &[0u8; 256]).unwrap();
        f.cut_power_at(1, 100);
        assert_eq!(f.erase(256, 512), Err(FlashError::PowerLost));
        assert!(f.image()[256..356].iter().all(|&b| b == 0xFF));
        assert!(f.image()[357..512].iter().all(|&b| b == 0));
    }

    #[test]
    fn journal_replays_to_the_same_image() {
        let mut f = flash();
        f.record_journal();
        f.write(3, b"abc").unwrap();
        f.erase(0, 256).unwrap();
        f.write(300, b"def").unwrap();
        let journal = f.take_journal();
        assert_eq!(journal.len(), 3);
        let mut g = flash();
        for op in &journal {
            g.apply(op).unwrap();
        }
        assert_eq!(f.image(), g.image());
    }

    #[test]
    fn durable_image_follows_syncs_only() {
        let mut f = flash();
        f.track_durable();
        f.write(0, b"synced").unwrap();
        f.sync().unwrap();
        f.write(10, b"cached").unwrap();
        let d = f.durable_image().unwrap();
        assert_eq!(&d[0..6], b"synced");
        assert_eq!(&d[10..16], &[0xFF; 6]);
    }

    #[test]
    fn bit_flips_and_worn_blocks() {
        let mut f = flash();
        f.flip_bit(7, 3);
        assert_eq!(f.image()[7], 0xF7);
        f.wear_out(2);
        assert_eq!(
            f.write(512 + 4, b"x"),
            Err(FlashError::WornOut { block: 2 })
        );
        assert_eq!(f.erase(512, 768), Err(FlashError::WornOut { block: 2 }));
        f.write(500, b"y").unwrap();
        assert_eq!(f.write(511, b"zz"), Err(FlashError::WornOut { block: 2 }));
    }
}
