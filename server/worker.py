"""gunicorn's threaded worker, made safe to face clients directly: threads never touch a socket.

gunicorn's gthread worker hands a new connection to a thread, which then blocks reading the request:
one client that sends half its headers, or a body that never ends, holds that thread for as long as
it likes. Here the worker's event loop reads each request first, without blocking, until
server.framing says where it ends; a thread (the event loop itself, with one thread per worker) then
runs gunicorn's parser and the app on exactly those bytes, its answer (an error of gunicorn's
included) kept in memory for the event loop to send. A request the framer refuses gets the worker's
own JSON error, and the connection closes: every request gets exactly one answer.

Each connection has one state and one deadline. A request must arrive, headers and body, within
REQUEST_TIMEOUT_S of its first byte (or of the connection's opening), else a 408; an answer must
make progress every REQUEST_TIMEOUT_S; an idle kept-alive connection waits `keepalive` seconds.
The bytes a worker holds for requests, read or waiting for a thread, stay under BUFFER_BUDGET_BYTES:
past it the connection whose request began earliest gets a 503, until the worker is under it again.
Connections beyond the worker's descriptors push out the oldest idle one. A request that runs longer
than STUCK_AFTER_S in a thread (any time on the event loop) stops the worker's heartbeat, so that
gunicorn's arbiter kills the worker as it would a stuck sync worker.

Built on gthread's thread pool, accept loop and main loop (gunicorn 27.0; check_config refuses
another version): it overrides accept, handle, handle_request, handle_error, finish_request,
murder_keepalived and notify, and uses gthread's poller, tpool, method_queue, nr_conns and
worker_connections.
"""

import ctypes
import enum
import errno
import itertools
import math
import os
import resource
import selectors
import socket
import time
from collections import deque
from functools import partial

import gunicorn
from gunicorn.errors import ConfigError
from gunicorn.http.message import DEFAULT_MAX_HEADERFIELD_SIZE, MAX_HEADERS, MAX_REQUEST_LINE
from gunicorn.http.parser import RequestParser
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

from server.answers import error_answer
from server.framing import (
    MAX_CHUNK_LINE,
    MAX_TRAILER_BYTES,
    MAX_TRAILER_FIELDS,
    Complete,
    HeadLimits,
    Refused,
    RequestFramer,
)

TESTED_GUNICORN = "27.0"  # the major.minor whose gthread internals (above) this worker was checked on
REQUEST_TIMEOUT_S = float(os.environ.get("GUNICORN_REQUEST_TIMEOUT", "15"))
# Per worker: a 100 MB worker plus this stays far under half a 512 MB dyno. 24 MiB holds 380 requests
# at the framer's largest (32 KiB of head, 32 KiB of chunked body), or 1,500 of the page's and the
# API's (under 16 KiB).
BUFFER_BUDGET_BYTES = 24 * 1024 * 1024
# Many buffers freed in another order than they grew leave glibc's heap in holes that it keeps:
# once this much of them is gone, malloc_trim gives the free pages back to the system.
TRIM_AFTER_BYTES = 4 * 1024 * 1024
# One read. Each turn of the loop reads once from every connection with bytes waiting: small reads
# keep a turn short when hundreds send at once, so that a polite request waits a few turns at most.
RECV_BYTES = 4096
# gunicorn's chunk parser copies what is left of its current piece for every chunk: pieces of this
# size keep its cost linear in the bytes.
PIECE_BYTES = 4096
# Connections accepted a turn: gthread takes one, so a burst of connections kept a polite one in the
# backlog for as many turns as the burst had connections.
ACCEPTS_AT_ONCE = 1024
RESERVED_DESCRIPTORS = 32  # for the app's files, logs and the worker's own pipes
LINGER_S = 2.0  # after a last answer, how long a closing connection's unread bytes are drained
LINGER_BYTES = 64 * 1024
MAX_PIECES = 64  # of an answer handed to one sendmsg (Linux takes up to 1,024)
STUCK_AFTER_S = 1.0  # a request running longer than this stops the heartbeat (see notify)
SWEEP_S = 0.25  # how often connections are checked against their deadlines


class State(enum.Enum):
    READING = "the event loop reads a request (or waits for one on a kept-alive connection)"
    RUNNING = "a thread runs gunicorn's parser and the app on the request's bytes"
    WRITING = "the event loop sends the answer"
    CLOSING = "half-closed after a last answer: what the client still sends is drained"


