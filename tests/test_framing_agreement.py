"""The framer against two reference parsers: gunicorn's (which serves what the framer lets through)
and h11's (the reference sans-IO HTTP/1.1 parser), on generated requests, valid and mutated.

Each request is followed by a second one, as on a kept-alive connection, so that where the first
ends is visible. The framer must agree with gunicorn exactly: the same end, or both refuse, save
for the framer's own limits and transfer codings (which it refuses and gunicorn would serve). Where
the framer and h11 both take a request, they end it at the same byte; each refuses a few requests
the other takes (h11 takes whitespace after a chunk size, two equal Content-Lengths and lower-case
methods, and refuses an HTTP/1.1 request without Host). Examples are derandomized: the same inputs
every run; each property (200 requests, each parsed three times) is marked slow.
"""

import os
import runpy
from unittest import mock

import h11
import pytest
from gunicorn.config import Config
from gunicorn.http.errors import NoMoreData
from gunicorn.http.parser import RequestParser
from helpers import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.framing import Complete, Refused, RequestFramer
from server.worker import head_limits, pieces

NEXT_REQUEST = b"GET /next HTTP/1.1\r\nHost: y\r\n\r\n"
ONLY_THE_FRAMER_REFUSES = {413, 501}  # its body limits, and codings other than chunked
AGREEMENT = settings(
    max_examples=200,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def gunicorn_config() -> Config:
    """gunicorn's settings as gunicorn.conf.py makes them (its limits and its parser)."""
    cfg = Config()
    with mock.patch.dict(os.environ):  # the file also sets BLAS defaults for the server's process
        conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    for name, value in conf.items():
        if name in cfg.settings:
            cfg.set(name, value)
    return cfg


CONFIG = gunicorn_config()


def framer_says(data: bytes) -> int | str | None:
    verdict = RequestFramer(head_limits(CONFIG)).feed(bytearray(data))
    if isinstance(verdict, Refused):
        return f"refused {verdict.status}"
    return verdict.end if isinstance(verdict, Complete) else None


def gunicorn_says(data: bytes) -> int | str:
    """Where gunicorn's parser ends the first request, having read its whole body and trailers."""
    parser = RequestParser(CONFIG, [data], ("127.0.0.1", 1))
    try:
        request = next(parser)
        while request.body.read(8192):
            pass
    except NoMoreData:
        return "incomplete"
    except Exception as error:  # every refusal of gunicorn's parser is an exception
        return f"refused: {type(error).__name__}"
    rest = b""
    while piece := parser.unreader.read():
        rest += piece
    return len(data) - len(rest)


def h11_says(data: bytes) -> int | str:
    connection = h11.Connection(h11.SERVER)
    connection.receive_data(data)
    try:
        while (event := connection.next_event()) is not h11.NEED_DATA:
            if isinstance(event, h11.EndOfMessage):
                return len(data) - len(connection.trailing_data[0])
    except h11.RemoteProtocolError as error:
        return f"refused: {error}"
    return "incomplete"


def assert_agreement(request: bytes) -> None:
    data = request + NEXT_REQUEST
    framer, gunicorn = framer_says(data), gunicorn_says(data)
    if isinstance(framer, int):
        assert gunicorn == framer, (framer, gunicorn)
        h11_end = h11_says(data)
        assert h11_end == framer or not isinstance(h11_end, int), (framer, h11_end)
    elif isinstance(framer, str):
        only_ours = int(framer.split()[1]) in ONLY_THE_FRAMER_REFUSES
        assert only_ours or str(gunicorn).startswith("refused"), (framer, gunicorn)
    else:  # the framer waits only for a request that has not ended where gunicorn looks
        assert not isinstance(gunicorn, int) or gunicorn > len(request), (framer, gunicorn)


# Requests: a request line, fields (framing ones often), a body framed by them. Each piece is one
# of its valid forms, or (in broken requests) sometimes one of its invalid ones.
PIECES = {
    "version": ([b"HTTP/1.1", b"HTTP/1.0"], [b"HTTP/1.2", b"HTTP/2.0", b"http/1.1", b"HTTP/1.1 "]),
    "method": ([b"POST", b"GET", b"PUT"], [b"get", b"P", b"PO ST"]),
    "name": ([b"X-A", b"Accept", b"X_Under", b"Content-Type"], [b"Bad Name", b"", b"X-A ", b"X\x80"]),
    "value": ([b"1", b" spaced ", b"a\tb", b"", b"caf\xe9", b"100-continue"], [b"\x01", b"a\x7fb"]),
    "Content-Length": ([b"Content-Length", b"content-length"], [b"Content-Length ", b"Content_Length"]),
    "length": ([b"0", b"5", b"05", b" 5 ", b"99999"], [b"5,5", b"-1", b"+5", b"0x5", b"", b"1e2"]),
    "Transfer-Encoding": ([b"Transfer-Encoding", b"TRANSFER-ENCODING"], [b"Transfer_Encoding"]),
    "coding": (
        [b"chunked", b"Chunked", b" chunked "],
        [b"chunked, chunked", b"gzip, chunked", b"identity", b"chunked;q=1", b"", b"chunked, gzip"],
    ),
    "expectation": ([b"100-continue", b"100-CONTINUE"], [b"100-continue, x", b"x"]),
    "size line": (
        [b"%x", b"%X", b"00%x", b"%x;e", b"%x ;e=v", b'%x;e="q s"', b"%x\t; e"],
        [b" %x", b"%x ", b"%x;", b"0x%x", b"%x;e=", b'%x;e="q'],
    ),
    "chunk end": ([b"\r\n"], [b"\n", b"", b"xx", b"\r"]),
    "last chunk": ([b"0", b"000", b"0;e"], [b"0 ", b" 0", b"0;"]),
    "trailer": (
        [b"X-T: 1", b"X-U:2", b"Content-Type: text/plain"],
        [b"Content-Length: 5", b"Transfer-Encoding: chunked", b"Host: z", b"X-T:\x01", b"X-T: 1\n", b" fold"],
    ),
}


CHUNKED_PIECES = {"Transfer-Encoding", "coding", "size line", "chunk end", "last chunk", "trailer"}


@st.composite
def requests(draw, broken: bool = False) -> bytes:
    """A request framed by a Content-Length, chunked or without a body; when broken, one kind of
    piece is usually one of its invalid forms, and other framing fields may follow."""
    broken_piece = draw(st.sampled_from(list(PIECES))) if broken else None

    def piece(name: str) -> st.SearchStrategy[bytes]:
        valid, invalid = PIECES[name]
        return st.sampled_from(invalid + valid if name == broken_piece else valid)

    other_fields = [
        st.tuples(piece("name"), piece("value")),
        st.tuples(st.just(b"Expect"), piece("expectation")),
    ]
    if broken:
        other_fields += [
            st.tuples(piece("Content-Length"), piece("length")),
            st.tuples(piece("Transfer-Encoding"), piece("coding")),
        ]
    if broken_piece in CHUNKED_PIECES:
        framing = "chunked"
    elif broken_piece in ("Content-Length", "length"):
        framing = "length"
    else:
        framing = draw(st.sampled_from(["chunked", "length", "none"]))
    content = draw(st.binary(max_size=8))
    fields = [(b"Host", b"x")]
    if framing == "length":
        fields.append((draw(piece("Content-Length")), b"%d" % len(content)))
    elif framing == "chunked":
        fields.append((draw(piece("Transfer-Encoding")), draw(piece("coding"))))
    fields += draw(st.lists(st.one_of(*other_fields), max_size=2))
    head = b"%s /generate %s\r\n" % (draw(piece("method")), draw(piece("version")))
    head += b"".join(b"%s: %s\r\n" % field for field in fields) + b"\r\n"
    if framing != "chunked":
        return head + content
    body = b""
    for chunk in draw(st.lists(st.binary(min_size=1, max_size=12), max_size=4)):
        size_line = (
            draw(piece("size line")).replace(b"%x", b"%x" % len(chunk)).replace(b"%X", b"%X" % len(chunk))
        )
        body += size_line + b"\r\n" + chunk + draw(piece("chunk end"))
    body += draw(piece("last chunk")) + b"\r\n"
    trailers = draw(st.lists(piece("trailer"), min_size=broken_piece == "trailer", max_size=2))
    body += b"".join(line + b"\r\n" for line in trailers)
    return head + body + b"\r\n"


mutations = st.tuples(
    st.integers(0, 10_000), st.sampled_from([b"", b" ", b"\t", b"\r", b"\n", b":", b";", b"0"])
)


CHUNKED = b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
ANSWERED_TWICE_BEFORE = {  # the framer took these, and gunicorn refused them after the app's answer
    "a space after the size": CHUNKED + b"5 \r\nhello\r\n0\r\n\r\n",
    "a space before the size": CHUNKED + b" 5\r\nhello\r\n0\r\n\r\n",
    "a space after the last size": CHUNKED + b"5\r\nhello\r\n0 \r\n\r\n",
    "an empty extension": CHUNKED + b"5;\r\nhello\r\n0\r\n\r\n",
    "Content-Length in the trailers": CHUNKED + b"0\r\nContent-Length: 5\r\n\r\n",
    "Transfer-Encoding in the trailers": CHUNKED + b"0\r\nTransfer-Encoding: chunked\r\n\r\n",
    "a bare LF in the trailers": CHUNKED + b"0\r\nX-T: 1\n\r\n",
}


@pytest.mark.parametrize("request_bytes", ANSWERED_TWICE_BEFORE.values(), ids=ANSWERED_TWICE_BEFORE)
def test_what_gunicorn_refuses_after_the_app_the_framer_refuses_first(request_bytes):
    assert framer_says(request_bytes + NEXT_REQUEST).startswith("refused 400")
    assert_agreement(request_bytes)


@pytest.mark.slow
@AGREEMENT
@given(requests())
def test_the_framer_ends_a_request_where_gunicorn_and_h11_do(request):
    assert_agreement(request)


@pytest.mark.slow
@AGREEMENT
@given(requests(broken=True))
def test_a_request_with_broken_pieces_is_refused_or_ended_where_gunicorn_ends_it(request):
    assert_agreement(request)


@pytest.mark.slow
@AGREEMENT
@given(requests(), st.lists(mutations, min_size=1, max_size=3))
def test_a_mutated_request_is_refused_or_ended_where_gunicorn_ends_it(request, changes):
    """Bytes replaced or removed at random: whitespace, CR, LF, colons, semicolons, zeros."""
    for position, replacement in changes:
        position %= len(request)
        request = request[:position] + replacement + request[position + 1 :]
    assert_agreement(request)


@pytest.mark.slow
@AGREEMENT
@given(requests(broken=True))
def test_a_request_split_at_every_byte_gets_the_verdicts_of_a_fresh_look(request):
    """Fed one byte at a time, the framer's scans resume where they stopped: each verdict must be the
    one a new framer gives the same bytes, and the first one given is the whole request's."""
    data = request + NEXT_REQUEST
    framer, buffer = RequestFramer(head_limits(CONFIG)), bytearray()
    for byte in data:
        buffer.append(byte)
        verdict = framer.feed(buffer)
        assert verdict == RequestFramer(head_limits(CONFIG)).feed(bytearray(buffer)), bytes(buffer)
        if verdict is not None:
            assert verdict == RequestFramer(head_limits(CONFIG)).feed(bytearray(data))
            return
    pytest.fail(f"no verdict on {request!r}")


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"1\r\nx\r\n" * 1024
        + b"0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4000\r\n"
        + b"y" * 16384
        + b"\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 16384\r\n\r\n" + b"z" * 16384,
    ],
    ids=["1,024 one-byte chunks", "one chunk at the limit", "a Content-Length body at the limit"],
)
def test_gunicorn_reads_the_worker_pieces_to_the_framers_end(request_bytes):
    """The worker hands gunicorn a request in pieces; their ends must be the framer's."""
    end = framer_says(request_bytes)
    assert end == len(request_bytes)
    parser = RequestParser(
        CONFIG, pieces(request_bytes, request_bytes.index(b"\r\n\r\n") + 4), ("127.0.0.1", 1)
    )
    request = next(parser)
    assert len(request.body.read()) in (1024, 16384)
    assert parser.unreader.read() == b""
