"""Where an HTTP/1.1 request ends, decided from its bytes as they arrive, or why it is refused.

Sans-IO: RequestFramer.feed() takes everything received so far on a connection and says
"more bytes are needed" (None), where the request ends (Complete), or that it is refused (Refused,
with the status the worker answers before closing). The rule that makes the worker safe: gunicorn
parses exactly the bytes a Complete verdict delimits, unchanged, and nothing else. So the framer
accepts only what gunicorn's parser (27.0) accepts, with the same end, and refuses the rest
itself: whatever gunicorn would refuse only after the app had answered (a bad chunk line, a
forbidden trailer) is refused here first, so that every request gets exactly one answer.

Every limit is checked on every arrival and on complete requests alike, and each byte is scanned
once, so the cost is linear in the bytes whatever their chunking. The framer is stricter than
gunicorn only where it says so: its size limits, and a Transfer-Encoding other than "chunked".
"""

import re
from dataclasses import dataclass

MAX_BODY_BYTES = 16 * 1024  # the app's limit (webapp.limits re-exports it): limit + 1 is a 413
MAX_HEAD_BYTES = 32 * 1024  # the request line and header fields; the page and the API send under 2 KB
MAX_CHUNK_LINE = 1024  # a chunk's size line, extensions included
# RFC 9112 section 7.1.1: a server ought to limit the total length of the chunk extensions, which
# mean nothing to this app; scanning them is most of what a hostile chunked body costs.
MAX_EXTENSION_BYTES = 1024
MAX_CHUNKS = 1024  # gunicorn parses a chunk in about 4 us: 1,024 of them cost it 4-5 ms
# Everything from the first chunk line to the end of the trailers: 16 KB of data in chunks of 16.
MAX_CHUNKED_BYTES = 2 * MAX_BODY_BYTES
MAX_TRAILER_BYTES = 4096
MAX_TRAILER_FIELDS = 16

# RFC 9110 section 5.6.2: token = 1*tchar.
TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
TOKEN_RE = re.compile(TOKEN)
# RFC 9110 section 5.5: a field value is VCHAR, obs-text, SP and HTAB; no other control byte.
NOT_CONTROL_BYTES = bytes(b for b in range(256) if b == 9 or 32 <= b < 127 or b >= 128)
# RFC 9112 section 3: request-line = method SP request-target SP HTTP-version; gunicorn also refuses
# lower-case letters and "#" in a method, and methods outside 3-20 characters.
METHOD_RE = re.compile(rb"[!$%&'*+\-.^_`|~0-9A-Z]{3,20}")
TARGET_RE = re.compile(rb"[\x21-\x7e]+")  # RFC 9112 section 3.2: RFC 3986's printable ASCII
VERSION_RE = re.compile(rb"HTTP/([0-9])\.([0-9])")
# RFC 9112 section 7.1: chunk-size [ chunk-ext ] CRLF, with chunk-size = 1*HEXDIG and chunk-ext =
# *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ), a value being a token or a
# quoted-string (RFC 9110 section 5.6.4). So whitespace may follow the size only before a ";".
QUOTED_STRING = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
CHUNK_EXT = rb"(?:[ \t]*;[ \t]*" + TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + TOKEN + rb"|" + QUOTED_STRING + rb"))?)*"
CHUNK_LINE_RE = re.compile(rb"([0-9A-Fa-f]+)" + CHUNK_EXT + rb"\r\n")
# RFC 9110 section 6.5.1: fields that frame, route or authenticate a request never come in trailers
# (the list gunicorn refuses). Host and Content-Type may not repeat (section 5.3).
FORBIDDEN_TRAILERS = frozenset(
    {b"host", b"content-length", b"transfer-encoding", b"trailer", b"authorization", b"te"}
)
SINGLETON_FIELDS = frozenset({b"host", b"content-type"})


@dataclass(frozen=True)
class Complete:
    """The request is whole: it ends before byte `end` (pipelined bytes may follow)."""

    end: int


@dataclass(frozen=True)
class Refused:
    """The request cannot be served; the worker answers `status` itself and closes the connection."""

    status: int
    reason: str
    message: str


Verdict = Complete | Refused | None  # None: more bytes are needed


def bad_request(message: str) -> Refused:
    return Refused(400, "Bad Request", message)


def too_large(message: str) -> Refused:
    return Refused(413, "Request Entity Too Large", message)  # as the app names it (Werkzeug)


