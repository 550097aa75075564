"""The Procfile's web command, run as a platform runs it: gunicorn with gunicorn.conf.py and $PORT."""

import io
import os
import random
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager

import pytest
from helpers import ROOT, free_port, web_command
from PIL import Image

from webapp import create_app


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers.get_content_type(), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get_content_type(), error.read()


@contextmanager
def procfile_server(**settings: str):
    """The Procfile's command on a free loopback port with these environment settings: (base URL, log)."""
    port = free_port()
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", **settings}  # loopback only in tests
    server = subprocess.Popen(
        web_command(), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    log = []
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stdout.read().decode(errors="replace")
            try:
                get(f"{base}/healthz")
                break
            except OSError:  # not listening yet
                assert time.monotonic() < deadline, "gunicorn did not answer within 60 s"
                time.sleep(0.2)
        yield base, log
    finally:
        server.terminate()
        log.append(server.communicate(timeout=30)[0].decode(errors="replace"))


@pytest.mark.slow
def test_procfile_web_command_serves_pngs_with_gunicorn(generator_dir):
    with procfile_server(WEB_CONCURRENCY="1", GENERATOR_DIR=str(generator_dir)) as (base, log):
        status, _, body = get(f"{base}/healthz")
        assert (status, body) == (200, b'{"status":"ok"}\n')

        status, kind, body = get(f"{base}/generate?labels=0,0,1,0,0,0,0,0,0,0&seed=42&scale=4")
        assert (status, kind) == (200, "image/png")
        assert Image.open(io.BytesIO(body)).size == (112, 112)

        status, kind, body = get(f"{base}/generate?labels=0,0,1&seed=42")
        assert (status, kind) == (400, "application/json") and b"labels" in body
    port = base.rsplit(":", 1)[1]
    assert "Booting worker" in log[0] and "gthread" in log[0]
    assert f"Listening at: http://127.0.0.1:{port}" in log[0]


@pytest.mark.slow
def test_shipped_pictures_are_byte_identical_across_workers_and_restarts():
    """Every answer of two gunicorn workers equals this process's own picture of the same request."""
    rng = random.Random(0)
    queries = [
        "labels=" + ",".join(f"{rng.random():.3f}" for _ in range(10)) + f"&seed={rng.randrange(2**32)}"
        for _ in range(20)
    ]
    here = create_app({"TESTING": True}).test_client()
    expected = {query: here.get(f"/generate?{query}").data for query in queries}
    with procfile_server(WEB_CONCURRENCY="2") as (base, _):
        for query in queries * 3:  # a new connection each time, so both workers answer
            status, kind, body = get(f"{base}/generate?{query}")
            assert (status, kind) == (200, "image/png")
            assert body == expected[query], query
