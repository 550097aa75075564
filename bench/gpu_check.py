"""One command that checks a whole train.py run on a device, and prints one JSON verdict.

    python -m bench.gpu_check --device 0      # on a GPU box (make gpu-check); exit 0 when every check passes
    python -m bench.gpu_check --device -1     # the same checks rehearsed on the CPU, as the tests run them

A short run of train.py (random images, narrow networks, a few hundred iterations, in processes of
its own as a user starts it) trains with snapshots, is stopped by SIGTERM and resumed, resumes a CPU
snapshot on the device and a device snapshot on the CPU, and exports a generator that the app's loader
then loads. Every run that starts or resumes is held to the losses of the uninterrupted device run
over its first iterations, and the first of them to a CPU run of the same seed. Last, a training step
of the shipped networks is timed at batch 64 and 256. A check that fails says so with its figure;
the others still run.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import chainer

from bench.machine import machine_info
from bench.train_speed import time_updates
from cli.flags import OneLineParser, count_at_least, fail
from mnist.data import write_random_mnist_folder
from training.gpu import device_problem

PROG = "python -m bench.gpu_check"
ROOT = Path(__file__).resolve().parent.parent
CPU = "-1"
BATCHSIZE = 16
ITERATIONS_PER_EPOCH = 10
COMPARED = 3  # iterations held to the reference after every start and resume
MIN_ITERATIONS = 4 * (COMPARED + 1)  # snapshots every quarter of the run, the first after COMPARED
LOSS_TOLERANCE = (1e-3, 1e-5)  # relative, absolute: a GPU's float rounding against the CPU's
SIGTERM_STATUS = 128 + signal.SIGTERM
NO_SNAPSHOT = {"pass": False, "error": "the stopped run named no snapshot to resume"}


class Runs:
    """train.py runs of one recipe in `folder`, each in a process of its own as a user starts it."""

    def __init__(self, folder: Path, iterations: int, timeout: float):
        self.folder = folder
        epochs = -(-iterations // ITERATIONS_PER_EPOCH)
        self.iterations = epochs * ITERATIONS_PER_EPOCH
        self.snapshot_interval = self.iterations // 4
        self.timeout = timeout
        self.data = write_random_mnist_folder(folder / "mnist", n=BATCHSIZE * ITERATIONS_PER_EPOCH)
        self.flags = [
            *("--data", str(self.data), "--gen-ch", "16", "--dis-ch", "16", "--batchsize", str(BATCHSIZE)),
            *("--epoch", str(epochs), "--seed", "0", "--log-interval", "1"),
            *("--snapshot-interval", str(self.snapshot_interval)),
        ]

    def snapshot(self, name: str, iteration: int) -> Path:
        return self.folder / name / f"snapshot_iter_{iteration}"

    def train(self, name: str, device: str, *flags: str, stop_after: Path | None = None) -> dict:
        """Exit status, output and losses of train.py into folder/name; with `stop_after`, sent
        SIGTERM once that file exists."""
        out = self.folder / name
        command = [sys.executable, "train.py", "--device", device, "--out", str(out), *self.flags, *flags]
        env = {**os.environ, "MPLBACKEND": "Agg", "CHAINER_WARN_VERSION_MISMATCH": "0"}
        output = self.folder / f"{name}.output"
        with output.open("wb") as log:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + self.timeout
            while stop_after and not stop_after.exists() and process.poll() is None:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.005)
            if stop_after and process.poll() is None:
                process.send_signal(signal.SIGTERM)
            status = process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            status = process.wait()
        log_path = out / "log"
        entries = json.loads(log_path.read_text()) if log_path.exists() else []
        return {
            "status": status,
            "output": output.read_text(errors="replace"),
            "losses": {entry["iteration"]: (entry["gen/loss"], entry["dis/loss"]) for entry in entries},
        }


def loss_difference(run: dict, reference: dict, first: int) -> dict:
    """The largest difference of `run`'s losses from `reference`'s over COMPARED iterations from `first`."""
    iterations = list(range(first, first + COMPARED))
    missing = [i for i in iterations if i not in run["losses"] or i not in reference["losses"]]
    if missing:
        return {"pass": False, "missing_iterations": missing}
    relative, absolute = LOSS_TOLERANCE
    pairs = [
        (a, b) for i in iterations for a, b in zip(run["losses"][i], reference["losses"][i], strict=True)
    ]
    return {
        "pass": all(abs(a - b) <= relative * abs(b) + absolute for a, b in pairs),
        "iterations": [iterations[0], iterations[-1]],
        "max_loss_difference": max(abs(a - b) for a, b in pairs),
    }


def exited(run: dict, status: int) -> dict:
    """Whether `run` ended with `status`; else its last line of output, to say why."""
    if run["status"] == status:
        return {"pass": True}
    last = run["output"].strip().splitlines()[-1:] or [""]
    return {"pass": False, "exit_status": run["status"], "expected": status, "last_line": last[0]}


def stopped_at(run: dict) -> tuple[dict, Path | None]:
    """The check that SIGTERM stopped `run` with a snapshot and a resume command, and that snapshot."""
    check = exited(run, SIGTERM_STATUS)
    match = re.search(r"stopped by SIGTERM at iteration (\d+); resume with: .* --resume (\S+)", run["output"])
    if match is None:
        return {**check, "pass": False, "message": "no 'stopped by SIGTERM ... resume with' line"}, None
    snapshot = Path(match.group(2))
    check = {**check, "stopped_at": int(match.group(1))}
    check["pass"] = check["pass"] and snapshot.exists()
    return check, snapshot


def merged(*checks: dict) -> dict:
    """Several checks' figures as one check, which passes when all of them do."""
    result = {}
    for check in checks:
        result.update(check)
    result["pass"] = all(check["pass"] for check in checks)
    return result


