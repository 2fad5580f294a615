#!/usr/bin/env python3
"""Relay benchmark: Postfix (Debian package, private instance, plain relay, fsync on, no filters)
and Postern host mode, each relaying N messages of 5 KB from smtp-source to smtp-sink, one message
per connection, at several concurrencies. Prints a table; never fails the build.

Usage: tests/bench/relay.py [--messages 20000] [--sessions 1,10,50] [--only postfix|postern]
Needs root (Postfix's private instance) and the packages `make deps` installs.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POSTFIX_DIR = "/var/tmp/postern-bench/postfix"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def proc_stat(pid):
    """(utime+stime, cutime+cstime) in seconds, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # fields[0] is the state (field 3); utime is field 14.
    ut, st, cut, cst = (int(x) for x in fields[11:15])
    return (ut + st) / CLK_TCK, (cut + cst) / CLK_TCK


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if ppid == pid:
                out.append(int(d))
    return out


def tree(pid):
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo.extend(children(p))
    return seen


def pss_kb(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_seconds(root_pid):
    """CPU of a process tree: every live process's own time plus what its parents reaped."""
    total = 0.0
    for p in tree(root_pid):
        s = proc_stat(p)
        if s:
            total += s[0] + s[1]
    return total


class Sink:
    """smtp-sink counting delivered messages (-c); never -M, which exits before the last reply."""

    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["/usr/sbin/smtp-sink"] + (["-u", "nobody"] if os.geteuid() == 0 else []) + ["-c", f"127.0.0.1:{self.port}", "256"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buf = b""
        wait_port(self.port)

    def count(self):
        try:
            chunk = self.proc.stdout.read()
        except (BlockingIOError, TypeError):
            chunk = None
        if chunk:
            self.buf = (self.buf + chunk)[-4096:]
        nums = re.findall(rb"(\d+)", self.buf)
        return int(nums[-1]) if nums else 0

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def run_load(name, port, root_pid, sink, messages, sessions):
    """Runs smtp-source; returns accepted/s, end-to-end/s, CPU ms per message, peak PSS MB."""
    base = sink.count()
    cpu0 = cpu_seconds(root_pid)
    peak = 0
    start = time.time()
    src = subprocess.Popen(
        ["/usr/sbin/smtp-source", "-s", str(sessions), "-m", str(messages), "-l", "5120",
         "-f", "sender@bench.invalid", "-t", "rcpt@example.com", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    accepted_at = None
    deadline = start + max(600, messages / 20)
    while time.time() < deadline:
        peak = max(peak, pss_kb(tree(root_pid)))
        if accepted_at is None and src.poll() is not None:
            accepted_at = time.time()
            if src.returncode != 0:
                print(f"  {name}: smtp-source failed: {src.stderr.read().decode(errors='replace')[:300]}")
        if sink.count() - base >= messages:
            break
        time.sleep(0.1)
    done = time.time()
    if accepted_at is None:
        src.wait()
        accepted_at = time.time()
    delivered = sink.count() - base
    cpu = cpu_seconds(root_pid) - cpu0
    return {
        "accepted": messages / max(accepted_at - start, 1e-9),
        "e2e": delivered / max(done - start, 1e-9),
        "delivered": delivered,
        "cpu_ms": 1000 * cpu / max(delivered, 1),
        "pss_mb": peak / 1024,
    }


MASTER_CF = """\
{listen} inet n - n - - smtpd
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""


class Postfix:
    def __init__(self, sink_port):
        self.port = free_port()
        conf = POSTFIX_DIR
        shutil.rmtree(conf, ignore_errors=True)
        os.makedirs(f"{conf}/data")
        os.makedirs(f"{conf}/queue")
        shutil.chown(f"{conf}/data", "postfix")
        # Postfix only runs a private instance from a directory the default main.cf names.
        # ("No configuration" installs leave no main.cf at all.)
        if not os.path.exists("/etc/postfix/main.cf"):
            with open("/etc/postfix/main.cf", "w") as f:
                f.write("compatibility_level = 3.6\n")
        current = subprocess.run(["postconf", "-h", "alternate_config_directories"],
                                 capture_output=True, text=True).stdout.strip()
        if conf not in current:
            value = f"{current} {conf}".strip()
            subprocess.run(["postconf", "-e", f"alternate_config_directories = {value}"], check=True)
        with open(f"{conf}/main.cf", "w") as f:
            f.write(f"""\
compatibility_level = 3.6
queue_directory = {conf}/queue
data_directory = {conf}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = postfix-bench.invalid
mydestination =
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{sink_port}
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file = {conf}/maillog
alias_maps =
alias_database =
smtp_tls_security_level = none
smtpd_tls_security_level = none
default_process_limit = 200
""")
        with open(f"{conf}/master.cf", "w") as f:
            f.write(MASTER_CF.format(listen=f"127.0.0.1:{self.port}"))
        subprocess.run(["postfix", "-c", conf, "start"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        with open(f"{conf}/queue/pid/master.pid") as f:
            self.pid = int(f.read().split()[0])

    def stop(self):
        subprocess.run(["postfix", "-c", POSTFIX_DIR, "stop"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


class Postern:
    def __init__(self, sink_port):
        self.tmp = tempfile.mkdtemp(prefix="postern-bench-")
        self.port = free_port()
        binary = os.environ.get("POSTERN_BIN",
                                f"{ROOT}/target/x86_64-unknown-linux-gnu/release/postern")
        control = f"{self.tmp}/control.sock"
        self.proc = subprocess.Popen(
            [binary, "run", "--flash", f"{self.tmp}/flash.img", "--flash-size", "512M",
             "--smtp", f"127.0.0.1:{self.port}", "--control", control, "--hostname", "postern-bench.invalid"],
            stdout=subprocess.DEVNULL, stderr=open(f"{self.tmp}/postern.log", "w"))
        wait_port(self.port)
        self.pid = self.proc.pid
        # Relay everything from loopback to the sink, as the Postfix instance does.
        for args in (["prov", "mcf", "zimbraMtaRelayHost", f"[127.0.0.1]:{sink_port}"],
                     ["prov", "mcf", "zimbraMtaMyNetworks", "127.0.0.0/8"]):
            subprocess.run([binary, "--control", control] + args, check=True, stdout=subprocess.DEVNULL)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--sessions", default="1,10,50")
    ap.add_argument("--only", choices=["postfix", "postern"])
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("relay bench: needs root for Postfix's private instance; skipped")
        return
    sessions = [int(s) for s in args.sessions.split(",")]
    load = os.getloadavg()
    print(f"relay benchmark: {args.messages} messages of 5 KB per run, one per connection; "
          f"load before {load[0]:.2f}, {os.cpu_count()} cores")
    results = {}
    for mta in ("postfix", "postern"):
        if args.only and args.only != mta:
            continue
        for s in sessions:
            sink = Sink()
            server = None
            try:
                server = Postfix(sink.port) if mta == "postfix" else Postern(sink.port)
                results[(mta, s)] = run_load(mta, server.port, server.pid, sink, args.messages, s)
            except Exception as e:  # a benchmark reports, it does not fail the build
                print(f"  {mta} -s {s}: {e}")
            finally:
                if server:
                    server.stop()
                sink.stop()
    print(f"{'mta':8} {'-s':>3} {'accepted/s':>11} {'e2e msg/s':>10} {'delivered':>9} {'CPU ms/msg':>10} {'peak PSS MB':>11}")
    for (mta, s), r in sorted(results.items()):
        print(f"{mta:8} {s:>3} {r['accepted']:>11.0f} {r['e2e']:>10.0f} {r['delivered']:>9} "
              f"{r['cpu_ms']:>10.2f} {r['pss_mb']:>11.1f}")
    for s in sessions:
        a, b = results.get(("postern", s)), results.get(("postfix", s))
        if a and b:
            print(f"postern/postfix at -s {s}: e2e x{a['e2e'] / max(b['e2e'], 1e-9):.2f}, "
                  f"CPU x{a['cpu_ms'] / max(b['cpu_ms'], 1e-9):.2f}, PSS x{a['pss_mb'] / max(b['pss_mb'], 1e-9):.2f}")


if __name__ == "__main__":
    sys.exit(main())
