"""Where the worker's event loop decides that a request has arrived, or refuses it (server.framing)."""

import time

import pytest

from server.framing import (
    MAX_BODY_BYTES,
    MAX_CHUNKED_BYTES,
    MAX_CHUNKS,
    MAX_HEAD_BYTES,
    MAX_TRAILER_BYTES,
    Complete,
    HeadLimits,
    Refused,
    RequestFramer,
)

POST = b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n\r\n"


def chunked(*pieces: bytes, trailer: bytes = b"") -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n" + trailer + b"\r\n"


NO_HEAD_LIMITS = HeadLimits()


def verdict(data: bytes, limits: HeadLimits = NO_HEAD_LIMITS):
    return RequestFramer(limits).feed(bytearray(data))


COMPLETE = {
    "a GET": b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "a GET after an empty line": b"\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "an HTTP/1.0 GET without fields": b"GET / HTTP/1.0\r\n\r\n",
    "a Content-Length body": POST + b"Content-Length: 2\r\n\r\n{}",
    "an empty Content-Length body": POST + b"Content-Length: 0\r\n\r\n",
    "a body at the limit": POST + b"Content-Length: %d\r\n\r\n" % MAX_BODY_BYTES + b" " * MAX_BODY_BYTES,
    "a chunked body": CHUNKED + chunked(b"{", b"}"),
    "a chunk size in upper case with leading zeros": CHUNKED + b"000A\r\n0123456789\r\n0\r\n\r\n",
    "a chunk extension": CHUNKED + b"1;x=y\r\n{\r\n0\r\n\r\n",
    "a chunk extension after whitespace": CHUNKED + b'1 ; x = "a b"\r\n{\r\n0;last\r\n\r\n',
    "trailers": CHUNKED + chunked(b"{}", trailer=b"X-T: 1\r\nX-U: 2\r\n"),
    "Expect: 100-continue": POST + b"Expect: 100-Continue\r\nContent-Length: 2\r\n\r\n{}",
}


@pytest.mark.parametrize("data", COMPLETE.values(), ids=COMPLETE)
def test_a_request_is_complete_only_once_its_last_byte_arrived(data):
    assert verdict(data) == Complete(len(data))
    for end in range(len(data)):
        assert verdict(data[:end]) is None, data[:end]


@pytest.mark.parametrize("data", COMPLETE.values(), ids=COMPLETE)
def test_bytes_arriving_one_at_a_time_give_the_verdicts_of_a_fresh_look(data):
    """The scans resume where they stopped: they must agree with a scan from the start."""
    framer, buffer = RequestFramer(), bytearray()
    for byte in data:
        buffer.append(byte)
        assert framer.feed(buffer) == verdict(bytes(buffer))


def test_pipelined_bytes_after_a_request_do_not_change_its_verdict():
    data = COMPLETE["a chunked body"]
    assert verdict(data + b"GET / HTTP/1.1\r\n") == Complete(len(data))


