"""gunicorn's threaded worker, made safe to face clients directly: threads never wait on a socket.

gunicorn's gthread worker hands a new connection to a thread, which then blocks reading the request:
one client that sends half its headers, or a body that never ends, holds that thread for as long as
it likes. Here the worker's event loop reads each request first, without blocking, and gives a
thread only a request that has fully arrived (or one that cannot be served, which the thread
answers at once). gunicorn still parses the request and runs the app, from the bytes read.

A request must arrive, headers and body, within REQUEST_TIMEOUT_S of its first byte (or of the
connection's opening): past that the connection gets a 408 and is closed. The event loop also
sends the answers, so a client that does not read its answer holds no thread either; it is closed
when it takes none of its answer for REQUEST_TIMEOUT_S. Connections beyond the
worker's capacity (its descriptors, worker_connections) push out the oldest idle one, so idle
sockets cannot lock new clients out. A request that runs longer than gunicorn's `timeout` stops the
worker's heartbeat, so that gunicorn's arbiter kills the worker as it would a stuck sync worker.
"""

import enum
import errno
import json
import os
import re
import resource
import selectors
import socket
import time
from collections import deque
from functools import partial
from itertools import islice

from gunicorn.errors import ConfigError
from gunicorn.http.parser import RequestParser
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

from webapp.errors import SECURITY_HEADERS
from webapp.limits import MAX_BODY_BYTES

REQUEST_TIMEOUT_S = float(os.environ.get("GUNICORN_REQUEST_TIMEOUT", "15"))
MAX_HEAD_BYTES = 32 * 1024  # request line and headers; the page and the API send under 2 KB
MAX_CHUNK_LINE = 1024  # a chunk's size line, extensions included
HEX_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
# Raw chunked bytes read before handing over anyway: 1-byte chunks take 6 bytes each.
MAX_CHUNKED_BYTES = 8 * MAX_BODY_BYTES
RESERVED_DESCRIPTORS = 32  # for the app's files, logs and the worker's own pipes
LINGER_S = 2.0  # after a last answer, how long a closing connection's unread bytes are drained
LINGER_BYTES = 64 * 1024
MAX_PIECES = 64  # of an answer handed to one sendmsg (Linux takes up to 1,024)
STUCK_AFTER_S = 1.0  # a request running longer than this stops the heartbeat (see notify)


class Framing(enum.Enum):
    """How far a request's bytes have arrived."""

    INCOMPLETE = "more bytes are needed"
    COMPLETE = "the whole request is here"
    SERVE_NOW = "more bytes would not change the answer (over a limit, or malformed): serve, then close"
    HEAD_TOO_LARGE = "the headers are over MAX_HEAD_BYTES"


