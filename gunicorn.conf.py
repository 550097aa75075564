"""gunicorn settings for `gunicorn app:app` (the Procfile's web command).

PORT and WEB_CONCURRENCY come from the platform (Heroku sets both); HOST, GUNICORN_THREADS,
GUNICORN_TIMEOUT and GUNICORN_REQUEST_TIMEOUT (read by server/worker.py) are ours. Like gunicorn
itself, listen on every interface when the platform gives a PORT, else on loopback only.
"""

import os

port = os.environ.get("PORT", "8000")
host = os.environ.get("HOST", "0.0.0.0" if "PORT" in os.environ else "127.0.0.1")
bind = [f"{host}:{port}"]

# Each worker process holds its own copy of Chainer, NumPy and the generator (about 100 MB):
# two fit a 512 MB dyno. A request is CPU work from start to end, so one thread per worker: more
# threads add no throughput on the same cores, only waits for the GIL (measured under wrk on 2
# cores: p99 14 ms with one thread, 24 ms with four; docs/performance.md). The worker is gthread's,
# with its event loop reading each whole request before it is served (server/worker.py; with one
# thread, by the loop itself), so that no client's pace holds a thread: the app can face the
# internet without a buffering proxy.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "server.worker.RequestBufferingWorker"
threads = int(os.environ.get("GUNICORN_THREADS", "1"))

# One BLAS thread per request thread: workers x threads already use the cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

# app.py caps every request near 100 ms of CPU, so a request still running after 20 s is stuck:
# the worker stops its heartbeat and gunicorn kills and replaces it before Heroku's router gives
# up (30 s). Idle keep-alive connections wait in the worker's event loop, costing no thread: they
# stay open longer than Heroku's router keeps its own (90 s), so that the router never reuses a
# connection the worker is closing.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "20"))
graceful_timeout = 10
keepalive = 100
# Far above what the page and the API send (a GET /generate URL is under 300 bytes). Past them
# gunicorn itself answers 414 or 431 (its HTML pages: the app never sees the request); request
# bodies are capped by Flask's MAX_CONTENT_LENGTH (a JSON 413).
limit_request_line = 2048
limit_request_fields = 50
limit_request_field_size = 8190
# The parser the worker's framer was checked against (server/worker.py refuses another): gunicorn's
# C parser, gunicorn_h1c, would be taken whenever it is installed, and it disagrees with the framer
# (it refuses an HTTP/1.2 request that the framer passes on).
http_parser = "python"
# Never Flask's debug mode behind gunicorn, whatever the environment says.
raw_env = ["FLASK_DEBUG=0"]

accesslog = "-"
errorlog = "-"
# The master loads the app (and checks the weights) once before forking: damaged weights end
# gunicorn at once with the app's one line and exit code 4 (workers failing together can race in
# gunicorn's shutdown and end it with a traceback), and the workers share the generator's memory.
# Safe across the fork: BLAS runs one thread (above), so there is no thread pool to copy.
preload_app = True
# gunicorn 25.1+ opens a control socket at one shared path ($HOME/.gunicorn/gunicorn.ctl): two
# servers on one machine (make run beside the tests) would fight over it, and nothing here uses it.
control_socket_disable = True
