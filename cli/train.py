"""train.py's command line: its flags, their checks, and the run they start."""

import argparse
import contextlib
import sys
from pathlib import Path

import chainer
import numpy as np

from cli.flags import (
    OneLineParser,
    add_data_flags,
    count_at_least,
    fail,
    positive_float,
    unwritable,
    written,
)
from mnist.data import DataError, load_mnist
from model import cpu_kernels
from training.gpu import device_problem
from training.memory import keep_freed_memory
from training.stopping import TrainingStopped, latest_snapshot, resume_command, without_flag
from training.trainer import COMMUNICATORS, build_trainer, export, shared_error

PROG = "train.py"


DESCRIPTION = (
    "Train the conditional DCGAN on MNIST with Chainer and export the generator. The defaults are the "
    "recipe of the shipped weights/generator.npz: `python train.py --export weights/` retrains it "
    "(how long it takes on a GPU and on a CPU: see docs/training.md)."
)


def unit_float(text: str) -> float:
    """A decay rate (Adam's beta1, the weight average's decay): from 0 up to, not including, 1."""
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def fraction(text: str) -> float:
    """A share of something, 0 and 1 included."""
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def build_parser() -> OneLineParser:
    """The flags, in the Chainer examples' style; their defaults are the shipped generator's recipe."""
    # Flags are spelled in full: a prefix such as --dis is refused, not taken for --dis-ch.
    parser = OneLineParser(prog=PROG, description=DESCRIPTION, allow_abbrev=False)
    parser.add_argument(
        "--device",
        "-d",
        default=None,
        help="Chainer device: -1 or @numpy for the CPU (default), 0 or @cupy:0 for GPU 0",
    )
    parser.add_argument(
        "--epoch", "-e", type=count_at_least(1), default=16, help="epochs to train (default 16)"
    )
    parser.add_argument(
        "--batchsize",
        "-b",
        type=count_at_least(1),
        default=32,
        help="images per batch (per process under MPI; default 32)",
    )
    parser.add_argument("--lr", type=positive_float, default=2e-4, help="Adam learning rate (default 2e-4)")
    parser.add_argument("--beta1", type=unit_float, default=0.0, help="Adam beta1 (default 0)")
    parser.add_argument(
        "--lr-decay-start",
        type=fraction,
        default=2 / 3,
        metavar="FRACTION",
        help="keep both learning rates at --lr for this fraction of the training iterations, then "
        "lower them linearly to 0 at the end (default 2/3; 1 = a constant rate); the iterations are "
        "those of this run's --epoch, so a run resumed with another --epoch decays over its new length",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed for weights, shuffling and noise (default 0)"
    )
    parser.add_argument(
        "--out",
        "-o",
        type=Path,
        default=Path("result"),
        help="folder for logs, plots, previews, snapshots and the exported generator (default result)",
    )
    add_data_flags(parser)
    parser.add_argument(
        "--resume", "-r", type=Path, default=None, help="trainer snapshot (snapshot_iter_N) to continue from"
    )
    parser.add_argument(
        "--snapshot-interval",
        type=count_at_least(1),
        default=None,
        metavar="ITERATIONS",
        help="iterations between snapshots and generator exports (default: one every epoch); "
        "there is always one at the end",
    )
    parser.add_argument(
        "--log-interval",
        type=count_at_least(1),
        default=100,
        help="iterations between log lines (default 100)",
    )
    parser.add_argument(
        "--export",
        type=Path,
        default=None,
        help="at the end, also write the generator and preview.png here (e.g. weights/)",
    )
    parser.add_argument(
        "--export-only",
        action="store_true",
        help="with --resume and --export: write that snapshot's generator (its weight average, or with "
        "--ema 0 its last iterate) to --export without training, e.g. to ship one checkpoint of a long run",
    )
    parser.add_argument(
        "--ema",
        type=unit_float,
        default=0.999,
        help="decay of the generator weights' moving average, which is what gets previewed and "
        "exported (default 0.999; 0 = the last iterate); update t = 1, 2, ... uses min(EMA, "
        "(1 + t) / (10 + t)), so that short runs and early previews average too",
    )
    parser.add_argument(
        "--gen-ch", type=count_at_least(1), default=128, help="generator channel width (default 128)"
    )
    parser.add_argument(
        "--dis-ch",
        type=count_at_least(1),
        default=64,
        help="channel width of the projection discriminator (default 64)",
    )
    parser.add_argument(
        "--class-weight",
        type=fraction,
        default=0.1,
        help="weight of a class head on the discriminator, trained on real digits, whose "
        "cross-entropy on the fakes joins the generator's loss (default 0.1; 0: no head)",
    )
    parser.add_argument(
        "--communicator",
        choices=COMMUNICATORS,
        default=None,
        help="train data-parallel under mpiexec with this ChainerMN communicator: naive (CPU) or "
        "pure_nccl (one GPU per process: the one it sees where CUDA_VISIBLE_DEVICES shows it one, else "
        "the one numbered by its rank on its node); the generator's batch norms use each process's own "
        "batch; needs requirements-mpi.txt (and requirements-gpu.txt for pure_nccl)",
    )
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags, checked alone and together; a bad one exits with one line and status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.export_only and (args.resume is None or args.export is None):
        parser.error("--export-only needs --resume and --export")
    if args.communicator == "pure_nccl" and args.device is not None:
        parser.error("--device: --communicator pure_nccl gives each process its own GPU")
    return args


