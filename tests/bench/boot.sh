#!/bin/sh
# Boot benchmark of the x86_64 appliance under QEMU: seconds to the console banner and the first
# SMTP greeting over 3 boots, plus image sizes. Needs `make image`. Prints figures; never fails.
cd "$(dirname "$0")/../.." || exit 0
cargo bench -q -p tests --bench boot || echo "boot bench did not run"
