"""Ending a run cleanly on SIGTERM or SIGINT, and the command that resumes it."""

import re
import shlex
import signal
from pathlib import Path

from chainer import training

from training.signals import handling

SNAPSHOT_NAME = "snapshot_iter_{.updater.iteration}"


class TrainingStopped(Exception):
    """A signal ended training; `snapshot` holds the last step."""

    def __init__(self, signum: int, snapshot: Path, iteration: int):
        super().__init__(f"stopped by {signal.Signals(signum).name} at iteration {iteration}")
        self.signum = signum
        self.snapshot = snapshot


class StopOnSignal(training.Extension):
    """Ends training between two steps when SIGTERM or SIGINT arrives.

    The step in progress finishes and the other extensions of its iteration run; then a snapshot of
    it is written (unless the snapshot extension just wrote one) and TrainingStopped names it. A
    second signal stops at once, leaving the snapshots already written.
    """

    priority = -1000  # after every other extension of the iteration, the snapshot included

    def __init__(self, snapshot: training.Extension):
        self.snapshot = snapshot
        self.signum: int | None = None

    @staticmethod
    def trigger(trainer: training.Trainer) -> bool:
        """Every iteration, with no state to save, so that snapshots keep the keys they had."""
        return True

    def catching(self):
        """The signals set a flag (see `arrived`) while the block runs; their handlers come back after."""
        return handling(self.arrived)

    def arrived(self, signum: int, frame) -> None:
        if self.signum is not None:
            raise SystemExit(128 + signum)
        self.signum = signum

    def __call__(self, trainer: training.Trainer) -> None:
        if self.signum is None:
            return
        path = Path(trainer.out) / SNAPSHOT_NAME.format(trainer)
        if not path.exists():
            self.snapshot(trainer)
        raise TrainingStopped(self.signum, path, trainer.updater.iteration)


def without_flag(argv: list[str], *names: str, takes_value: bool = True) -> list[str]:
    """`argv` without the flag called any of `names` (and its value), in any of argparse's spellings."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in names:
            skip = takes_value
        elif not any(
            arg.startswith(f"{name}=") or (len(name) == 2 and arg.startswith(name)) for name in names
        ):
            kept.append(arg)
    return kept


def resume_command(prog: str, argv: list[str], snapshot: Path, *extra: str) -> str:
    """The command line that runs `prog` with the same flags from `snapshot` (plus `extra`)."""
    flags = without_flag(argv, "--resume", "-r")
    return shlex.join(["python", prog, *flags, "--resume", str(snapshot), *extra])


def latest_snapshot(out: Path) -> Path | None:
    """The snapshot of the highest iteration in `out`, if any."""
    found = [
        (int(match[1]), path)
        for path in Path(out).glob("snapshot_iter_*")
        if (match := re.fullmatch(r"snapshot_iter_(\d+)", path.name))
    ]
    return max(found)[1] if found else None
