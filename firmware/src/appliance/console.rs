//! What the serial console needs of the machine beyond admin commands: applying a stored network
//! to eth0 and showing it as it is, and the tty's echo while a password is typed.

use crate::config::box_settings::NetworkSettings;
use crate::console::Platform;
use crate::log::console::say;

/// The appliance's serial console (stdin/stdout).
pub struct SerialConsole;

impl Platform for SerialConsole {
    fn apply_network(&self, network: &NetworkSettings) -> String {
        super::network::apply(network)
    }

    fn stall_services(&self) -> String {
        super::watchdog::stall();
        "services' heartbeat stopped: the watchdog resets the box within a minute\n".into()
    }

    fn network_status(&self) -> String {
        super::network::status()
    }

    fn input_waiting(&self, wait: std::time::Duration) -> bool {
        // An error (stdin gone) ends the follow as a key would.
        hal::sys::console::readable(std::io::stdin(), wait).unwrap_or(true)
    }

    fn set_echo(&self, on: bool) {
        if let Err(e) = hal::sys::console::set_echo(std::io::stdin(), on) {
            say!("postern: cannot switch the console's echo: {e}");
        }
    }
}
