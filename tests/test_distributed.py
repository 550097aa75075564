"""Data-parallel training with ChainerMN: two CPU processes under Open MPI's mpiexec."""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import write_mnist_folder

from training.cli import main

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--gen-ch", "8", "--dis-ch", "8", "--log-interval", "100"]
BN_STATISTICS = ("avg_mean", "avg_var", "N")  # each process's own: they never feed a training step

needs_mpi = pytest.mark.skipif(
    shutil.which("mpiexec") is None or importlib.util.find_spec("mpi4py") is None,
    reason="needs Open MPI's mpiexec and mpi4py, which `make test` installs as root (`make mpi`)",
)


def mpiexec(n: int, *argv: str) -> subprocess.CompletedProcess:
    """tests/mpi_train.py on `n` processes of this machine, however many cores it has."""
    env = {
        **os.environ,
        "OMPI_MCA_rmaps_base_oversubscribe": "1",
        "OMPI_MCA_btl_vader_single_copy_mechanism": "none",  # no ptrace-based copies in containers
        "OMPI_ALLOW_RUN_AS_ROOT": "1",
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "CHAINER_WARN_VERSION_MISMATCH": "0",
    }
    command = ["mpiexec", "-n", str(n), sys.executable, "tests/mpi_train.py", *argv]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def mpi_train(n: int, *argv: str) -> subprocess.CompletedProcess:
    result = mpiexec(n, *TINY, "--communicator", "naive", *argv)
    assert result.returncode == 0, result.stderr
    return result


def weights(out: Path, rank: int, iteration: int) -> dict[str, np.ndarray]:
    with np.load(out / "weights" / f"rank{rank}_iter{iteration}.npz") as arrays:
        return dict(arrays)


def is_bn_statistic(key: str) -> bool:
    return key.rsplit("/", 1)[1] in BN_STATISTICS


@pytest.fixture(scope="module")
def eight_images(tmp_path_factory) -> Path:
    return write_mnist_folder(tmp_path_factory.mktemp("mnist8"), n=8)


@pytest.fixture(scope="module")
def sixteen_images(tmp_path_factory) -> Path:
    return write_mnist_folder(tmp_path_factory.mktemp("mnist16"), n=16)


def shuffled_run(sixteen_images, out: Path, *flags: str) -> subprocess.CompletedProcess:
    """Two processes, 8 images each, batch 2, shuffled: 2 epochs of 4 updates, snapshots every 3."""
    argv = ["--data", str(sixteen_images), "--epoch", "2", "-b", "2", "--snapshot-interval", "3"]
    return mpi_train(2, *argv, "--log-interval", "1", "--out", str(out), *flags)


@pytest.fixture(scope="module")
def uninterrupted(sixteen_images, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("uninterrupted")
    return out, shuffled_run(sixteen_images, out).stdout


@pytest.mark.slow
@needs_mpi
def test_shuffled_processes_keep_identical_weights_and_rank_0_alone_writes(uninterrupted):
    out, stdout = uninterrupted
    for iteration in range(1, 9):
        rank0, rank1 = weights(out, 0, iteration), weights(out, 1, iteration)
        for key, array in rank0.items():
            if not is_bn_statistic(key):
                np.testing.assert_array_equal(rank1[key], array, err_msg=f"{key} after update {iteration}")
    # Each process normalizes over its own images, so its batch norms' running statistics are its own.
    rank0, rank1 = weights(out, 0, 8), weights(out, 1, 8)
    assert any(not np.array_equal(rank1[key], rank0[key]) for key in rank0 if is_bn_statistic(key))
    names = {p.name for p in out.iterdir()}
    assert {"snapshot_iter_3", "snapshot_iter_6", "snapshot_iter_8", "generator.npz", "log"} <= names
    assert stdout.count("gen/loss") == 1, "more than one process printed the report"
    metadata = (out / "generator.json").read_text()
    assert '"processes": 2' in metadata and '"images_seen": 32' in metadata


@pytest.mark.slow
@needs_mpi
def test_two_processes_resume_from_rank_0s_snapshot_exactly(sixteen_images, uninterrupted, tmp_path):
    out, _ = uninterrupted
    shuffled_run(sixteen_images, tmp_path, "--resume", str(out / "snapshot_iter_3"))
    assert not (tmp_path / "weights" / "rank0_iter3.npz").exists(), "the resumed run started over"
    for rank in (0, 1):
        resumed, straight = weights(tmp_path, rank, 8), weights(out, rank, 8)
        for key, array in straight.items():
            # Rank 1 resumes rank 0's batch-norm statistics, which its training steps do not read.
            if rank == 0 or not is_bn_statistic(key):
                np.testing.assert_array_equal(resumed[key], array, err_msg=f"rank {rank}: {key}")


@pytest.mark.slow
@needs_mpi
def test_an_exception_on_one_process_aborts_the_whole_job(eight_images, tmp_path):
    argv = [
        "--data",
        str(eight_images),
        "-b",
        "2",
        "--epoch",
        "5",
        "--out",
        str(tmp_path),
        "--crash-rank",
        "1",
    ]
    result = mpiexec(2, *TINY, "--communicator", "naive", *argv)  # without the abort it would hang
    assert result.returncode != 0
    assert "planned crash on rank 1" in result.stderr
    assert "Calling MPI_Abort()" in result.stderr
    assert not (tmp_path / "weights" / "rank0_iter3.npz").exists()


@pytest.mark.slow
@needs_mpi
def test_a_data_error_on_rank_0_stops_every_process_with_one_line(tmp_path):
    result = mpiexec(2, "--communicator", "naive", "--data", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    line = f"train.py: error: {tmp_path / 'nowhere'}: data directory not found"
    assert result.stderr.count("train.py: error:") == 1 and line in result.stderr.splitlines()


def test_a_communicator_without_mpi4py_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now fails
    assert main(["--communicator", "naive"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("train.py: error: --communicator naive: No module named 'mpi4py.MPI'")
    assert err.count("\n") == 1 and "pip install -r requirements-mpi.txt" in err


@pytest.mark.slow
def test_a_single_process_run_imports_neither_chainermn_nor_mpi4py(eight_images, tmp_path):
    argv = [*TINY, "--batchsize", "4", "--epoch", "1", "--data", str(eight_images), "--out", str(tmp_path)]
    script = (
        "import sys\n"
        "from training.cli import main\n"
        f"assert main({argv!r}) == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('chainermn', 'mpi4py')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].endswith("[]")  # after the progress bar's escape codes
    assert (tmp_path / "generator.npz").exists()
