//! CRC-32C (Castagnoli), the checksum of everything Postern keeps on flash. A restart checks the
//! CRC of every record in the mail log, so this uses the CPU's own CRC-32C instruction where it
//! has one (SSE 4.2 on x86_64, the CRC extension of ARMv8 on aarch64), found at run time: the
//! same values as the table, which stays for CPUs without it. The `unsafe` here is only the call
//! into code compiled for that instruction, made after the CPU said it has it.

use crc::{CRC_32_ISCSI, Crc, Table};

/// The table fallback: slice-by-16.
static TABLE: Crc<u32, Table<16>> = Crc::<u32, Table<16>>::new(&CRC_32_ISCSI);

/// A running CRC-32C over parts given in turn.
pub struct Crc32c(Inner);

enum Inner {
    /// The register as the instruction keeps it (the initial all-ones, not yet inverted).
    Cpu(u32),
    Table(crc::Digest<'static, u32, Table<16>>),
}

impl Default for Crc32c {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32c {
    pub fn new() -> Self {
        if cpu::has_crc32c() {
            Crc32c(Inner::Cpu(!0))
        } else {
            Crc32c(Inner::Table(TABLE.digest()))
        }
    }

    /// The table alone, whatever the CPU has (to check one against the other).
    pub fn table() -> Self {
        Crc32c(Inner::Table(TABLE.digest()))
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.0 {
            Inner::Cpu(r) => *r = cpu::update(*r, bytes),
            Inner::Table(d) => d.update(bytes),
        }
    }

    pub fn finalize(self) -> u32 {
        match self.0 {
            Inner::Cpu(r) => !r,
            Inner::Table(d) => d.finalize(),
        }
    }
}

/// The CRC-32C of `parts`, one after the other.
pub fn crc32c(parts: &[&[u8]]) -> u32 {
    let mut c = Crc32c::new();
    for p in parts {
        c.update(p);
    }
    c.finalize()
}

/// Whether this CPU computes CRC-32C with an instruction (the benches print it).
pub fn hardware() -> bool {
    cpu::has_crc32c()
}

#[cfg(target_arch = "x86_64")]
mod cpu {
    use std::arch::x86_64::{_mm_crc32_u8, _mm_crc32_u64};

    pub fn has_crc32c() -> bool {
        // Cached by std after the first CPUID.
        std::arch::is_x86_feature_detected!("sse4.2")
    }

    pub fn update(r: u32, bytes: &[u8]) -> u32 {
        debug_assert!(has_crc32c());
        // SAFETY: only reached through `Inner::Cpu`, made after `has_crc32c()` said the CPU has
        // SSE 4.2.
        unsafe { update_sse42(r, bytes) }
    }

    #[target_feature(enable = "sse4.2")]
    fn update_sse42(r: u32, bytes: &[u8]) -> u32 {
        let mut words = bytes.chunks_exact(8);
        let mut r = u64::from(r);
        for w in &mut words {
            let mut v = [0u8; 8];
            v.copy_from_slice(w);
            r = _mm_crc32_u64(r, u64::from_le_bytes(v));
        }
        // The instruction leaves the upper half zero.
        let mut r = r as u32;
        for &b in words.remainder() {
            r = _mm_crc32_u8(r, b);
        }
        r
    }
}

#[cfg(target_arch = "aarch64")]
mod cpu {
    use std::arch::aarch64::{__crc32cb, __crc32cd};

    pub fn has_crc32c() -> bool {
        std::arch::is_aarch64_feature_detected!("crc")
    }

    pub fn update(r: u32, bytes: &[u8]) -> u32 {
        debug_assert!(has_crc32c());
        // SAFETY: only reached through `Inner::Cpu`, made after `has_crc32c()` said the CPU has
        // the CRC extension.
        unsafe { update_crc(r, bytes) }
    }

    #[target_feature(enable = "crc")]
    fn update_crc(mut r: u32, bytes: &[u8]) -> u32 {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut v = [0u8; 8];
            v.copy_from_slice(w);
            r = __crc32cd(r, u64::from_le_bytes(v));
        }
        for &b in words.remainder() {
            r = __crc32cb(r, b);
        }
        r
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
mod cpu {
    pub fn has_crc32c() -> bool {
        false
    }

    pub fn update(_r: u32, _bytes: &[u8]) -> u32 {
        unreachable!("no CRC-32C instruction on this architecture")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(parts: &[&[u8]]) -> u32 {
        let mut c = Crc32c::table();
        for p in parts {
            c.update(p);
        }
        c.finalize()
    }

    #[test]
    fn check_value() {
        // The catalogue's check value for CRC-32/ISCSI.
        assert_eq!(crc32c(&[b"123456789"]), 0xE306_9283);
        assert_eq!(table(&[b"123456789"]), 0xE306_9283);
        assert_eq!(crc32c(&[]), 0);
    }

    #[test]
    fn instruction_matches_table_at_every_length_and_split() {
        if !hardware() {
            eprintln!("this CPU has no CRC-32C instruction: the table is checked against itself");
        }
        // Bytes that are not a pattern the CRC could be blind to.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let data: Vec<u8> = (0..300)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for len in 0..data.len() {
            let d = &data[..len];
            assert_eq!(crc32c(&[d]), table(&[d]), "length {len}");
            for split in [0, 1, 3, 7, 8, 9, 17].into_iter().filter(|&s| s <= len) {
                let (a, b) = d.split_at(split);
                assert_eq!(crc32c(&[a, b]), table(&[d]), "length {len} split {split}");
            }
        }
    }
}