def set_up_process() -> None:
    """The settings that hold for the whole training process, made once at start-up: the C library
    keeps freed memory (training/memory.py), and Chainer computes convolutions and leaky ReLUs with
    model/cpu_kernels.py (Chainer's results up to float rounding, 1.3-1.5x as fast on the CPU)."""
    keep_freed_memory()
    cpu_kernels.install()


def main(argv: list[str] | None = None) -> int:
    """Train (or with --export-only just export) as the flags say; 0, or 2 after a one-line error.

    Under MPI every process runs this; after each step that can fail, all of them stop together on the
    first process's error (shared_error) and rank 0 alone prints it."""
    args = parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    set_up_process()
    try:
        comm = communicator(args.communicator)
    except Exception as error:  # no mpi4py or MPI library; for pure_nccl no CuPy, NCCL or GPU
        return fail(PROG, f"--communicator {args.communicator}: {error}")
    rank = 0 if comm is None else comm.rank

    def fail_on_rank_0(message: str) -> int:
        return fail(PROG, message) if rank == 0 else 2

    device, error = chosen_device(args, comm)
    if error := shared_error(comm, error):
        return fail_on_rank_0(error)
    dataset, error = training_data(args, comm) if rank == 0 else (None, None)  # rank 0 reads, then scatters
    if error := shared_error(comm, error):
        return fail_on_rank_0(error)
    trainer = build_trainer(args, dataset, device, comm)
    error = None if args.resume is None else load_snapshot(args.resume, trainer)  # on every process
    if error := shared_error(comm, error):
        return fail_on_rank_0(error)
    if not args.export_only and (status := train(trainer, args, argv)) is not None:
        return status
    if args.export is not None and rank == 0:
        return export_generator(trainer, args, argv)
    return 0


def communicator(name: str | None):
    """ChainerMN's communicator over the processes that mpiexec started, or None for a single process
    (which then loads neither ChainerMN nor MPI)."""
    if name is None:
        return None
    from training import distributed

    return distributed.communicator(name)


def chosen_device(args: argparse.Namespace, comm) -> tuple[chainer.backend.Device | None, str | None]:
    """(this process's device, in use), or (None, why it cannot be used): --device, or under
    --communicator pure_nccl the GPU of the process's rank on its node."""
    pure_nccl = args.communicator == "pure_nccl"
    spec = args.device or "-1"
    try:
        if pure_nccl:
            from training.distributed import gpu_of

            spec = gpu_of(comm)
        device = chainer.get_device(spec)
        device.use()
    except Exception as error:  # Chainer raises several types for a bad or unusable device spec
        flag = "--communicator pure_nccl" if pure_nccl else f"--device {spec}"
        return None, f"{flag}: {device_problem(spec, error)}"
    return device, None


