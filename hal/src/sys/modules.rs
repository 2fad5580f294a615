//! Loading kernel modules from files with `finit_module(2)`, in an order decided at image build time.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Loads one module file. A module already loaded (EEXIST) counts as loaded.
pub fn load(path: &Path) -> io::Result<()> {
    load_with_params(path, "")
}

/// Loads one module file with a parameter string as `modprobe NAME PARAMS` would pass it
/// (`block2mtd=/dev/vda,65536`). A module already loaded (EEXIST) counts as loaded, and then its
/// parameters were not applied: set them through /sys/module/NAME/parameters instead.
pub fn load_with_params(path: &Path, params: &str) -> io::Result<()> {
    let params = std::ffi::CString::new(params).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "module parameters contain a NUL byte",
        )
    })?;
    let file = File::open(path)?;
    match rustix::system::finit_module(&file, &params, 0) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The module files named, one per line, in `order` (a file in `dir`); blank lines and `#`
/// comments are skipped. A missing order file means the kernel needs no modules.
pub fn read_order(dir: &Path, order: &Path) -> io::Result<Vec<PathBuf>> {
    let text = match std::fs::read_to_string(order) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(parse_order(&text).map(|name| dir.join(name)).collect())
}

fn parse_order(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter(|l| !l.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_file_names_stay_inside_the_module_dir() {
        let names: Vec<_> =
            parse_order("virtio.ko\n\n# c\n ../../etc/x.ko\nvirtio_net.ko\n").collect();
        assert_eq!(names, ["virtio.ko", "virtio_net.ko"]);
    }

    #[test]
    fn parameters_with_a_nul_are_refused_before_the_kernel_sees_them() {
        let err = load_with_params(Path::new("/nonexistent.ko"), "a=\0b").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_missing_order_file_means_no_modules() {
        let dir = std::env::temp_dir();
        let list = read_order(&dir, &dir.join("postern-no-such-order-file")).unwrap();
        assert!(list.is_empty());
    }
}
