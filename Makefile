# Postern: `make run` boots the appliance in QEMU; `make test` runs every test. Both install what
# they need first (Debian packages, as root).

# bash: the test lanes' pipes need pipefail.
SHELL := /bin/bash

ARCH ?= x86_64
HOST_TARGET := x86_64-unknown-linux-gnu
TARGET_x86_64 := x86_64-unknown-linux-gnu
TARGET_aarch64 := aarch64-unknown-linux-gnu
TARGET := $(TARGET_$(ARCH))
IMAGE_DIR := build/$(ARCH)
FIRMWARE := target/$(TARGET)/release/postern
# Debian's rustc carries the arm64 std; without RUSTC= its cargo would pick rustup's rustc.
DEBIAN_CARGO := RUSTC=/usr/bin/rustc CARGO_TARGET_DIR=target/debian /usr/bin/cargo
FUZZ_SECONDS ?= 120

.PHONY: all deps build firmware firmware-aarch64 firmware-x86_64 image images bundle run run-direct test test-builds tests-host tests-qemu unit lint style fuzz fuzz-short fuzz-build aarch64 bench soak soak-host soak-qemu clean

all: build

deps:
	bash scripts/install-deps.sh

build:
	cargo build --workspace --all-targets

# The update signing key: a development pair made on first use (gitignored, never committed).
KEYS := image/keys
MKBUNDLE := cargo run -q --release -p image --bin mkbundle --
# The firmware trusts the public half: built in at compile time.
UPDATE_KEY = key=$$($(MKBUNDLE) key --keys $(KEYS)) && POSTERN_UPDATE_PUBKEY=$$key

# The firmware as it goes into the image: static, size-optimised, stripped.
firmware:
ifeq ($(ARCH),aarch64)
	$(UPDATE_KEY) $(DEBIAN_CARGO) build --release -p postern --target $(TARGET)
	mkdir -p target/$(TARGET)/release && cp target/debian/$(TARGET)/release/postern $(FIRMWARE)
else
	$(UPDATE_KEY) cargo build --release -p postern --target $(TARGET)
endif

image: firmware
	cargo run -q --release -p image --bin mkimage -- --arch $(ARCH) --firmware $(FIRMWARE) --out $(IMAGE_DIR)

# Both architectures' images: the QEMU tests boot both, side by side.
images:
	$(MAKE) image ARCH=x86_64
	$(MAKE) image ARCH=aarch64

# A signed update bundle of the image's slot (version and arch from build/ARCH/manifest.txt).
bundle: image
	$(MKBUNDLE) --keys $(KEYS) --image $(IMAGE_DIR) \
		--out $(IMAGE_DIR)/postern-$(ARCH)-$$(sed -n 's/^version //p' $(IMAGE_DIR)/manifest.txt).bundle

# The box as flashed: the disk image under UEFI (OVMF / AAVMF). The first run copies the image to
# disk.img, which then keeps its spool and boot counters across runs like a real disk; delete it
# to flash afresh.
run: deps image
	[ -f $(IMAGE_DIR)/disk.img ] || cp --sparse=always $(IMAGE_DIR)/postern-$(ARCH).img $(IMAGE_DIR)/disk.img
	cargo run -q --release -p qemu --bin qemu -- --arch $(ARCH) --disk $(IMAGE_DIR)/disk.img \
		--console stdio --forward 2525:25 --forward 2587:587 --forward 2465:465

# The kernel and initramfs straight from QEMU, with the flash as its own file: seconds faster.
run-direct: deps image
	cargo run -q --release -p qemu --bin qemu -- --arch $(ARCH) --image $(IMAGE_DIR) \
		--flash $(IMAGE_DIR)/flash.img --console stdio --forward 2525:25 --forward 2587:587 --forward 2465:465

# Format and clippy; then the import rule: the table in firmware/src/lib.rs's crate doc, checked
# against every `crate::` path (one `module -> imported (file:line)` line per violation). `make
# test` takes only `style` among its builds: the import rule is one of the host lane's tests, and
# building it beside clippy put four minutes of the test build on the builds' longest lane.
lint: style
	cargo test -q --workspace --test import_rule

style:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

# Unit, property and end-to-end tests (host mode and QEMU on both architectures: the images must
# be built first).
unit: build
	cargo test --workspace --no-fail-fast