@dataclass(frozen=True)
class HeadLimits:
    """gunicorn's own limits on the head (its limit_request_* settings; 0 is no limit)."""

    request_line: int = 0
    fields: int = 0
    field_size: int = 0


def field_problem(line: bytes) -> str | None:
    """What is wrong with one field line (RFC 9112 section 5), or None; CR and LF are checked before."""
    if line[:1] in (b" ", b"\t"):
        return "obsolete line folding (RFC 9112 section 5.2)"
    name, colon, value = line.partition(b":")
    if not colon or not TOKEN_RE.fullmatch(name):
        return f"not a field line (RFC 9112 section 5.1): {line[:64]!r}"
    if value.translate(None, NOT_CONTROL_BYTES):
        return f"a control character in the value of {name.decode()}"
    return None


class RequestFramer:
    """One request's framing on one connection: feed() it the connection's bytes as they grow.

    The bytes passed must start with the request and only ever grow; the framer keeps where each
    scan stopped, so no byte is looked at twice.
    """

    def __init__(self, head_limits: HeadLimits = HeadLimits()) -> None:
        self.head_limits = head_limits
        self.scanned = 0  # bytes checked for a lone CR or LF (in the head, then in the trailers)
        self.searched = 0  # how far the search for the current line's end got
        self.line_end: int | None = None  # the request line's
        self.body_start: int | None = None
        self.version: tuple[int, int] = (1, 1)
        self.expects_continue = False
        self.content_length: int | None = None
        self.chunked = False
        self.pos = 0  # the chunked body: where the next chunk line, data or trailer section starts
        self.chunk_end: int | None = None  # where the current chunk's data ends, while it arrives
        self.chunks = 0
        self.body_bytes = 0
        self.extension_bytes = 0
        self.in_trailers = False
        self.verdict: Verdict = None

    def feed(self, data: bytes | bytearray) -> Verdict:
        """The verdict on the request at the start of `data`; once given, it never changes."""
        if self.verdict is None:
            self.verdict = self.frame(data)
        return self.verdict

    def frame(self, data: bytes | bytearray) -> Verdict:
        if self.body_start is None:
            refused = self.read_head(data)
            if refused or self.body_start is None:
                return refused
        if self.chunked:
            return self.scan_chunks(data)
        end = self.body_start + (self.content_length or 0)
        return Complete(end) if len(data) >= end else None

    # The head: RFC 9112 sections 2 to 5.

    def read_head(self, data: bytes | bytearray) -> Refused | None:
        """Sets body_start and the body's framing once the head is whole; a refusal, or None."""
        start = 2 if data[:2] == b"\r\n" else 0  # RFC 9112 section 2.2: one empty line may lead
        if self.line_end is None:
            found = data.find(b"\r\n", max(start, self.searched - 1))
            self.line_end, self.searched = (None, len(data)) if found < 0 else (found, found)
        head_end = -1
        if self.line_end is not None:
            head_end = data.find(b"\r\n\r\n", max(self.line_end, self.searched - 3))
        self.searched = len(data) if head_end < 0 else head_end
        if self.lone_cr_or_lf(data, start, len(data) if head_end < 0 else head_end):
            return bad_request("a CR or LF alone in the head (RFC 9112 section 2.2)")
        limit = self.head_limits.request_line
        if limit and (len(data) - start - 2 if self.line_end is None else self.line_end - start) > limit:
            return Refused(414, "URI Too Long", f"the request line is over {limit:,} bytes")
        if head_end < 0:
            return head_too_large() if len(data) > MAX_HEAD_BYTES else None
        if head_end + 4 > MAX_HEAD_BYTES:
            return head_too_large()
        refused = self.read_request_line(bytes(data[start : self.line_end]))
        if refused:
            return refused
        fields = bytes(data[self.line_end + 2 : head_end]).split(b"\r\n") if head_end > self.line_end else []
        refused = self.read_fields(fields)
        self.body_start = self.pos = self.searched = head_end + 4
        return refused

    def read_request_line(self, line: bytes) -> Refused | None:
        parts = line.split(b" ", 2)
        if len(parts) != 3:
            return bad_request(f"not a request line (RFC 9112 section 3): {line[:64]!r}")
        method, target, version = parts
        if not METHOD_RE.fullmatch(method):
            return bad_request(f"not a method (RFC 9110 section 9): {method[:32]!r}")
        if not TARGET_RE.fullmatch(target) or (target == b"*" and method != b"OPTIONS"):
            return bad_request(f"not a request target (RFC 9112 section 3.2): {target[:64]!r}")
        if method != b"CONNECT" and target != b"*" and not target.startswith(b"/") and b"://" not in target:
            return bad_request(f"not a request target (RFC 9112 section 3.2): {target[:64]!r}")
        match = VERSION_RE.fullmatch(version)
        if not match or match[1] != b"1":
            return Refused(400, "Bad Request", f"not an HTTP/1 version: {version[:16]!r}")
        self.version = (1, int(match[2]))
        return None

    def read_fields(self, lines: list[bytes]) -> Refused | None:
        """Content-Length, Transfer-Encoding and Expect, and every field line's syntax."""
        limits = self.head_limits
        if limits.fields and len(lines) > limits.fields:
            return head_too_large(f"more than {limits.fields} header fields")
        lengths, codings, seen = [], [], set()
        for line in lines:
            if limits.field_size and len(line) + 2 > limits.field_size:
                return head_too_large(f"a header field over {limits.field_size:,} bytes")
            problem = field_problem(line)
            if problem:
                return bad_request(problem)
            name, _, value = line.partition(b":")
            name, value = name.lower(), value.strip(b" \t")
            if name in SINGLETON_FIELDS:
                if name in seen:
                    return bad_request(f"{name.decode()} given twice (RFC 9110 section 5.3)")
                seen.add(name)
            if name == b"content-length":
                lengths.append(value)
            elif name == b"transfer-encoding":
                codings.append(value)
            elif name == b"expect":
                # RFC 9110 section 10.1.1: only 100-continue is defined, case-insensitively; an
                # HTTP/1.0 client's is ignored. Any other expectation is a 417.
                if value.lower() != b"100-continue":
                    return Refused(417, "Expectation Failed", f"cannot meet the expectation {value[:64]!r}")
                self.expects_continue = self.version >= (1, 1)
        return self.body_framing(lengths, codings)

    def body_framing(self, lengths: list[bytes], codings: list[bytes]) -> Refused | None:
        """RFC 9112 section 6.3: how the body's length is determined, or why it cannot be."""
        if codings:
            # 6.3 (3): chunked must be the final coding; 6.1: a request with Transfer-Encoding and
            # Content-Length, or chunked under HTTP/1.0, is a smuggling attempt. Only chunked alone
            # is served (gunicorn would also take compress, deflate or gzip before it).
            if len(codings) != 1 or codings[0].lower() != b"chunked":
                return Refused(501, "Not Implemented", "the only transfer coding served is chunked")
            if lengths or self.version < (1, 1):
                return bad_request("Transfer-Encoding with Content-Length, or under HTTP/1.0 (RFC 9112 6.1)")
            self.chunked = True
            return None
        if not lengths:
            return None  # 6.3 (6): a request without either has no body
        # 6.3 (5): one Content-Length of digits only (gunicorn refuses even two equal ones).
        if len(lengths) != 1 or not lengths[0].isdigit():
            return bad_request("Content-Length must be given once, as digits (RFC 9112 section 6.3)")
        self.content_length = int(lengths[0])
        if self.content_length > MAX_BODY_BYTES:
            return body_too_large()
        return None

    # The chunked body: RFC 9112 section 7.1.

    def scan_chunks(self, data: bytes | bytearray) -> Verdict:
        while not self.in_trailers:
            if self.chunk_end is None:
                line_end = data.find(b"\r\n", max(self.pos, self.searched - 1), self.pos + MAX_CHUNK_LINE + 2)
                if line_end < 0:
                    self.searched = len(data)
                    if len(data) - self.pos > MAX_CHUNK_LINE + 1:
                        return bad_request(f"a chunk line over {MAX_CHUNK_LINE:,} bytes")
                    return self.over_chunked_limit(len(data))
                line = CHUNK_LINE_RE.fullmatch(data, self.pos, line_end + 2)  # each line scanned once
                if line is None:
                    return bad_request(
                        f"not a chunk line (RFC 9112 section 7.1): {bytes(data[self.pos : line_end])[:64]!r}"
                    )
                size = int(line[1], 16)
                self.body_bytes += size
                self.extension_bytes += line_end - self.pos - len(line[1])
                if self.body_bytes > MAX_BODY_BYTES:
                    return body_too_large()
                if self.extension_bytes > MAX_EXTENSION_BYTES:
                    return bad_request(
                        f"chunk extensions over {MAX_EXTENSION_BYTES:,} bytes (RFC 9112 section 7.1.1)"
                    )
                self.pos = self.searched = line_end + 2
                if size == 0:  # the last chunk; the trailer section follows
                    self.in_trailers = True
                    self.scanned = self.pos
                    break
                self.chunks += 1
                if self.chunks > MAX_CHUNKS:
                    return too_large(f"the body comes in more than {MAX_CHUNKS:,} chunks")
                self.chunk_end = self.pos + size
            refused = self.over_chunked_limit(min(len(data), self.chunk_end + 2))
            if refused or len(data) < self.chunk_end + 2:
                return refused
            if data[self.chunk_end : self.chunk_end + 2] != b"\r\n":
                return bad_request("a chunk's data is not followed by CRLF (RFC 9112 section 7.1)")
            self.pos = self.searched = self.chunk_end + 2
            self.chunk_end = None
        return self.scan_trailers(data)

    def scan_trailers(self, data: bytes | bytearray) -> Verdict:
        """RFC 9112 section 7.1.2: field lines up to an empty line, which may come at once."""
        if data[self.pos : self.pos + 2] == b"\r\n":
            return Complete(self.pos + 2)
        end = data.find(b"\r\n\r\n", max(self.pos, self.searched - 3))
        if self.lone_cr_or_lf(data, self.pos, len(data) if end < 0 else end):
            return bad_request("a CR or LF alone in the trailers (RFC 9112 section 2.2)")
        self.searched = len(data)
        if end < 0:
            if len(data) - self.pos > MAX_TRAILER_BYTES:
                return trailers_too_large()
            return self.over_chunked_limit(len(data))
        if end + 4 - self.pos > MAX_TRAILER_BYTES:
            return trailers_too_large()
        refused = trailer_problem(bytes(data[self.pos : end]).split(b"\r\n"))
        return refused or self.over_chunked_limit(end + 4) or Complete(end + 4)

    def lone_cr_or_lf(self, data: bytes | bytearray, start: int, end: int) -> bool:
        """RFC 9112 section 2.2: every line ends with CRLF, so a CR or an LF alone is refused.

        Checks data[start:end] from where the last check stopped, by counting (in C): every CR and
        every LF must belong to a CRLF. A CR at the end of the bytes so far is judged with the next.
        """
        begin = max(start, self.scanned)
        if end == len(data) and data[end - 1 : end] == b"\r":
            end -= 1
        self.scanned = max(begin, end)
        pairs = data.count(b"\r\n", begin, end)
        return data.count(b"\r", begin, end) != pairs or data.count(b"\n", begin, end) != pairs

    def over_chunked_limit(self, received_end: int) -> Refused | None:
        if received_end - self.body_start > MAX_CHUNKED_BYTES:
            return too_large(f"the chunked body is over {MAX_CHUNKED_BYTES:,} bytes with its framing")
        return None


