"""A WSGI app for the worker's tests: /stuck never ends (as a wedged BLAS call would), /large is 8 MB."""

import threading

LARGE = 8 * 1024 * 1024  # far more than loopback's socket buffers hold


def app(environ, start_response):
    if environ["PATH_INFO"] == "/stuck":
        threading.Event().wait()  # never set
    body = b"x" * LARGE if environ["PATH_INFO"] == "/large" else b'{"status":"ok"}\n'
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
