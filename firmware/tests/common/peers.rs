//! What a test does when a real peer (Dovecot, smtp-sink, swaks) is not installed.

/// Reports that `peer` is missing. Under CI (`CI=true`) the test fails, naming the Debian
/// package, since a pass that tested nothing would hide it; elsewhere the test says SKIPPED and
/// returns, so a developer without every peer can still run the rest.
pub fn missing(peer: &str, package: &str) {
    let message = format!("{peer} is not installed (apt-get install {package}, or make deps)");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true and {message}");
    }
    println!("SKIPPED: {message}");
}