def training_data(args: argparse.Namespace, comm) -> tuple[object, str | None]:
    """(the MNIST training set, None), or (None, why the run cannot start on it)."""
    try:
        dataset = load_mnist(args.data, args.limit)
    except DataError as error:
        return None, str(error)
    return dataset, start_problem(args, dataset, 1 if comm is None else comm.size)


def start_problem(args: argparse.Namespace, dataset, processes: int) -> str | None:
    """Why the run cannot start: too few images for a batch, or an output that cannot be written."""
    if not args.export_only and len(dataset) < args.batchsize * processes:
        per_process = f" for {processes} processes" if processes > 1 else ""
        return f"--batchsize {args.batchsize}{per_process}: more than the {len(dataset)} training images"
    outputs = {"--export": args.export} if args.export_only else {"--out": args.out, "--export": args.export}
    for flag, folder in outputs.items():
        if folder is not None and (problem := unwritable(flag, folder)):
            return problem
    return None


def load_snapshot(path: Path, trainer: chainer.training.Trainer) -> str | None:
    """Restore `trainer` from a snapshot; else why not, naming the flag that differs where it can."""
    try:
        chainer.serializers.load_npz(str(path), trainer)
    except FileNotFoundError:
        return f"--resume {path}: file not found"
    except Exception as exception:  # a damaged or foreign npz raises many types
        images = len(trainer.updater.data)
        try:
            with np.load(path) as snapshot:
                taken_on = len(snapshot["updater/iterator:main/order"])
        except Exception:  # not even an npz of a trainer: the message below says so
            taken_on = images
        if taken_on != images:
            return (
                f"--resume {path}: taken on {taken_on} training images, this run has {images}: "
                "pass the --data and --limit it was taken with"
            )
        return f"--resume {path}: not a snapshot of this trainer ({exception})"
    return None


def train(trainer: chainer.training.Trainer, args: argparse.Namespace, argv: list[str]) -> int | None:
    """Run the trainer: None when it finished (or had nothing left to train), else the exit status
    after one line that says how to resume (a signal stopped it, or a file could not be written)."""
    if args.resume is not None and trainer.updater.epoch_detail >= args.epoch:
        print(
            f"--resume {args.resume}: at epoch {trainer.updater.epoch_detail:g} of --epoch {args.epoch}, "
            "nothing is left to train (a larger --epoch trains on)"
        )
        return None
    try:
        stopper = trainer.get_extension("StopOnSignal").catching()
    except ValueError:  # under MPI the signals keep their usual meaning
        stopper = contextlib.nullcontext()
    try:
        with stopper:
            trainer.run(show_loop_exception_msg=False)
    except TrainingStopped as stopped:
        print(
            f"{PROG}: {stopped}; resume with: {resume_command(PROG, argv, stopped.snapshot)}", file=sys.stderr
        )
        return 128 + stopped.signum
    except OSError as exception:
        snapshot = latest_snapshot(args.out)
        if snapshot is None:
            return fail(PROG, f"{written(exception)}; no snapshot was written yet")
        return fail(
            PROG,
            f"{written(exception)}; once it can be written, resume with: "
            f"{resume_command(PROG, argv, snapshot)}",
        )
    return None


def export_generator(trainer: chainer.training.Trainer, args: argparse.Namespace, argv: list[str]) -> int:
    """Write the generator to --export: 0, or 2 after a line that says how to export once it can be
    written (the files there are left as they were)."""
    try:
        export(trainer, args.ema, args.export)
    except OSError as error:
        snapshot = (None if args.export_only else latest_snapshot(args.out)) or args.resume
        again = resume_command(PROG, without_flag(argv, "--export-only", takes_value=False), snapshot)
        return fail(
            PROG,
            f"{written(error)}; the files in {args.export} are as they were; "
            f"once it can be written, export with: {again} --export-only",
        )
    print(f"exported the generator to {args.export}")
    return 0
