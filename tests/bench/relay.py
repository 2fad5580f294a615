#!/usr/bin/env python3
"""Relay benchmark: per case, the load generator straight into smtp-sink (the ceiling), then Postern
(host mode) and Postfix (Debian package, private instance, plain relay, fsync on, no filters)
relaying to smtp-sink, one message per connection. Cases: 5 KB at each -s, 5 KB with STARTTLS
inbound (firmware/examples/smtp-load.rs, since smtp-source cannot do TLS), 100 KB and 5 MB. Prints one
table with the load before each run and the ratios; never fails the build.

Usage: tests/bench/relay.py [--messages 5000] [--sessions 1,10,50] [--cases "-s 10,5 MB"]
                            [--mtas ceiling,postern,postfix]
Needs root (Postfix's private instance) and the packages `make deps` installs.
"""
import argparse
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

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


def proc_times(pid):
    """(utime, stime, cutime, cstime) in seconds, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # fields[0] is the state (field 3); utime is field 14.
    return tuple(int(x) / CLK_TCK for x in fields[11:15])


def machine_times():
    """(busy, all) jiffies of every core since boot, from /proc/stat's first line."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def proc_stat(pid):
    """(utime+stime, cutime+cstime) in seconds, or None when the process is gone."""
    t = proc_times(pid)
    return (t[0] + t[1], t[2] + t[3]) if t else None


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


def children_cpu():
    """CPU of this script's reaped children (the load generator), seconds."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def cpu_seconds(root_pid):
    """CPU of a process tree: every live process's own time plus what its parents reaped."""
    total = 0.0
    for p in tree(root_pid):
        s = proc_stat(p)
        if s:
            total += s[0] + s[1]
    return total


