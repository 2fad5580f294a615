//! Boot parameters from the kernel command line (`postern.*=` words), with the defaults an
//! appliance uses until its stored configuration exists.
//!
//! | word | default | meaning |
//! |---|---|---|
//! | `postern.flash=PATH` | `/dev/vda` | the flash device (QEMU: the raw flash file on virtio-blk) |
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

/// What the appliance boots with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootParams {
    pub flash: PathBuf,
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
                true
            }
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
            "postern.ip=10.0.2.15/33 postern.hostname=-bad- postern.flash=vda postern.flash_size=big postern.nope=1 postern.gw",
        );
        assert_eq!(p, BootParams::default());
        assert_eq!(w.len(), 6, "{w:?}");
    }
}