def export_loads_in_the_app(folder: Path, device: chainer.backend.Device, iterations: int) -> dict:
    """The app's start-up loads the exported generator, which records the device and its iterations."""
    from webapp import create_app  # only here: the rest of the check needs no Flask

    try:
        app = create_app({"GENERATOR_DIR": str(folder)})
    except Exception as error:  # the loader's errors are several types; each names the problem
        return {"pass": False, "error": str(error)}
    generator = app.extensions["networks"].generator
    metadata = generator.metadata
    return {
        "pass": generator.folded is not None
        and metadata.get("device") == str(device)
        and metadata.get("iterations") == iterations,
        "device": metadata.get("device"),
        "iterations": metadata.get("iterations"),
    }


def step_times(device: chainer.backend.Device, batchsizes: list[int], iterations: int) -> dict:
    """bench.train_speed's timing of the shipped networks' training step at each batch size."""
    settings = argparse.Namespace(gen_ch=128, dis_ch=64, warmup=2, iterations=iterations)
    runs = [time_updates(settings, batchsize, device) for batchsize in batchsizes]
    return {"pass": all(run["all_parameters_on_device"] for run in runs), "runs": runs}


def run_checks(spec: str, folder: Path, iterations: int, batchsizes: list[int], timed: int) -> dict:
    """Every check on device `spec`, its runs in `folder`: the verdict that main() prints."""
    device = chainer.get_device(spec)
    runs = Runs(folder, iterations, timeout=max(600.0, iterations * 3.0))
    iterations, interval = runs.iterations, runs.snapshot_interval
    checks = {}

    straight = runs.train("uninterrupted", spec, "--export", str(folder / "export"))
    snapshots = sorted(
        int(path.name.rsplit("_", 1)[1]) for path in (folder / "uninterrupted").glob("snapshot_iter_*")
    )
    checks["trains_with_snapshots"] = merged(
        exited(straight, 0),
        {"pass": snapshots[-1:] == [iterations] and interval in snapshots, "snapshots": snapshots},
    )

    signalled = runs.train("sigterm", spec, stop_after=runs.snapshot("sigterm", interval))
    checks["sigterm_stops_with_a_snapshot"], snapshot = stopped_at(signalled)
    if snapshot is not None:
        resumed = runs.train("sigterm", spec, "--resume", str(snapshot))
        first = checks["sigterm_stops_with_a_snapshot"]["stopped_at"] + 1
        checks["resumes_where_it_stopped"] = merged(
            exited(resumed, 0), loss_difference(resumed, straight, first)
        )
    else:
        checks["resumes_where_it_stopped"] = NO_SNAPSHOT

    on_cpu = runs.train("cpu", CPU, stop_after=runs.snapshot("cpu", interval))
    checks["first_losses_match_a_cpu_run"] = loss_difference(on_cpu, straight, 1)
    cpu_stop, cpu_snapshot = stopped_at(on_cpu)
    if cpu_snapshot is not None:
        moved = runs.train("cpu_to_device", spec, "--resume", str(cpu_snapshot))
        first = cpu_stop["stopped_at"] + 1
        checks["cpu_snapshot_resumes_on_the_device"] = merged(
            exited(moved, 0), loss_difference(moved, straight, first)
        )
    else:
        checks["cpu_snapshot_resumes_on_the_device"] = NO_SNAPSHOT
    moved = runs.train("device_to_cpu", CPU, "--resume", str(runs.snapshot("uninterrupted", interval)))
    checks["device_snapshot_resumes_on_the_cpu"] = merged(
        exited(moved, 0), loss_difference(moved, straight, interval + 1)
    )

    checks["export_loads_in_the_app"] = export_loads_in_the_app(folder / "export", device, iterations)
    device.use()
    checks["step_time"] = step_times(device, batchsizes, timed)
    return {
        "check": "gpu_check",
        "device": str(device),
        "pass": all(check["pass"] for check in checks.values()),
        "checks": checks,
        "machine": machine_info(device),
    }


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device", "-d", default="0", help="Chainer device to check: 0 (default) or -1 for the CPU"
    )
    parser.add_argument(
        "--iterations",
        type=count_at_least(1),
        default=200,
        help=f"length of the short run, rounded up to tens (default 200, at least {MIN_ITERATIONS})",
    )
    parser.add_argument(
        "--batchsize",
        type=count_at_least(1),
        nargs="+",
        default=[64, 256],
        help="batch sizes at which a step of the shipped networks is timed (default 64 256)",
    )
    parser.add_argument(
        "--timed", type=count_at_least(1), default=30, help="timed steps at each batch size (default 30)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for the runs (default: a temporary one)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Print the verdict; 0 when every check passes, 1 when one fails, 2 after a one-line error."""
    args = build_parser().parse_args(argv)
    if args.iterations < MIN_ITERATIONS:
        return fail(
            PROG,
            f"--iterations {args.iterations}: at least {MIN_ITERATIONS}, for {COMPARED} before each stop",
        )
    try:
        chainer.get_device(args.device).use()
    except Exception as error:  # Chainer raises several types for a bad or unusable device spec
        return fail(PROG, f"--device {args.device}: {device_problem(args.device, error)}")
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as temporary:
        folder = args.out or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        verdict = run_checks(args.device, folder, args.iterations, args.batchsize, args.timed)
    print(json.dumps(verdict, indent=2))
    return 0 if verdict["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
