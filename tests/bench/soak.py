#!/usr/bin/env python3
"""Soak: relay load through Postern in host mode while the daemon is killed with SIGKILL every few
seconds (and restarted on the same flash) and the next hop (Postfix's smtp-sink) goes down and up.
Every message Postern acknowledged with 250 must reach the sink: lost ones fail the run;
duplicates (a delivery done whose completion record was not yet on flash when the kill came) are
counted and printed. Loopback only; bounded in time (--minutes plus --drain) and in count
(--max-messages).

More faults (soak_faults.py), each a flag: --slow-client (one byte a second; cut by the kills,
then, with kills over, by smtpd_timeout while the others keep sending), --ldap (accounts synced
from a slapd killed half-way; mail to them must still be taken and delivered), --full-flash
(afterwards, a 16 MB flash filled with the next hop down: 452 4.3.1, nothing acknowledged lost,
accepted again once drained). --qemu ARCH (soak_qemu.py) kills QEMU instead of the daemon.

Usage: tests/bench/soak.py [--minutes 2] [--kill-every 3] [--clients 4] [--max-messages 100000]
                           [--slow-client] [--ldap] [--full-flash]
       tests/bench/soak.py --qemu x86_64|aarch64 [--kills 50]
`make soak` runs all of it (SOAK_MINUTES, SOAK_KILLS); not part of `make test`.
"""
import argparse
import os
import random
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SINK = "/usr/sbin/smtp-sink"
ID = re.compile(rb"^X-Soak-Id: (\d+)\r?$", re.M)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.02)
    return False