def trailer_problem(lines: list[bytes]) -> Refused | None:
    """Refuses what gunicorn would refuse only after the app ran (RFC 9110 section 6.5)."""
    if len(lines) > MAX_TRAILER_FIELDS:
        return trailers_too_large()
    seen = set()
    for line in lines:
        problem = field_problem(line)
        if problem:
            return bad_request(f"in the trailers: {problem}")
        name = line.partition(b":")[0].lower()
        if name in FORBIDDEN_TRAILERS:
            return bad_request(f"{name.decode()} is not allowed in trailers (RFC 9110 section 6.5.1)")
        if name in SINGLETON_FIELDS and name in seen:
            return bad_request(f"{name.decode()} given twice in the trailers (RFC 9110 section 5.3)")
        seen.add(name)
    return None


def head_too_large(why: str = f"the head is over {MAX_HEAD_BYTES:,} bytes") -> Refused:
    return Refused(431, "Request Header Fields Too Large", why)


def trailers_too_large() -> Refused:
    why = f"the trailers are over {MAX_TRAILER_BYTES:,} bytes or {MAX_TRAILER_FIELDS} fields"
    return Refused(431, "Request Header Fields Too Large", why)


def body_too_large() -> Refused:
    return too_large(f"the body is over the limit of {MAX_BODY_BYTES:,} bytes")
