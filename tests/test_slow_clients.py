"""The Procfile's server facing slow, idle and hostile clients on loopback: the others are still served."""

import contextlib
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import get, head_and_body, procfile_server, web_command
from misbehaving_app import LARGE

from bench.framing_attacks import exchange, rss_mb
from bench.hostile_clients import ATTACKS, Attack, polite_requests, under_attack

REQUEST_TIMEOUT_S = 3  # GUNICORN_REQUEST_TIMEOUT for these servers, to keep the tests short
BOUND_MS = 1000  # every polite request, on a 2-core machine running the attack too

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server():
    """One server for the module; once its tests ran, their malformed requests left no traceback."""
    with procfile_server(GUNICORN_REQUEST_TIMEOUT=str(REQUEST_TIMEOUT_S)) as served:
        yield served.port
    assert "Traceback" not in served.log[0], served.log[0]


def assert_all_served(result: dict) -> None:
    assert result["succeeded"] == result["requests"] > 0, result["failures"]
    assert result["max_ms"] < BOUND_MS, result


@pytest.mark.parametrize("name", ATTACKS)
def test_polite_clients_are_served_while_64_connections_attack(server, name):
    port = server
    assert_all_served(under_attack(port, ATTACKS[name], seconds=3, burst=64, interval=0.5))


def test_polite_clients_are_served_beside_500_idle_connections(server):
    port = server
    assert_all_served(under_attack(port, Attack(b""), seconds=2, burst=500, interval=0.5))


def test_idle_connections_past_the_descriptor_limit_take_no_worker_down():
    with procfile_server(max_descriptors=128) as served:
        assert_all_served(under_attack(served.port, Attack(b""), seconds=2, burst=300, interval=0.1))
    assert served.log[0].count("Booting worker") == 2, served.log[0]  # no worker died and was replaced
    assert "Traceback" not in served.log[0]


def test_a_stalled_request_gets_a_408_and_is_closed_in_time(server):
    port = server
    answer, seconds = exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    status, headers, body = head_and_body(answer)
    assert status == "HTTP/1.1 408 Request Timeout"
    assert headers["connection"] == "close" and headers["x-content-type-options"] == "nosniff"
    assert "did not arrive within 3 s" in json.loads(body)["error"]
    assert REQUEST_TIMEOUT_S - 0.1 < seconds < REQUEST_TIMEOUT_S + 1.5


def test_a_connection_that_never_sends_is_closed_in_time(server):
    port = server
    answer, seconds = exchange(port, b"")
    assert answer == b""
    assert REQUEST_TIMEOUT_S - 0.1 < seconds < REQUEST_TIMEOUT_S + 1.5


