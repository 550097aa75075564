"""Crash-safe training: SIGKILL train.py mid-run, resume from its last snapshot, lose nothing else.

Two identical runs start side by side; one is killed once it has written a few snapshots. Every
file it leaves under its real name is whole (snapshots and exports are written to a temporary
name and renamed), at most one snapshot interval of work is lost, and the run resumed from the
last snapshot reaches exactly the weights of the run that was never interrupted.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import write_mnist_folder

from model.export import load_generator

ROOT = Path(__file__).resolve().parent.parent
INTERVAL = 3  # iterations between snapshots
FLAGS = [
    *("--gen-ch", "8", "--dis-ch", "8", "--batchsize", "8", "--seed", "3"),
    *("--log-interval", "1", "--snapshot-interval", str(INTERVAL)),
    *("--epoch", "100000"),  # never ends by itself: every run here is killed
]


def start(data: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "OPENBLAS_NUM_THREADS": "1",
        "CHAINER_WARN_VERSION_MISMATCH": "0",
        "MPLBACKEND": "Agg",
    }
    command = [sys.executable, "train.py", "--data", str(data), "--out", str(out), *FLAGS, *extra]
    log = open(out.parent / f"{out.name}.stdout", "ab")  # a file, not a pipe nobody reads
    with log:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"train.py stopped early with exit code {process.returncode}"
        assert time.monotonic() < deadline, f"no {path.name} within {timeout} s"
        time.sleep(0.01)


def kill(process: subprocess.Popen) -> None:
    assert process.poll() is None, "train.py was meant to be still running"
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL


def snapshots(out: Path) -> dict[int, Path]:
    """The complete snapshots by iteration (a temporary file of an unfinished one has another name)."""
    found = (re.fullmatch(r"snapshot_iter_(\d+)", path.name) for path in out.iterdir())
    return {int(match.group(1)): out / match.group(0) for match in found if match}


def without_times(entries: list[dict]) -> list[dict]:
    return [{k: v for k, v in entry.items() if k != "elapsed_time"} for entry in entries]


def training_state(path: Path) -> tuple[dict[str, np.ndarray], list[dict]]:
    """A snapshot's weights, optimizer moments, iterator, noise generator and averaged generator; its log."""
    with np.load(path) as snapshot:
        keys = [k for k in snapshot.files if k.startswith(("updater/", "extensions/GeneratorAverage/"))]
        log = json.loads(str(snapshot["extensions/LogReport/_log"]))
        return {key: snapshot[key] for key in keys}, without_times(log)


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_snapshot_to_the_uninterrupted_weights(tmp_path):
    (tmp_path / "mnist").mkdir()
    data = write_mnist_folder(tmp_path / "mnist", n=64)
    straight_out, crashed_out = tmp_path / "straight", tmp_path / "crashed"
    processes = [start(data, straight_out), start(data, crashed_out)]
    straight, crashed = processes
    try:
        wait_for(crashed_out / f"snapshot_iter_{2 * INTERVAL}", crashed)
        kill(crashed)

        # Only whole files under real names: every snapshot and the exported generator load.
        written = snapshots(crashed_out)
        for path in written.values():
            with np.load(path) as snapshot:
                assert "updater/iteration" in snapshot.files
        load_generator(crashed_out)
        last = max(written)
        reached = json.loads((crashed_out / "log").read_text())[-1]["iteration"]
        assert last >= 2 * INTERVAL and reached - last < INTERVAL, "lost more than one snapshot interval"

        target = last + 2 * INTERVAL
        resumed = start(data, crashed_out, "--resume", str(written[last]))
        processes.append(resumed)
        wait_for(crashed_out / f"snapshot_iter_{target}", resumed)
        kill(resumed)
        wait_for(straight_out / f"snapshot_iter_{target}", straight)
        kill(straight)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    resumed_state, resumed_log = training_state(crashed_out / f"snapshot_iter_{target}")
    straight_state, straight_log = training_state(straight_out / f"snapshot_iter_{target}")
    assert resumed_state.keys() == straight_state.keys() and "updater/model:gen/fc/W" in resumed_state
    for key, value in straight_state.items():
        np.testing.assert_array_equal(resumed_state[key], value, err_msg=key)
    # The log came back with the snapshot and went on: every iteration once, the same losses.
    assert [entry["iteration"] for entry in resumed_log] == list(range(1, len(resumed_log) + 1))
    assert len(resumed_log) >= target - 1 and resumed_log == straight_log
