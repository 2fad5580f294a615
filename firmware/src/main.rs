//! The `postern` binary: appliance (PID 1) or host mode, and the admin command line.

fn main() {
    std::process::exit(postern::admin::cli::main());
}
