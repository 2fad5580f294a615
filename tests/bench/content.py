#!/usr/bin/env python3
"""Content-check benchmark: 5 KB messages (a few % carrying EICAR or GTUBE, so the verdict paths run)
through Postern with clamd and spamd on, and through Postfix with `content_filter` to amavisd-new
using the same clamd and spamd, both relaying to smtp-sink; first the load generator straight into
smtp-sink (the ceiling) for scale. Prints msg/s, CPU per message of the MTA's processes and of the
scanners, the verdicts each side reached (they must match what was sent) and the load before each
run; never fails the build.

Postern refuses viruses and spam before its 250 (554). Postfix accepts everything and amavis, an
after-queue filter, discards them (D_DISCARD, Zimbra's choice for both, so no bounce is made): its
verdicts are read from amavis's log. amavis reaches spamd only at 127.0.0.1:783 (SpamdClient has no
address setting), so the shared spamd listens there when it is free; otherwise (or with
`--amavis-spam inprocess`) amavis runs SpamAssassin in its own processes, as Zimbra's does, and
the table says so.

Usage: tests/bench/content.py [--messages 2000] [--sessions 10] [--postern PATH]
                              [--mtas ceiling,postern,postfix] [--amavis-spam spamd|inprocess]
Needs root (Postfix's private instance, amavis's user) and the packages `make deps` installs
(postfix, clamav-daemon, spamd, amavisd-new).
"""
import argparse
import asyncio
import email.utils
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relay  # noqa: E402  (the sink, the Postfix and Postern instances, CPU accounting)

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
POSTFIX_DIR = "/var/tmp/postern-bench/postfix-amavis"
SPAMD_PORT = 783  # where amavis's SpamdClient connects, fixed in its code
# Zimbra's spam thresholds: kill at 75 % and tag at 33 % of 20 points (Postern's defaults).
KILL, TAG2 = 15.0, 6.6
# Zimbra's zimbraMtaCommonBlockedExtension, as amavis banned names (Postern blocks them by default).
BLOCKED = ("asd|bat|chm|cmd|com|dll|do|exe|hlp|hta|js|jse|lnk|ocx|pif|reg|scr|shb|shm|shs|vbe|vbs|"
           "vbx|vxd|wsf|wsh|xl")

PARAGRAPH = (b"Hi all, the figures for the third quarter are in. Sales in the northern region grew "
             b"a little, the southern region stayed flat, and we will go over the details at the "
             b"meeting on Thursday. Please bring your notes and the budget draft.\r\n")


def kind(i):
    """What message i carries: about 3 % EICAR, 3 % GTUBE, the rest ham."""
    return "virus" if i % 33 == 0 else "spam" if i % 33 == 16 else "ham"


def message(i, run):
    """Message i of a run: 5 KB, unique (amavis caches verdicts by body digest)."""
    head = (f"From: Alice <alice@outside.example>\r\nTo: <rcpt@example.com>\r\n"
            f"Date: {email.utils.formatdate()}\r\nMessage-ID: <{run}.{i}@outside.example>\r\n"
            f"Subject: quarterly figures {i}\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=us-ascii\r\n\r\n").encode()
    body = f"Reference {run}-{i}.\r\n".encode()
    k = kind(i)
    if k == "virus":
        body += EICAR + b"\r\n"
    elif k == "spam":
        body += GTUBE + b"\r\n"
    while len(head) + len(body) < 5120:
        body += PARAGRAPH
    return head + body + b".\r\n"


async def reply(r):
    while True:
        line = await r.readline()
        if not line:
            raise ConnectionError("connection closed")
        if line[3:4] != b"-":
            return line.decode(errors="replace").strip()


async def expect(r, code):
    line = await reply(r)
    if not line.startswith(code):
        raise ConnectionError(line)


