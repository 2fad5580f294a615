#!/usr/bin/env python3
"""Idle SMTP sessions: how much RAM Postern needs to hold many clients that connect and wait.

Starts `postern run` on a fresh flash file with `default_process_limit` raised (a setting, stored
on flash, in force from the next start), opens N connections (10 000 by default) that read the
greeting and then say nothing, and prints the daemon's RSS before and with them held, per session.
While they are held, another client sends a message through, which must be accepted. Prints
figures; never fails a build.

Usage: tests/bench/idle_sessions.py [--sessions 10000]
"""

import argparse
import os
import resource
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.recv(512)
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Postern:
    def __init__(self, tmp, binary):
        self.tmp, self.binary = tmp, binary
        self.port = free_port()
        self.control = f"{tmp}/control.sock"
        self.proc = subprocess.Popen(
            [binary, "run", "--flash", f"{tmp}/flash.img", "--flash-size", "64M",
             "--smtp", f"127.0.0.1:{self.port}", "--control", self.control,
             "--hostname", "postern-bench.invalid"],
            stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/postern.log", "a"))
        wait_port(self.port)

    def prov(self, *args):
        subprocess.run([self.binary, "--control", self.control, "prov"] + list(args),
                       check=True, stdout=subprocess.DEVNULL)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=10000)
    args = ap.parse_args()
    binary = os.environ.get("POSTERN_BIN", f"{ROOT}/target/x86_64-unknown-linux-gnu/release/postern")
    if not os.path.exists(binary):
        print(f"idle sessions bench: no {binary}; build it first (make firmware)")
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.sessions + 256
    if hard != resource.RLIM_INFINITY and hard < want:
        print(f"idle sessions bench: open files limited to {hard}, need {want}; skipped")
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    print(f"idle sessions bench: {args.sessions} sessions; load before {open('/proc/loadavg').read().strip()}")
    tmp = tempfile.mkdtemp(prefix="postern-idle-")
    server = None
    held = []
    try:
        server = Postern(tmp, binary)
        server.prov("mcf", "default_process_limit", str(args.sessions + 100))
        server.prov("mcf", "zimbraMtaMyNetworks", "127.0.0.0/8")
        server.prov("mcf", "zimbraMtaRelayHost", "[127.0.0.1]:9")
        server.stop()
        server = Postern(tmp, binary)  # the limit is in force from this start
        time.sleep(0.5)
        before = rss_kb(server.proc.pid)
        t = time.time()
        for i in range(args.sessions):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            held.append(s)
        opened = time.time() - t
        greeted = 0
        for s in held:
            if s.recv(512).startswith(b"220"):
                greeted += 1
        time.sleep(1)
        during = rss_kb(server.proc.pid)
        print(f"  {greeted} of {args.sessions} sessions greeted, opened in {opened:.1f} s")
        print(f"  postern RSS {before / 1024:.1f} MB before, {during / 1024:.1f} MB with them held: "
              f"{(during - before) * 1024 / max(1, args.sessions):.0f} bytes per idle session")
        t = time.time()
        try:
            with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as c:
                c.sendmail("bench@client.example", ["someone@elsewhere.example"],
                           "Subject: while 10k wait\r\n\r\nhello\r\n")
            print(f"  another client's message was accepted in {(time.time() - t) * 1000:.0f} ms "
                  f"while they were held")
        except (smtplib.SMTPException, OSError) as e:
            print(f"  another client's message was not accepted: {e}")
    except Exception as e:  # a benchmark reports, it does not fail the build
        print(f"  failed: {e}")
    finally:
        for s in held:
            s.close()
        if server:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
