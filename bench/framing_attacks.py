"""The request-framing attacks on the worker, run against one or more checkouts side by side.

    python -m bench.framing_attacks                          # this checkout
    python -m bench.framing_attacks --root /tmp/main .       # main's worker (a git worktree), then this one

For each checkout: the Procfile's server with one worker on loopback, then
- one answer per request: each request the framer and gunicorn once read differently, followed by a
  pipelined GET /healthz, and how many answers came back;
- worker CPU for 192 KB of one-byte chunks (24,000 chunks), averaged over repeated requests;
- two connections sending such requests at 0.45 MB/s in all, beside a polite client;
- 990 connections holding the largest unfinished requests the framer lets wait (long fields, chunk
  extensions and trailers): the worker's RSS before, with them open, and after they closed, beside
  a polite client.
The polite client sends GET /healthz 10 times a second on new connections (bench.hostile_clients).
Every loop is bounded by a duration or a count.
"""

import argparse
import contextlib
import json
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from bench.hostile_clients import polite_requests
from bench.machine import machine_info

CHUNKED_HEAD = b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
ONE_BYTE_CHUNKS = CHUNKED_HEAD + b"1;a\r\nx\r\n" * 24_000 + b"0\r\n\r\n"  # 192 KB
# A request as large as the framer lets wait, never finished: long header fields, then a chunked
# body with long chunk extensions, 15 KB of data and long trailers (48 KB in all).
LONG_FIELDS = b"".join(b"X-Long-%d: %s\r\n" % (n, b"v" * 4000) for n in range(7))
LARGEST_UNFINISHED = (
    CHUNKED_HEAD.replace(b"Host: x\r\n", b"Host: x\r\n" + LONG_FIELDS)
    + b"1;"
    + b"e" * 1000
    + b"\r\nx\r\n"
    + b"3a98\r\n"
    + b"d" * 15_000
    + b"\r\n0\r\n"
    + b"".join(b"X-Trailer-%d: %s\r\n" % (n, b"t" * 400) for n in range(8))
)
NEXT_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
ONCE_READ_TWO_WAYS = {
    "a space after the size": CHUNKED_HEAD + b"5 \r\nhello\r\n0\r\n\r\n",
    "a space before the size": CHUNKED_HEAD + b" 5\r\nhello\r\n0\r\n\r\n",
    "a space after the last size": CHUNKED_HEAD + b"5\r\nhello\r\n0 \r\n\r\n",
    "an empty extension": CHUNKED_HEAD + b"5;\r\nhello\r\n0\r\n\r\n",
    "Content-Length in the trailers": CHUNKED_HEAD + b"0\r\nContent-Length: 5\r\n\r\n",
    "Transfer-Encoding in the trailers": CHUNKED_HEAD + b"0\r\nTransfer-Encoding: chunked\r\n\r\n",
    "a bare LF in the trailers": CHUNKED_HEAD + b"0\r\nX-T: 1\n\r\n",
}


def exchange(port: int, data: bytes, wait: float = 10) -> tuple[bytes, float]:
    """Everything the server sends after `data` until it closes, and how long that took (s); a server
    that stops reading early (it refused the request) does not end the exchange."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        began = time.monotonic()
        with contextlib.suppress(OSError):
            sock.sendall(data)
        received = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                received += chunk
        return received, time.monotonic() - began


def answers(received: bytes) -> list[str]:
    """The status lines of the answers in `received`, one after the other, each head followed by its
    Content-Length of body (a 100 Continue is not an answer); what follows the last is ignored."""
    statuses = []
    while (head_end := received.find(b"\r\n\r\n")) >= 0:
        status, *fields = received[:head_end].decode("latin-1").split("\r\n")
        lengths = [
            int(value)
            for name, _, value in (f.partition(":") for f in fields)
            if name.lower() == "content-length"
        ]
        received = received[head_end + 4 + sum(lengths) :]
        if " 100 " not in status:
            statuses.append(status)
    return statuses


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024


def worker_cpu_ms_per_request(port: int, worker: int, data: bytes, count: int) -> float:
    """The worker's CPU per exchange of `data`, over `count` exchanges (/proc counts in 10 ms ticks)."""
    before = cpu_seconds(worker)
    for _ in range(count):
        exchange(port, data)
    return round(1000 * (cpu_seconds(worker) - before) / count, 2)


