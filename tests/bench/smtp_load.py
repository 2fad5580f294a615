#!/usr/bin/env python3
"""A small SMTP load generator for what smtp-source cannot do: STARTTLS. Sends N messages of a
given size over S concurrent sessions, one message per connection, like `smtp-source -s S -m N -l
SIZE`, with or without STARTTLS (the certificate is not checked: a bench talks to 127.0.0.1).
Exits 0 when every message got a 250, 1 otherwise (and says how many did not).

Usage: smtp_load.py --sessions S --messages N --size BYTES [--starttls] [--procs P] HOST:PORT
"""
import argparse
import asyncio
import multiprocessing
import ssl
import sys


def body(size):
    line = b"X" * 70 + b"\r\n"
    head = b"From: <sender@bench.invalid>\r\nTo: <rcpt@example.com>\r\nSubject: bench\r\n\r\n"
    lines = line * max(0, (size - len(head)) // len(line))
    return head + lines + b".\r\n"


async def reply(r):
    """The last line of a (multi-line) reply; raises on a closed connection."""
    while True:
        line = await r.readline()
        if not line:
            raise ConnectionError("connection closed")
        if line[3:4] != b"-":
            return line


async def expect(r, code):
    line = await reply(r)
    if not line.startswith(code):
        raise ConnectionError(line.decode(errors="replace").strip())


async def one(host, port, data, tls):
    r, w = await asyncio.open_connection(host, port)
    try:
        await expect(r, b"220")
        w.write(b"EHLO load.bench.invalid\r\n")
        await expect(r, b"250")
        if tls:
            w.write(b"STARTTLS\r\n")
            await expect(r, b"220")
            await w.start_tls(tls, server_hostname=None)
            w.write(b"EHLO load.bench.invalid\r\n")
            await expect(r, b"250")
        w.write(b"MAIL FROM:<sender@bench.invalid>\r\nRCPT TO:<rcpt@example.com>\r\nDATA\r\n")
        await expect(r, b"250")
        await expect(r, b"250")
        await expect(r, b"354")
        w.write(data)
        await expect(r, b"250")
        w.write(b"QUIT\r\n")
        await w.drain()
        return True
    finally:
        w.close()


async def run(host, port, sessions, messages, size, starttls):
    data = body(size)
    tls = None
    if starttls:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    left = [messages]
    failed = [0]

    async def worker():
        while left[0] > 0:
            left[0] -= 1
            try:
                await one(host, port, data, tls)
            except (OSError, ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
                failed[0] += 1

    await asyncio.gather(*(worker() for _ in range(sessions)))
    return failed[0]


def part(args):
    host, port, sessions, messages, size, starttls = args
    return asyncio.run(run(host, port, sessions, messages, size, starttls))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--size", type=int, default=5120)
    ap.add_argument("--starttls", action="store_true")
    ap.add_argument("--procs", type=int, default=2, help="client processes (Python is slow)")
    ap.add_argument("target")
    a = ap.parse_args()
    host, port = a.target.rsplit(":", 1)
    procs = max(1, min(a.procs, a.sessions))
    jobs = []
    for i in range(procs):
        s = a.sessions // procs + (1 if i < a.sessions % procs else 0)
        m = a.messages // procs + (1 if i < a.messages % procs else 0)
        jobs.append((host, int(port), s, m, a.size, a.starttls))
    with multiprocessing.Pool(procs) as pool:
        failed = sum(pool.map(part, jobs))
    if failed:
        print(f"{failed} of {a.messages} messages got no 250", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
