//! The EFI system partition (ESP) of the disk image: where the boot slots live. Mounted at
//! [`ESP_MOUNT`] when the box booted from the disk (not under QEMU's direct `-kernel` boot), so
//! that the running slot can be marked good after its health check and updates can write the
//! other slot.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hal::sys::mounts;

use super::boot;
use crate::log::console::say;
use crate::update::{self, SlotFile};

pub const ESP_MOUNT: &str = "/boot/efi";
/// The GPT name mkimage gives the ESP.
pub const ESP_PARTLABEL: &str = "EFI system partition";

/// Mounts the ESP; `None` (and why, on the console) when there is none or it cannot be mounted.
pub fn mount() -> Option<PathBuf> {
    mount_efivars();
    let mut device = None;
    boot::wait_for(
        || {
            device = boot::find_partition(ESP_PARTLABEL);
            device.is_some()
        },
        Duration::from_secs(1),
    );
    let Some(device) = device else {
        say!("postern: no EFI system partition: booted without the boot loader, no slots");
        return None;
    };
    // Short names as the boot loader writes them; files stay the firmware's only.
    match mounts::mount_device(&device, Path::new(ESP_MOUNT), "vfat", "umask=0077,flush") {
        Ok(()) => Some(PathBuf::from(ESP_MOUNT)),
        Err(e) => {
            say!(
                "postern: cannot mount the EFI system partition {}: {e}",
                device.display()
            );
            None
        }
    }
}

/// Mounts efivarfs, where the boot loader says which entry it booted.
pub fn mount_efivars() {
    let dir = Path::new(EFIVARS);
    if !Path::new("/sys/firmware/efi").exists() {
        return;
    }
    if let Err(e) = mounts::mount_device(Path::new("efivarfs"), dir, "efivarfs", "") {
        say!("postern: cannot mount efivarfs: {e}");
    }
}

const EFIVARS: &str = "/sys/firmware/efi/efivars";

/// The slot this firmware runs from, if it is still on trial (its boot counter not yet dropped).
pub fn booted_on_trial(esp: &Path) -> Option<SlotFile> {
    let slots = update::slots::scan(esp).ok()?;
    update::slots::booted(&slots, update::slots::selected(), update::running_version())
        .filter(|s| s.counter.is_some())
        .cloned()
}

/// The health check passed: keep booting this slot.
pub fn mark_good(esp: &Path) {
    let selected = update::slots::selected();
    match update::slots::mark_good(esp, selected, update::running_version()) {
        Ok(Some(slot)) => say!(
            "postern: slot {} (postern {}) passed its health check: marked good",
            slot.slot,
            slot.version
        ),
        Ok(None) => {}
        Err(e) => say!(
            "postern: cannot mark this slot good ({e}): the boot loader will fall back to the \
             other slot at the next boot"
        ),
    }
}
