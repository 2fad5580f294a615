//! `postern update status|check|install`: the slots on the ESP, and installing a bundle from a
//! file on the box or from a URL. An admin command like the others: the daemon carries it out
//! (over the control socket, from the console's command line) or `postern --flash` does.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde::{Deserialize, Serialize};

use super::fetch::{FetchError, fetch};
use super::http::{HttpError, Url};
use super::install::InstallError;
use super::{ARCH, Manifest, built_in_key, install, running_version, slots};
use crate::log::LogSink;

/// Where the appliance mounts its EFI system partition.
pub const DEFAULT_ESP: &str = "/boot/efi";

#[derive(Debug, Clone, PartialEq, Eq, Subcommand, Serialize, Deserialize)]
pub enum UpdateCommand {
    /// Both boot slots: version, state, which one runs.
    Status {
        /// The mounted EFI system partition.
        #[arg(long, value_name = "DIR", default_value = DEFAULT_ESP)]
        esp: PathBuf,
    },
    /// Check a bundle (signature, architecture, version, slot hash) without installing it.
    Check {
        /// A file on the box, or an http:// or https:// URL to fetch it from.
        bundle: String,
    },
    /// Check a bundle, write it into the slot that is not running, read it back, and leave it on
    /// trial for the next boot (reboot to try it; it rolls back unless it passes its health check).
    Install {
        /// A file on the box, or an http:// or https:// URL to fetch it from.
        bundle: String,
        #[arg(long, value_name = "DIR", default_value = DEFAULT_ESP)]
        esp: PathBuf,
    },
}

/// Why an update command did nothing.
#[derive(Debug)]
pub enum UpdateError {
    Slots(PathBuf, std::io::Error),
    Fetch(String, FetchError),
    /// No room for the download.
    Download(std::io::Error),
    Bundle(String, InstallError),
    /// The blocking work did not finish (the runtime is shutting down).
    Stopped,
}

impl std::fmt::Display for UpdateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpdateError::Slots(esp, e) => {
                write!(f, "cannot read the slots in {}: {e}", esp.display())
            }
            UpdateError::Fetch(url, e) => write!(f, "{url}: not fetched, nothing written: {e}"),
            UpdateError::Download(e) => write!(
                f,
                "cannot keep the download in {}: {e}",
                std::env::temp_dir().display()
            ),
            UpdateError::Bundle(source, e) => write!(f, "{source}: {e}"),
            UpdateError::Stopped => write!(f, "the update did not finish"),
        }
    }
}

impl std::error::Error for UpdateError {}

/// Carries out one update command; the text to show.
pub async fn run(cmd: UpdateCommand) -> Result<String, UpdateError> {
    match cmd {
        UpdateCommand::Status { esp } => {
            blocking(move || status(&esp).map_err(|e| UpdateError::Slots(esp, e))).await
        }
        UpdateCommand::Check { bundle } => {
            let local = Local::get(&bundle).await?;
            let path = local.path().to_path_buf();
            let m = blocking(move || {
                super::install::verify(&path, built_in_key().as_ref(), ARCH, running_version())
                    .map_err(|e| UpdateError::Bundle(bundle.clone(), e))
                    .map(|m| (m, bundle))
            })
            .await?;
            let (m, bundle): (Manifest, String) = m;
            Ok(format!(
                "{bundle}: good: signature by the update key, postern {} for {} (this box runs \
                 {} on {ARCH}), slot image {} bytes, hash matches\n",
                m.version,
                m.arch,
                running_version(),
                m.slot_bytes
            ))
        }
        UpdateCommand::Install { bundle, esp } => {
            let local = Local::get(&bundle).await?;
            let path = local.path().to_path_buf();
            let done = blocking(move || {
                install(
                    &path,
                    &esp,
                    slots::selected(),
                    built_in_key().as_ref(),
                    ARCH,
                    running_version(),
                    &LogSink::stderr(),
                )
                .map_err(|e| UpdateError::Bundle(bundle, e))
            })
            .await?;
            Ok(format!(
                "installed postern {} into slot {} ({}, {} bytes, read back intact); \
                 it boots on trial at the next reboot\n",
                done.version, done.slot, done.file_name, done.bytes
            ))
        }
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, UpdateError> + Send + 'static,
) -> Result<T, UpdateError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| UpdateError::Stopped)?
}

/// The bundle as a file on the box: the path given, or a download removed when done.
enum Local {
    Given(PathBuf),
    Fetched(PathBuf),
}

impl Local {
    async fn get(source: &str) -> Result<Local, UpdateError> {
        let url = match Url::parse(source) {
            Ok(url) => url,
            // Not a URL at all: a path on the box.
            Err(HttpError::Scheme) if !source.contains("://") => {
                return Ok(Local::Given(PathBuf::from(source)));
            }
            Err(e) => return Err(UpdateError::Fetch(source.to_string(), FetchError::Url(e))),
        };
        // Two downloads at once (two admins) each get their own file.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let to =
            std::env::temp_dir().join(format!("postern-bundle-{}-{n}.part", std::process::id()));
        // From here the download is removed on every way out.
        let local = Local::Fetched(to.clone());
        fetch(&url, &to).await.map_err(|e| match e {
            FetchError::Io(io) if !matches!(io.kind(), std::io::ErrorKind::TimedOut) => {
                UpdateError::Download(io)
            }
            e => UpdateError::Fetch(source.to_string(), e),
        })?;
        Ok(local)
    }

    fn path(&self) -> &Path {
        match self {
            Local::Given(p) | Local::Fetched(p) => p,
        }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        if let Local::Fetched(p) = self {
            let _ = std::fs::remove_file(p);
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