class RequestFramer:
    """Finds where a request ends as its bytes arrive (RFC 9112 section 6), without parsing the rest.

    Bytes are scanned once: the chunk scan resumes where it stopped, so a body trickled in small
    pieces costs no more than one sent at once.
    """

    def __init__(self) -> None:
        self.body_start: int | None = None
        self.content_length: int | None = None
        self.chunked = False
        self.chunk_pos = 0  # where the next chunk's size line starts
        self.chunk_data = 0  # decoded body bytes in complete chunks before chunk_pos
        self.searched = 0  # where the search for the empty line that ends a field block stopped

    def status(self, data: bytearray) -> Framing:
        if self.body_start is None:
            head_end = self.fields_end(data, 0)
            if head_end < 0:
                return Framing.HEAD_TOO_LARGE if len(data) > MAX_HEAD_BYTES else Framing.INCOMPLETE
            if head_end > MAX_HEAD_BYTES:
                return Framing.HEAD_TOO_LARGE
            verdict = self.read_head(bytes(data[:head_end]))
            self.body_start = self.chunk_pos = head_end + 4
            if verdict is not None:
                return verdict
        if self.chunked:
            return self.scan_chunks(data)
        if self.content_length is None:
            return Framing.COMPLETE
        return Framing.COMPLETE if len(data) >= self.body_start + self.content_length else Framing.INCOMPLETE

    def read_head(self, head: bytes) -> Framing | None:
        """The body's framing from the headers; SERVE_NOW when gunicorn or the app will refuse it."""
        lengths, codings = [], []
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                lengths.append(value.strip())
            elif name == b"transfer-encoding":
                codings += [coding.strip().lower() for coding in value.split(b",")]
        if codings:
            self.chunked = True
            # Anything but "chunked" alone, or with a Content-Length, is refused by gunicorn.
            return None if codings == [b"chunked"] and not lengths else Framing.SERVE_NOW
        if not lengths:
            return None
        if len(set(lengths)) != 1 or not lengths[0].isdigit():
            return Framing.SERVE_NOW
        self.content_length = int(lengths[0])
        return Framing.SERVE_NOW if self.content_length > MAX_BODY_BYTES else None

    def scan_chunks(self, data: bytearray) -> Framing:
        while True:
            line_end = data.find(b"\r\n", self.chunk_pos, self.chunk_pos + MAX_CHUNK_LINE)
            if line_end < 0:
                unfinished = len(data) - self.chunk_pos
                return Framing.SERVE_NOW if unfinished > MAX_CHUNK_LINE else self.incomplete(data, 0)
            size_text = bytes(data[self.chunk_pos : line_end]).split(b";", 1)[0].strip()
            if not HEX_SIZE.fullmatch(size_text):
                return Framing.SERVE_NOW  # the app answers 400 naming the bad chunk
            size = int(size_text, 16)
            if size == 0:  # the last chunk: trailer fields, if any, end with an empty line
                if self.fields_end(data, line_end) >= 0:
                    return Framing.COMPLETE
                return Framing.SERVE_NOW if len(data) - line_end > MAX_HEAD_BYTES else Framing.INCOMPLETE
            data_end = line_end + 2 + size
            if len(data) < data_end + 2:
                return self.incomplete(data, max(0, min(size, len(data) - line_end - 2)))
            if data[data_end : data_end + 2] != b"\r\n":
                return Framing.SERVE_NOW
            self.chunk_pos = data_end + 2
            self.chunk_data += size

    def fields_end(self, data: bytearray, start: int) -> int:
        """Where the headers (or the trailers after `start`) end, searching only bytes not yet searched."""
        found = data.find(b"\r\n\r\n", max(start, self.searched - 3))
        self.searched = len(data) if found < 0 else found
        return found

    def incomplete(self, data: bytearray, partial_chunk: int) -> Framing:
        """INCOMPLETE, unless the body is already over the app's limit (a 413) or too long to hold."""
        if self.chunk_data + partial_chunk > MAX_BODY_BYTES or len(data) > MAX_CHUNKED_BYTES:
            return Framing.SERVE_NOW
        return Framing.INCOMPLETE


def raw_json_error(status: int, reason: str, message: str) -> bytes:
    """An answer written by the worker itself, shaped like the app's errors (JSON, security headers)."""
    body = json.dumps({"error": f"{status} {reason}: {message}"}).encode() + b"\n"
    headers = {
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "Connection": "close",
        **SECURITY_HEADERS,
    }
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode("latin-1") + b"\r\n" + body


TIMEOUT_ANSWER = raw_json_error(
    408, "Request Timeout", f"the request did not arrive within {REQUEST_TIMEOUT_S:g} s"
)
HEAD_TOO_LARGE_ANSWER = raw_json_error(
    431, "Request Header Fields Too Large", f"the request's headers are over {MAX_HEAD_BYTES:,} bytes"
)


