# Postern: `make run` boots the appliance in QEMU; `make test` runs every test. Both install what
# they need first (Debian packages, as root).

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

.PHONY: all deps build firmware image run test unit e2e lint fuzz fuzz-short aarch64 bench clean

all: build

deps:
	bash scripts/install-deps.sh

build:
	cargo build --workspace --all-targets

# The firmware as it goes into the image: static, size-optimised, stripped.
firmware:
ifeq ($(ARCH),aarch64)
	$(DEBIAN_CARGO) build --release -p postern --target $(TARGET)
	mkdir -p target/$(TARGET)/release && cp target/debian/$(TARGET)/release/postern $(FIRMWARE)
else
	cargo build --release -p postern --target $(TARGET)
endif

image: firmware
	cargo run -q --release -p image --bin mkimage -- --arch $(ARCH) --firmware $(FIRMWARE) --out $(IMAGE_DIR)

run: deps image
	cargo run -q --release -p qemu --bin qemu -- --arch $(ARCH) --image $(IMAGE_DIR) \
		--flash $(IMAGE_DIR)/flash.img --console stdio --forward 2525:25 --forward 2587:587 --forward 2465:465

# The import rule: the table in firmware/src/lib.rs's crate doc, checked against every `crate::`
# path (one `module -> imported (file:line)` line per violation).
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test -q -p postern --test import_rule

# Unit, property and end-to-end tests (host mode and QEMU: the image must be built first).
unit: build
	cargo test --workspace --no-fail-fast

test: deps lint image unit fuzz-short aarch64

# The short run: a total budget split across the targets (FUZZ_SECONDS, 120 s by default).
fuzz-short:
	@if [ -x scripts/fuzz.sh ]; then bash scripts/fuzz.sh $(FUZZ_SECONDS); else echo "no fuzz targets yet"; fi

fuzz:
	bash scripts/fuzz.sh -e 1800

# The aarch64 firmware must keep building (booting it is a later issue).
aarch64:
	$(DEBIAN_CARGO) build -p postern --target $(TARGET_aarch64)
	file target/debian/$(TARGET_aarch64)/debug/postern

bench:
	cargo bench -p postern
	@for b in tests/bench/*.sh; do [ -x "$$b" ] && "$$b"; done; true

clean:
	cargo clean
	rm -rf build