def test_a_413_says_connection_close_and_closes_cleanly(server):
    """The rest of the body is not read: the answer must say so, and the close must not be a reset."""
    port = server
    body = b" " * 70_000
    request = b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    request += b"Content-Length: %d\r\n\r\n" % len(body) + body
    answer, _ = exchange(port, request + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, reply = head_and_body(answer)
    assert status.startswith("HTTP/1.1 413") and headers["connection"] == "close"
    assert "over the limit of 16,384 bytes" in json.loads(reply)["error"]
    assert answer.count(b"HTTP/1.1") == 1  # nothing answered the request behind it


def chunked(data: bytes, size: int = 4000) -> bytes:
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


CHUNKED_POST = b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
CHUNKED_POST += b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
VALID_JSON = json.dumps({"labels": [0, 0, 1, 0, 0, 0, 0, 0, 0, 0], "seed": 7}).encode()


def test_a_chunked_body_within_the_limit_is_served(server):
    port = server
    status, headers, body = head_and_body(exchange(port, CHUNKED_POST + chunked(VALID_JSON, 10))[0])
    assert status == "HTTP/1.1 200 OK" and headers["content-type"] == "image/png"


@pytest.mark.parametrize("tail", [b"", b"x" * 20_000], ids=["valid JSON then garbage", "garbage only"])
def test_a_chunked_body_over_the_limit_gets_the_413_of_a_content_length(server, tail):
    port = server
    data = VALID_JSON + b" " * 17_000 + tail + b"garbage"
    status, _, body = head_and_body(exchange(port, CHUNKED_POST + chunked(data))[0])
    assert status.startswith("HTTP/1.1 413")
    assert "over the limit of 16,384 bytes" in json.loads(body)["error"]


MALFORMED_CHUNKS = {
    "size not hex": b"zz\r\nabc\r\n0\r\n\r\n",
    "size with 0x": b"0x2c\r\n" + b"a" * 44 + b"\r\n0\r\n\r\n",
    "no CRLF after the data": b"3\r\nabc0\r\n\r\n",
}


@pytest.mark.parametrize("body", MALFORMED_CHUNKS.values(), ids=MALFORMED_CHUNKS)
def test_a_malformed_chunked_body_gets_a_json_400_and_no_traceback(server, body):
    port = server
    status, headers, reply = head_and_body(exchange(port, CHUNKED_POST + body)[0])
    assert status.startswith("HTTP/1.1 400") and headers["content-type"] == "application/json"
    assert json.loads(reply)["error"].startswith("400 Bad Request: ")


def test_no_redirect_takes_its_host_from_the_request(server):
    port = server
    for path in ["//static/app.js", "//generate", "/static//app.js", "//", "/healthz/"]:
        request = f"GET {path} HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n".encode()
        _, headers, _ = head_and_body(exchange(port, request)[0])
        assert "evil.example" not in headers.get("location", ""), path


@pytest.fixture(params=["1", "2"], ids=["on the event loop", "in two threads"])
def misbehaving_server(request):
    """tests/misbehaving_app.py under the Procfile's settings, one worker, 2 s timeouts, its requests run
    by the worker's event loop (one thread, the default) or by gthread's pool of two threads."""
    command = [web_command()[0], "--pythonpath", str(Path(__file__).parent), "misbehaving_app:app"]
    settings = {"GUNICORN_TIMEOUT": "2", "GUNICORN_REQUEST_TIMEOUT": "2", "WEB_CONCURRENCY": "1"}
    settings["GUNICORN_THREADS"] = request.param
    with procfile_server(command, **settings) as served:
        yield served.port, served.log


def test_a_request_that_never_ends_has_its_worker_killed_and_replaced(misbehaving_server):
    port, log = misbehaving_server
    answer, seconds = exchange(port, b"GET /stuck HTTP/1.1\r\nHost: x\r\n\r\n", wait=30)
    assert answer == b""  # the worker was killed mid-request
    assert 2 < seconds < 2 + 5
    assert polite_requests(port, seconds=0.3)["succeeded"] == 3  # served by its replacement


def test_clients_that_never_read_their_answers_hold_no_thread(misbehaving_server):
    port, _ = misbehaving_server
    with contextlib.ExitStack() as stack:
        readers = [
            stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10)) for _ in range(4)
        ]
        for sock in readers:
            sock.sendall(b"GET /large HTTP/1.1\r\nHost: x\r\n\r\n")
        sent = time.monotonic()
        assert_all_served(polite_requests(port, seconds=1.5))
        # Their answers made no progress for 2 s: closed within the event loop's next second.
        time.sleep(max(0.0, sent + 2 + 1.5 - time.monotonic()))
        for sock in readers:
            received = b""
            with contextlib.suppress(ConnectionResetError):
                while chunk := sock.recv(1 << 20):
                    received += chunk
            assert received.startswith(b"HTTP/1.1 200 OK") and len(received) < LARGE


def test_a_client_that_expects_100_continue_gets_it_before_it_sends_the_body(server):
    port = server
    head = CHUNKED_POST.replace(b"Transfer-Encoding: chunked", b"Content-Length: %d" % len(VALID_JSON))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head.replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n"))
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(VALID_JSON)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 OK") and b"100 Continue" not in answer