class Sink:
    """smtp-sink writing one file per message; stopped and started again on the same port."""

    def __init__(self, tmp):
        self.port = free_port()
        self.dir = os.path.join(tmp, "sink")
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o777)
        self.proc = None
        self.counts = {}
        self.start()

    def start(self):
        cmd = [SINK]
        if os.geteuid() == 0:
            cmd += ["-u", "nobody"]
        cmd += ["-d", f"{self.dir}/%M.", f"127.0.0.1:{self.port}", "64"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(self.port, 10):
            raise RuntimeError(f"smtp-sink did not start on {self.port}")

    def stop(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def arrived(self):
        """Soak id -> how many times it arrived. Files are counted and removed as they come, so
        a long soak does not fill the disk."""
        for name in os.listdir(self.dir):
            path = os.path.join(self.dir, name)
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            m = ID.search(data)
            # smtp-sink may still be writing it: count it once it has the id and the body end.
            if m and data.rstrip().endswith(b"soak body line"):
                n = int(m.group(1))
                self.counts[n] = self.counts.get(n, 0) + 1
                os.remove(path)
        return self.counts


class Postern:
    """`postern run` on one flash file and one SMTP port, for every restart."""

    def __init__(self, binary, tmp, sink_port, flash_size="64M"):
        self.binary = binary
        self.tmp = tmp
        self.port = free_port()
        self.control = os.path.join(tmp, "control.sock")
        self.log = open(os.path.join(tmp, "postern.log"), "ab")
        self.proc = None
        self.starts = 0
        self.kills = 0
        self.start(["--flash-size", flash_size])
        for args in (["prov", "mcf", "zimbraMtaRelayHost", f"[127.0.0.1]:{sink_port}"],
                     ["prov", "mcf", "zimbraMtaMyNetworks", "127.0.0.0/8"]):
            self.admin(args, check=True)

    def start(self, more=()):
        self.proc = subprocess.Popen(
            [self.binary, "run", "--flash", os.path.join(self.tmp, "flash.img"), *more,
             "--smtp", f"127.0.0.1:{self.port}", "--control", self.control,
             "--hostname", "postern-soak.invalid"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log)
        self.starts += 1
        end = time.time() + 30
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"postern exited ({self.proc.returncode}); see {self.tmp}/postern.log")
            if os.path.exists(self.control) and self.admin(["status"]).returncode == 0:
                return
            time.sleep(0.02)
        raise RuntimeError("postern did not come up")

    def admin(self, args, check=False):
        return subprocess.run([self.binary, "--control", self.control, *args], check=check,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)

    def kill9(self):
        self.kills += 1  # before the signal: a client cut by it must already see the count
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def refusal_text(e):
    """`452 4.3.1 Insufficient system storage` out of whichever smtplib error carried it."""
    if isinstance(e, smtplib.SMTPRecipientsRefused):
        code, msg = next(iter(e.recipients.values()))
    else:
        code, msg = e.smtp_code, e.smtp_error
    return f"{code} {msg.decode(errors='replace') if isinstance(msg, bytes) else msg}"


class Load:
    """Clients sending one message per connection; records which ids got their 250."""

    def __init__(self, port, clients, max_messages, rcpt="soak@example.net", timeout=10,
                 first_id=0, size=0):
        self.port = port
        # One address or a list taken in turn.
        self.rcpts = rcpt if isinstance(rcpt, list) else [rcpt]
        self.timeout = timeout
        self.size = size
        self.first_id = first_id
        self.max = first_id + max_messages
        self.next_id = first_id
        self.acked = set()
        self.refused = 0
        self.last_refusal = None
        self.broken = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        # Cleared while the server is down for longer than a restart (a QEMU boot).
        self.go = threading.Event()
        self.go.set()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(clients)]

    def take_id(self):
        with self.lock:
            if self.next_id >= self.max:
                return None
            self.next_id += 1
            return self.next_id

    def run(self):
        while not self.stopping.is_set():
            self.go.wait()
            n = self.take_id()
            if n is None:
                return
            rcpt = self.rcpts[n % len(self.rcpts)]
            pad = "x" * 78 + "\r\n"
            body = (f"From: <load@client.test>\r\nTo: <{rcpt}>\r\nSubject: soak {n}\r\n"
                    f"X-Soak-Id: {n}\r\n\r\n" + pad * (self.size // len(pad))
                    + "soak body line\r\n" * 20)
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=self.timeout) as s:
                    s.sendmail("load@client.test", [rcpt], body)
                    # Counted at the 250, before QUIT: a kill during QUIT does not undo it.
                    with self.lock:
                        self.acked.add(n)
            except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused,
                    smtplib.SMTPSenderRefused) as e:
                with self.lock:
                    self.refused += 1
                    self.last_refusal = refusal_text(e)
                time.sleep(0.05)
            except (OSError, smtplib.SMTPException):
                # The daemon was killed mid-session: no 250 seen, nothing promised.
                with self.lock:
                    self.broken += 1
                time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=2)
    ap.add_argument("--kill-every", type=float, default=3, help="seconds between SIGKILLs")
    ap.add_argument("--sink-every", type=float, default=7, help="seconds between sink outages")
    ap.add_argument("--sink-down", type=float, default=2, help="seconds the sink stays down")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--max-messages", type=int, default=100000)
    ap.add_argument("--drain", type=float, default=120, help="seconds allowed to deliver the rest")
    ap.add_argument("--qemu", choices=["x86_64", "aarch64"],
                    help="boot the image under QEMU and SIGKILL QEMU instead (soak_qemu.py)")
    ap.add_argument("--kills", type=int, default=50, help="QEMU mode: SIGKILLs of QEMU")
    ap.add_argument("--kill-min", type=float, default=2, help="QEMU mode: seconds of load "
                    "after the banner before a kill, at least")
    ap.add_argument("--kill-max", type=float, default=8, help="QEMU mode: ... at most")
    ap.add_argument("--slow-client", action="store_true",
                    help="a client sending one byte a second, cut by kills and by the server")
    ap.add_argument("--smtpd-timeout", type=float, default=20,
                    help="smtpd_timeout set for the run (seconds)")
    ap.add_argument("--ldap", action="store_true",
                    help="accounts synced from a slapd that is killed half-way")
    ap.add_argument("--full-flash", action="store_true",
                    help="afterwards: fill a 16 MB flash with the next hop down, then drain")
    args = ap.parse_args()
    if args.qemu:
        import soak_qemu
        return soak_qemu.run(args)
    binary = os.environ.get("POSTERN_BIN", f"{ROOT}/target/x86_64-unknown-linux-gnu/debug/postern")
    needs = [binary, SINK]
    if args.ldap:
        needs += ["/usr/sbin/slapd", "/usr/sbin/slapadd"]
    for need in needs:
        if not os.path.exists(need):
            sys.exit(f"soak: {need} is missing (cargo build -p postern; make deps)")
    import soak_faults

    load_before = os.getloadavg()
    tmp = tempfile.mkdtemp(prefix="postern-soak-")
    os.chmod(tmp, 0o755)  # smtp-sink runs as nobody when we are root
    sink = Sink(tmp)
    postern = Postern(binary, tmp, sink.port)
    # Postfix's own value under stress (smtpd_timeout ${stress?10}s, here 20 s): short enough that
    # the slow client is cut within the run, long for a client that is merely loaded.
    postern.admin(["prov", "mcf", "smtpd_timeout", f"{args.smtpd_timeout:g}s"], check=True)
    load = Load(postern.port, args.clients, args.max_messages)
    loads = [load]
    ldap = ldap_load = None
    ldap_killed = None
    problems = []
    slow = soak_faults.SlowClient(postern) if args.slow_client else None
    kills = outages = 0
    start = time.time()
    try:
        if args.ldap:
            ldap = soak_faults.Ldap(tmp, sink.port)
            synced = ldap.configure(postern).splitlines()[0]
            # Its own id range: one client to the synced accounts, through every fault.
            ldap_load = Load(postern.port, 1, args.max_messages, rcpt=ldap.accounts,
                             first_id=10_000_000)
            loads.append(ldap_load)
        start = time.time()
        end = start + args.minutes * 60
        next_kill = start + args.kill_every
        next_outage = start + args.sink_every
        sink_back = None
        for t in (t for x in loads for t in x.threads):
            t.start()
        if slow:
            slow.thread.start()
        while time.time() < end and any(t.is_alive() for t in load.threads):
            now = time.time()
            if ldap and ldap_killed is None and now >= start + args.minutes * 30:
                ldap.kill()
                ldap_killed = (now - start, len(ldap_load.acked))
            if now >= next_kill:
                postern.kill9()
                kills += 1
                postern.start()
                # A little jitter so the kill lands at every stage of a session over time.
                next_kill = time.time() + args.kill_every * random.uniform(0.7, 1.3)
            if sink_back is None and now >= next_outage:
                sink.stop()
                outages += 1
                sink_back = now + args.sink_down
            if sink_back is not None and now >= sink_back:
                sink.start()
                sink_back = None
                next_outage = time.time() + args.sink_every
            if int(now * 20) % 100 == 0:
                sink.arrived()
            time.sleep(0.05)
        if sink.proc is None:
            sink.start()
        slow_kills = len(slow.cuts) if slow else 0
        slow_phase = None
        if slow:
            # No kills now: the slow client lives until the server's deadline cuts it, while
            # the other clients keep sending.
            t0 = time.time()
            acked0 = sum(len(x.acked) for x in loads)
            while time.time() < t0 + args.smtpd_timeout * 3 + 30:
                if any(not c[2] for c in slow.cuts[slow_kills:]):
                    break
                time.sleep(0.2)
            slow_phase = (time.time() - t0, sum(len(x.acked) for x in loads) - acked0)
            slow.stopping.set()
        for x in loads:
            x.stopping.set()
        for t in (t for x in loads for t in x.threads):
            t.join(15)
        loaded = time.time() - start
        # Deferred mail waits out its backoff: ask for it now, again until it is all in or the
        # drain time is up.
        acked = set().union(*(x.acked for x in loads))
        drain_end = time.time() + args.drain
        while time.time() < drain_end:
            postern.admin(["queue", "flush"])
            if acked <= sink.arrived().keys():
                time.sleep(2)  # let a late duplicate show itself
                break
            time.sleep(1)
        drained = time.time() - start - loaded
        queue = postern.admin(["queue", "list"]).stdout.decode(errors="replace").strip()
        postern.stop()
        full_line = None
        if args.full_flash:
            full_acked, full_line, full_problems = soak_faults.full_flash(
                binary, tmp, sink, 20_000_000, args.drain)
            acked |= full_acked
            problems += full_problems
        time.sleep(2)
        arrived = sink.arrived()
    finally:
        for x in loads:
            x.stopping.set()
        if slow:
            slow.stopping.set()
        if ldap:
            ldap.kill()
        try:
            postern.stop()
        finally:
            sink.stop()

    lost = sorted(acked - arrived.keys())
    duplicates = sum(c - 1 for c in arrived.values() if c > 1)
    unacked_arrived = len(arrived.keys() - acked)
    print(f"soak: {loaded:.0f} s of load, {args.clients} clients, "
          f"SIGKILL every ~{args.kill_every:g} s "
          f"({kills} kills, {postern.starts - 1} restarts), next hop down {args.sink_down:g} s "
          f"every {args.sink_every:g} s ({outages} outages); drained in {drained:.0f} s; "
          f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} (2 cores)")
    print(f"soak: {load.next_id} sent, {len(load.acked)} acknowledged with 250, "
          f"{load.refused} refused, {load.broken} cut off by a kill")
    if ldap_load:
        before = ldap_killed[1] if ldap_killed else len(ldap_load.acked)
        after = len(ldap_load.acked) - before
        print(f"soak: LDAP: {synced!r}; {len(ldap.accounts)} synced accounts; slapd killed "
              f"{ldap_killed[0]:.0f} s in" if ldap_killed else "soak: LDAP: slapd never killed",
              end="")
        print(f"; to synced recipients {before} acknowledged before, {after} after "
              f"({ldap_load.refused} refused, last {ldap_load.last_refusal!r}), "
              f"{len(ldap_load.acked - arrived.keys())} of them lost")
        if ldap_killed is None or after == 0:
            problems.append("no mail to synced recipients was acknowledged after slapd died")
    if slow:
        slow.report("under kills", slow.cuts[:slow_kills])
        by_server = [c for c in slow.cuts if not c[2]]
        if slow_phase:
            cut = [c for c in slow.cuts[slow_kills:] if not c[2]]
            print(f"soak: slow client (no kills, smtpd_timeout {args.smtpd_timeout:g} s): "
                  + (f"cut by the server {cut[0][0]:.1f} s after it connected "
                     f"({cut[0][3]!r})" if cut else f"NOT cut within {slow_phase[0]:.0f} s")
                  + f"; meanwhile {slow_phase[1]} other messages were acknowledged "
                  f"({slow_phase[1] / max(slow_phase[0], 1):.0f}/s)")
        if not by_server:
            problems.append("the slow client was never cut off by the server")
    if full_line:
        print(full_line)
    print(f"soak: {len(acked)} acknowledged in all, {len(arrived)} distinct arrived, "
          f"{len(lost)} lost, {duplicates} duplicates, "
          f"{unacked_arrived} arrived without the client seeing the 250")
    for p in problems:
        print(f"soak: PROBLEM {p}")
    if lost or problems:
        if lost:
            print(f"soak: LOST ids {lost[:20]}{' ...' if len(lost) > 20 else ''}; queue:\n{queue}")
        print(f"soak: files kept in {tmp}")
        sys.exit(1)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
