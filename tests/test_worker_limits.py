"""The worker's framing on the wire: one answer per request, one body limit, bounded CPU and memory.

Each of the defects the framing once had is pinned here against the Procfile's server on loopback,
with one worker so that its CPU and memory can be read from /proc.
"""

import json
import socket
import subprocess
import sys

import gunicorn
import pytest
from gunicorn.config import Config
from gunicorn.errors import ConfigError
from helpers import ROOT, head_and_body, procfile_server

from bench.framing_attacks import (
    NEXT_REQUEST,
    ONCE_READ_TWO_WAYS,
    ONE_BYTE_CHUNKS,
    Flood,
    answers,
    exchange,
    held_memory,
    worker_cpu_ms_per_request,
)
from bench.hostile_clients import GENERATE_BODY, polite_requests
from server.worker import RequestBufferingWorker

POST = b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module")
def server():
    """One worker for the module, 3 s request timeout; its log has no traceback once the tests ran."""
    with procfile_server(WEB_CONCURRENCY="1", GUNICORN_REQUEST_TIMEOUT="3") as served:
        (worker,) = served.worker_pids()
        yield served.port, worker
    assert "Traceback" not in served.log[0], served.log[0]
    assert "POST /healthz" not in served.log[0], "a refused request reached the app"


@pytest.mark.slow
@pytest.mark.parametrize("request_bytes", ONCE_READ_TWO_WAYS.values(), ids=ONCE_READ_TWO_WAYS)
def test_a_request_gunicorn_once_refused_after_the_app_gets_one_json_400_and_nothing_else(
    server, request_bytes
):
    port, _ = server
    received, _ = exchange(port, request_bytes + NEXT_REQUEST)
    assert answers(received) == ["HTTP/1.1 400 Bad Request"], received
    status, headers, body = head_and_body(received)
    assert headers["connection"] == "close" and headers["content-type"] == "application/json"
    assert json.loads(body)["error"].startswith("400 Bad Request: ")


@pytest.mark.slow
def test_a_body_one_byte_over_the_limit_gets_the_apps_413_at_once(server):
    """The framer, the app and gunicorn read the same limit: limit + 1 is refused before its body."""
    port, _ = server
    received, seconds = exchange(port, POST + b"Content-Length: 16385\r\n\r\n" + GENERATE_BODY)
    status, headers, body = head_and_body(received)
    assert status == "HTTP/1.1 413 Request Entity Too Large" and headers["connection"] == "close"
    assert json.loads(body) == {
        "error": "413 Request Entity Too Large: the body is over the limit of 16,384 bytes"
    }
    assert seconds < 1  # not the 3 s request timeout


def sent_before_the_body(port: int, head: bytes, body: bytes) -> tuple[bytes, bytes]:
    """What the server sends within 0.5 s of a request's head, and then its answer to the body."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        sock.settimeout(0.5)
        try:
            early = sock.recv(1024)
        except TimeoutError:
            early = b""
        sock.settimeout(5)
        sock.sendall(body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return early, answer


@pytest.mark.slow
@pytest.mark.parametrize(
    "head",
    [
        b"POST /generate HTTP/1.0\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n",
        POST + b"X-Note: 100-continue\r\nConnection: close\r\n",
    ],
    ids=["from an HTTP/1.0 client", "a field other than Expect naming it"],
)
def test_100_continue_is_sent_only_for_an_http_1_1_expect_field(server, head):
    port, _ = server
    early, answer = sent_before_the_body(
        port, head + b"Content-Length: %d\r\n\r\n" % len(GENERATE_BODY), GENERATE_BODY
    )
    assert early == b""
    assert answers(answer) == [answer.split(b"\r\n")[0].decode()] and b" 200 OK" in answer.split(b"\r\n")[0]


@pytest.mark.slow
def test_an_expectation_other_than_100_continue_gets_a_417(server):
    port, _ = server
    received, _ = exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: 100-continue, x\r\n\r\n")
    status, headers, body = head_and_body(received)
    assert status == "HTTP/1.1 417 Expectation Failed" and headers["content-type"] == "application/json"


@pytest.mark.slow
def test_192_kb_of_one_byte_chunks_costs_the_worker_milliseconds(server):
    """The whole body once went to gunicorn's chunk parser in one piece: 0.5 s of CPU, quadratic."""
    port, worker = server
    assert answers(exchange(port, ONE_BYTE_CHUNKS)[0]) == ["HTTP/1.1 400 Bad Request"]
    assert worker_cpu_ms_per_request(port, worker, ONE_BYTE_CHUNKS, count=10) < 10


@pytest.mark.slow
def test_polite_clients_are_served_beside_a_flood_of_one_byte_chunks(server):
    port, _ = server
    with Flood(port, ONE_BYTE_CHUNKS, connections=2, rate=225_000):
        result = polite_requests(port, seconds=2)
    assert result["succeeded"] == result["requests"] > 0 and result["max_ms"] < 1000, result


@pytest.mark.slow
def test_990_of_the_largest_unfinished_requests_stay_within_the_budget_and_give_it_back(server):
    """Past the worker's budget for buffered bytes the oldest get a 503; their memory comes back."""
    port, worker = server
    result = held_memory(port, worker, connections=990, polite_seconds=2)
    assert result["connections_opened"] == 990
    assert result["rss_with_them_mb"] - result["rss_before_mb"] < 64, result
    assert result["rss_after_mb"] - result["rss_before_mb"] < 16, result
    polite = result["polite_client"]
    assert polite["succeeded"] == polite["requests"] > 0 and polite["max_ms"] < 1000, result


def test_a_gunicorn_the_worker_was_not_checked_against_stops_start_up(monkeypatch):
    monkeypatch.setattr(gunicorn, "__version__", "28.0.0")
    with pytest.raises(ConfigError, match="gunicorn 28.0.0 is installed"):
        RequestBufferingWorker.check_config(Config(), None)


def test_gunicorn_limits_below_the_framers_stop_start_up():
    """The framer lets through trailers that gunicorn's parser must take."""
    cfg = Config()
    cfg.set("limit_request_fields", 4)
    with pytest.raises(ConfigError, match="limit_request_fields"):
        RequestBufferingWorker.check_config(cfg, None)


@pytest.mark.parametrize("parser", ["auto", "fast"])
def test_a_parser_the_framer_was_not_checked_against_stops_start_up(parser):
    """gunicorn takes its C parser whenever gunicorn_h1c is installed, unless told "python"."""
    cfg = Config()
    cfg.set("http_parser", parser)
    with pytest.raises(ConfigError, match=f"http_parser is '{parser}'"):
        RequestBufferingWorker.check_config(cfg, None)


def test_the_server_package_loads_without_flask():
    loaded_packages = "{name.split('.')[0] for name in sys.modules}"
    code = f"import sys, server.worker; print(sorted({loaded_packages} & {{'flask', 'webapp'}}))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"
