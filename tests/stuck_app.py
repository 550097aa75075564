"""A WSGI app whose /stuck request never ends, as a wedged BLAS call would: for the worker's watchdog test."""

import threading


def app(environ, start_response):
    if environ["PATH_INFO"] == "/stuck":
        threading.Event().wait()  # never set
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b'{"status":"ok"}\n']
