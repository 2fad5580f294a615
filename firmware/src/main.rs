//! The `postern` binary: appliance (PID 1) or host mode, and the admin command line.

use postern::directory::ldap::fetch;

fn main() {
    // A child this binary started to read LDAP (a panic there must not stop the box).
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == fetch::CHILD_ARG)
    {
        std::process::exit(fetch::child_main());
    }
    if let Ok(exe) = std::env::current_exe() {
        fetch::isolate_in_child(exe);
    }
    let code = if std::process::id() == 1 {
        postern::appliance::main()
    } else {
        postern::cli::main()
    };
    // `exit` runs no destructors: the console's last queued lines are written first.
    postern::log::console::flush(std::time::Duration::from_secs(2));
    std::process::exit(code);
}
