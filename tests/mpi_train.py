"""train.py for tests/test_distributed.py: also writes each process's weights after every update.

python tests/mpi_train.py [--crash-rank R] TRAIN_FLAGS...    (alone or under mpiexec)

The weights land in OUT/weights/rank{R}_iter{I}.npz. --crash-rank R raises an exception on rank R
after its first update.
"""

import sys
from pathlib import Path

import chainer
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script, from tests/
from cli import train as train_cli  # noqa: E402


def record_weights(folder: Path, rank: int, crash: bool):
    @chainer.training.make_extension(trigger=(1, "iteration"))
    def write_weights(trainer):
        updater = trainer.updater
        serializer = chainer.serializers.DictionarySerializer()
        for name in ("gen", "dis"):
            serializer[name].save(updater.get_optimizer(name).target)
        np.savez(folder / f"rank{rank}_iter{updater.iteration}.npz", **serializer.target)
        if crash:
            raise RuntimeError(f"planned crash on rank {rank}")

    return write_weights


def main(argv: list[str]) -> int:
    crash_rank = None
    if "--crash-rank" in argv:
        at = argv.index("--crash-rank")
        crash_rank = int(argv[at + 1])
        del argv[at : at + 2]
    build_trainer = train_cli.build_trainer

    def build_and_record(args, dataset, device, comm=None):
        trainer = build_trainer(args, dataset, device, comm)
        rank = 0 if comm is None else comm.rank
        (args.out / "weights").mkdir(parents=True, exist_ok=True)
        trainer.extend(record_weights(args.out / "weights", rank, rank == crash_rank))
        return trainer

    train_cli.build_trainer = build_and_record  # the name main() calls
    return train_cli.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
