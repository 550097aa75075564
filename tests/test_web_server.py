"""The Procfile's web command, run as a platform runs it: gunicorn with gunicorn.conf.py and $PORT."""

import io
import os
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from helpers import ROOT, free_port, web_command
from PIL import Image


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers.get_content_type(), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get_content_type(), error.read()


@pytest.mark.slow
def test_procfile_web_command_serves_pngs_with_gunicorn(generator_dir):
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "HOST": "127.0.0.1",  # loopback only in tests; on a platform PORT alone means 0.0.0.0
        "WEB_CONCURRENCY": "1",
        "GENERATOR_DIR": str(generator_dir),
    }
    server = subprocess.Popen(
        web_command(), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stdout.read().decode(errors="replace")
            try:
                status, _, body = get(f"{base}/healthz")
                break
            except OSError:  # not listening yet
                assert time.monotonic() < deadline, "gunicorn did not answer within 60 s"
                time.sleep(0.2)
        assert (status, body) == (200, b'{"status":"ok"}\n')

        status, kind, body = get(f"{base}/generate?labels=0,0,1,0,0,0,0,0,0,0&seed=42&scale=4")
        assert (status, kind) == (200, "image/png")
        assert Image.open(io.BytesIO(body)).size == (112, 112)

        status, kind, body = get(f"{base}/generate?labels=0,0,1&seed=42")
        assert (status, kind) == (400, "application/json") and b"labels" in body
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0].decode(errors="replace")
    assert "Booting worker" in output and "gthread" in output
    assert f"Listening at: http://127.0.0.1:{port}" in output