class AnswerBuffer:
    """Stands in for the client's socket while a thread runs the app: the event loop sends the answer.

    It keeps the pieces it is given, not a copy: the page's 3.5 MB of weights, one bytes object,
    costs nothing more per client that downloads it slowly.
    """

    def __init__(self) -> None:
        self.pieces: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        if data:
            self.pieces.append(data if isinstance(data, bytes) else bytes(data))

    def send(self, data: bytes) -> int:
        self.sendall(data)
        return len(data)

    def sendfile(self, file, offset: int = 0, count: int | None = None) -> int:
        file.seek(offset)
        chunk = file.read(count)
        self.sendall(chunk)
        return len(chunk)

    def __getattr__(self, name: str):
        raise OSError(errno.ENOTCONN, f"socket.{name}: the event loop sends the answer")


class BufferedConn(TConn):
    """A connection whose requests are read by the worker's event loop before a thread serves them."""

    def __init__(self, cfg, sock, client, server, worker: "RequestBufferingWorker"):
        super().__init__(cfg, sock, client, server)
        self.worker = worker
        self.buffer = bytearray()
        self.framer = RequestFramer()
        self.deadline = 0.0
        self.whole = True  # False: the request was served before all of it came; close afterwards
        self.continued = False  # "100 Continue" sent for this request
        self.answer: deque[memoryview] = deque()  # what the app answered, for the event loop to send
        self.watched = False  # registered with the event loop by the worker (not by gthread)
        self.initialized = True  # the parser is made per request, from the bytes read

    def close(self, graceful: bool = False) -> None:
        if graceful:
            self.worker.linger(self)
        else:
            super().close()