LONG_SIZE_CHUNK = b"0" * 1000 + b"1\r\nx\r\n"  # leading zeros: not an extension
REFUSED = {
    # The cases: gunicorn refused these only after the app had answered.
    "a space after the chunk size": (400, CHUNKED + b"5 \r\nhello\r\n0\r\n\r\n"),
    "a space before the chunk size": (400, CHUNKED + b" 5\r\nhello\r\n0\r\n\r\n"),
    "a space after the last chunk's size": (400, CHUNKED + b"5\r\nhello\r\n0 \r\n\r\n"),
    "an empty chunk extension": (400, CHUNKED + b"5;\r\nhello\r\n0\r\n\r\n"),
    "Content-Length in the trailers": (400, CHUNKED + chunked(b"{}", trailer=b"Content-Length: 2\r\n")),
    "Transfer-Encoding in the trailers": (400, CHUNKED + chunked(b"{}", trailer=b"Transfer-Encoding: x\r\n")),
    "a bare LF in the trailers": (400, CHUNKED + chunked(b"{}", trailer=b"X-T: 1\n")),
    "a folded trailer": (400, CHUNKED + chunked(b"{}", trailer=b"X-T: 1\r\n 2\r\n")),
    # Framing that gunicorn refuses too.
    "a chunk size that is not hex": (400, CHUNKED + b"zz\r\n"),
    "a chunk size with 0x": (400, CHUNKED + b"0x2c\r\n"),
    "a CR in a chunk extension": (400, CHUNKED + b"1;a\rb\r\nx\r\n0\r\n\r\n"),
    "a chunk without its CRLF": (400, CHUNKED + b"3\r\nabc0\r\n"),
    "two Content-Lengths, even equal": (400, POST + b"Content-Length: 1\r\nContent-Length: 1\r\n\r\n"),
    "a Content-Length that is not digits": (400, POST + b"Content-Length: +1\r\n\r\n"),
    "chunked and a Content-Length": (400, POST + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
    "chunked under HTTP/1.0": (400, b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
    "chunked twice": (501, POST + b"Transfer-Encoding: chunked, chunked\r\n\r\n"),
    "a coding other than chunked": (501, POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n"),
    "a space before a field's colon": (400, POST + b"Content-Length : 2\r\n\r\n{}"),
    "a folded field": (400, POST + b"X-A: 1\r\n 2\r\n\r\n"),
    "a bare LF in the head": (400, b"GET / HTTP/1.1\r\nHost: x\n\r\n"),
    "a bare CR in the head": (400, b"GET / HTTP/1.1\r\nHost: x\ry\r\n\r\n"),
    "a bare LF before the head ends": (400, b"GET / HTTP/1.1\nHost: x"),
    "a bare LF before the trailers end": (400, CHUNKED + b"0\r\nX-T: 1\nX-U"),
    "two Hosts": (400, b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"),
    "HTTP/2.0 in the request line": (400, b"GET / HTTP/2.0\r\n\r\n"),
    "a lower-case method": (400, b"get / HTTP/1.1\r\n\r\n"),
    "another expectation": (417, POST + b"Expect: 100-continue, x\r\nContent-Length: 2\r\n\r\n"),
    "another expectation under HTTP/1.0": (417, b"GET / HTTP/1.0\r\nExpect: x\r\n\r\n"),
    # Limits: each refused as soon as it is passed, complete or not.
    "a Content-Length one over the limit": (413, POST + b"Content-Length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1)),
    "chunks one byte over the limit": (413, CHUNKED + b"%x\r\n" % (MAX_BODY_BYTES + 1)),
    "too many chunks": (413, CHUNKED + b"1\r\nx\r\n" * (MAX_CHUNKS + 1)),
    "long chunk lines": (413, CHUNKED + LONG_SIZE_CHUNK * (MAX_CHUNKED_BYTES // len(LONG_SIZE_CHUNK) + 1)),
    "long extensions in all": (400, CHUNKED + (b"1;" + b"e" * 600 + b"\r\nx\r\n") * 2),
    "a chunk line too long": (400, CHUNKED + b"1;" + b"x" * 2000),
    "trailers too long": (431, CHUNKED + b"0\r\n" + b"X-T: 1\r\n" * (MAX_TRAILER_BYTES // 8 + 1)),
    "headers too long": (431, b"GET / HTTP/1.1\r\nX: " + b"x" * MAX_HEAD_BYTES),
}


@pytest.mark.parametrize(("status", "data"), REFUSED.values(), ids=REFUSED)
def test_a_request_the_app_must_not_see_is_refused_by_the_framer(status, data):
    """The worker answers it itself (JSON) and closes: neither gunicorn nor the app sees it."""
    refused = verdict(data)
    assert isinstance(refused, Refused) and refused.status == status, refused


def test_a_complete_request_over_a_limit_is_refused_too():
    data = CHUNKED + b"1\r\nx\r\n" * (MAX_CHUNKS + 1) + b"0\r\n\r\n"
    assert verdict(data).status == 413


def test_gunicorns_head_limits_are_the_framers():
    limits = HeadLimits(request_line=20, fields=2, field_size=20)
    assert verdict(b"GET /" + b"x" * 30 + b" HTTP/1.1\r\n\r\n", limits).status == 414
    assert verdict(b"GET /" + b"x" * 30, limits).status == 414  # before the line ends
    assert verdict(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", limits).status == 431
    assert verdict(b"GET / HTTP/1.1\r\nA: " + b"1" * 20 + b"\r\n\r\n", limits).status == 431


def test_100_continue_is_expected_only_from_http_1_1():
    for version, expected in [(b"1.1", True), (b"1.0", False)]:
        framer = RequestFramer()
        head = b"POST / HTTP/%s\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n" % version
        assert framer.feed(head) is None
        assert framer.expects_continue is expected
    framer = RequestFramer()
    framer.feed(POST + b"X-Note: 100-continue\r\nContent-Length: 2\r\n\r\n")
    assert not framer.expects_continue


def test_one_byte_chunks_cost_the_framer_linear_time():
    """192 KB of one-byte chunks: refused once past a limit (on chunks, or on extensions), in a few ms."""
    for chunk in [b"1;a\r\nx\r\n", b"1\r\nx\r\n"]:
        data = bytearray(CHUNKED + chunk * (192_000 // len(chunk)) + b"0\r\n\r\n")
        began = time.process_time()
        assert isinstance(verdict(data), Refused)
        assert time.process_time() - began < 0.05
