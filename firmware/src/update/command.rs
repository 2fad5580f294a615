//! `postern update status|check|install`: the slots on the ESP, and installing a bundle.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::{ARCH, built_in_key, install, running_version, slots};

/// Where the appliance mounts its EFI system partition.
pub const DEFAULT_ESP: &str = "/boot/efi";

#[derive(Debug, Subcommand)]
pub enum UpdateCommand {
    /// Both boot slots: version, state, which one runs.
    Status {
        /// The mounted EFI system partition.
        #[arg(long, value_name = "DIR", default_value = DEFAULT_ESP)]
        esp: PathBuf,
    },
    /// Check a bundle (signature, architecture, version, slot hash) without installing it.
    Check { bundle: PathBuf },
    /// Check a bundle, write it into the slot that is not running, read it back, and leave it on
    /// trial for the next boot (reboot to try it; it rolls back unless it passes its health check).
    Install {
        bundle: PathBuf,
        #[arg(long, value_name = "DIR", default_value = DEFAULT_ESP)]
        esp: PathBuf,
    },
}

/// Runs one update command; returns the exit code.
pub fn run(cmd: UpdateCommand) -> i32 {
    match cmd {
        UpdateCommand::Status { esp } => match status(&esp) {
            Ok(text) => {
                print!("{text}");
                0
            }
            Err(e) => {
                eprintln!("postern: cannot read the slots in {}: {e}", esp.display());
                1
            }
        },
        UpdateCommand::Check { bundle } => {
            match install::verify(&bundle, built_in_key().as_ref(), ARCH, running_version()) {
                Ok(m) => {
                    println!(
                        "{}: good: postern {} for {}, slot image {} bytes",
                        bundle.display(),
                        m.version,
                        m.arch,
                        m.slot_bytes
                    );
                    0
                }
                Err(e) => {
                    eprintln!("postern: {}: {e}", bundle.display());
                    1
                }
            }
        }
        UpdateCommand::Install { bundle, esp } => {
            let booted = slots::selected();
            match install(
                &bundle,
                &esp,
                booted,
                built_in_key().as_ref(),
                ARCH,
                running_version(),
            ) {
                Ok(done) => {
                    println!(
                        "installed postern {} into slot {} ({}, {} bytes, read back intact); \
                         it boots on trial at the next reboot",
                        done.version, done.slot, done.file_name, done.bytes
                    );
                    0
                }
                Err(e) => {
                    eprintln!("postern: {}: {e}", bundle.display());
                    1
                }
            }
        }
    }
}

/// One line per slot.
pub fn status(esp: &Path) -> std::io::Result<String> {
    let found = slots::scan(esp)?;
    let running = running_version();
    let selected = slots::selected();
    let booted = slots::booted(&found, selected, running).map(|s| s.slot);
    let mut out = format!("running: postern {running} ({ARCH})\n");
    for id in [slots::SlotId::A, slots::SlotId::B] {
        match found.iter().find(|s| s.slot == id) {
            Some(s) => out.push_str(&format!(
                "slot {id}: postern {}, {}{}\n",
                s.version,
                s.state(),
                match (booted == Some(id), selected.is_some()) {
                    (true, true) => ", booted (the boot loader chose it)",
                    (true, false) => ", booted (it holds the running version)",
                    (false, _) => "",
                }
            )),
            None => out.push_str(&format!("slot {id}: empty\n")),
        }
    }
    Ok(out)
}
