"""The soak's host-mode faults beyond SIGKILL and next-hop outages (issue #17):

- SlowClient: a connection that sends one byte a second and never ends its line, reconnecting
  whenever it is cut; each cut is recorded with what the server said and whether a kill did it.
- Ldap: a private slapd (as firmware/tests/common/slapd.rs starts it) holding a few accounts whose
  transport is the sink; the daemon syncs from it, then the soak kills it mid-run.
- full_flash: a second daemon on a small flash with the next hop down, filled by 500 kB
  messages until it answers 452 4.3.1, killed once while full, then drained and asked again.
"""
import os
import socket
import subprocess
import threading
import time

from soak import Load, Postern

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
ROOT_DN = "uid=zimbra,cn=admins,cn=zimbra"
ROOT_PW = "zimbra-soak-secret"


class SlowClient:
    """One byte a second on a HELO line that never ends: the per-record deadline
    (`smtpd_timeout`) is what must cut it."""

    def __init__(self, postern):
        self.postern = postern
        self.cuts = []  # (seconds connected, bytes sent, cut by a kill?, last thing heard)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stopping.is_set():
            kills = self.postern.kills
            began = time.time()
            sent, heard = 0, b""
            try:
                with socket.create_connection(("127.0.0.1", self.postern.port), timeout=5) as s:
                    heard = s.recv(512)
                    s.sendall(b"HELO ")
                    s.settimeout(0.05)
                    while not self.stopping.is_set():
                        s.sendall(b"s")
                        sent += 1
                        end = time.time() + 1
                        while time.time() < end:
                            try:
                                got = s.recv(512)
                            except socket.timeout:
                                continue
                            if not got:
                                raise ConnectionResetError("closed")
                            heard = got
            except OSError:
                pass
            if self.stopping.is_set():
                return
            if not heard:
                time.sleep(0.2)  # the daemon is restarting: no connection, nothing to record
                continue
            killed = self.postern.kills != kills
            self.cuts.append((time.time() - began, sent, killed,
                              heard.decode(errors="replace").strip()))
            time.sleep(0.2)

    def report(self, label, cuts):
        by_server = [c for c in cuts if not c[2]]
        by_kill = [c for c in cuts if c[2]]
        line = (f"soak: slow client ({label}): {len(cuts)} connections cut, "
                f"{len(by_kill)} by a kill of the daemon")
        if by_server:
            secs = sorted(c[0] for c in by_server)
            line += (f", {len(by_server)} by the server after {secs[0]:.1f}-{secs[-1]:.1f} s "
                     f"({by_server[-1][1]} bytes; last reply {by_server[-1][3]!r})")
        print(line)
        return by_server


