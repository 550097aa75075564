"""Where the worker's event loop decides that a request has arrived (webapp.worker.RequestFramer)."""

import pytest

from webapp.limits import MAX_BODY_BYTES
from webapp.worker import MAX_HEAD_BYTES, Framing, RequestFramer

POST = b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


def chunked(*pieces: bytes, trailer: bytes = b"") -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n" + trailer + b"\r\n"


def status(data: bytes) -> Framing:
    return RequestFramer().status(bytearray(data))


COMPLETE = {
    "a GET": b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "a Content-Length body": POST + b"Content-Length: 2\r\n\r\n{}",
    "an empty Content-Length body": POST + b"Content-Length: 0\r\n\r\n",
    "a chunked body": POST + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(b"{", b"}"),
    "a chunked body with an extension": POST + b"Transfer-Encoding: chunked\r\n\r\n1;x=y\r\n{\r\n0\r\n\r\n",
    "a chunked body with trailers": POST
    + b"Transfer-Encoding: chunked\r\n\r\n"
    + chunked(b"{}", trailer=b"X-T: 1\r\n"),
}


@pytest.mark.parametrize("data", COMPLETE.values(), ids=COMPLETE)
def test_a_request_is_complete_only_once_its_last_byte_arrived(data):
    assert status(data) is Framing.COMPLETE
    for end in range(len(data)):
        assert status(data[:end]) is Framing.INCOMPLETE, data[:end]


@pytest.mark.parametrize("data", COMPLETE.values(), ids=COMPLETE)
def test_bytes_arriving_one_at_a_time_give_the_verdicts_of_a_fresh_look(data):
    """The chunk scan resumes where it stopped: it must agree with a scan from the start."""
    framer, buffer = RequestFramer(), bytearray()
    for byte in data:
        buffer.append(byte)
        assert framer.status(buffer) is status(bytes(buffer))


def test_pipelined_bytes_after_a_request_do_not_change_its_verdict():
    assert status(COMPLETE["a Content-Length body"] + b"GET / HTTP/1.1\r\n") is Framing.COMPLETE


SERVE_NOW = {
    "a Content-Length over the limit": POST + b"Content-Length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1),
    "two Content-Lengths": POST + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n",
    "a Content-Length that is not a number": POST + b"Content-Length: -1\r\n\r\n",
    "chunked and a Content-Length": POST + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
    "a coding other than chunked": POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n",
    "a chunk size that is not hex": POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
    "a chunk size with 0x": POST + b"Transfer-Encoding: chunked\r\n\r\n0x2c\r\n",
    "a chunk without its CRLF": POST + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc0\r\n",
    "a chunk size line too long": POST + b"Transfer-Encoding: chunked\r\n\r\n" + b"1;" + b"x" * 2000,
    "chunks over the limit": POST
    + b"Transfer-Encoding: chunked\r\n\r\n"
    + b"%x\r\n" % (MAX_BODY_BYTES + 10)
    + b" " * (MAX_BODY_BYTES + 1),
}


@pytest.mark.parametrize("data", SERVE_NOW.values(), ids=SERVE_NOW)
def test_a_request_more_bytes_would_not_mend_is_served_at_once(data):
    """gunicorn or the app answers it (400, 413, 501), and the connection closes after."""
    assert status(data) is Framing.SERVE_NOW


def test_a_chunked_body_over_the_limit_waits_until_it_is_over_the_limit():
    """The app's 413 needs a byte past the limit to read; a declared size alone is not enough."""
    head = POST + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % (MAX_BODY_BYTES + 10)
    assert status(head + b" " * MAX_BODY_BYTES) is Framing.INCOMPLETE
    assert status(head + b" " * (MAX_BODY_BYTES + 1)) is Framing.SERVE_NOW


def test_headers_past_the_limit_are_refused():
    assert status(b"GET / HTTP/1.1\r\nX: " + b"x" * MAX_HEAD_BYTES) is Framing.HEAD_TOO_LARGE
    assert status(b"GET / HTTP/1.1\r\nX: " + b"x" * MAX_HEAD_BYTES + b"\r\n\r\n") is Framing.HEAD_TOO_LARGE