TIMEOUT_ANSWER = error_answer(
    408, "Request Timeout", f"the request did not arrive within {REQUEST_TIMEOUT_S:g} s"
)
BUSY_ANSWER = error_answer(
    503, "Service Unavailable", "the server holds too many unfinished requests: send yours again"
)


def give_memory_back() -> None:
    """glibc's malloc_trim(0), where the C library has it (musl and macOS give memory back as they go)."""
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is not None:
        trim(0)


def head_limits(cfg) -> HeadLimits:
    """gunicorn's limit_request_* settings as its parser applies them (message.Request)."""
    line = MAX_REQUEST_LINE if cfg.limit_request_line < 0 else min(cfg.limit_request_line, MAX_REQUEST_LINE)
    fields = cfg.limit_request_fields if 0 < cfg.limit_request_fields <= MAX_HEADERS else MAX_HEADERS
    field_size = (
        cfg.limit_request_field_size if cfg.limit_request_field_size > 0 else DEFAULT_MAX_HEADERFIELD_SIZE
    )
    return HeadLimits(line, fields, field_size)


def pieces(request: bytes, body_start: int) -> list[bytes]:
    """The head in one piece, the body in PIECE_BYTES pieces, for gunicorn's parser to read in turn."""
    body = range(body_start, len(request), PIECE_BYTES)
    return [request[:body_start], *(request[start : start + PIECE_BYTES] for start in body)]


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

    def setblocking(self, flag: bool) -> None:
        """Nothing blocks here; gunicorn sets the mode before writing."""

    def gettimeout(self) -> float:
        return 0.0

    def __getattr__(self, name: str):
        raise OSError(errno.ENOTCONN, f"socket.{name}: the event loop sends the answer")


class Connection(TConn):
    """A client's connection: its state, its one deadline, and the bytes read for its next request."""

    def __init__(self, cfg, sock, client, server, framer: RequestFramer):
        super().__init__(cfg, sock, client, server)
        self.state = State.READING
        self.deadline = math.inf
        self.since = time.monotonic()  # when it began to wait: idle, or for the rest of its request
        self.events = 0  # what the poller watches for
        self.buffer = bytearray()  # read, not yet handed to a thread
        self.framer = framer
        self.continued = False  # "100 Continue" sent for this request
        self.request_bytes = 0  # handed to a thread, held until it is done
        self.counted = 0  # of the worker's buffered bytes, this connection's
        self.running_since: float | None = None  # set by the thread
        self.answer: deque[memoryview] = deque()
        self.keep_alive = False
        self.drained = 0
        self.initialized = True  # the parser is made per request, from the bytes read