class Ldap:
    """slapd on 127.0.0.1 with domain soak.test and `count` accounts routed to the sink."""

    def __init__(self, tmp, sink_port, count=5):
        from soak import free_port
        self.dir = os.path.join(tmp, "ldap")
        os.makedirs(os.path.join(self.dir, "db"))
        self.port = free_port()
        self.accounts = [f"user{i}@soak.test" for i in range(count)]
        with open(os.path.join(self.dir, "zimbra.schema"), "w") as f:
            f.write(SCHEMA)
        d = self.dir
        with open(os.path.join(d, "slapd.conf"), "w") as f:
            f.write(
                "include /etc/ldap/schema/core.schema\n"
                "include /etc/ldap/schema/cosine.schema\n"
                "include /etc/ldap/schema/inetorgperson.schema\n"
                f"include {d}/zimbra.schema\n"
                f"pidfile {d}/slapd.pid\nargsfile {d}/slapd.args\n"
                "modulepath /usr/lib/ldap\nmoduleload back_mdb\n"
                "sizelimit unlimited\ndatabase mdb\nmaxsize 1073741824\nsuffix \"\"\n"
                f"rootdn \"{ROOT_DN}\"\nrootpw {ROOT_PW}\ndirectory {d}/db\n"
                "index objectClass eq\naccess to * by * read\n")
        ldif = ("dn: cn=zimbra\nobjectClass: organizationalRole\ncn: zimbra\n\n"
                "dn: cn=admins,cn=zimbra\nobjectClass: organizationalRole\ncn: admins\n\n"
                "dn: dc=test\nobjectClass: dcObject\nobjectClass: organization\ndc: test\n"
                "o: test\n\n"
                "dn: dc=soak,dc=test\nobjectClass: dcObject\nobjectClass: organization\n"
                "objectClass: zimbraDomain\ndc: soak\no: soak.test\nzimbraId: d-soak\n"
                "zimbraDomainName: soak.test\nzimbraDomainType: local\n"
                "zimbraMailStatus: enabled\n\n"
                "dn: ou=people,dc=soak,dc=test\nobjectClass: organizationalUnit\nou: people\n\n")
        for i, a in enumerate(self.accounts):
            uid = a.split("@")[0]
            ldif += (f"dn: uid={uid},ou=people,dc=soak,dc=test\nobjectClass: inetOrgPerson\n"
                     "objectClass: zimbraAccount\nobjectClass: zimbraMailRecipient\n"
                     f"uid: {uid}\ncn: {uid}\nsn: {uid}\nzimbraId: a-{i}\n"
                     f"zimbraMailDeliveryAddress: {a}\nzimbraMailStatus: enabled\n"
                     f"zimbraAccountStatus: active\n"
                     f"zimbraMailTransport: smtp:[127.0.0.1]:{sink_port}\n\n")
        with open(os.path.join(d, "load.ldif"), "w") as f:
            f.write(ldif)
        subprocess.run([SLAPADD, "-q", "-f", f"{d}/slapd.conf", "-l", f"{d}/load.ldif"],
                       check=True, capture_output=True)
        self.proc = subprocess.Popen(
            [SLAPD, "-d", "0", "-h", f"ldap://127.0.0.1:{self.port}/", "-f", f"{d}/slapd.conf"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from soak import wait_port
        if not wait_port(self.port, 20):
            raise RuntimeError("slapd did not listen")

    def url(self):
        return f"ldap://127.0.0.1:{self.port}"

    def kill(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def configure(self, postern):
        """Points the daemon at this slapd and syncs once; returns the sync's answer."""
        postern.admin(["localconfig", "-e", f"ldap_url={self.url()}",
                       f"zimbra_ldap_userdn={ROOT_DN}", f"zimbra_ldap_password={ROOT_PW}",
                       "ldap_sync_interval=1s"], check=True)
        out = postern.admin(["ldap", "sync"], check=True)
        return out.stdout.decode(errors="replace").strip()


# The Zimbra attributes and classes the accounts above use (firmware/tests/common/slapd.rs has
# the full test schema; OIDs from Zimbra's zimbra-attrs.xml / zimbra-ocs.xml).
SCHEMA = "".join(
    f"attributetype ( 1.3.6.1.4.1.19348.2.1.{i} NAME '{n}' EQUALITY caseIgnoreMatch "
    f"SUBSTR caseIgnoreSubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{{1024}}"
    f"{' SINGLE-VALUE' if single else ''} )\n"
    for i, n, single in [
        (1, "zimbraId", True), (2, "zimbraAccountStatus", True),
        (12, "zimbraMailForwardingAddress", False), (13, "zimbraMailDeliveryAddress", False),
        (15, "zimbraMailStatus", True), (19, "zimbraDomainName", True),
        (20, "zimbraMailAlias", False), (212, "zimbraDomainType", True),
        (214, "zimbraMailCatchAllAddress", False),
        (215, "zimbraMailCatchAllForwardingAddress", True), (247, "zimbraMailTransport", True),
    ]
) + (
    "objectclass ( 1.3.6.1.4.1.19348.2.2.1 NAME 'zimbraAccount' AUXILIARY MUST ( zimbraId ) "
    "MAY ( zimbraAccountStatus $ uid ) )\n"
    "objectclass ( 1.3.6.1.4.1.19348.2.2.4 NAME 'zimbraDomain' AUXILIARY "
    "MUST ( zimbraId $ zimbraDomainName ) MAY ( zimbraDomainType $ zimbraMailStatus $ "
    "zimbraMailTransport $ zimbraMailCatchAllAddress $ zimbraMailCatchAllForwardingAddress ) )\n"
    "objectclass ( 1.3.6.1.4.1.19348.2.2.7 NAME 'zimbraMailRecipient' AUXILIARY MUST ( cn ) "
    "MAY ( zimbraMailDeliveryAddress $ zimbraMailAlias $ zimbraMailStatus $ "
    "zimbraMailTransport $ zimbraMailForwardingAddress $ zimbraMailCatchAllAddress $ "
    "zimbraMailCatchAllForwardingAddress ) )\n"
)


def full_flash(binary, tmp, sink, first_id, drain_limit):
    """The full-flash phase; returns (acked ids, figures line, problems)."""
    d = os.path.join(tmp, "full")
    os.makedirs(d)
    sink.stop()
    p = Postern(binary, d, sink.port, flash_size="16M")
    problems = []
    t0 = time.time()
    # Two clients of 500 kB messages: 16 MB of flash holds a few dozen.
    load = Load(p.port, 2, 400, rcpt="full@example.net", timeout=60, first_id=first_id,
                size=500_000)
    for t in load.threads:
        t.start()
    while time.time() < t0 + 120 and load.refused == 0 and any(x.is_alive() for x in load.threads):
        time.sleep(0.1)
    time.sleep(2)  # a few more refusals, so the 452 is not a one-off
    load.stopping.set()
    for t in load.threads:
        t.join(70)
    filled = time.time() - t0
    refusal = load.last_refusal
    if not refusal or not refusal.startswith("452 4.3.1"):
        problems.append(f"full flash answered {refusal!r}, not 452 4.3.1")
    # Full and killed: what it acknowledged must still be there after the restart.
    p.kill9()
    p.start()
    sink.start()
    t1 = time.time()
    while time.time() < t1 + drain_limit:
        p.admin(["queue", "flush"])
        if load.acked <= sink.arrived().keys():
            break
        time.sleep(1)
    drained = time.time() - t1
    # Accepting again may wait for compaction to free a segment: ask until it does.
    again = Load(p.port, 1, 1, rcpt="full@example.net", timeout=60, first_id=first_id + 1000)
    t2 = time.time()
    while time.time() < t2 + 60 and not again.acked:
        again.stopping.clear()
        again.max = again.next_id + 1
        again.run()
        if not again.acked:
            time.sleep(1)
    if not again.acked:
        problems.append(f"no 250 within 60 s after the drain (last {again.last_refusal!r})")
    t3 = time.time()
    while again.acked and time.time() < t3 + 30 and not again.acked <= sink.arrived().keys():
        p.admin(["queue", "flush"])
        time.sleep(1)
    p.stop()
    line = (f"soak: full flash (16 MB, next hop down, 500 kB messages): {len(load.acked)} "
            f"acknowledged, then {load.refused} refused with {refusal!r} after {filled:.0f} s; "
            f"SIGKILL while full; drained in {drained:.0f} s; "
            f"{'accepted again after ' + format(time.time() - t2, '.0f') + ' s' if again.acked else 'NOT accepted again'}")
    return load.acked | again.acked, line, problems