def test_a_kept_alive_connection_stays_open_while_idle_and_serves_pipelined_requests(server):
    """gunicorn's default closed idle connections after 5 s; a router may keep its own for 90 s."""
    port = server
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
        time.sleep(6)
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 2
            + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.count(b"HTTP/1.1 200 OK") == 3


def test_a_deep_pipeline_is_answered_in_order_taking_turns_with_other_clients():
    """The event loop runs each request itself: three thousand short pipelined ones, a hundred in
    each read, are all answered in order, and a polite client is served meanwhile."""
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    pipeline = request * 3000 + request.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    with procfile_server(WEB_CONCURRENCY="1") as served:
        with ThreadPoolExecutor(1) as client:
            exchanged = client.submit(exchange, served.port, pipeline, 30)
            assert_all_served(polite_requests(served.port, seconds=1))
            answer, _ = exchanged.result()
    assert answer.count(b"HTTP/1.1 200 OK") == 3001
    assert "Traceback" not in served.log[0]


@pytest.mark.parametrize("threads", ["1", "2"], ids=["on the event loop", "in two threads"])
def test_a_client_that_pipelines_gets_no_more_turns_than_one_that_waits(threads):
    """One client keeps two requests on their way, another sends one at a time: they are served in
    turn. Read at once after each answer, the first's next request went ahead of the second's turn
    after turn, 50 to 1."""
    body = json.dumps({"labels": [0, 0, 1, 0, 0, 0, 0, 0, 0, 0], "seed": 7}).encode()
    request = b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    request += b"Content-Length: %d\r\n\r\n%s" % (len(body), body)

    def answers(port: int, ahead: int) -> int:
        count, received, until = 0, b"", time.monotonic() + 2
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(request * ahead)
            while time.monotonic() < until:
                while PNG_END not in received:
                    received += sock.recv(65536)
                received = received[received.index(PNG_END) + len(PNG_END) :]
                count += 1
                sock.sendall(request)
        return count

    with procfile_server(WEB_CONCURRENCY="1", GUNICORN_THREADS=threads) as served:
        with ThreadPoolExecutor(2) as clients:
            pipelining, waiting = clients.map(answers, [served.port] * 2, [2, 1])
    assert waiting > pipelining / 4 > 10, (pipelining, waiting)


PNG_END = b"IEND\xaeB`\x82"  # the last bytes of every PNG


def test_a_stopping_server_does_not_wait_its_graceful_timeout_for_idle_connections():
    """SIGTERM (a dyno restart): idle connections are closed, a request on its way gets a 408."""
    with contextlib.ExitStack() as stack:
        with procfile_server() as served:
            idle = [
                stack.enter_context(socket.create_connection(("127.0.0.1", served.port))) for _ in range(10)
            ]
            idle[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            time.sleep(0.5)
            began = time.monotonic()
        assert time.monotonic() - began < 7  # gunicorn.conf.py's graceful_timeout is 10 s
        idle[0].settimeout(1)
        assert idle[0].recv(100).startswith(b"HTTP/1.1 408 Request Timeout")


def test_slow_downloads_of_the_page_weights_share_one_copy():
    """Twenty clients that take none of the 3.5 MB weights cost their worker far less than 20 copies."""
    with procfile_server(WEB_CONCURRENCY="1") as served:
        version = json.loads(get(f"{served.base}/api/model")[2])["version"]
        (worker,) = served.worker_pids()
        request = f"GET /api/generator/{version}.weights HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        answer, _ = exchange(served.port, request.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        assert answer.startswith(b"HTTP/1.1 200 OK") and len(answer) > 3_000_000  # built once, kept
        before = rss_mb(worker)
        with contextlib.ExitStack() as stack:
            for _ in range(20):
                sock = stack.enter_context(socket.create_connection(("127.0.0.1", served.port)))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.sendall(request)
            assert_all_served(polite_requests(served.port, seconds=1))
            grown = rss_mb(worker) - before
    assert grown < 20, f"{grown:.1f} MB for 20 downloads of one file"