async def send_one(port, data):
    """One message on its own connection; the reply to the end of data."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        await expect(r, "220")
        w.write(b"EHLO load.bench.invalid\r\n")
        await expect(r, "250")
        w.write(b"MAIL FROM:<sender@outside.example>\r\nRCPT TO:<rcpt@example.com>\r\nDATA\r\n")
        await expect(r, "250")
        await expect(r, "250")
        await expect(r, "354")
        w.write(data)
        final = await reply(r)
        w.write(b"QUIT\r\n")
        await w.drain()
        return final
    finally:
        w.close()


def classify(final):
    if final.startswith("250"):
        return "accepted"
    if final.startswith("554") and "virus" in final:
        return "refused virus"
    if final.startswith("554") and "spam" in final:
        return "refused spam"
    return "other"


async def generate(port, first, count, sessions, run):
    """Sends messages first..first+count over `sessions` concurrent sessions; counts of each reply
    class and up to 3 unexpected replies."""
    todo = iter(range(first, first + count))
    counts, odd = {}, []

    async def worker():
        for i in todo:
            try:
                c = classify(await send_one(port, message(i, run)))
                final = None
            except (OSError, ConnectionError, asyncio.IncompleteReadError) as e:
                c, final = "other", str(e)
            counts[c] = counts.get(c, 0) + 1
            if c == "other" and len(odd) < 3:
                odd.append(final)

    await asyncio.gather(*(worker() for _ in range(sessions)))
    return counts, odd


class Clamd:
    """clamd on a free port with a one-line signature database for EICAR, as tests/src/scanners.rs
    starts it (no database is packaged offline)."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="content-bench-clamd-")
        os.chmod(self.tmp, 0o755)
        os.makedirs(f"{self.tmp}/db")
        with open(f"{self.tmp}/db/eicar.ndb", "w") as f:
            f.write(f"Eicar-Test-Signature:0:*:{EICAR.hex()}\n")
        self.port = relay.free_port()
        conf = f"{self.tmp}/clamd.conf"
        with open(conf, "w") as f:
            # Root: it reads amavis's files for CONTSCAN as well as Postern's streams.
            f.write(f"Foreground yes\nTCPSocket {self.port}\nTCPAddr 127.0.0.1\n"
                    f"DatabaseDirectory {self.tmp}/db\nStreamMaxLength 25M\nUser root\n")
        self.proc = subprocess.Popen(["/usr/sbin/clamd", "--config-file", conf], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pid = self.proc.pid
        end = time.time() + 60
        while not self.pongs():
            if time.time() > end or self.proc.poll() is not None:
                raise RuntimeError("clamd did not answer PING")
            time.sleep(0.1)

    def pongs(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                s.sendall(b"zPING\0")
                return s.recv(16).startswith(b"PONG")
        except OSError:
            return False

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class Spamd:
    """spamd -L (no network tests) with a Bayes database of its own, on `port`."""

    def __init__(self, port, children):
        self.tmp = tempfile.mkdtemp(prefix="content-bench-spamd-")
        os.chmod(self.tmp, 0o777)
        self.port = port
        self.proc = subprocess.Popen(
            ["/usr/sbin/spamd", "-L", "-i", "127.0.0.1", "-p", str(port), "-m", str(children),
             "-s", "stderr", f"--helper-home-dir={self.tmp}", f"--cf=bayes_path {self.tmp}/bayes",
             "-u", "nobody"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(f"{self.tmp}/spamd.log", "w"),
            process_group=0)
        self.pid = self.proc.pid
        relay.wait_port(port, timeout=120)

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except OSError:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


AMAVIS_CONF = """\
use strict;
$MYHOME = '{home}';
$TEMPBASE = "$MYHOME/tmp";
$db_home = "$MYHOME/db";
$helpers_home = "$MYHOME/var";
$pid_file = "$MYHOME/amavisd.pid";
$lock_file = "$MYHOME/amavisd.lock";
$daemon_user = 'amavis';
$daemon_group = 'amavis';
$max_servers = {servers};
$enable_db = 0;
$enable_global_cache = 0;
$DO_SYSLOG = 0;
$LOGFILE = "$MYHOME/amavis.log";
$log_level = 0;
$log_recip_templ = undef;
$myhostname = 'amavis-bench.invalid';
$mydomain = 'example.com';
@local_domains_maps = (['.']);
@mynetworks = qw(127.0.0.0/8);
$inet_socket_bind = '127.0.0.1';
$inet_socket_port = {port};
$unix_socketname = undef;
@inet_acl = qw(127.0.0.1);
$forward_method = 'smtp:[127.0.0.1]:{reinject}';
$notify_method = $forward_method;
# Every check on, for every message.
@bypass_virus_checks_maps = (0);
@bypass_spam_checks_maps = (0);
@bypass_banned_checks_maps = (0);
@bypass_header_checks_maps = (0);
# Zimbra's destinies: viruses and spam discarded (an after-queue filter cannot refuse them).
$final_virus_destiny = D_DISCARD;
$final_spam_destiny = D_DISCARD;
$final_banned_destiny = D_DISCARD;
$final_bad_header_destiny = D_PASS;
$virus_admin = undef;
$spam_admin = undef;
$banned_admin = undef;
$virus_quarantine_to = undef;
$spam_quarantine_to = undef;
$banned_quarantine_to = undef;
$bad_header_quarantine_to = undef;
# Postern's defaults: headers always, tagged at 6.6, refused at 15.
$sa_tag_level_deflt = -999;
$sa_tag2_level_deflt = {tag2};
$sa_kill_level_deflt = {kill};
$sa_dsn_cutoff_level = 9999;
$sa_local_tests_only = 1;
$sa_mail_body_size_limit = 512*1024;
{spam_scanners}
$banned_filename_re = new_RE(qr'.\\.({blocked})$'i);
@av_scanners = (
  ['ClamAV-clamd', \\&ask_daemon, ["CONTSCAN {{}}\\n", "127.0.0.1:{clamd}"],
    qr/\\bOK$/m, qr/\\bFOUND$/m, qr/^.*?: (?!Infected Archive)(.*) FOUND$/m ],
);
@av_scanners_backup = ();
1;
"""


class Amavis:
    """amavisd-new listening on a free port, reinjecting to `reinject`; verdicts from its log."""

    def __init__(self, clamd_port, reinject, servers, spamd):
        self.tmp = tempfile.mkdtemp(prefix="content-bench-amavis-")
        os.chmod(self.tmp, 0o755)
        home = f"{self.tmp}/home"
        for d in ("", "/tmp", "/db", "/var"):
            os.makedirs(home + d, exist_ok=True)
            shutil.chown(home + d, "amavis", "amavis")
        self.port = relay.free_port()
        self.log = f"{home}/amavis.log"
        scanners = ("@spam_scanners = (['SpamdClient', 'Amavis::SpamControl::SpamdClient']);" if spamd
                    else "@spam_scanners = (['SpamAssassin', 'Amavis::SpamControl::SpamAssassin']);")
        conf = f"{self.tmp}/amavisd.conf"
        with open(conf, "w") as f:
            f.write(AMAVIS_CONF.format(home=home, servers=servers, port=self.port, reinject=reinject,
                                       tag2=TAG2, kill=KILL, spam_scanners=scanners, blocked=BLOCKED,
                                       clamd=clamd_port))
        os.chmod(conf, 0o644)
        self.proc = subprocess.Popen(["/usr/sbin/amavisd", "-c", conf, "foreground"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=open(f"{self.tmp}/stderr", "w"))
        self.pid = self.proc.pid
        try:
            # In-process SpamAssassin compiles its rules before the first child forks.
            relay.wait_port(self.port, timeout=180)
        except RuntimeError:
            self.stop(keep=True)
            raise RuntimeError(f"amavisd did not start: {self.tail()}")

    def tail(self):
        out = ""
        for p in (f"{self.tmp}/stderr", self.log):
            try:
                with open(p, errors="replace") as f:
                    out += f.read()[-600:]
            except OSError:
                pass
        return out.strip()

    def verdicts(self):
        """Counts of amavis's per-message lines: 'Passed CLEAN', 'Blocked INFECTED', ..."""
        counts = {}
        try:
            with open(self.log, errors="replace") as f:
                # The main line per message names the disposition in braces ({RelayedInbound}).
                for m in re.finditer(r"\) (Passed|Blocked) ([A-Z-]+)[^{\n]*\{", f.read()):
                    key = f"{m.group(1)} {m.group(2)}"
                    counts[key] = counts.get(key, 0) + 1
        except OSError:
            pass
        return counts

    def stop(self, keep=False):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if not keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


def amavis_master_cf(servers, reinject):
    """The transport to amavis and the smtpd amavis hands clean mail back to (README.postfix's)."""
    return f"""\
amavis unix - - n - {servers} smtp
  -o smtp_data_done_timeout=1200
  -o smtp_send_xforward_command=yes
  -o smtp_tls_security_level=none
  -o disable_dns_lookups=yes
  -o max_use=20
127.0.0.1:{reinject} inet n - n - - smtpd
  -o content_filter=
  -o smtpd_tls_security_level=none
  -o smtpd_delay_reject=no
  -o smtpd_client_restrictions=permit_mynetworks,reject
  -o smtpd_helo_restrictions=
  -o smtpd_sender_restrictions=
  -o smtpd_recipient_restrictions=permit_mynetworks,reject
  -o smtpd_end_of_data_restrictions=
  -o smtpd_error_sleep_time=0
  -o smtpd_soft_error_limit=1001
  -o smtpd_hard_error_limit=1000
  -o smtpd_client_connection_count_limit=0
  -o smtpd_client_connection_rate_limit=0
  -o receive_override_options=no_header_body_checks,no_unknown_recipient_checks,no_address_mappings
"""


def cpu(pids):
    return {name: relay.cpu_seconds(pid) for name, pid in pids.items()}


def run_mix(label, port, sink, first, count, sessions, pids, amavis=None):
    """Sends messages first..first+count to `port` and waits until each is delivered or judged.
    Returns msg/s (end to end), the CPU seconds each of `pids`' trees spent, the replies the client
    got, what amavis logged and how many reached the sink."""
    sink_base = sink.count()
    judged_base = amavis.verdicts() if amavis else {}
    cpu0 = cpu(pids)
    start = time.time()
    replies, odd = asyncio.run(generate(port, first, count, sessions, re.sub(r"\W", "", label)))
    accepted = replies.get("accepted", 0)
    deadline = time.time() + max(600, count / 5)
    judged = {}
    while True:
        delivered = sink.count() - sink_base
        if amavis:
            now = amavis.verdicts()
            judged = {k: v - judged_base.get(k, 0) for k, v in now.items() if v - judged_base.get(k, 0)}
            passed = sum(v for k, v in judged.items() if k.startswith("Passed"))
            if sum(judged.values()) >= accepted and delivered >= passed:
                break
        elif delivered >= accepted:
            break
        if time.time() > deadline:
            print(f"  {label}: gave up waiting: {delivered} delivered, {accepted} accepted")
            break
        time.sleep(0.02)
    elapsed = time.time() - start
    spent = {k: v - cpu0[k] for k, v in cpu(pids).items()}
    for o in odd:
        print(f"  {label}: unexpected reply: {o}")
    return {"rate": count / max(elapsed, 1e-9), "cpu": spent, "replies": replies, "judged": judged,
            "delivered": sink.count() - sink_base}


def sent_counts(first, count):
    out = {"ham": 0, "virus": 0, "spam": 0}
    for i in range(first, first + count):
        out[kind(i)] += 1
    return out


def check(mta, r, sent):
    """'ok' when the MTA stopped exactly the viruses and spam sent and delivered the rest."""
    if mta == "ceiling":
        got = {"ham": r["delivered"], "virus": 0, "spam": 0}
        want = {"ham": sum(sent.values()), "virus": 0, "spam": 0}
    elif mta == "postern":
        got = {"ham": r["delivered"], "virus": r["replies"].get("refused virus", 0),
               "spam": r["replies"].get("refused spam", 0)}
        want = sent
    else:
        got = {"ham": r["delivered"], "virus": r["judged"].get("Blocked INFECTED", 0),
               "spam": r["judged"].get("Blocked SPAM", 0)}
        want = sent
    text = f"{got['ham']} delivered, {got['virus']} viruses and {got['spam']} spam stopped"
    return text, got == want


def missing_packages(mtas):
    need = {"/usr/sbin/smtp-sink": "postfix", "/usr/sbin/clamd": "clamav-daemon", "/usr/sbin/spamd": "spamd"}
    if "postfix" in mtas:
        need.update({"/usr/sbin/postfix": "postfix", "/usr/sbin/amavisd": "amavisd-new"})
    return sorted({pkg for path, pkg in need.items() if not os.path.exists(path)})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--sessions", type=int, default=10,
                    help="concurrent client sessions; also amavis's $max_servers and spamd's children")
    ap.add_argument("--postern", default=relay.default_postern(), help="the release binary")
    ap.add_argument("--mtas", default="ceiling,postern,postfix")
    ap.add_argument("--amavis-spam", choices=("spamd", "inprocess"), default="spamd")
    ap.add_argument("--warmup", type=int, default=40, help="messages through each MTA before measuring")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("content bench: needs root (Postfix's private instance, amavis's user); skipped")
        return 0
    mtas = args.mtas.split(",")
    missing = missing_packages(mtas)
    if missing:
        print(f"content bench: not installed: {' '.join(missing)} (apt-get install {' '.join(missing)}, "
              f"or make deps); skipped")
        return 0
    if "postern" in mtas and not os.access(args.postern, os.X_OK):
        print(f"content bench: no Postern binary at {args.postern} (cargo build --release, or --postern); skipped")
        return 0

    amavis_spamd = args.amavis_spam == "spamd" and port_free(SPAMD_PORT)
    if args.amavis_spam == "spamd" and not amavis_spamd and "postfix" in mtas:
        print(f"content bench: 127.0.0.1:{SPAMD_PORT} is taken, so amavis runs SpamAssassin in-process")
    spam_note = "spamd (shared)" if amavis_spamd else "SpamAssassin in amavis's processes"
    clamd = spamd = None
    rows = []
    try:
        clamd = Clamd()
        spamd = Spamd(SPAMD_PORT if amavis_spamd else relay.free_port(), args.sessions)
        sent = sent_counts(0, args.messages)
        print(f"content benchmark: {args.messages} messages of 5 KB ({sent['virus']} EICAR, {sent['spam']} "
              f"GTUBE), {args.sessions} sessions, one message per connection, {os.cpu_count()} cores. clamd "
              f"(EICAR signature only) and spamd (-L, {args.sessions} children) shared by both MTAs; "
              f"amavis's spam check: {spam_note}.", flush=True)
        scanners = {"clamd": clamd.pid, "spamd": spamd.pid}
        for mta in mtas:
            load = os.getloadavg()[0]
            res = measure(mta, args, clamd, spamd, scanners, amavis_spamd)
            if res:
                text, ok = check(mta, res, sent)
                res["check"] = f"{text}: {'as sent' if ok else 'MISMATCH'}"
                c = res["cpu"]
                print(f"  {mta:8} [load {load:5.2f}] {res['rate']:7.1f} msg/s, replies {res['replies']}, "
                      f"amavis {res['judged'] or '-'}; {res['check']}; CPU s {', '.join(f'{k} {v:.2f}' for k, v in c.items())}",
                      flush=True)
            rows.append((mta, load, res))
    except Exception as e:  # a benchmark reports, it does not fail the build
        print(f"content bench: {e}")
    finally:
        for s in (spamd, clamd):
            if s:
                s.stop()
    table(rows, args.messages, spam_note)
    return 0


def measure(mta, args, clamd, spamd, scanners, amavis_spamd):
    """One warm-up and one measured run through `mta`; None when it could not run."""
    sink = relay.Sink()
    server = amavis = None
    try:
        if mta == "ceiling":
            port, pids = sink.port, {}
        elif mta == "postern":
            server = relay.Postern(sink.port, args.postern, [
                "zimbraVirusCheckEnabled", "TRUE", "posternClamdAddress", f"127.0.0.1:{clamd.port}",
                "posternSpamdAddress", f"127.0.0.1:{spamd.port}"])
            port, pids = server.port, {"postern": server.pid, **scanners}
        else:
            reinject = relay.free_port()
            amavis = Amavis(clamd.port, reinject, args.sessions, amavis_spamd)
            server = relay.Postfix(sink.port, POSTFIX_DIR,
                                   main_extra=f"content_filter = amavis:[127.0.0.1]:{amavis.port}\n",
                                   master_extra=amavis_master_cf(args.sessions, reinject))
            relay.wait_port(reinject)
            port, pids = server.port, {"postfix": server.pid, "amavis": amavis.pid, **scanners}
        if args.warmup:
            run_mix(f"{mta} warm-up", port, sink, args.messages, args.warmup, args.sessions, {}, amavis)
        return run_mix(mta, port, sink, 0, args.messages, args.sessions, pids, amavis)
    except Exception as e:  # a benchmark reports, it does not fail the build
        print(f"  {mta}: {e}")
        return None
    finally:
        if server:
            server.stop()
        if amavis:
            amavis.stop()
        sink.stop()


def table(rows, messages, spam_note):
    def ms(r, *names):
        return f"{1000 * sum(r['cpu'].get(n, 0.0) for n in names) / messages:.2f}"

    print()
    print("| MTA [load before] | msg/s | % of ceiling | CPU ms/msg MTA | CPU ms/msg clamd + spamd | verdicts |")
    print("|---|---|---|---|---|---|")
    ceiling = next((r for m, _, r in rows if m == "ceiling" and r), None)
    for mta, load, r in rows:
        name = {"ceiling": "ceiling (generator -> smtp-sink)", "postern": "Postern + clamd + spamd",
                "postfix": f"Postfix + amavisd-new + clamd, spam: {spam_note}"}[mta]
        if not r:
            print(f"| {name} [{load:.1f}] | - | - | - | - | did not run |")
            continue
        pct = f"{100 * r['rate'] / ceiling['rate']:.1f} %" if ceiling and mta != "ceiling" else "-"
        if mta == "postfix":
            own = f"{ms(r, 'postfix', 'amavis')} (Postfix {ms(r, 'postfix')}, amavis {ms(r, 'amavis')})"
        else:
            own = ms(r, "postern") if mta == "postern" else "-"
        scan = f"{ms(r, 'clamd', 'spamd')} ({ms(r, 'clamd')} + {ms(r, 'spamd')})" if mta != "ceiling" else "-"
        print(f"| {name} [{load:.1f}] | {r['rate']:.1f} | {pct} | {own} | {scan} | {r['check']} |")


if __name__ == "__main__":
    sys.exit(main())
