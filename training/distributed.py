"""Data-parallel training over MPI with ChainerMN, imported only for train.py --communicator.

Every process builds the same networks from the same seed, trains on its own shard of rank 0's data
set and averages the gradients of all processes before each step, so that all hold the same weights.
The generator's batch norms normalize over each process's own batch: ChainerMN's global batch norm
(create_mnbn_model) cannot copy the generator's conditional batch norms.
"""

import os
import warnings

import chainer
import chainermn

from training.gpu import visible_gpus


def communicator(name: str) -> chainermn.CommunicatorBase:
    """The communicator over all processes that mpiexec started ('naive': CPU, 'pure_nccl': GPUs).

    It also makes an uncaught exception on any process abort the whole job (MPI_Abort), where
    the other processes would otherwise wait for it forever inside their next all-reduce.
    """
    if name == "pure_nccl" and (problem := nccl_problem()):
        raise RuntimeError(problem)
    try:
        import mpi4py.MPI  # noqa: F401  (chainermn's message for this is long and says less)
    except ImportError as error:
        raise ImportError(
            f"{error} (pip install -r requirements-mpi.txt, and an MPI such as Open MPI)"
        ) from None
    comm = chainermn.create_communicator(name)
    if not os.environ.get("CHAINERMN_FORCE_ABORT_ON_EXCEPTION"):  # if set, chainermn already did this
        chainermn.global_except_hook.add_hook()
    return comm


def nccl_problem() -> str | None:
    """Why this process cannot train with pure_nccl (no CuPy, no NCCL, no GPU), or None.

    CuPy 13's wheels do not carry NCCL: CuPy loads it from the nvidia-nccl-cu12 (CUDA 12) or
    nvidia-nccl-cu13 (CUDA 13) wheel, which requirements-gpu.txt installs.
    """
    if not chainer.backends.cuda.available:
        return "needs CuPy and NCCL: pip install -r requirements-gpu.txt"
    with warnings.catch_warnings():  # CuPy warns about a missing NCCL in many lines; one is said below
        warnings.simplefilter("ignore")
        from cupy.cuda import nccl
    if not nccl.available:
        return (
            "needs NCCL, which CuPy 13 loads from the nvidia-nccl-cu12 wheel (nvidia-nccl-cu13 for "
            "CUDA 13): pip install -r requirements-gpu.txt"
        )
    if visible_gpus() == 0:
        return f"needs a GPU, and CUDA shows this process none{visible_devices_note()}"
    return None


def visible_devices_note() -> str:
    """' (CUDA_VISIBLE_DEVICES=...)' where that variable is set, for messages about GPUs."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return "" if visible is None else f" (CUDA_VISIBLE_DEVICES={visible!r})"


def gpu_number(intra_rank: int, visible: int) -> int:
    """The GPU of process `intra_rank` on its node among the `visible` ones it sees: the only one where
    a scheduler shows each process its own (CUDA_VISIBLE_DEVICES, SLURM's --gpus-per-task=1), else
    the one numbered by the rank."""
    if visible == 1:
        return 0
    if intra_rank >= visible:
        raise ValueError(
            f"process {intra_rank} on its node sees {visible} GPUs{visible_devices_note()}: "
            "start at most one process per GPU, or show each process one GPU"
        )
    return intra_rank


def gpu_of(comm: chainermn.CommunicatorBase) -> str:
    """This process's GPU as a Chainer device spec (see gpu_number)."""
    return f"@cupy:{gpu_number(comm.intra_rank, visible_gpus())}"


def shard(dataset, comm: chainermn.CommunicatorBase) -> chainer.datasets.SubDataset:
    """This process's contiguous, equal-length share of rank 0's `dataset` (others pass None)."""
    return chainermn.scatter_dataset(dataset, comm)


def averaging_gradients(optimizer: chainer.Optimizer, comm: chainermn.CommunicatorBase) -> chainer.Optimizer:
    """`optimizer` (already set up) stepping on the mean gradient of all processes.

    ChainerMN's multi-node optimizer spends its first update() broadcasting rank 0's weights
    instead of stepping. Doing that here makes every training iteration a real step, as in a
    single process with the global batch.
    """
    optimizer = chainermn.create_multi_node_optimizer(optimizer, comm)
    optimizer.update()  # no loss function: broadcasts the weights and steps nothing
    return optimizer
