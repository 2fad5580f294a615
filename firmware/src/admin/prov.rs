//! `postern prov`: zmprov's commands against the directory. A change is written to the flash's
//! directory slot before it is served, so what `prov` reports done survives a power cut, and a
//! change that could not be written is not served at all.

use crate::directory::{SharedDirectory, prov};
use crate::spool::{SpoolError, SpoolHandle};

use super::Reply;

enum Failure {
    Prov(prov::ProvError),
    Flash(SpoolError),
}

/// Runs one prov command. Blocking (flash writes happen inside): call it off the runtime's workers.
pub fn run(
    directory: &SharedDirectory,
    spool: &SpoolHandle,
    runtime: &tokio::runtime::Handle,
    args: &[String],
) -> Reply {
    let result = directory.update(|dir| {
        let outcome = prov::execute(dir, args).map_err(Failure::Prov)?;
        if let Some(next) = &outcome.directory {
            super::ldap::write_snapshot(spool, runtime, next).map_err(Failure::Flash)?;
        }
        Ok((outcome.output, outcome.directory))
    });
    match result {
        Ok(text) => Reply::ok(text),
        Err(Failure::Prov(e)) => Reply::failed(format!("{e}\n")),
        Err(Failure::Flash(e)) => Reply::failed(format!(
            "ERROR: the change was not saved to flash, nothing changed: {e}\n"
        )),
    }
}
