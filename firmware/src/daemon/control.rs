//! Serves the control socket: one admin command per connection.

use std::io;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::Path;

use tokio::net::UnixListener;

use super::{DaemonError, master};
use crate::admin::{Admin, control};

/// Binds the control socket, clearing a stale one left by a daemon that died, but never one a
/// live daemon answers on.
pub fn bind(path: &Path) -> Result<UnixListener, DaemonError> {
    let err = |e| DaemonError::Control(path.to_path_buf(), e);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    if path.exists() {
        match StdUnixStream::connect(path) {
            Ok(_) => return Err(DaemonError::AlreadyRunning(path.to_path_buf())),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path).map_err(err)?
            }
            Err(e) => return Err(err(e)),
        }
    }
    UnixListener::bind(path).map_err(err)
}

/// Accepts connections until the task is aborted.
pub async fn serve(listener: UnixListener, admin: Admin) {
    loop {
        let mut stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                master(&format!("control socket accept failed: {e}"));
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let cmd = match control::read_command(&mut stream).await {
                Ok(cmd) => cmd,
                Err(e) => {
                    let reply = control::Reply::failed(format!("bad control request: {e}"));
                    if let Err(e) = control::write_reply(&mut stream, reply).await {
                        master(&format!("control socket reply failed: {e}"));
                    }
                    return;
                }
            };
            // A long listing's parts are written while the rest is made.
            let (tx, rx) = tokio::sync::mpsc::channel::<String>(2);
            let writer = async {
                // Owned here: a reader gone away drops it, and the listing stops at its next part.
                let mut rx = rx;
                while let Some(part) = rx.recv().await {
                    control::write_part(&mut stream, part).await?;
                }
                Ok::<(), std::io::Error>(())
            };
            let (reply, written) = tokio::join!(admin.execute_to(cmd, tx), writer);
            let written = match written {
                Ok(()) => control::write_reply(&mut stream, reply).await,
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                master(&format!("control socket reply failed: {e}"));
            }
        });
    }
}
