#!/bin/sh
# Runs every fuzz target of fuzz/ for SECONDS each (default 60): `make fuzz` runs it long, `make
# test` runs the short default. Finds go to fuzz/artifacts/<target>/; the run fails on the first.
#
# cargo-fuzz needs nightly features; on a stable toolchain RUSTC_BOOTSTRAP=1 unlocks them for this
# build only. The fuzz build has its own target directory: its flags (sanitizers, coverage) must
# not invalidate the shared one.
set -eu
secs="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$root/fuzz/target}"
for target in $(cargo fuzz list); do
    mkdir -p "corpus/$target"
    echo "== fuzz $target for ${secs}s"
    cargo fuzz run "$target" "corpus/$target" seeds -- \
        -max_total_time="$secs" -max_len=4096 -rss_limit_mb=2048 -print_final_stats=1
done
