"""The signals that end a script's run: SIGTERM (a scheduler, a dyno restart) and SIGINT (Ctrl-C)."""

import signal
from collections.abc import Callable
from contextlib import contextmanager

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(Exception):
    """A signal abandoned the work in progress."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


@contextmanager
def handling(handler: Callable[[int, object], None]):
    """`handler` takes SIGTERM and SIGINT while the block runs; the previous handlers come back after."""
    previous = {signum: signal.signal(signum, handler) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, previous_handler in previous.items():
            signal.signal(signum, previous_handler)


def interrupting():
    """SIGTERM and SIGINT raise Interrupted inside the block, for work that has no snapshot to write."""

    def interrupt(signum: int, frame) -> None:
        raise Interrupted(signum)

    return handling(interrupt)
