"""The Procfile's web command, run as a platform runs it: gunicorn with gunicorn.conf.py and $PORT."""

import io
import random

import pytest
from helpers import get, procfile_server
from PIL import Image


@pytest.mark.slow
def test_procfile_web_command_serves_pngs_with_gunicorn(generator_dir):
    with procfile_server(WEB_CONCURRENCY="1", GENERATOR_DIR=str(generator_dir)) as server:
        base, log = server.base, server.log
        status, _, body = get(f"{base}/healthz")
        assert (status, body) == (200, b'{"status":"ok"}\n')

        status, kind, body = get(f"{base}/generate?labels=0,0,1,0,0,0,0,0,0,0&seed=42&scale=4")
        assert (status, kind) == (200, "image/png")
        assert Image.open(io.BytesIO(body)).size == (112, 112)

        status, kind, body = get(f"{base}/generate?labels=0,0,1&seed=42")
        assert (status, kind) == (400, "application/json") and b"labels" in body
    port = base.rsplit(":", 1)[1]
    assert "Booting worker" in log[0] and "RequestBufferingWorker" in log[0]
    assert f"Listening at: http://127.0.0.1:{port}" in log[0]


@pytest.mark.slow
def test_shipped_pictures_are_byte_identical_across_workers_and_restarts(make_app):
    """Every answer of two gunicorn workers equals this process's own picture of the same request."""
    rng = random.Random(0)
    queries = [
        "labels=" + ",".join(f"{rng.random():.3f}" for _ in range(10)) + f"&seed={rng.randrange(2**32)}"
        for _ in range(20)
    ]
    here = make_app().test_client()
    expected = {query: here.get(f"/generate?{query}").data for query in queries}
    with procfile_server(WEB_CONCURRENCY="2") as server:
        base = server.base
        for query in queries * 3:  # a new connection each time, so both workers answer
            status, kind, body = get(f"{base}/generate?{query}")
            assert (status, kind) == (200, "image/png")
            assert body == expected[query], query
