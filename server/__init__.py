"""The HTTP server around the app: gunicorn's threaded worker, made to read each whole request first.

framing.py says where a request ends, or that it is refused, from its bytes alone (no I/O);
worker.py is the gunicorn worker built on it; answers.py the answers it writes itself. Nothing
here imports Flask, so the worker and its rules load and test on their own.
"""
