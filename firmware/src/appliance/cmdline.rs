//! Boot parameters from the kernel command line (`postern.*=` words), with the defaults an
//! appliance uses until its stored configuration exists.
//!
//! | word | default | meaning |
//! |---|---|---|
//! | `postern.flash=PATH` | `/dev/vda` | the flash device: a block device (QEMU: the raw flash file on virtio-blk) or an MTD character device (`/dev/mtd0`, raw NOR) |
//! | `postern.flash=PARTLABEL=NAME` | | the GPT partition named NAME on whichever disk holds it (the disk image's `postern-flash`: `/dev/vda2` under QEMU, `/dev/mmcblk0p2` on eMMC) |
//! | `postern.flash=mtd:PATH` | | MTD emulated over block device PATH: load `block2mtd` over it ([`BLOCK2MTD_ERASE_SIZE`] erase blocks) and run on [`BLOCK2MTD_MTD`] |
//! | `postern.flash_size=BYTES` | any | the size the flash must have; another size is refused |
//! | `postern.hostname=NAME` | `postern` | hostname and SMTP greeting name |
//! | `postern.ip=ADDR/LEN` | `10.0.2.15/24` | eth0's IPv4 address (QEMU user networking) |
//! | `postern.gw=ADDR` | `10.0.2.2` | default gateway (`none` for no route) |
//! | `postern.dns=ADDR` | `10.0.2.3` | resolver written to /etc/resolv.conf |
//! | `postern.console=prompt` | `menu` (or `wizard`) | the console starts at the command line, with no first-boot wizard and no login (tests, recovery) |
//!
//! The box's stored host name and network (set up by the first-boot wizard or the console menu)
//! take the place of the defaults; `postern.hostname`, and any of `postern.ip`/`gw`/`dns`, override
//! them. With neither, the defaults above (QEMU's user network) apply.
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
    /// The GPT partition name to find the flash by (`postern.flash=PARTLABEL=NAME`); `flash` is
    /// set to the partition's device once it is found.
    pub flash_partlabel: Option<String>,
    pub flash_size: Option<u64>,
    pub hostname: String,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Ipv4Addr,
    /// `postern.hostname` was given: it overrides the stored host name.
    pub hostname_given: bool,
    /// One of `postern.ip`/`gw`/`dns` was given: they override the stored network.
    pub network_given: bool,
    /// `postern.console=prompt`: the command line at once, no wizard, no login.
    pub console_prompt: bool,
}

impl Default for BootParams {
    fn default() -> Self {
        BootParams {
            flash: PathBuf::from("/dev/vda"),
            block2mtd: None,
            flash_partlabel: None,
            flash_size: None,
            hostname: "postern".to_string(),
            address: Ipv4Addr::new(10, 0, 2, 15),
            prefix_len: 24,
            gateway: Some(Ipv4Addr::new(10, 0, 2, 2)),
            dns: Ipv4Addr::new(10, 0, 2, 3),
            hostname_given: false,
            network_given: false,
            console_prompt: false,
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
                p.flash_partlabel = None;
                true
            }
            "flash" if value.starts_with("PARTLABEL=") => {
                let label = &value["PARTLABEL=".len()..];
                let ok = !label.is_empty() && !label.contains('/');
                if ok {
                    p.flash_partlabel = Some(label.to_string());
                    p.block2mtd = None;
                }
                ok
            }
            "flash" => match value.strip_prefix("mtd:") {
                Some(dev) if dev.starts_with('/') && !dev.contains(',') => {
                    p.flash = PathBuf::from(BLOCK2MTD_MTD);
                    p.block2mtd = Some(PathBuf::from(dev));
                    p.flash_partlabel = None;
                    true
                }
                _ => false,
            },
            "flash_size" => value.parse().map(|n| p.flash_size = Some(n)).is_ok(),
            "hostname" if valid_hostname(value) => {
                p.hostname = value.to_string();
                p.hostname_given = true;
                true
            }
            "ip" => parse_cidr(value)
                .map(|(a, l)| (p.address, p.prefix_len, p.network_given) = (a, l, true))
                .is_some(),
            "gw" if value == "none" => {
                (p.gateway, p.network_given) = (None, true);
                true
            }
            "gw" => value
                .parse()
                .map(|g| (p.gateway, p.network_given) = (Some(g), true))
                .is_ok(),
            "dns" => value
                .parse()
                .map(|d| (p.dns, p.network_given) = (d, true))
                .is_ok(),
            // `wizard` is `menu` by another name, as long as `prompt`: the disk image's slots
            // carry it, so a test can patch the slot in place to skip the wizard.
            "console" if value == "prompt" || value == "menu" || value == "wizard" => {
                p.console_prompt = value == "prompt";
                true
            }
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
        assert!(p.hostname_given && p.network_given && !p.console_prompt);
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
    fn the_console_word_and_what_overrides_the_stored_settings() {
        let (p, w) = parse("postern.console=prompt postern.gw=none");
        assert!(w.is_empty(), "{w:?}");
        assert!(p.console_prompt && p.network_given && !p.hostname_given);
        let (p, w) = parse("postern.console=shell");
        assert_eq!(w.len(), 1);
        assert!(!p.console_prompt && !p.network_given);
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

    #[test]
    fn the_disk_image_names_its_flash_partition() {
        let (p, w) = parse("console=ttyAMA0 postern.flash=PARTLABEL=postern-flash");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(p.flash_partlabel.as_deref(), Some("postern-flash"));
        let (p, w) = parse("postern.flash=PARTLABEL= postern.flash=PARTLABEL=a/b");
        assert_eq!(p.flash_partlabel, None);
        assert_eq!(w.len(), 2, "{w:?}");
    }
}
