"""Soak: 10,000 mixed requests (valid, invalid, concurrent) against gunicorn from the Procfile.

Loopback only, one worker with gunicorn.conf.py's threads, a tiny generator. Passes when no request
gets a server error or a dropped connection, every answer has the status its request calls for,
and the worker's memory grows by less than 20 MB after the warm-up.

    .venv/bin/python -m pytest -m slow tests/test_soak.py -s     # -s prints the figures
"""

import http.client
import json
import os
import random
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import ROOT, free_port, web_command

REQUESTS = 10_000
WARM_UP = 1_000
CLIENTS = 8  # concurrent keep-alive connections, more than the worker's threads
TIME_LIMIT_S = 150
MAX_RSS_GROWTH_MB = 20
JSON = {"Content-Type": "application/json"}


def one_hot(digit: int) -> list[int]:
    return [int(i == digit) for i in range(10)]


def mixed_requests(rng: random.Random, n: int) -> list[tuple[str, str, bytes | None, dict, int]]:
    """(method, path, body, headers, expected status) for n requests, valid and invalid mixed."""
    labels = one_hot(rng.randrange(10))
    seed = rng.randrange(2**32)
    query = "labels=" + ",".join(map(str, labels)) + f"&seed={seed}"
    state = {"labels": labels, "seed": seed}
    kinds = [
        ("GET", f"/generate?{query}&scale={rng.randint(1, 4)}", None, {}, 200),
        ("POST", "/generate", json.dumps({**state, "seed_b": 3, "blend": rng.random()}), JSON, 200),
        ("POST", "/grid", json.dumps({"labels": [labels, one_hot(1)], "seeds": [1, 2, 3]}), JSON, 200),
        ("POST", "/interpolate", json.dumps({"from": state, "to": state, "frames": 4}), JSON, 200),
        ("GET", "/healthz", None, {}, 200),
        ("GET", "/api/model", None, {}, 200),
        ("GET", f"/?{query}", None, {}, 200),
        ("GET", "/static/style.css", None, {}, 200),
        ("POST", "/generate", '{"labels": [0, 1], "seed": 1}', JSON, 400),
        ("POST", "/generate", '{"labels": [NaN' + ", 0" * 9 + '], "seed": 1}', JSON, 400),
        ("POST", "/grid", "[" * 5000 + "]" * 5000, JSON, 400),
        ("POST", "/interpolate", json.dumps({"from": state, "to": state, "frames": 999}), JSON, 400),
        ("POST", "/generate", "{not json", JSON, 400),
        ("GET", "/generate?labels=x&seed=-1", None, {}, 400),
        ("POST", "/generate", "labels=1", {"Content-Type": "text/plain"}, 415),
        ("POST", "/generate", json.dumps({**state, "pad": "x" * 20_000}), JSON, 413),
        ("GET", "/nowhere", None, {}, 404),
        ("DELETE", "/generate", None, {}, 405),
        ("GET", "/generate?" + "a" * 3000, None, {}, 414),  # over gunicorn's limit_request_line
    ]
    return [rng.choice(kinds) for _ in range(n)]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


class Client:
    """One keep-alive connection; opens a new one only where the server said it would close."""

    def __init__(self, port: int):
        self.port = port
        self.connection = None

    def send(self, method: str, path: str, body, headers: dict) -> int:
        if self.connection is None:
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        response.read()
        if response.will_close:
            self.close()
        return response.status

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def run(port: int, requests: list) -> list[tuple[int | str, int]]:
    """(status or the connection error's name, expected status) for each request, CLIENTS at a time."""
    chunks = [requests[i::CLIENTS] for i in range(CLIENTS)]

    def drive(chunk):
        client, answers = Client(port), []
        for method, path, body, headers, expected in chunk:
            try:
                answers.append((client.send(method, path, body, headers), expected))
            except (OSError, http.client.HTTPException) as error:
                answers.append((type(error).__name__, expected))
                client.close()
        client.close()
        return answers

    with ThreadPoolExecutor(CLIENTS) as pool:
        return [answer for answers in pool.map(drive, chunks) for answer in answers]


@pytest.mark.slow
def test_ten_thousand_mixed_requests_without_errors_drops_or_leaks(generator_dir, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "WEB_CONCURRENCY": "1",
        "GENERATOR_DIR": str(generator_dir),
        "FLASK_DEBUG": "1",  # gunicorn.conf.py must switch it off
    }
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as output:
        server = subprocess.Popen(web_command(), cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    started = time.monotonic()
    try:
        while True:
            assert server.poll() is None, log.read_text()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                connection.request("GET", "/healthz")
                health = connection.getresponse().read()
                break
            except OSError:  # not listening yet
                assert time.monotonic() - started < 60, "gunicorn did not answer within 60 s"
                time.sleep(0.2)
            finally:
                connection.close()
        assert health == b'{"status":"ok"}\n'  # debug mode would indent it

        worker = worker_pid(server.pid)
        requests = mixed_requests(random.Random(0), REQUESTS)
        answers = run(port, requests[:WARM_UP])
        before = rss_mb(worker)
        answers += run(port, requests[WARM_UP:])
        after = rss_mb(worker)
        elapsed = time.monotonic() - started
        assert worker_pid(server.pid) == worker, "the worker was restarted"
    finally:
        server.terminate()
        server.wait(timeout=30)

    server_errors = sum(isinstance(status, int) and status >= 500 for status, _ in answers)
    dropped = sum(isinstance(status, str) for status, _ in answers)
    wrong = [(status, expected) for status, expected in answers if status != expected]
    print(
        f"\nsoak: {len(answers)} requests in {elapsed:.0f} s, {server_errors} server errors, {dropped} "
        f"dropped connections, worker RSS {before:.1f} MB after {WARM_UP} requests, {after:.1f} MB after "
        f"{REQUESTS} ({after - before:+.1f} MB)"
    )
    assert len(answers) == REQUESTS
    assert server_errors == 0 and dropped == 0 and wrong == []
    assert after - before < MAX_RSS_GROWTH_MB
    assert elapsed < TIME_LIMIT_S
    text = log.read_text()
    assert "Traceback" not in text and "[ERROR]" not in text, text[-3000:]
