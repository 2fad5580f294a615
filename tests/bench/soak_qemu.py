"""The soak's QEMU mode (`soak.py --qemu ARCH`): the appliance image boots under QEMU on one flash
file, relays example.com to smtp-sink on the host (QEMU's user network shows the host's loopback
as 10.0.2.2), takes load through a forwarded port, and QEMU itself is killed with SIGKILL at a
random point of the load `--kills` times, then booted again on the same flash. At the end the
queue is flushed from the console until every message acknowledged with 250 is at the sink:
lost ones fail the run, duplicates are printed.

QEMU is started through the workspace's `qemu` binary (target/x86_64-unknown-linux-gnu/release/qemu,
as `make run-direct` does) with the serial console on its stdio, which a thread here reads all the time (a console
nobody reads stalls the guest on its serial writes).
"""
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from soak import ROOT, Load, Sink, free_port

PROMPT = b"postern> "
BOOT_LIMIT = 300  # TCG on a loaded 2-core box: FACTS.md saw 16-38 s, give it room.
COMMAND_LIMIT = 60


class GuestError(RuntimeError):
    pass


class Guest:
    """One QEMU at a time on the same flash file; its console through the `qemu` binary's stdio."""

    def __init__(self, arch, tmp, smtp_port):
        self.arch = arch
        self.tmp = tmp
        self.port = smtp_port
        self.qemu = os.path.join(ROOT, "target/x86_64-unknown-linux-gnu/release/qemu")
        self.image = os.environ.get("POSTERN_BUILD", os.path.join(ROOT, "build"))
        self.image = os.path.join(self.image, arch)
        self.flash = os.path.join(tmp, "flash.img")
        self.log = open(os.path.join(tmp, f"console-{arch}.log"), "ab")
        self.proc = None
        self.vm_pid = None
        self.buf = b""
        self.lock = threading.Lock()
        self.reader = None
        self.started = None

    def boot(self):
        self.buf = b""
        self.log.write(f"\n===== boot at {time.strftime('%H:%M:%S')} =====\n".encode())
        self.proc = subprocess.Popen(
            [self.qemu, "--arch", self.arch, "--image", self.image, "--flash", self.flash,
             "--console", "stdio", "--forward", f"{self.port}:25",
             "--append", "postern.console=prompt", "--no-reboot"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        self.started = time.time()
        self.reader = threading.Thread(target=self.read, args=(self.proc.stdout,), daemon=True)
        self.reader.start()
        self.vm_pid = self.find_vm()

    def find_vm(self):
        """The qemu-system process the wrapper started: the one to kill (the wrapper is not the
        machine)."""
        end = time.time() + 30
        while time.time() < end:
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open(f"/proc/{pid}/stat", "rb") as f:
                        stat = f.read()
                except OSError:
                    continue
                # The command name is in parentheses and may hold spaces: ppid follows the last ')'.
                fields = stat[stat.rfind(b")") + 2:].split()
                if int(fields[1]) == self.proc.pid and b"qemu-system" in stat:
                    return int(pid)
            if self.proc.poll() is not None:
                raise GuestError(f"qemu exited ({self.proc.returncode}); see {self.log.name}")
            time.sleep(0.02)
        raise GuestError("no qemu-system process under the qemu wrapper")

    def read(self, out):
        while True:
            chunk = out.read1(65536)
            if not chunk:
                return
            self.log.write(chunk)
            with self.lock:
                self.buf += chunk.replace(b"\r", b"")

    def wait_for(self, pattern, since, limit):
        """Waits until `pattern` appears after offset `since` of this boot's console; returns the
        text between and the offset past the pattern."""
        end = time.time() + limit
        while time.time() < end:
            with self.lock:
                i = self.buf.find(pattern, since)
                if i >= 0:
                    return self.buf[since:i], i + len(pattern)
            if self.proc.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.05)
        self.log.flush()
        raise GuestError(f"{pattern!r} not on the console within {limit} s; see {self.log.name}")

    def command(self, line, limit=COMMAND_LIMIT):
        with self.lock:
            since = len(self.buf)
        self.proc.stdin.write(line.encode() + b"\r")
        self.proc.stdin.flush()
        out, _ = self.wait_for(PROMPT, since, limit)
        return out.decode(errors="replace")

    def wait_banner(self, limit=BOOT_LIMIT):
        """Seconds from QEMU's start to the first SMTP greeting through the forward. QEMU accepts
        at once and reaches the guest later: an empty read means not yet."""
        end = time.time() + limit
        while time.time() < end:
            if self.proc.poll() is not None:
                raise GuestError(f"QEMU exited ({self.proc.returncode}) before the banner")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.settimeout(0.5)
                    if s.recv(512).startswith(b"220"):
                        s.sendall(b"QUIT\r\n")
                        return time.time() - self.started
            except OSError:
                pass
            time.sleep(0.05)
        raise GuestError(f"no SMTP greeting within {limit} s; see {self.log.name}")

    def kill9(self):
        """The power cut: SIGKILL to the virtual machine itself."""
        os.kill(self.vm_pid, signal.SIGKILL)
        self.proc.wait()
        self.reader.join(5)

    def poweroff(self):
        with self.lock:
            since = len(self.buf)
        try:
            self.proc.stdin.write(b"poweroff\r")
            self.proc.stdin.flush()
            self.wait_for(b"powering off", since, COMMAND_LIMIT)
            self.proc.wait(timeout=60)
        except (GuestError, OSError, subprocess.TimeoutExpired):
            self.kill9()


def run(args):
    arch = args.qemu
    for need in (os.path.join(ROOT, "target/x86_64-unknown-linux-gnu/release/qemu"),
                 os.path.join(ROOT, "build", arch, "kernel"), "/usr/sbin/smtp-sink"):
        if not os.path.exists(need):
            sys.exit(f"soak: {need} is missing (cargo build --release -p qemu; make image "
                     f"ARCH={arch}; make deps)")
    load_before = os.getloadavg()
    tmp = tempfile.mkdtemp(prefix=f"postern-soak-{arch}-")
    os.chmod(tmp, 0o755)  # smtp-sink runs as nobody when we are root
    sink = Sink(tmp)
    guest = Guest(arch, tmp, free_port())
    load = Load(guest.port, args.clients, args.max_messages, rcpt="soak@example.com",
                timeout=COMMAND_LIMIT)
    load.go = threading.Event()
    banners = []
    kills = 0
    # SIGTERM (a time box running out) ends the kills early; the drain and the count still run.
    enough = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: enough.set())
    start = time.time()
    try:
        guest.boot()
        guest.wait_for(PROMPT, 0, BOOT_LIMIT)
        out = guest.command(
            "prov cd example.com zimbraMailCatchAllAddress @example.com "
            "zimbraMailCatchAllForwardingAddress @example.com "
            f"zimbraMailTransport smtp:[10.0.2.2]:{sink.port}")
        if "ERROR" in out:
            raise GuestError(f"provisioning: {out}")
        banners.append(guest.wait_banner())
        load.go.set()
        for t in load.threads:
            t.start()
        while kills < args.kills and not enough.is_set():
            # A random point under load: anywhere in a session, a group commit or a delivery.
            if enough.wait(random.uniform(args.kill_min, args.kill_max)):
                break
            load.go.clear()  # new sessions would only wait on a dead forward
            guest.kill9()
            kills += 1
            guest.boot()
            banners.append(guest.wait_banner())
            load.go.set()
            if kills % 10 == 0:
                print(f"soak: {arch}: {kills} kills, {len(load.acked)} acked, "
                      f"{len(sink.arrived())} arrived", flush=True)
        time.sleep(args.kill_max)
        load.stopping.set()
        load.go.set()
        for t in load.threads:
            t.join(COMMAND_LIMIT + 5)
        loaded = time.time() - start
        guest.wait_for(PROMPT, 0, COMMAND_LIMIT)
        drain_end = time.time() + args.drain
        while time.time() < drain_end:
            guest.command("queue flush")
            if load.acked <= sink.arrived().keys():
                time.sleep(3)  # let a late duplicate show itself
                break
            time.sleep(3)
        drained = time.time() - start - loaded
        arrived = sink.arrived()
        queue = guest.command("queue list")
        guest.poweroff()
    finally:
        load.stopping.set()
        load.go.set()
        if guest.proc and guest.proc.poll() is None:
            guest.kill9()
        sink.stop()

    lost = sorted(load.acked - arrived.keys())
    duplicates = sum(c - 1 for c in arrived.values() if c > 1)
    b = sorted(banners)
    print(f"soak: qemu {arch}: {loaded:.0f} s from first boot to end of load, {args.clients} "
          f"clients, {kills} SIGKILLs{' (ended early by SIGTERM)' if enough.is_set() else ''} "
          f"of QEMU {args.kill_min:g}-{args.kill_max:g} s into the load of each boot; "
          f"drained in {drained:.0f} s; load average before {load_before[0]:.1f}, "
          f"after {os.getloadavg()[0]:.1f} (2 cores)")
    print(f"soak: qemu {arch}: boot to banner min {b[0]:.1f} s, median {statistics.median(b):.1f} s, "
          f"max {b[-1]:.1f} s over {len(b)} boots")
    print(f"soak: qemu {arch}: {load.next_id} sent, {len(load.acked)} acknowledged with 250, "
          f"{load.refused} refused, {load.broken} cut off by a kill")
    print(f"soak: qemu {arch}: {len(arrived)} distinct arrived, {len(lost)} lost, "
          f"{duplicates} duplicates, {len(arrived.keys() - load.acked)} arrived without the "
          f"client seeing the 250")
    if lost:
        print(f"soak: LOST ids {lost[:20]}{' ...' if len(lost) > 20 else ''}; queue:\n{queue}")
        print(f"soak: files kept in {tmp}")
        sys.exit(1)
    shutil.rmtree(tmp, ignore_errors=True)
