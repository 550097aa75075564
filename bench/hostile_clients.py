"""Slow, idle and hostile clients on loopback, beside a polite one whose requests are timed.

bench.serving reports how the polite client fares under each attack; tests/test_slow_clients.py
asserts it. Every loop is bounded by a duration or a count.
"""

import http.client
import json
import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

GENERATE_BODY = json.dumps({"labels": [0, 0, 1, 0, 0, 0, 0, 0, 0, 0], "seed": 7}).encode()


@dataclass(frozen=True)
class Attack:
    """What each attacking connection sends on opening, then (if trickle) one more byte a second."""

    opening: bytes
    trickle: bytes = b""


GRID = json.dumps(
    {"labels": [[float(i == d) for i in range(10)] for d in range(10)], "seeds": [1, 2, 3, 4], "scale": 4}
)
BIG_ANSWER = b"POST /grid HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
BIG_ANSWER += b"Content-Length: %d\r\n\r\n%s" % (len(GRID), GRID.encode())
JSON_POST = b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
ATTACKS = {
    "partial headers": Attack(b"GET /healthz HTTP/1.1\r\nHost: x\r\n"),
    "partial body": Attack(JSON_POST + b"Content-Length: 1000\r\n\r\n{"),
    "body trickled at 1 byte/s": Attack(JSON_POST + b"Content-Length: 1000\r\n\r\n", trickle=b" "),
    "chunked body never finished": Attack(JSON_POST + b'Transfer-Encoding: chunked\r\n\r\n10\r\n{"la'),
    "sends nothing": Attack(b""),
    "over the limit, body never sent": Attack(JSON_POST + b"Content-Length: 20000\r\n\r\n"),
}


class Attacker:
    """Opens `burst` connections at once, then one more every `interval` s, until stopped."""

    def __init__(self, port: int, attack: Attack, burst: int, interval: float):
        self.port, self.attack, self.burst, self.interval = port, attack, burst, interval
        self.sockets: list[socket.socket] = []
        self.opened = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def open_one(self) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            sock.sendall(self.attack.opening)
        except OSError:
            return
        self.sockets.append(sock)
        self.opened += 1

    def run(self) -> None:
        for _ in range(self.burst):
            self.open_one()
        next_trickle = time.monotonic() + 1
        while not self.stopped.wait(self.interval):
            self.open_one()
            if self.attack.trickle and time.monotonic() >= next_trickle:
                next_trickle += 1
                for sock in self.sockets:
                    try:
                        sock.send(self.attack.trickle)
                    except OSError:
                        pass

    def __enter__(self) -> "Attacker":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)
        for sock in self.sockets:
            sock.close()


def polite_request(port: int, n: int, timeout: float) -> float | str:
    """GET /healthz (n even) or POST /generate (n odd) on a new connection: ms taken, or why it failed."""
    began = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if n % 2:
            connection.request("POST", "/generate", GENERATE_BODY, {"Content-Type": "application/json"})
        else:
            connection.request("GET", "/healthz")
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            return f"status {response.status}"
        return 1000 * (time.monotonic() - began)
    except OSError as error:
        return f"{type(error).__name__}: {error}"
    finally:
        connection.close()


def polite_requests(port: int, seconds: float, rate: float = 10, timeout: float = 5) -> dict:
    """`rate` requests a second for `seconds`, each sent on time whether the earlier ones were answered."""
    count = int(seconds * rate)
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=int(rate * timeout) + 1) as pool:
        futures = []
        for n in range(count):
            time.sleep(max(0.0, start + n / rate - time.monotonic()))
            futures.append(pool.submit(polite_request, port, n, timeout))
        outcomes = [future.result() for future in futures]
    latencies = sorted(outcome for outcome in outcomes if isinstance(outcome, float)) or [float("nan")]
    failures = [outcome for outcome in outcomes if isinstance(outcome, str)]
    return {
        "requests": count,
        "succeeded": count - len(failures),
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
        "max_ms": round(latencies[-1], 1),
        "failures": sorted(set(failures)),
    }


def under_attack(port: int, attack: Attack, seconds: float, burst: int = 64, interval: float = 0.5) -> dict:
    """The polite client's figures while `attack` runs, and how many attacking connections it opened."""
    with Attacker(port, attack, burst, interval) as attacker:
        time.sleep(0.5)  # the burst is open before the first polite request
        result = polite_requests(port, seconds)
        return {**result, "attack_connections": attacker.opened}
