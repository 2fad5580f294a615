//! Boot parameters from the kernel command line (`postern.*=` words), with the defaults an
//! appliance uses until its stored configuration exists.
//!
//! | word | default | meaning |
//! |---|---|---|
//! | `postern.flash=PATH` | `/dev/vda` | the flash device: a block device (QEMU: the raw flash file on virtio-blk) or an MTD character device (`/dev/mtd0`, raw NOR) |
//! | `postern.flash=mtd:PATH` | | MTD emulated over block device PATH: load `block2mtd` over it ([`BLOCK2MTD_ERASE_SIZE`] erase blocks) and run on [`BLOCK2MTD_MTD`] |
//! | `postern.flash_size=BYTES` | any | the size the flash must have; another size is refused |
//! | `postern.hostname=NAME` | `postern` | hostname and SMTP greeting name |
//! | `postern.ip=ADDR/LEN` | `10.0.2.15/24` | eth0's IPv4 address (QEMU user networking) |
//! | `postern.gw=ADDR` | `10.0.2.2` | default gateway (`none` for no route) |
//! | `postern.dns=ADDR` | `10.0.2.3` | resolver written to /etc/resolv.conf |
//!
//! A word that does not parse is reported and its default kept: a typo at the boot loader must
//! not keep the box from coming up.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use hal::flash::DEFAULT_ERASE_SIZE;

/// The MTD device block2mtd creates when it is the only MTD driver (the appliance's case).
pub const BLOCK2MTD_MTD: &str = "/dev/mtd0";
/// block2mtd's erase block: the spool's on block devices, so the same flash file can move between
/// `postern.flash=/dev/vda` and `postern.flash=mtd:/dev/vda`.
pub const BLOCK2MTD_ERASE_SIZE: u32 = DEFAULT_ERASE_SIZE;

/// What the appliance boots with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootParams {
    /// The device the daemon opens.
    pub flash: PathBuf,
    /// The block device to put block2mtd over (`postern.flash=mtd:PATH`); `flash` is then
    /// [`BLOCK2MTD_MTD`].
    pub block2mtd: Option<PathBuf>,
    pub flash_size: Option<u64>,
    pub hostname: String,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Ipv4Addr,
}

impl Default for BootParams {
    fn default() -> Self {
        BootParams {
            flash: PathBuf::from("/dev/vda"),
            block2mtd: None,
            flash_size: None,
            hostname: "postern".to_string(),
            address: Ipv4Addr::new(10, 0, 2, 15),
            prefix_len: 24,
            gateway: Some(Ipv4Addr::new(10, 0, 2, 2)),
            dns: Ipv4Addr::new(10, 0, 2, 3),
        }
    }
}

/// Parses `/proc/cmdline`; returns the parameters and one warning per word it could not use.
pub fn parse(cmdline: &str) -> (BootParams, Vec<String>) {
    let mut p = BootParams::default();
    let mut warnings = Vec::new();
    for word in cmdline.split_whitespace() {
        let Some(rest) = word.strip_prefix("postern.") else {
            continue;
        };
        let Some((key, value)) = rest.split_once('=') else {
            warnings.push(format!("boot parameter {word:?} has no value"));
            continue;
        };
        let ok = match key {
            "flash" if value.starts_with('/') => {
                p.flash = PathBuf::from(value);
                p.block2mtd = None;
                true
            }
            "flash" => match value.strip_prefix("mtd:") {
                Some(dev) if dev.starts_with('/') && !dev.contains(',') => {
                    p.flash = PathBuf::from(BLOCK2MTD_MTD);
                    p.block2mtd = Some(PathBuf::from(dev));
                    true
                }
                _ => false,
            },
            "flash_size" => value.parse().map(|n| p.flash_size = Some(n)).is_ok(),
            "hostname" if valid_hostname(value) => {
                p.hostname = value.to_string();
                true
            }
            "ip" => parse_cidr(value)
                .map(|(a, l)| (p.address, p.prefix_len) = (a, l))
                .is_some(),
            "gw" if value == "none" => {
                p.gateway = None;
                true
            }
            "gw" => value.parse().map(|g| p.gateway = Some(g)).is_ok(),
            "dns" => value.parse().map(|d| p.dns = d).is_ok(),
            _ => false,
        };
        if !ok {
            warnings.push(format!(
                "boot parameter {word:?} is not understood; keeping the default"
            ));
        }
    }
    (p, warnings)
}

impl BootParams {
    /// The parameter string for `block2mtd.ko`, when MTD over a block device was asked for.
    pub fn block2mtd_param(&self) -> Option<String> {
        self.block2mtd
            .as_ref()
            .map(|dev| format!("block2mtd={},{BLOCK2MTD_ERASE_SIZE}", dev.display()))
    }
}

fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (addr, len) = s.split_once('/')?;
    let len: u8 = len.parse().ok()?;
    (len <= 32).then_some(())?;
    Some((addr.parse().ok()?, len))
}

/// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, ≤ 64 bytes
/// (the kernel's limit).
fn valid_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_qemu_user_networking() {
        let (p, w) = parse("console=ttyS0 quiet");
        assert_eq!(p, BootParams::default());
        assert!(w.is_empty());
        assert_eq!(p.flash, PathBuf::from("/dev/vda"));
    }

    #[test]
    fn postern_words_override_defaults() {
        let (p, w) = parse(
            "console=ttyS0 postern.flash=/dev/vdb postern.flash_size=67108864 postern.hostname=mx1.example.org \
             postern.ip=192.0.2.10/28 postern.gw=none postern.dns=192.0.2.1",
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(p.flash, PathBuf::from("/dev/vdb"));
        assert_eq!(p.flash_size, Some(67_108_864));
        assert_eq!(p.hostname, "mx1.example.org");
        assert_eq!(
            (p.address, p.prefix_len),
            (Ipv4Addr::new(192, 0, 2, 10), 28)
        );
        assert_eq!(p.gateway, None);
        assert_eq!(p.dns, Ipv4Addr::new(192, 0, 2, 1));
    }

    #[test]
    fn typos_keep_the_defaults_and_say_so() {
        let (p, w) = parse(
            "postern.ip=10.0.2.15/33 postern.hostname=-bad- postern.flash=vda postern.flash_size=big postern.nope=1 postern.gw \
             postern.flash=mtd:vda postern.flash=mtd:/dev/vda,4096 postern.flash=nor:/dev/vda",
        );
        assert_eq!(p, BootParams::default());
        assert_eq!(w.len(), 9, "{w:?}");
        assert_eq!(p.block2mtd_param(), None);
    }

    #[test]
    fn mtd_over_a_block_device_runs_on_mtd0_with_64k_blocks() {
        let (p, w) = parse("console=ttyS0 postern.flash=mtd:/dev/vda");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(p.flash, PathBuf::from("/dev/mtd0"));
        assert_eq!(p.block2mtd, Some(PathBuf::from("/dev/vda")));
        assert_eq!(
            p.block2mtd_param().as_deref(),
            Some("block2mtd=/dev/vda,65536")
        );
        // The last word wins, as on any kernel command line.
        let (p, _) = parse("postern.flash=mtd:/dev/vda postern.flash=/dev/mtd1");
        assert_eq!(p.flash, PathBuf::from("/dev/mtd1"));
        assert_eq!(p.block2mtd, None);
    }
}
