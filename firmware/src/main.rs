//! The `postern` binary: appliance (PID 1) or host mode, and the admin command line.

fn main() {
    if std::process::id() == 1 {
        std::process::exit(postern::appliance::main());
    }
    std::process::exit(postern::cli::main());
}