class Flood:
    """`connections` clients each sending `data` at `rate` bytes/s, one connection after another."""

    def __init__(self, port: int, data: bytes, connections: int, rate: float):
        self.port, self.data, self.rate = port, data, rate
        self.stopped = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(connections)]

    def run(self) -> None:
        step = 16 * 1024
        while not self.stopped.is_set():
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock,
            ):
                for start in range(0, len(self.data), step):
                    if self.stopped.wait(step / self.rate):
                        return
                    sock.sendall(self.data[start : start + step])
                while sock.recv(65536):
                    pass

    def __enter__(self) -> "Flood":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join(timeout=10)


def open_holding(port: int, data: bytes, count: int) -> list[socket.socket]:
    """`count` connections that each sent `data` (a request never finished) and stay open."""
    sockets = []
    for _ in range(count):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.send(data)  # what does not fit the socket's buffers is not sent: no wait
        except OSError:
            continue
        sockets.append(sock)
    return sockets


def held_memory(port: int, worker: int, connections: int, polite_seconds: float) -> dict:
    """The worker's RSS with `connections` of the largest unfinished requests open, and once they closed."""
    before = rss_mb(worker)
    sockets = open_holding(port, LARGEST_UNFINISHED, connections)
    try:
        polite = polite_requests(port, polite_seconds, timeout=5)
        with_them = rss_mb(worker)
    finally:
        for sock in sockets:
            sock.close()
    time.sleep(2.5)  # the worker notices the closes (and lingering 503s end)
    return {
        "connections_opened": len(sockets),
        "rss_before_mb": round(before, 1),
        "rss_with_them_mb": round(with_them, 1),
        "rss_after_mb": round(rss_mb(worker), 1),
        "polite_client": polite,
    }


def measure(root: Path, port: int, seconds: float) -> dict:
    """One checkout's server (the Procfile's command, one worker), under each attack in turn."""
    line = next(line for line in (root / "Procfile").read_text().splitlines() if line.startswith("web:"))
    command = shlex.split(line.removeprefix("web:"))
    command[0] = str(Path(sys.executable).parent / command[0])
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "WEB_CONCURRENCY": "1"}
    server = subprocess.Popen(
        command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        (worker,) = (
            int(pid) for pid in Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        )
        one_answer = {
            name: answers(exchange(port, data + NEXT_REQUEST)[0]) for name, data in ONCE_READ_TWO_WAYS.items()
        }
        cpu = worker_cpu_ms_per_request(port, worker, ONE_BYTE_CHUNKS, count=10)
        with Flood(port, ONE_BYTE_CHUNKS, connections=2, rate=225_000):
            time.sleep(1)
            flooded = polite_requests(port, seconds)
        memory = held_memory(port, worker, connections=990, polite_seconds=seconds)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {
        "answers_to_a_request_and_the_one_behind_it": one_answer,
        "worker_cpu_ms_192kb_one_byte_chunks": cpu,
        "polite_client_beside_0.45_mb_s_of_one_byte_chunks": flooded,
        "990_largest_unfinished_requests": memory,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, nargs="+", default=[Path(".")], help="checkouts to run, in turn")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--seconds", type=float, default=5, help="the polite client's run per attack")
    args = parser.parse_args()
    result = {str(root): measure(root.resolve(), args.port, args.seconds) for root in args.root}
    print(json.dumps({"benchmark": "framing_attacks", **result, "machine": machine_info()}, indent=2))


if __name__ == "__main__":
    main()