# The tests in two lanes that run at once: the QEMU boots (both architectures; they spend most of
# their time waiting on the guests' timers: a lease running out, a watchdog, a reboot) beside
# everything else. Together they are `cargo test --workspace`: the host lane is every lib, bin,
# doc test and test file but the QEMU ones, then the fuzzers' short run (built with the builds).
# Each takes `--workspace`, so features unify as in the build and nothing is compiled again.
# MAKEFLAGS is cleared for them: it names make's jobserver, which make hands only to sub-makes,
# and cargo warns of it at every doc test. Each line of a lane's output carries its name. Ports
# are claimed across the two processes (firmware/tests/common/ports.rs); the QEMU-only fixtures
# (one QEMU per architecture, the SNTP server on port 123) stay in the QEMU lane, Postfix's
# main.cf in the host lane. Each lane's output is kept in target/lanes/<lane>.log; when a lane
# fails, `test` prints the machine's load and free disk, then what failed
# (scripts/test-failures.sh) last, where CI's tail shows it.
ALL_TESTS := $(sort $(basename $(notdir $(wildcard */tests/*.rs))) \
	$(notdir $(patsubst %/main.rs,%,$(wildcard */tests/*/main.rs))))
QEMU_TESTS := $(filter qemu_%,$(ALL_TESTS))
HOST_TESTS := $(filter-out $(QEMU_TESTS),$(ALL_TESTS))
LANE = 2>&1 | tee -a target/lanes/$@.log | sed -u 's/^/[$@] /'
LANE_LOG = mkdir -p target/lanes; : > target/lanes/$@.log

tests-host:
	$(LANE_LOG)
	set -o pipefail; export MAKEFLAGS= MFLAGS=; status=0; \
	cargo test --workspace --no-fail-fast --lib --bins $(addprefix --test ,$(HOST_TESTS)) $(LANE) \
		|| status=1; \
	cargo test --workspace --no-fail-fast --doc $(LANE) || status=1; \
	bash scripts/fuzz.sh $(FUZZ_SECONDS) $(LANE) || status=1; \
	exit $$status

tests-qemu:
	$(LANE_LOG)
	set -o pipefail; export MAKEFLAGS= MFLAGS=; \
	cargo test --workspace --no-fail-fast $(addprefix --test ,$(QEMU_TESTS)) $(LANE)

# Everything, as CI runs it from a fresh clone. The builds run two at a time, so both cores stay
# busy through the single-threaded tails (the largest crates, the link), longest first: the aarch64
# firmware (Debian's toolchain, its own target directory) beside `style` (fails fast on a
# format slip); whichever ends first takes the fuzzers' build (their own target directory), then
# the x86_64 firmware and the debug build. The tests then run in two lanes (above). The signing key
# is made first: both firmware builds build its public half in, and two first uses at once would
# make two keys.
test: deps
	$(MKBUNDLE) key --keys $(KEYS) >/dev/null
	$(MAKE) -j2 test-builds
	$(MAKE) images
	$(MAKE) -j2 -k tests-host tests-qemu || \
		{ uptime; df -h . /tmp; \
		  sh scripts/test-failures.sh target/lanes/tests-host.log target/lanes/tests-qemu.log; \
		  exit 1; }

firmware-aarch64:
	$(MAKE) firmware ARCH=aarch64

firmware-x86_64:
	$(MAKE) firmware ARCH=x86_64

# Independent of each other: make starts them in this order as a slot frees up.
test-builds: firmware-aarch64 style fuzz-build firmware-x86_64 build

# The short run: a total budget split across the targets (FUZZ_SECONDS, 120 s by default).
fuzz-short:
	bash scripts/fuzz.sh $(FUZZ_SECONDS)

fuzz-build:
	bash scripts/fuzz.sh -b

fuzz:
	bash scripts/fuzz.sh -e 1800

# The aarch64 debug build (the image takes the release build; `make images` boots it in the tests).
aarch64:
	$(DEBIAN_CARGO) build -p postern --target $(TARGET_aarch64)
	file target/debian/$(TARGET_aarch64)/debug/postern

# Benchmarks print figures and never fail; not part of `make test`. The relay table (ceiling,
# Postern, Postfix side by side per case, the load before each run) needs root and the release
# build; BENCH_MESSAGES sets the 5 KB runs' count (the big-message runs take fewer). A run on
# a shared machine varies by +-15 %: each case runs BENCH_ROUNDS times, the table gives medians
# and each ratio's range.
BENCH_MESSAGES ?= 5000
BENCH_ROUNDS ?= 3
# The content benchmark's count: spamd makes each message cost ~0.4 s of CPU.
CONTENT_BENCH_MESSAGES ?= 1000
bench:
	bash scripts/install-deps.sh --bench
	cargo build --release -p postern --target $(HOST_TARGET)
	cargo build --release -p postern --example smtp-load --target $(HOST_TARGET)
	-python3 tests/bench/relay.py --messages $(BENCH_MESSAGES) --rounds $(BENCH_ROUNDS)
	-python3 tests/bench/content.py --messages $(CONTENT_BENCH_MESSAGES)
	-python3 tests/bench/idle_sessions.py
	cargo bench -p postern
	@for b in tests/bench/*.sh; do [ -x "$$b" ] && "$$b"; done; true

# Relay load while the daemon is killed with SIGKILL every few seconds, the next hop flaps, a
# client sends one byte a second, LDAP dies once synced, and (after) a small flash fills up; then
# in QEMU on both architectures, SOAK_KILLS SIGKILLs of QEMU under load (the images must be built:
# `make images`). Fails if a message acknowledged with 250 never arrives. Not part of `make test`;
# the QEMU half takes about half an hour per architecture on a loaded 2-core box.
SOAK_MINUTES ?= 2
SOAK_KILLS ?= 50
soak: soak-host soak-qemu

soak-host:
	cargo build -p postern
	python3 -u tests/bench/soak.py --minutes $(SOAK_MINUTES) --slow-client --ldap --full-flash

soak-qemu:
	cargo build --release -p qemu --bin qemu
	python3 -u tests/bench/soak.py --qemu x86_64 --kills $(SOAK_KILLS)
	python3 -u tests/bench/soak.py --qemu aarch64 --kills $(SOAK_KILLS)

clean:
	cargo clean
	rm -rf build