def kernel_and_switches(root_pid):
    """(system CPU seconds, context switches) of a process tree's live processes, all their
    threads: what the kernel costs an MTA, and how often its threads went to sleep or were put
    off. A relay's floor is mostly there (loopback TCP, waking the peer, parking between
    commands, the spool's sync), so these say how near it is, whatever the machine's speed."""
    sys_s, switches = 0.0, 0
    for p in tree(root_pid):
        t = proc_times(p)
        if not t:
            continue
        sys_s += t[1] + t[3]
        try:
            threads = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in threads:
            try:
                with open(f"/proc/{p}/task/{tid}/status") as f:
                    for line in f:
                        # voluntary_ctxt_switches and nonvoluntary_ctxt_switches
                        if "ctxt_switches:" in line:
                            switches += int(line.split()[1])
            except OSError:
                continue  # the thread ended: its count went with it
    return sys_s, switches


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

    def cpu(self):
        s = proc_stat(self.proc.pid)
        return s[0] if s else 0.0

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def peak_rss_mb(pid):
    """The process's peak resident set (VmHWM), MB; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


SMTP_LOAD = f"{ROOT}/target/x86_64-unknown-linux-gnu/release/examples/smtp-load"


def smtp_load():
    """firmware/examples/smtp-load.rs, built here when missing (`make bench` builds it first)."""
    if not os.path.exists(SMTP_LOAD):
        subprocess.run(["cargo", "build", "--release", "-p", "postern", "--example", "smtp-load"], cwd=ROOT, check=True)
    return SMTP_LOAD


def generator(case, sessions, port, starttls):
    """The load generator's command line: smtp-source, or smtp-load for the STARTTLS case
    (smtp-source cannot do TLS; smtp-sink cannot either, so that case's ceiling is smtp-load in
    clear text)."""
    if case.tls:
        return [smtp_load()] + (["--starttls"] if starttls else []) + [
            "--sessions", str(sessions), "--messages", str(case.messages), "--size", str(case.size),
            f"127.0.0.1:{port}"]
    return ["/usr/sbin/smtp-source", "-s", str(sessions), "-m", str(case.messages), "-l", str(case.size),
            "-f", "sender@bench.invalid", "-t", "rcpt@example.com", f"127.0.0.1:{port}"]


def run_load(name, port, root_pid, sink, case, sessions, starttls, syncs=None):
    """Runs the generator; returns accepted/s, end-to-end/s, CPU ms per message, peaks. `syncs`:
    reads the MTA's flash syncs so far, (count, seconds), where it can tell them."""
    messages = case.messages
    base = sink.count()
    syncs0 = syncs() if syncs else None
    machine0 = machine_times()
    cpu0 = cpu_seconds(root_pid) if root_pid else 0.0
    kern0, sw0 = kernel_and_switches(root_pid) if root_pid else (0.0, 0)
    # The load side's own CPU (the generator, reaped here, and the sink): in the ceiling run, what
    # two ends of SMTP cost with nothing between them, the floor of an MTA that is both ends.
    gen0 = children_cpu()
    sink0 = sink.cpu()
    peak = 0
    start = time.time()
    src = subprocess.Popen(generator(case, sessions, port, starttls), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    accepted_at = None
    deadline = start + max(600, messages / 20)
    # PSS is sampled every quarter second: walking /proc for the process tree every 20 ms took
    # ~5 % of the two cores in the MTA runs only, a handicap the ceiling run did not carry.
    next_sample = start
    while time.time() < deadline:
        if root_pid and time.time() >= next_sample:
            peak = max(peak, pss_kb(tree(root_pid)))
            next_sample = time.time() + 0.25
        if accepted_at is None and src.poll() is not None:
            accepted_at = time.time()
            if src.returncode != 0:
                print(f"  {name}: load generator failed: {src.stderr.read().decode(errors='replace')[:300]}")
        if sink.count() - base >= messages:
            break
        time.sleep(0.02)
    done = time.time()
    # Read where the run ends, as the start was read where it began: a quiet sync afterwards (the
    # mail log's, within a second) is not the run's.
    machine1 = machine_times()
    syncs1 = syncs() if syncs else None
    if accepted_at is None:
        src.wait()
        accepted_at = time.time()
    delivered = sink.count() - base
    cpu = (cpu_seconds(root_pid) - cpu0) if root_pid else 0.0
    kern, sw = kernel_and_switches(root_pid) if root_pid else (0.0, 0)
    load_side = children_cpu() - gen0 + sink.cpu() - sink0
    synced = (syncs1[0] - syncs0[0], syncs1[1] - syncs0[1]) if syncs0 and syncs1 else (0, 0.0)
    return {
        # How much of the machine the run kept busy: what is not CPU-bound shows as idle here.
        "busy_pct": 100 * (machine1[0] - machine0[0]) / max(machine1[1] - machine0[1], 1),
        "syncs": synced[0] / max(delivered, 1),
        "sync_us": 1e6 * synced[1] / synced[0] if synced[0] else 0.0,
        "sync_pct": 100 * synced[1] / max(done - start, 1e-9),
        "accepted": messages / max(accepted_at - start, 1e-9),
        "e2e": delivered / max(done - start, 1e-9),
        "delivered": delivered,
        "cpu_ms": 1000 * cpu / max(delivered, 1),
        "kernel_pct": 100 * (kern - kern0) / cpu if cpu > 0 else 0.0,
        "switches": (sw - sw0) / max(delivered, 1),
        "load_cpu_ms": 1000 * load_side / max(delivered, 1),
        "pss_mb": peak / 1024,
        "rss_mb": peak_rss_mb(root_pid) if root_pid else 0.0,
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
tlsmgr unix - - n 1000? 1 tlsmgr
postlog unix-dgram n - n - 1 postlogd
"""


class Postfix:
    """A private instance in `conf`; `main_extra` and `master_extra` are appended to its main.cf and
    master.cf (tests/bench/content.py adds its content filter that way)."""

    def __init__(self, sink_port, conf=POSTFIX_DIR, main_extra="", master_extra=""):
        self.port = free_port()
        self.conf = conf
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
        if conf not in current.replace(",", " ").split():
            value = f"{current} {conf}".strip()
            subprocess.run(["postconf", "-e", f"alternate_config_directories = {value}"], check=True)
        # A self-signed P-256 certificate, as Postern makes itself at first start.
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", f"{conf}/key.pem", "-out", f"{conf}/cert.pem", "-days", "2",
                        "-subj", "/CN=postfix-bench.invalid"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
smtpd_tls_security_level = may
smtpd_tls_cert_file = {conf}/cert.pem
smtpd_tls_key_file = {conf}/key.pem
default_process_limit = 200
""" + main_extra)
        with open(f"{conf}/master.cf", "w") as f:
            f.write(MASTER_CF.format(listen=f"127.0.0.1:{self.port}") + master_extra)
        subprocess.run(["postfix", "-c", conf, "start"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        with open(f"{conf}/queue/pid/master.pid") as f:
            self.pid = int(f.read().split()[0])

    def stop(self):
        subprocess.run(["postfix", "-c", self.conf, "stop"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


def default_postern():
    return os.environ.get("POSTERN_BIN", f"{ROOT}/target/x86_64-unknown-linux-gnu/release/postern")


class Postern:
    """Postern in host mode relaying loopback's mail to the sink; `settings` are more `prov mcf`
    attribute/value pairs (tests/bench/content.py turns the scanners on that way)."""

    def __init__(self, sink_port, binary=None, settings=()):
        self.tmp = tempfile.mkdtemp(prefix="postern-bench-")
        self.port = free_port()
        self.metrics_port = free_port()
        binary = binary or default_postern()
        self.log = f"{self.tmp}/postern.log"
        control = f"{self.tmp}/control.sock"
        self.proc = subprocess.Popen(
            [binary, "run", "--flash", f"{self.tmp}/flash.img", "--flash-size", "512M",
             "--smtp", f"127.0.0.1:{self.port}", "--control", control, "--hostname", "postern-bench.invalid",
             "--metrics", f"127.0.0.1:{self.metrics_port}"],
            stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))
        wait_port(self.port)
        self.pid = self.proc.pid
        # Relay everything from loopback to the sink, as the Postfix instance does.
        mcf = ["zimbraMtaRelayHost", f"[127.0.0.1]:{sink_port}", "zimbraMtaMyNetworks", "127.0.0.0/8"]
        subprocess.run([binary, "--control", control, "prov", "mcf"] + mcf + list(settings), check=True,
                       stdout=subprocess.DEVNULL)

    def syncs(self):
        """The spool's flash syncs so far and the seconds they took, from the metrics endpoint."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        count = seconds = 0.0
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name == "postern_spool_sync_seconds_count":
                count = float(value)
            elif name == "postern_spool_sync_seconds_sum":
                seconds = float(value)
        return int(count), seconds

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


class Case:
    def __init__(self, name, size, messages, sessions, tls=False):
        self.name, self.size, self.messages, self.sessions, self.tls = name, size, messages, sessions, tls


def cases(messages, sessions, only):
    out = [Case(f"5 KB -s {s}", 5120, messages, s) for s in sessions]
    out += [
        Case("5 KB STARTTLS -s 10", 5120, max(messages // 5, 200), 10, tls=True),
        Case("100 KB -s 10", 100 * 1024, max(messages // 10, 100), 10),
        Case("5 MB -s 10", 5 * 1024 * 1024, max(messages // 250, 10), 10),
    ]
    return [c for c in out if not only or any(o in c.name for o in only)]


def load():
    return os.getloadavg()[0]


def measure(mta, case):
    """One run of one case through `mta` (ceiling: no MTA, the generator straight into the sink)."""
    sink = Sink()
    server = None
    try:
        if mta == "ceiling":
            return run_load(mta, sink.port, None, sink, case, case.sessions, False)
        server = Postfix(sink.port) if mta == "postfix" else Postern(sink.port)
        syncs = server.syncs if mta == "postern" else None
        return run_load(mta, server.port, server.pid, sink, case, case.sessions, case.tls, syncs)
    except Exception as e:  # a benchmark reports, it does not fail the build
        print(f"  {mta} {case.name}: {e}")
        return None
    finally:
        if server:
            server.stop()
        sink.stop()


def median(xs):
    xs = sorted(xs)
    if not xs:
        return None
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=5000, help="messages per 5 KB run (fewer for big ones)")
    ap.add_argument("--sessions", default="1,10,50")
    ap.add_argument("--cases", default="", help="comma-separated parts of case names to run (all by default)")
    ap.add_argument("--mtas", default="ceiling,postern,postfix")
    ap.add_argument("--rounds", type=int, default=1,
                    help="runs of each case, the MTAs side by side in turn in each; the table gives the "
                         "medians, and the range of the ratios over the rounds")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("relay bench: needs root for Postfix's private instance; skipped")
        return
    mtas = args.mtas.split(",")
    todo = cases(args.messages, [int(s) for s in args.sessions.split(",")],
                 [c for c in args.cases.split(",") if c])
    print(f"relay benchmark: one message per connection, {os.cpu_count()} cores; each run's 1-minute "
          f"load average before it in brackets. ceiling = the load generator straight into smtp-sink.")
    if args.rounds > 1:
        print(f"{args.rounds} rounds per case: figures are medians; a ratio's range over the rounds "
              f"follows it in parentheses.")
    rows = []
    for case in todo:
        rounds = []
        for k in range(args.rounds):
            res, loads = {}, {}
            for mta in mtas:
                loads[mta] = load()
                res[mta] = measure(mta, case)
                r = res[mta]
                if r:
                    tag = f" #{k + 1}" if args.rounds > 1 else ""
                    print(f"  {case.name:22} {mta + tag:11} [load {loads[mta]:5.2f}] {r['e2e']:7.0f} msg/s e2e, "
                          f"{r['accepted']:7.0f} accepted/s, {r['delivered']} delivered, {r['cpu_ms']:.3f} ms CPU/msg "
                          f"(generator and sink {r['load_cpu_ms']:.3f}), machine {r['busy_pct']:.0f} % busy, "
                          + (f"{r['kernel_pct']:.0f} % of it in the kernel, {r['switches']:.1f} context switches/msg, "
                             f"{r['syncs']:.2f} flash syncs/msg of {r['sync_us']:.0f} us each (syncing {r['sync_pct']:.0f} % "
                             f"of the run), " if mta == "postern" else "")
                          + f"peak RSS {r['rss_mb']:.1f} MB, peak PSS {r['pss_mb']:.1f} MB", flush=True)
            rounds.append((res, loads))
        rows.append((case, rounds))

    def med(rounds, mta, key):
        return median([res[mta][key] for res, _ in rounds if res.get(mta)])

    def fig(rounds, mta, key, fmt):
        x = med(rounds, mta, key)
        return "-" if x is None else format(x, fmt)

    def ratio(rounds, a, b, pct=False):
        xs = [res[a]["e2e"] / res[b]["e2e"] for res, _ in rounds
              if res.get(a) and res.get(b) and res[b]["e2e"] > 0]
        if not xs:
            return "-"
        show = (lambda x: f"{100 * x:.0f}") if pct else (lambda x: f"{x:.1f}")
        unit = " %" if pct else "x"
        spread = f" ({show(min(xs))}-{show(max(xs))})" if len(xs) > 1 else ""
        return f"{show(median(xs))}{unit}{spread}"

    def cell(rounds, mta):
        if mta not in mtas:
            return "-"
        loads = median([l[mta] for _, l in rounds])
        return f"{fig(rounds, mta, 'e2e', '.0f')} [{loads:.1f}]"

    print()
    print("| case | ceiling msg/s [load] | Postern msg/s [load] | Postfix msg/s [load] | Postern/ceiling "
          "| Postern/Postfix | CPU ms/msg Postern / Postfix / generator+sink in the ceiling "
          "| machine busy % ceiling / Postern / Postfix "
          "| Postern: kernel's share of its CPU, context switches/msg, flash syncs/msg of µs each "
          "| peak RSS MB Postern | peak PSS MB Postern / Postfix |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for case, rounds in rows:
        print(f"| {case.name} | {cell(rounds, 'ceiling')} | {cell(rounds, 'postern')} | {cell(rounds, 'postfix')} "
              f"| {ratio(rounds, 'postern', 'ceiling', True)} | {ratio(rounds, 'postern', 'postfix')} "
              f"| {fig(rounds, 'postern', 'cpu_ms', '.2f')} / {fig(rounds, 'postfix', 'cpu_ms', '.2f')} "
              f"/ {fig(rounds, 'ceiling', 'load_cpu_ms', '.2f')} "
              f"| {fig(rounds, 'ceiling', 'busy_pct', '.0f')} / {fig(rounds, 'postern', 'busy_pct', '.0f')} "
              f"/ {fig(rounds, 'postfix', 'busy_pct', '.0f')} "
              f"| {fig(rounds, 'postern', 'kernel_pct', '.0f')} %, {fig(rounds, 'postern', 'switches', '.1f')}, "
              f"{fig(rounds, 'postern', 'syncs', '.2f')} of {fig(rounds, 'postern', 'sync_us', '.0f')} "
              f"| {fig(rounds, 'postern', 'rss_mb', '.1f')} "
              f"| {fig(rounds, 'postern', 'pss_mb', '.1f')} / {fig(rounds, 'postfix', 'pss_mb', '.1f')} |")


if __name__ == "__main__":
    sys.exit(main())
