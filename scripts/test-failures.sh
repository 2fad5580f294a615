#!/bin/sh
# Prints what failed in the test lanes' logs (target/lanes/*.log), for the end of `make test`:
# CI shows only the tail of its output, and a failed test's report is otherwise thousands of lines
# up, under the fuzzers' run and the other lane's output.
#
#   scripts/test-failures.sh target/lanes/*.log
#
# For each failed test: its name and the first lines of what it printed (the panic and its
# message); then cargo's list of the test binaries that failed, and the fuzzers' finds. Last, in
# a few lines however many failed, the names alone: the part of a tail that is always seen.
for log in "$@"; do
    [ -f "$log" ] || continue
    found=$(awk '
        # A failed test: its report runs from "---- name stdout ----" to the list of failures
        # (or the next report); 25 lines of it, without the backtrace, are enough for the panic.
        /^---- .* stdout ----$/ { shown = 0; inside = 1 }
        /^failures:$|^stack backtrace:$/ && inside { inside = 0 }
        inside && shown < 25 { print "  " $0; shown++; next }
        /^test .* \.\.\. FAILED$/ { print "  " $0 }
        /^error: / { print "  " $0; listing = 1; next }
        # A test binary that died of a signal (a stack overflow, an abort) names it here.
        /^Caused by:$/ { print "  " $0; getline; print "  " $0; next }
        listing && /^    `/ { print "  " $0; next }
        { listing = 0 }
        # The fuzzers: a find, and where its input was kept.
        /^==[0-9]+== ERROR: libFuzzer|^SUMMARY: libFuzzer|Test unit written to/ { print "  " $0 }
    ' "$log" | tail -n 150)
    [ -n "$found" ] && printf '== failed in %s:\n%s\n' "$(basename "$log" .log)" "$found"
done
names=$(for log in "$@"; do
    [ -f "$log" ] || continue
    grep -E '^test .* \.\.\. FAILED$|^    `.*`$|^==[0-9]+== ERROR: libFuzzer' "$log" |
        sed "s/^/  $(basename "$log" .log): /"
done | head -n 40)
[ -n "$names" ] && printf '== in short:\n%s\n' "$names"
exit 0
