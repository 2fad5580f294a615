//! Appliance mode: `postern` as PID 1 of its own image.
//!
//! The sequence: mount /proc, /sys, /dev, /run, /tmp; set the hostname; load the image's kernel
//! modules; bring up lo and eth0; take the serial console; open the flash (retrying, with a
//! message on the console, while the flash is missing or wrong); on a box never set up, the
//! first-boot wizard; configure eth0 and the host name from the stored settings (or the boot
//! parameters that override them); start the services (and the clock's SNTP task); then the
//! console's login and menu until power off or reboot there, SIGTERM (poweroff) or Ctrl-Alt-Del
//! (SIGINT, reboot). Shutting down stops the services, syncs, takes eth0 down and calls reboot(2).
//!
//! PID 1 must never exit or panic (the kernel would panic): a fatal error prints a message,
//! waits, and reboots.

mod boot;
mod clock;
mod cmdline;
mod console;
mod dhcp;
mod esp;
mod input;
mod network;
mod router_dns;
mod services;
pub mod sntp;
mod watchdog;

use std::io::Write;
use std::time::Duration;

use hal::sys::power::{self, PowerAction};

use crate::log::console::say;

pub use cmdline::BootParams;

/// How long a fatal message stays on the console before the reboot.
const FATAL_DELAY: Duration = Duration::from_secs(10);

/// Runs the appliance. Returns only when the kernel refuses to power off (not PID 1).
pub fn main() -> i32 {
    install_panic_hook();
    if let Err(e) = boot::mount_filesystems() {
        fatal(&e);
    }
    say!(
        "postern {}: appliance mode, kernel up {:.2} s",
        env!("CARGO_PKG_VERSION"),
        boot::uptime()
    );
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let (params, warnings) = cmdline::parse(&cmdline);
    for w in warnings {
        say!("postern: {w}");
    }
    boot::set_hostname(&params.hostname);
    if let Err(e) = power::ctrl_alt_del_signals_init() {
        say!("postern: cannot route Ctrl-Alt-Del to postern: {e}");
    }
    boot::load_modules();
    boot::bring_up_links();
    if let Err(e) = hal::sys::console::set_line_mode(std::io::stdin()) {
        say!("postern: cannot set the console's line mode: {e}");
    }
    let action = match services::run(&params) {
        Ok(action) => action,
        Err(e) => fatal(&e),
    };
    shut_down(action)
}

/// Syncs, takes eth0 down and powers off or restarts.
fn shut_down(action: PowerAction) -> i32 {
    let verb = match action {
        PowerAction::Poweroff => "powering off",
        PowerAction::Reboot => "rebooting",
    };
    say!("postern: {verb}");
    power::sync();
    // A virtio-net guest was seen to hang in poweroff with a TCP connection closing.
    if hal::sys::net::link_exists(boot::WAN) {
        let _ = hal::sys::net::link_down(boot::WAN);
    }
    let e = power::shutdown(action);
    say!("postern: {verb} failed: {e}");
    1
}

/// Prints why the box cannot run, waits so a person can read it, and reboots.
fn fatal(message: &str) -> ! {
    say!("postern: FATAL: {message}");
    say!("postern: rebooting in {} s", FATAL_DELAY.as_secs());
    let _ = std::io::stderr().flush();
    std::thread::sleep(FATAL_DELAY);
    let e = power::shutdown(PowerAction::Reboot);
    say!("postern: reboot failed: {e}; halting here");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// A panic in PID 1 would panic the kernel (panic = "abort" ends the process): say what happened
/// on the console and reboot instead.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        say!("postern: internal error: {info}");
        fatal("internal error (see the line above)");
    }));
}
