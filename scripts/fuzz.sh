#!/bin/sh
# Fuzzes every target of fuzz/ and fails on the first find (kept in fuzz/artifacts/<target>/).
#
#   scripts/fuzz.sh            the short run of `make fuzz-short` (CI): 120 s in all, split evenly
#   scripts/fuzz.sh 600        600 s in all
#   scripts/fuzz.sh -e 1800    1800 s for each target (`make fuzz`)
#   scripts/fuzz.sh -r 10000000 [TARGET...]
#                              each target (or those named) to that many executions, however
#                              long it takes: the campaign's count, printed per target at the end
#   scripts/fuzz.sh -b         only the short run's build (`make test` builds beside the other
#                              builds and runs the targets with the tests)
#
# Each target starts from its checked-in corpus (fuzz/corpus/<target>/, plus fuzz/seeds/ for the
# SMTP ones and fuzz/regressions/<target>/, inputs that once failed), so a short run begins with coverage rather than rediscovering the protocol. New
# inputs go to a scratch directory, never into the checked-in corpus: `scripts/fuzz-cmin.sh`
# folds them in when that is wanted.
#
# cargo-fuzz needs nightly features; on a stable toolchain RUSTC_BOOTSTRAP=1 unlocks them for this
# build only. The fuzz build has its own target directory: its flags (sanitizers, coverage) must
# not invalidate the shared one.
set -eu
each=false
runs=""
build_only=false
case "${1:-}" in
    -b) build_only=true; shift ;;
    -e) each=true; shift ;;
    -r) runs="${2:?-r needs a count}"; shift 2 ;;
esac
secs="${1:-120}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$root/fuzz/target}"
scratch="${FUZZ_SCRATCH:-$CARGO_TARGET_DIR/scratch-corpus}"
targets="$(cargo fuzz list)"
if [ -n "$runs" ]; then
    [ $# -gt 0 ] && targets="$*"
    secs=0
fi
count=$(echo "$targets" | wc -l)
if $each || [ -n "$runs" ]; then
    per=$secs
else
    per=$((secs / count))
    [ "$per" -ge 1 ] || per=1
fi
# The short run (CI) builds without AddressSanitizer: the targets are safe Rust, where ASan finds
# little, and from cold its instrumented build of every dependency took 13.5 min against 9.6.
# It also builds the dev profile, which fuzz/Cargo.toml sets to opt-level 1: from cold 8.4 min
# against 17.7 for the release profile at opt-level 3 (with 16 codegen units per crate; cargo
# fuzz's default is one), at ~90 % of its executions per second. The timed long runs (`-e`,
# `make fuzz`) keep ASan and the release profile; a run to a count (`-r`) is for throughput:
# the release profile without ASan.
if $each; then
    build="-O"
elif [ -n "$runs" ]; then
    build="-O --sanitizer=none"
else
    build="-D --sanitizer=none"
fi
# libFuzzer: -max_total_time=0 is no time limit, -runs=-1 no count limit.
limit="-max_total_time=$per"
[ -n "$runs" ] && limit="-runs=$runs"
# shellcheck disable=SC2086 # a list of flags
cargo fuzz build $build
$build_only && exit 0
for target in $targets; do
    mkdir -p "corpus/$target" "$scratch/$target"
    seeds=""
    # The SMTP server's seeds are client sessions; the reply parser reads servers.
    case $target in smtp_reply) ;; smtp_*) seeds=seeds ;; esac
    # Inputs that once failed: every run starts by replaying them.
    [ -d "regressions/$target" ] && seeds="$seeds regressions/$target"
    case $limit in -runs=*) echo "== fuzz $target for $runs executions" ;; *) echo "== fuzz $target for ${per}s" ;; esac
    # shellcheck disable=SC2086 # $seeds is a list of directories
    cargo fuzz run $build "$target" "$scratch/$target" "corpus/$target" $seeds -- \
        "$limit" -max_len=4096 -rss_limit_mb=2048 -print_final_stats=1
done
