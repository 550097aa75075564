"""Data-parallel training over MPI with ChainerMN, imported only for train.py --communicator.

Every process builds the same networks from the same seed, trains on its own shard of rank 0's data
set and averages the gradients of all processes before each step, so that all hold the same weights.
The generator's batch norms normalize over each process's own batch: ChainerMN's global batch norm
(create_mnbn_model) cannot copy the generator's conditional batch norms.
"""

import os

import chainer
import chainermn


def communicator(name: str) -> chainermn.CommunicatorBase:
    """The communicator over all processes that mpiexec started ('naive': CPU, 'pure_nccl': GPUs).

    It also makes an uncaught exception on any process abort the whole job (MPI_Abort), where
    the other processes would otherwise wait for it forever inside their next all-reduce.
    """
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


def gpu_of(comm: chainermn.CommunicatorBase) -> str:
    """Each process takes the GPU numbered by its rank on its node."""
    return f"@cupy:{comm.intra_rank}"


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
