#!/bin/sh
# Boot benchmark of the x86_64 appliance under QEMU: seconds to the console banner and the first
# SMTP greeting over 3 boots, plus image sizes; then two boots on a flash holding 100 000 deferred
# messages (filled by the queued_mail bench), timing the spool's recovery and the first greeting.
# Needs `make image`. Prints figures; never fails.
cd "$(dirname "$0")/../.." || exit 0
flash="${TMPDIR:-/tmp}/postern-boot-backlog.flash"
rm -f "$flash"
if POSTERN_BENCH_QUEUED=${BOOT_QUEUED:-100000} POSTERN_BENCH_KEEP="$flash" \
    cargo bench -q -p postern --bench queued_mail; then
    POSTERN_BENCH_FLASH="$flash" cargo bench -q -p tests --bench boot || echo "boot bench did not run"
else
    echo "no backlog flash; boots on a blank flash only"
    cargo bench -q -p tests --bench boot || echo "boot bench did not run"
fi
rm -f "$flash"
