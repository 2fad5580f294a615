#!/bin/sh
# Folds what fuzz runs found (the scratch corpus of scripts/fuzz.sh) into the checked-in corpus
# of each target, minimised: the fewest inputs that keep the edges both cover. Inputs that once
# failed live in fuzz/regressions/<target>/ and are never minimised away. The result is
# checked in so that the short CI run starts from that coverage.
#
#   scripts/fuzz-cmin.sh [TARGET...]    (default: every target)
set -eu
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$root/fuzz/target}"
scratch="${FUZZ_SCRATCH:-$CARGO_TARGET_DIR/scratch-corpus}"
targets="${*:-$(cargo fuzz list)}"
for target in $targets; do
    mkdir -p "corpus/$target" "$scratch/$target"
    merged="$(mktemp -d)"
    # A set cover of the edges only (no hit counts): tens of inputs rather than hundreds (a few
    # hundred for SMTP, whose state machine has thousands of edges); the fuzzer finds the counts
    # again within seconds. Inputs past 1 KiB would bloat the repository.
    cargo fuzz run "$target" "$merged" "corpus/$target" "$scratch/$target" -- \
        -set_cover_merge=1 -use_counters=0 -use_value_profile=0 -max_len=1024 -rss_limit_mb=2048
    rm -rf "corpus/$target"
    mv "$merged" "corpus/$target"
    echo "== $target: $(ls "corpus/$target" | wc -l) inputs, $(du -sk "corpus/$target" | cut -f1) KiB"
done
