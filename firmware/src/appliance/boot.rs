//! The steps of bringing the box up before the services start: filesystems, hostname, modules,
//! network. Each prints one line on the console, so a person watching a slow boot sees where it is.

use std::path::Path;
use std::time::{Duration, Instant};

use hal::sys::{hostname, modules, mounts, net};

use super::cmdline::BootParams;
use crate::config::box_settings::{Ipv4Method, NetworkSettings, StaticIpv4};
use crate::log::console::say;

/// Where mkimage puts the modules and their load order.
const MODULE_DIR: &str = "/lib/modules";
const MODULE_ORDER: &str = "/lib/modules/load-order";
/// block2mtd takes its block device as a parameter, so it is loaded when the flash is opened
/// ([`attach_block2mtd`]), and only if the boot parameters ask for it.
const BLOCK2MTD_MODULE: &str = "block2mtd.ko";
const BLOCK2MTD_SYSFS: &str = "/sys/module/block2mtd";
/// The interface QEMU's virtio-net (and most small boxes) give us.
pub const WAN: &str = "eth0";
/// How long a driver may take to register its device after its module loaded.
const DEVICE_WAIT: Duration = Duration::from_secs(3);

/// Seconds since the kernel started, for the boot log (0 if /proc is not there).
pub fn uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|t| t.parse().ok()))
        .unwrap_or(0.0)
}

/// Mounts /proc, /sys, /dev, /run, /tmp. Without them nothing else works: an error is fatal.
pub fn mount_filesystems() -> Result<(), String> {
    for m in mounts::EARLY_MOUNTS {
        mounts::mount_early(m)
            .map_err(|e| format!("cannot mount {} on {}: {e}", m.fstype, m.target))?;
    }
    Ok(())
}

pub fn set_hostname(name: &str) {
    if let Err(e) = hostname::set(name) {
        say!("postern: cannot set hostname {name}: {e}");
    }
}

/// Loads the image's modules in the order mkimage recorded. A module that fails is reported and
/// skipped: the box may still be reachable on the console to say what is wrong.
pub fn load_modules() {
    let started = Instant::now();
    let list = match modules::read_order(Path::new(MODULE_DIR), Path::new(MODULE_ORDER)) {
        Ok(l) => l,
        Err(e) => {
            say!("postern: cannot read {MODULE_ORDER}: {e}");
            return;
        }
    };
    let list: Vec<_> = list
        .into_iter()
        .filter(|p| p.file_name() != Some(std::ffi::OsStr::new(BLOCK2MTD_MODULE)))
        .collect();
    let mut loaded = 0;
    for path in &list {
        match modules::load(path) {
            Ok(()) => loaded += 1,
            Err(e) => say!("postern: cannot load module {}: {e}", path.display()),
        }
    }
    say!(
        "postern: loaded {loaded} of {} modules in {} ms",
        list.len(),
        started.elapsed().as_millis()
    );
}

/// Puts block2mtd over `device` so that `mtd` (its MTD character device) appears: loads the module
/// with its parameter, or, if it is already loaded, hands it the device through sysfs (what a
/// retry after a missing disk does). The errors say what an admin has to fix.
pub fn attach_block2mtd(device: &Path, param: &str, mtd: &Path) -> Result<(), String> {
    if !wait_for(|| device.exists(), Duration::from_secs(2)) {
        return Err(format!(
            "block device {} for the MTD flash not found (is the flash disk attached?)",
            device.display()
        ));
    }
    if Path::new(BLOCK2MTD_SYSFS).exists() {
        let value = param.strip_prefix("block2mtd=").unwrap_or(param);
        std::fs::write(format!("{BLOCK2MTD_SYSFS}/parameters/block2mtd"), value)
            .map_err(|e| format!("cannot hand {} to block2mtd: {e}", device.display()))?;
    } else {
        let module = Path::new(MODULE_DIR).join(BLOCK2MTD_MODULE);
        if !module.exists() {
            return Err(format!(
                "MTD flash over {} was asked for, but this image has no {BLOCK2MTD_MODULE} \
                 (use postern.flash={} for the block device itself)",
                device.display(),
                device.display()
            ));
        }
        modules::load_with_params(&module, param)
            .map_err(|e| format!("cannot load {BLOCK2MTD_MODULE} {param}: {e}"))?;
    }
    if !wait_for(|| mtd.exists(), DEVICE_WAIT) {
        return Err(format!(
            "block2mtd did not create {} over {} (see the kernel's messages above)",
            mtd.display(),
            device.display()
        ));
    }
    say!(
        "postern: block2mtd: {} over {} ({param})",
        mtd.display(),
        device.display()
    );
    Ok(())
}

/// The device node of the partition whose GPT name is `label` (the kernel's `PARTNAME=` in
/// /sys/class/block/*/uevent), if one has appeared.
pub fn find_partition(label: &str) -> Option<std::path::PathBuf> {
    let entries = std::fs::read_dir("/sys/class/block").ok()?;
    for entry in entries.flatten() {
        let Ok(uevent) = std::fs::read_to_string(entry.path().join("uevent")) else {
            continue;
        };
        if let Some(dev) = partition_device(&uevent, label) {
            return Some(Path::new("/dev").join(dev));
        }
    }
    None
}

/// `DEVNAME` of a uevent whose `PARTNAME` is `label`.
fn partition_device<'a>(uevent: &'a str, label: &str) -> Option<&'a str> {
    let field = |key: &str| {
        uevent
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
    };
    (field("PARTNAME")? == label).then_some(())?;
    field("DEVNAME").filter(|d| !d.contains(".."))
}

/// Brings up lo and waits for eth0. Problems are reported, not fatal: the console still works
/// without a network. eth0's address comes later, from the stored network or the boot parameters.
pub fn bring_up_links() {
    if let Err(e) = net::link_up("lo") {
        say!("postern: cannot bring up lo: {e}");
    }
    if !wait_for(|| net::link_exists(WAN), DEVICE_WAIT) {
        say!(
            "postern: no {WAN} after {} s: running without a network",
            DEVICE_WAIT.as_secs()
        );
    }
}

/// The network the boot parameters give (their defaults when nothing is stored), as stored
/// settings would say it.
pub fn params_network(p: &BootParams) -> Option<NetworkSettings> {
    let ipv4 = StaticIpv4::new(p.address, p.prefix_len, p.gateway).ok()?;
    NetworkSettings::new(Ipv4Method::Static(ipv4), vec![p.dns.into()]).ok()
}

/// Polls `ready` every 10 ms until it holds or `limit` passes.
pub fn wait_for(mut ready: impl FnMut() -> bool, limit: Duration) -> bool {
    let start = Instant::now();
    loop {
        if ready() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_is_found_by_its_gpt_name() {
        let uevent = "MAJOR=254\nMINOR=2\nDEVNAME=vda2\nDEVTYPE=partition\nPARTN=2\nPARTNAME=postern-flash\n";
        assert_eq!(partition_device(uevent, "postern-flash"), Some("vda2"));
        assert_eq!(partition_device(uevent, "postern"), None);
        assert_eq!(
            partition_device("DEVNAME=vda\nDEVTYPE=disk\n", "postern-flash"),
            None
        );
    }
}
