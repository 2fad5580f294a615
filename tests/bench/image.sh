#!/bin/sh
# Figures of the flashable image on both architectures: sizes, power-on to the SMTP banner under
# UEFI and TCG, update install time. Needs `make images`. Prints figures; never fails.
cd "$(dirname "$0")/../.." || exit 0
cargo bench -q -p tests --bench image || echo "image figures did not run"
