//! `postern prov`: zmprov's commands against the running daemon's directory. A change is
//! written to flash before it is served, so what `prov` reports done survives a power cut.

use crate::daemon::State;
use crate::directory::prov;

use super::Reply;

/// Runs one prov command. Blocking: flash writes happen inside.
pub fn run(state: &State, args: &[String]) -> Reply {
    let result = state.directory.update(|dir| {
        let outcome = prov::execute(dir, args)?;
        Ok::<_, prov::ProvError>((outcome.output, outcome.directory))
    });
    match result {
        Ok(text) => Reply::ok(text),
        Err(e) => Reply::failed(format!("{e}\n")),
    }
}
