//! The early filesystems of PID 1: /proc, /sys, /dev (devtmpfs), /run and /tmp.

use rustix::mount::{MountFlags, mount};
use std::io;
use std::path::Path;

/// One mount PID 1 makes at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EarlyMount {
    pub fstype: &'static str,
    pub target: &'static str,
    pub flags: MountFlags,
    pub data: Option<&'static core::ffi::CStr>,
}

/// What a minimal appliance mounts, in order (devtmpfs before anything opens a device).
pub const EARLY_MOUNTS: &[EarlyMount] = &[
    EarlyMount {
        fstype: "proc",
        target: "/proc",
        flags: MountFlags::NOSUID
            .union(MountFlags::NODEV)
            .union(MountFlags::NOEXEC),
        data: None,
    },
    EarlyMount {
        fstype: "sysfs",
        target: "/sys",
        flags: MountFlags::NOSUID
            .union(MountFlags::NODEV)
            .union(MountFlags::NOEXEC),
        data: None,
    },
    EarlyMount {
        fstype: "devtmpfs",
        target: "/dev",
        flags: MountFlags::NOSUID,
        data: Some(c"mode=0755"),
    },
    EarlyMount {
        fstype: "tmpfs",
        target: "/run",
        flags: MountFlags::NOSUID.union(MountFlags::NODEV),
        data: Some(c"mode=0755,size=16m"),
    },
    // An update bundle fetched from a URL waits here until it is checked and written (an aarch64
    // slot is ~35 MiB): a share of RAM, not a fixed 16 MiB; tmpfs takes only what is used.
    EarlyMount {
        fstype: "tmpfs",
        target: "/tmp",
        flags: MountFlags::NOSUID.union(MountFlags::NODEV),
        data: Some(c"mode=1777,size=25%"),
    },
];

/// Mounts one filesystem, creating the mount point; a filesystem already mounted there (EBUSY,
/// e.g. a kernel that mounts devtmpfs itself) counts as done.
pub fn mount_early(m: &EarlyMount) -> io::Result<()> {
    std::fs::create_dir_all(m.target)?;
    match mount(m.fstype, Path::new(m.target), m.fstype, m.flags, m.data) {
        Ok(()) | Err(rustix::io::Errno::BUSY) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Mounts the filesystem on block device `source` at `target` (created if missing), with no
/// device nodes, set-uid or executables honoured: e.g. the EFI system partition the appliance's
/// boot slots live on. `options` is the filesystem's option string.
pub fn mount_device(source: &Path, target: &Path, fstype: &str, options: &str) -> io::Result<()> {
    std::fs::create_dir_all(target)?;
    let options = std::ffi::CString::new(options)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in mount options"))?;
    let flags = MountFlags::NOSUID
        .union(MountFlags::NODEV)
        .union(MountFlags::NOEXEC);
    mount(source, target, fstype, flags, Some(options.as_c_str())).map_err(io::Error::from)
}