class RequestBufferingWorker(ThreadWorker):
    """gthread whose event loop reads each whole request before a thread serves it."""

    @classmethod
    def check_config(cls, cfg, log):
        super().check_config(cfg, log)
        if cfg.is_ssl:
            raise ConfigError("RequestBufferingWorker serves plain HTTP: terminate TLS in front")

    def init_process(self):
        self.reading: dict[BufferedConn, None] = {}  # oldest first (insertion order)
        self.lingering: dict[socket.socket, float] = {}
        self.running: dict[BufferedConn, float] = {}  # request start times, set by the threads
        self.writing: dict[BufferedConn, object] = {}  # answers being sent, oldest first: their futures
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft_limit != resource.RLIM_INFINITY:
            in_use = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0
            room = soft_limit - in_use - RESERVED_DESCRIPTORS
            self.worker_connections = max(self.cfg.threads + 1, min(self.worker_connections, room))
        self.max_keepalived = self.worker_connections - self.cfg.threads
        super().init_process()

    # Accepting: never refuse a new client while an idle connection can make room.

    def accept(self, listener):
        try:
            client_sock, client_addr = listener.accept()
        except OSError as error:
            if error.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                self.log.warning("out of descriptors at accept: closing the oldest idle connection")
                self.close_oldest_idle()
            elif error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        # At capacity gthread stops accepting: keep a place free by closing an idle connection.
        if self.nr_conns + len(self.lingering) >= self.worker_connections - 1:
            self.close_oldest_idle()
        self.nr_conns += 1
        conn = BufferedConn(self.cfg, client_sock, client_addr, listener.getsockname(), self)
        self.enqueue_req(conn)

    def close_oldest_idle(self) -> None:
        """Frees a descriptor: a lingering socket, else the oldest idle or unfinished connection."""
        if self.lingering:
            self.close_lingering(next(iter(self.lingering)))
            return
        candidates = []
        if self.keepalived_conns:
            candidates.append((self.keepalived_conns[0].timeout - self.cfg.keepalive, "keepalive"))
        if self.reading:
            candidates.append((next(iter(self.reading)).deadline - REQUEST_TIMEOUT_S, "reading"))
        if not candidates:
            return
        if min(candidates)[1] == "keepalive":
            conn = self.keepalived_conns.popleft()
            self.poller.unregister(conn.sock)
        else:
            conn = next(iter(self.reading))
            self.stop_reading(conn)
        self.nr_conns -= 1
        conn.close()

    # Reading: the event loop gathers each request's bytes.

    def enqueue_req(self, conn):
        """Every way gthread gives a connection to a thread starts by reading its next request here."""
        if conn.parser is not None:
            conn.buffer = bytearray(conn.parser.unreader.take_buffered())  # pipelined bytes
            conn.parser = None
        conn.framer = RequestFramer()
        conn.whole = True
        conn.continued = False
        conn.sock.setblocking(False)
        conn.deadline = time.monotonic() + REQUEST_TIMEOUT_S
        self.reading[conn] = None
        if conn.buffer:
            self.check_request(conn)
        else:
            self.on_request_bytes(conn)  # a kept-alive connection's request is usually there already

    def watch(self, conn: BufferedConn, events: int, callback) -> None:
        if not conn.watched:
            self.poller.register(conn.sock, events, partial(callback, conn))
            conn.watched = True

    def unwatch(self, conn: BufferedConn) -> None:
        if conn.watched:
            self.poller.unregister(conn.sock)
            conn.watched = False

    def on_request_bytes(self, conn: BufferedConn, _sock=None) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            self.watch(conn, selectors.EVENT_READ, self.on_request_bytes)
            return
        except OSError:
            data = b""
        if not data:  # the client closed, or reset, before its request was whole
            self.stop_reading(conn)
            self.end_connection(conn)
            return
        conn.buffer += data
        self.check_request(conn)

    def check_request(self, conn: BufferedConn) -> None:
        framing = conn.framer.status(conn.buffer)
        if framing is Framing.INCOMPLETE:
            self.send_continue_if_expected(conn)
            self.watch(conn, selectors.EVENT_READ, self.on_request_bytes)
            return
        self.stop_reading(conn)
        if framing is Framing.HEAD_TOO_LARGE:
            self.end_connection(conn, HEAD_TOO_LARGE_ANSWER)
            return
        conn.whole = framing is Framing.COMPLETE
        conn.parser = RequestParser(self.cfg, [bytes(conn.buffer)], conn.client)
        conn.buffer = bytearray()
        super().enqueue_req(conn)

    def send_continue_if_expected(self, conn: BufferedConn) -> None:
        """A client that sent `Expect: 100-continue` waits for this before its body (curl: 1 s)."""
        framer = conn.framer
        if framer.body_start is None or conn.continued:
            return
        head = bytes(conn.buffer[: framer.body_start]).lower()
        if b"\r\nexpect:" in head and b"100-continue" in head and len(conn.buffer) == framer.body_start:
            conn.continued = True
            self.send_nowait(conn.sock, b"HTTP/1.1 100 Continue\r\n\r\n")

    def stop_reading(self, conn: BufferedConn) -> None:
        self.reading.pop(conn, None)
        self.unwatch(conn)

    def murder_pending(self):
        """Also ends every connection whose request has not arrived in time: a 408 if it began one."""
        super().murder_pending()
        now = time.monotonic()
        if not self.alive:  # stopping: a request on its way gets as long as a kept-alive connection
            for conn in self.reading:
                conn.deadline = min(conn.deadline, now + STOP_KEEPALIVE_LINGER)
        while self.reading:
            conn = next(iter(self.reading))
            if conn.deadline > now:
                break
            self.stop_reading(conn)
            if conn.buffer:
                self.log.info("request from %s not whole after %g s: 408", conn.client, REQUEST_TIMEOUT_S)
            self.end_connection(conn, TIMEOUT_ANSWER if conn.buffer else None)
        while self.writing:
            conn = next(iter(self.writing))
            if conn.deadline > now:
                break
            self.stop_writing(conn)
            self.end_connection(conn)  # a client that does not read its answer
        self.close_expired_lingering(now)

    # Serving: a thread runs gunicorn's request handling on the bytes read.

    def handle_request(self, req, conn):
        """Runs in a thread: gunicorn's own handling, its answer kept for the event loop to send."""
        if not conn.whole:
            req.must_close = True  # announced as "Connection: close" (RFC 9112 section 9.6)
        req._expected_100_continue = False  # answered by the event loop, only when the body is wanted
        client_sock, conn.sock = conn.sock, AnswerBuffer()
        self.running[conn] = time.monotonic()
        try:
            return super().handle_request(req, conn)
        finally:
            self.running.pop(conn, None)
            conn.answer, conn.sock = deque(map(memoryview, conn.sock.pieces)), client_sock

    def finish_request(self, conn, fs):
        """On the event loop, once a thread is done: send the answer, then keep or close as gthread does."""
        if not conn.answer:
            super().finish_request(conn, fs)
            return
        conn.deadline = time.monotonic() + REQUEST_TIMEOUT_S
        conn.sock.setblocking(False)
        self.writing[conn] = fs
        self.on_writable(conn)  # most answers fit the socket's buffer at once

    def on_writable(self, conn: BufferedConn, _sock=None) -> None:
        progress = False
        while conn.answer:
            try:
                sent = conn.sock.sendmsg(list(islice(conn.answer, MAX_PIECES)))
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # the client went away
                self.stop_writing(conn)
                self.end_connection(conn)
                return
            while sent and sent >= len(conn.answer[0]):
                sent -= len(conn.answer.popleft())
            if sent:
                conn.answer[0] = conn.answer[0][sent:]
            progress = True
        if not conn.answer:
            super().finish_request(conn, self.stop_writing(conn))
            return
        if progress:  # the deadline is for progress: a large answer to a slow network takes its time
            conn.deadline = time.monotonic() + REQUEST_TIMEOUT_S
            self.writing[conn] = self.writing.pop(conn)  # kept in deadline order
        self.watch(conn, selectors.EVENT_WRITE, self.on_writable)

    def stop_writing(self, conn: BufferedConn):
        """The finished thread's future, kept while its answer was being sent."""
        self.unwatch(conn)
        return self.writing.pop(conn)

    def notify(self):
        """The heartbeat stops while a request runs longer than STUCK_AFTER_S.

        gthread's event loop beats every second whatever its threads do; the arbiter then kills a
        worker `timeout` seconds after its last beat, so a request stuck in the app (a wedged BLAS
        call, say) ends with its worker, as in gunicorn's sync worker, instead of holding it forever.
        """
        started = min(self.running.values(), default=None)
        if started is None or time.monotonic() - started < STUCK_AFTER_S:
            super().notify()

    # Closing: without blocking the event loop.

    def end_connection(self, conn: BufferedConn, answer: bytes | None = None) -> None:
        """Closes a connection no thread holds, after a last answer of the worker's own if given."""
        self.nr_conns -= 1
        if answer is None:
            conn.close()
            return
        self.send_nowait(conn.sock, answer)
        self.linger(conn)

    def send_nowait(self, sock: socket.socket, data: bytes) -> None:
        """Small answers fit the socket's buffer; a client that does not read loses them."""
        try:
            sock.setblocking(False)
            sock.send(data)
        except OSError:
            pass

    def linger(self, conn: BufferedConn) -> None:
        """Closes after the last answer without a reset: half-close, then drain what the client sends.

        gunicorn's own graceful close drains in the caller, which here is the event loop.
        """
        sock = conn.sock
        try:
            sock.setblocking(False)
            sock.shutdown(socket.SHUT_WR)
            self.poller.register(sock, selectors.EVENT_READ, partial(self.on_lingering_bytes, [0]))
        except (OSError, ValueError, KeyError):
            sock.close()
            return
        self.lingering[sock] = time.monotonic() + LINGER_S

    def on_lingering_bytes(self, drained: list[int], sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        drained[0] += len(data)
        if not data or drained[0] >= LINGER_BYTES:
            self.close_lingering(sock)

    def close_lingering(self, sock: socket.socket) -> None:
        del self.lingering[sock]
        try:
            self.poller.unregister(sock)
        except (KeyError, ValueError, OSError):
            pass
        sock.close()

    def close_expired_lingering(self, now: float) -> None:
        while self.lingering:
            sock, deadline = next(iter(self.lingering.items()))
            if deadline > now:
                break
            self.close_lingering(sock)