class RequestBufferingWorker(ThreadWorker):
    """gthread whose event loop reads each whole request before a thread serves it."""

    @classmethod
    def check_config(cls, cfg, log):
        super().check_config(cfg, log)
        installed = ".".join(gunicorn.__version__.split(".")[:2])
        if installed != TESTED_GUNICORN:
            raise ConfigError(
                f"RequestBufferingWorker relies on gthread's internals as of gunicorn {TESTED_GUNICORN}; "
                f"gunicorn {gunicorn.__version__} is installed: pin gunicorn=={TESTED_GUNICORN}.* "
                "or check server/worker.py against the new gthread.py"
            )
        if cfg.is_ssl or cfg.http2_cleartext != "off":
            raise ConfigError(
                "RequestBufferingWorker serves plain HTTP/1.1: terminate TLS and HTTP/2 in front"
            )
        # What the framer lets through, gunicorn's parser must take (server/framing.py).
        limits = head_limits(cfg)
        if (
            limits.fields < MAX_TRAILER_FIELDS
            or limits.field_size < max(MAX_TRAILER_BYTES, MAX_CHUNK_LINE) + 2
        ):
            raise ConfigError(
                f"limit_request_fields must be at least {MAX_TRAILER_FIELDS} and limit_request_field_size "
                f"at least {MAX_TRAILER_BYTES + 2}: the framer lets trailers that large through"
            )
        # gunicorn's C parser (gunicorn_h1c, taken when installed unless this says "python") refuses
        # requests that the framer and gunicorn's own Python parser take (HTTP/1.2, for one).
        if cfg.http_parser != "python":
            raise ConfigError(
                f"http_parser is {cfg.http_parser!r}: RequestBufferingWorker's framer was checked against "
                "gunicorn's Python parser only: set http_parser = 'python'"
            )

    def init_process(self):
        self.connections: dict[Connection, None] = {}  # oldest first
        self.next_sweep = 0.0  # when murder_keepalived next looks for connections past their deadline
        self.running: set[Connection] = set()
        self.buffered = 0  # bytes held for requests, read or waiting for a thread
        self.buffered_high = 0  # the most held since memory was last given back
        self.stopping = False
        self.answering = False  # the event loop is sending the answer of a request it ran itself
        self.head_limits = head_limits(self.cfg)
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft_limit != resource.RLIM_INFINITY:
            in_use = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0
            room = soft_limit - in_use - RESERVED_DESCRIPTORS
            self.worker_connections = max(self.cfg.threads + 1, min(self.worker_connections, room))
        super().init_process()

    # The connection's state, deadline, watched events and share of the budget.

    def set_state(self, conn: Connection, state: State, deadline: float, events: int) -> None:
        conn.state, conn.deadline = state, deadline
        self.watch(conn, events)

    def watch(self, conn: Connection, events: int) -> None:
        if events == conn.events:
            return
        if not events:
            self.poller.unregister(conn.sock)
        elif not conn.events:
            self.poller.register(conn.sock, events, partial(self.on_event, conn))
        else:
            self.poller.modify(conn.sock, events, partial(self.on_event, conn))
        conn.events = events

    def account(self, conn: Connection) -> None:
        held = len(conn.buffer) + conn.request_bytes if conn in self.connections else 0
        self.buffered += held - conn.counted
        conn.counted = held

    def on_event(self, conn: Connection, _sock=None) -> None:
        if conn.state is State.READING:
            self.read(conn)
        elif conn.state is State.WRITING:
            self.write(conn)
        elif conn.state is State.CLOSING:
            self.drain(conn)

    # Accepting: never refuse a new client while an idle connection can make room.

    def accept(self, listener):
        """Takes every waiting connection (up to ACCEPTS_AT_ONCE), each read from at once."""
        for _ in range(ACCEPTS_AT_ONCE):
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
            if len(self.connections) >= self.worker_connections - 1:
                self.close_oldest_idle()
            conn = Connection(self.cfg, client_sock, client_addr, listener.getsockname(), self.new_framer())
            self.connections[conn] = None
            self.nr_conns = len(self.connections)
            self.start_reading(conn, REQUEST_TIMEOUT_S, read_now=True)  # its request comes with it

    def close_oldest_idle(self) -> None:
        """Frees a descriptor: a closing connection, else the one that has waited longest for a request."""
        closing = next((conn for conn in self.connections if conn.state is State.CLOSING), None)
        reading = (conn for conn in self.connections if conn.state is State.READING)
        conn = closing or min(reading, key=lambda conn: conn.since, default=None)
        if conn:
            self.close(conn)

    # Reading: the event loop gathers each request's bytes.

    def new_framer(self) -> RequestFramer:
        return RequestFramer(self.head_limits)

    def start_reading(self, conn: Connection, wait_s: float, read_now: bool) -> None:
        """Waits for the connection's next request (pipelined bytes may hold it already); `read_now`
        looks for it at once, before the poller says it came."""
        now = time.monotonic()
        if not self.alive:
            wait_s = min(wait_s, STOP_KEEPALIVE_LINGER)
        conn.framer, conn.continued, conn.since = self.new_framer(), False, now
        self.set_state(conn, State.READING, now + wait_s, selectors.EVENT_READ)
        if conn.buffer:
            conn.deadline = min(conn.deadline, now + REQUEST_TIMEOUT_S)
            self.check_request(conn)
        elif read_now:
            self.read(conn)

    @staticmethod
    def receive(conn: Connection) -> bytes | None:
        """What the client sent, up to RECV_BYTES: None when nothing is there yet, b"" when it
        closed or reset the connection."""
        try:
            return conn.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            return b""

    def read(self, conn: Connection) -> None:
        data = self.receive(conn)
        if data is None:
            return
        if not data:  # the client closed, or reset, before its request was whole
            self.close(conn)
            return
        if not conn.buffer:  # the request's first byte: from now on it has REQUEST_TIMEOUT_S in all
            conn.since = time.monotonic()
            conn.deadline = min(conn.deadline, conn.since + REQUEST_TIMEOUT_S)
        conn.buffer += data
        self.account(conn)
        self.buffered_high = max(self.buffered_high, self.buffered)
        self.check_request(conn)
        if self.buffered > BUFFER_BUDGET_BYTES:
            self.shed_load()

    def check_request(self, conn: Connection) -> None:
        verdict = conn.framer.feed(conn.buffer)
        if isinstance(verdict, Complete):
            self.serve(conn, verdict.end)
        elif isinstance(verdict, Refused):
            self.log.info("refused a request from %s: %s %s", conn.client, verdict.status, verdict.message)
            self.end_with(conn, error_answer(verdict.status, verdict.reason, verdict.message))
        elif (
            conn.framer.expects_continue and not conn.continued and len(conn.buffer) == conn.framer.body_start
        ):
            # RFC 9110 section 10.1.1: the client waits for this (curl: 1 s) before its body.
            conn.continued = True
            self.send_nowait(conn.sock, b"HTTP/1.1 100 Continue\r\n\r\n")

    def shed_load(self) -> None:
        """Over the budget: a 503 to the requests that began earliest, until a quarter of it is free
        (so that the connections are sorted once per quarter of the budget, not once per arrival)."""
        reading = [conn for conn in self.connections if conn.state is State.READING and conn.buffer]
        reading.sort(key=lambda conn: conn.since)
        self.log.warning("holding %d bytes of requests: 503 to the oldest", self.buffered)
        for conn in reading:
            if self.buffered <= BUFFER_BUDGET_BYTES * 3 // 4:
                return
            self.end_with(conn, BUSY_ANSWER)

    # Serving: a thread runs gunicorn's request handling on exactly the bytes the framer delimited.

    def serve(self, conn: Connection, end: int) -> None:
        request = bytes(conn.buffer[:end])
        del conn.buffer[:end]  # what follows is the next request's
        conn.request_bytes = end
        conn.parser = RequestParser(self.cfg, pieces(request, conn.framer.body_start), conn.client)
        conn.running_since = None
        self.set_state(conn, State.RUNNING, math.inf, 0)
        self.running.add(conn)
        if self.cfg.threads > 1:
            self.enqueue_req(conn)  # gthread's: a thread runs self.handle, then finish_request comes here
        elif self.answering:  # a pipelined request, met while the one before it is sent: run from
            # the loop's callbacks, not nested in that one: a read's worth (a hundred short requests)
            # is then neither one call a hundred deep nor served in one go ahead of other connections
            # (gthread's callbacks run at most eleven of them a turn)
            self.method_queue.defer(self.serve_here, conn)
        else:
            self.serve_here(conn)

    def serve_here(self, conn: Connection) -> None:
        """With one thread per worker, the event loop runs the request itself. The thread would only
        take turns with it for the GIL, and handing each request over and its answer back (a queue,
        a future, a pipe write that wakes the loop) cost about a tenth of a /generate's server CPU
        (docs/performance.md). The heartbeat beats as the request starts and not during it: one stuck
        in the app has its worker killed `timeout` seconds later, as in gunicorn's sync worker."""
        super().notify()
        keep_alive = bool(self.handle(conn))
        self.answering = True
        try:
            self.send_answer(conn, keep_alive)
        finally:
            self.answering = False

    def handle(self, conn):
        """Runs in a thread (or on the event loop): gunicorn's own handling, every answer it writes
        kept for the event loop to send."""
        client_sock, conn.sock = conn.sock, AnswerBuffer()
        conn.running_since = time.monotonic()
        try:
            return super().handle(conn)
        finally:
            conn.answer, conn.sock = deque(map(memoryview, conn.sock.pieces)), client_sock

    def handle_request(self, req, conn):
        req._expected_100_continue = False  # answered by the event loop, only when the body is wanted
        return super().handle_request(req, conn)

    def handle_error(self, req, client, addr, exc):
        """An error answer is the request's only one: anything the app answered before it is dropped."""
        if isinstance(client, AnswerBuffer):
            client.pieces.clear()
        super().handle_error(req, client, addr, exc)

    def finish_request(self, conn, fs):
        """On the event loop, once a thread is done: send its answer, then read the next request or close."""
        self.send_answer(conn, keep_alive=not fs.cancelled() and fs.exception() is None and bool(fs.result()))

    def send_answer(self, conn: Connection, keep_alive: bool) -> None:
        """Sends the answer of the request just run, then reads the connection's next one or closes it."""
        self.running.discard(conn)
        conn.keep_alive = keep_alive
        if conn.keep_alive and conn.parser.unreader.read():
            # gunicorn ended the request before the framer did: never read the rest as a request.
            self.log.error("gunicorn and the framer disagree on a request from %s: closing", conn.client)
            conn.keep_alive = False
        conn.parser, conn.request_bytes = None, 0
        self.account(conn)
        self.set_state(conn, State.WRITING, time.monotonic() + REQUEST_TIMEOUT_S, 0)
        self.write(conn)  # most answers fit the socket's buffer at once

    def write(self, conn: Connection) -> None:
        progress = False
        while conn.answer:
            try:
                sent = conn.sock.sendmsg(list(itertools.islice(conn.answer, MAX_PIECES)))
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # the client went away
                self.close(conn)
                return
            while sent and sent >= len(conn.answer[0]):
                sent -= len(conn.answer.popleft())
            if sent:
                conn.answer[0] = conn.answer[0][sent:]
            progress = True
        if not conn.answer:
            if conn.keep_alive:
                # A kept-alive connection's next request is often there already. On the event loop it
                # waits for the poller instead, behind requests that came before it: read at once,
                # one fast client's requests went first turn after turn, and held others for 0.2 s.
                self.start_reading(conn, self.cfg.keepalive, read_now=self.cfg.threads > 1)
            else:
                self.close_gracefully(conn)
            return
        if progress:  # the deadline is for progress: a large answer to a slow network takes its time
            conn.deadline = time.monotonic() + REQUEST_TIMEOUT_S
        self.watch(conn, selectors.EVENT_WRITE)

    def notify(self):
        """The heartbeat stops while a request runs longer than STUCK_AFTER_S.

        gthread's event loop beats every second whatever its threads do; the arbiter then kills a
        worker `timeout` seconds after its last beat, so a request stuck in the app (a wedged BLAS
        call, say) ends with its worker, as in gunicorn's sync worker, instead of holding it forever.
        """
        started = [conn.running_since for conn in self.running if conn.running_since is not None]
        if not started or time.monotonic() - min(started) < STUCK_AFTER_S:
            super().notify()

    # Deadlines: gthread's main loop calls this on every turn, which is at least once a second.

    def murder_keepalived(self, force=False):
        """Ends every connection past its deadline (all but the running ones when `force`).

        One look at every connection, at most every SWEEP_S: a thousand connections take well under a
        millisecond, and a deadline is kept to within a second, as gthread's own loop keeps them.
        """
        now = time.monotonic()
        if self.buffered_high - self.buffered > TRIM_AFTER_BYTES and self.buffered < self.buffered_high // 2:
            give_memory_back()
            self.buffered_high = self.buffered
        if not self.alive and not self.stopping:  # a request on its way gets as long as a kept-alive one
            self.stopping = True
            for conn in self.connections:
                if conn.state is State.READING:
                    conn.deadline = min(conn.deadline, now + STOP_KEEPALIVE_LINGER)
        if not force and now < self.next_sweep:
            return
        self.next_sweep = now + SWEEP_S
        for conn in [conn for conn in self.connections if force or conn.deadline <= now]:
            if conn.state is State.RUNNING:
                continue
            if conn.state is State.READING and conn.buffer and not force:
                self.log.info("request from %s not whole after %g s: 408", conn.client, REQUEST_TIMEOUT_S)
                self.end_with(conn, TIMEOUT_ANSWER)
            else:  # idle, an answer not taken, done draining, or stopping
                self.close(conn)

    # Closing: without blocking the event loop.

    def end_with(self, conn: Connection, answer: bytes) -> None:
        """Closes after a last answer of the worker's own: the rest of the request is never read."""
        conn.buffer = bytearray()
        self.account(conn)
        self.send_nowait(conn.sock, answer)
        self.close_gracefully(conn)

    def send_nowait(self, sock: socket.socket, data: bytes) -> None:
        """Small answers fit the socket's buffer; a client that does not read loses them."""
        try:
            sock.send(data)
        except OSError:
            pass

    def close_gracefully(self, conn: Connection) -> None:
        """Half-closes after the last answer, then drains what the client sends: no reset cuts the answer."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close(conn)
            return
        conn.drained = 0
        self.set_state(conn, State.CLOSING, time.monotonic() + LINGER_S, selectors.EVENT_READ)

    def drain(self, conn: Connection) -> None:
        data = self.receive(conn)
        if data is None:
            return
        conn.drained += len(data)
        if not data or conn.drained >= LINGER_BYTES:
            self.close(conn)

    def close(self, conn: Connection) -> None:
        self.watch(conn, 0)
        self.connections.pop(conn, None)
        self.nr_conns = len(self.connections)
        conn.buffer = bytearray()
        self.account(conn)
        conn.state, conn.deadline = State.CLOSING, math.inf
        conn.sock.close()
