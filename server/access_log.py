"""gunicorn's logger, its access atoms built from the request fields its default format reads only."""

import logging
from types import SimpleNamespace

from gunicorn.glogging import Logger

logging.logThreads = False
logging.logMultiprocessing = False

FIELDS = (
    "REMOTE_ADDR",
    "REQUEST_METHOD",
    "RAW_URI",
    "SERVER_PROTOCOL",
    "PATH_INFO",
    "QUERY_STRING",
    "HTTP_REFERER",
    "HTTP_USER_AGENT",
    "HTTP_AUTHORIZATION",
)


class LeanAccessLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        fields = {name: environ[name] for name in FIELDS if name in environ}
        answer = SimpleNamespace(status=resp.status, sent=getattr(resp, "sent", None), headers=())
        return super().atoms(answer, SimpleNamespace(headers=()), fields, request_time)
