#!/usr/bin/env bash
# Installs what building and testing Postern needs on Debian 12, as root, non-interactively.
# Idempotent: installs only what is missing, so `make test` can call it every time.
# `install-deps.sh --bench` adds what only `make bench` needs.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "install-deps: run as root (it installs Debian packages)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt_opts=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=600)

packages=(
    # Image build and boot.
    qemu-system-x86 qemu-system-arm qemu-utils kmod xz-utils zstd cpio ca-certificates
    # The flashable disk: UEFI for QEMU, systemd-boot and the EFI stubs of the slots (arm64's from
    # the foreign architecture), the ESP built as a file, the GPT, objcopy for both PE flavours.
    ovmf qemu-efi-aarch64 systemd-boot-efi systemd-boot-efi:arm64 mtools dosfstools gdisk
    binutils binutils-aarch64-linux-gnu
    # Real SMTP/LMTP peers for end-to-end tests and the relay benchmark.
    swaks libnet-ssleay-perl libio-socket-ssl-perl libauthen-sasl-perl postfix dovecot-lmtpd
    # Directory, virus and spam peers (LDAP sync, content checks): private instances per test.
    slapd ldap-utils clamav-daemon spamd rspamd
    # A network namespace of its own for tests whose clients must not be loopback.
    iproute2 util-linux
    # Checkers of what the box writes: pflogsumm reads the mail log, promtool the metrics,
    # dkimpy (dkimverify) the DKIM signatures (python3-nacl for ed25519); openssl makes test keys.
    pflogsumm prometheus python3-dkim python3-nacl openssl
    # aarch64 cross build: Debian's rustc carries the arm64 std rustup cannot fetch here.
    rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross
)

# `--bench`: also what only the benchmarks use (`make bench`), kept out of CI's set-up time.
if [ "${1:-}" = "--bench" ]; then
    packages+=(
        # Postfix's usual content filter, for the content benchmark's comparison
        # (tests/bench/content.py). It runs offline; the SpamAssassin it can run in-process is
        # spamd's dependency above.
        amavisd-new
    )
fi

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    # Postfix asks how to configure itself; the tests run private instances instead.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    echo "postfix postfix/mailname string postern-test.invalid" | debconf-set-selections
    # slapd would build a system directory; the tests start their own with their own config.
    echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
    apt-get update -q
    apt-get install "${apt_opts[@]}" "${missing[@]}"
else
    echo "install-deps: Debian packages present"
fi

# Nothing the packages start may sit on the ports the tests use.
for svc in postfix dovecot slapd clamav-daemon spamd rspamd amavis; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
        systemctl stop "$svc" || true
    fi
done

if ! command -v cargo-fuzz >/dev/null 2>&1 && [ -d fuzz ]; then
    echo "install-deps: installing cargo-fuzz"
    cargo install cargo-fuzz --locked -q
fi
