"""Data-parallel training with ChainerMN: two CPU processes under Open MPI's mpiexec."""

import importlib.util
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import chainer
import numpy as np
import pytest
from helpers import write_mnist_folder

from cli.train import main
from training import distributed

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
        "from cli.train import main\n"
        f"assert main({argv!r}) == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('chainermn', 'mpi4py')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].endswith("[]")  # after the progress bar's escape codes
    assert (tmp_path / "generator.npz").exists()


@pytest.mark.parametrize(
    ("intra_rank", "visible", "gpu"),
    [(0, 8, 0), (5, 8, 5), (3, 1, 0), (0, 1, 0)],
    ids=["rank 0 of 8", "rank 5 of 8", "one GPU shown to rank 3", "one GPU shown to rank 0"],
)
def test_a_process_takes_the_gpu_of_its_rank_or_the_only_one_it_sees(intra_rank, visible, gpu):
    """A scheduler that shows each process one GPU (CUDA_VISIBLE_DEVICES, SLURM's --gpus-per-task=1)
    numbers it 0 in every process, whatever the rank."""
    assert distributed.gpu_number(intra_rank, visible) == gpu


def test_more_processes_on_a_node_than_gpus_it_shows_is_an_error(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    with pytest.raises(ValueError, match=r"process 2 on its node sees 2 GPUs \(CUDA_VISIBLE_DEVICES='0,1'\)"):
        distributed.gpu_number(2, 2)


def fake_cupy(monkeypatch, nccl_available: bool, gpus: int) -> None:
    """CuPy as chainer.backends.cuda finds it, with or without NCCL, showing `gpus` GPUs."""
    runtime = types.SimpleNamespace(getDeviceCount=lambda: gpus, CUDARuntimeError=RuntimeError)
    nccl = types.ModuleType("cupy.cuda.nccl")
    nccl.available = nccl_available
    cuda = types.ModuleType("cupy.cuda")
    cuda.nccl, cuda.runtime = nccl, runtime
    cupy = types.ModuleType("cupy")
    cupy.cuda = cuda
    for name, module in (("cupy", cupy), ("cupy.cuda", cuda), ("cupy.cuda.nccl", nccl)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(chainer.backends.cuda, "available", True)
    monkeypatch.setattr(chainer.backends.cuda, "cupy", cupy)


@pytest.mark.parametrize(
    ("cupy", "message"),
    [
        (None, "needs CuPy and NCCL: pip install -r requirements-gpu.txt"),
        ((False, 1), "needs NCCL, which CuPy 13 loads from the nvidia-nccl-cu12 wheel"),
        ((True, 0), "needs a GPU, and CUDA shows this process none (CUDA_VISIBLE_DEVICES='')"),
    ],
    ids=["no CuPy", "no NCCL", "no GPU"],
)
def test_pure_nccl_without_cupy_nccl_or_a_gpu_is_one_line_before_mpi_starts(
    monkeypatch, capsys, cupy, message
):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # the check comes first: MPI is never reached
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    if cupy is None:
        monkeypatch.setattr(chainer.backends.cuda, "available", False)
    else:
        fake_cupy(monkeypatch, *cupy)
    assert main(["--communicator", "pure_nccl"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"train.py: error: --communicator pure_nccl: {message}")
    assert err.count("\n") == 1
