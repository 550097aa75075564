"""Train the conditional DCGAN on MNIST with Chainer and export the generator.

python train.py --data ../shared/mnist --epoch 1 --limit 2000 --out result
python train.py --device 0 --export weights/      # the shipped generator's recipe, on a GPU (CuPy)
mpiexec -n 8 python train.py --communicator pure_nccl   # data-parallel on 8 GPUs

The flags (their defaults are the shipped generator's recipe) and the run are in cli/train.py; the
networks in model/net.py, one training step in training/updater.py, the Trainer in training/trainer.py.
"""

import sys

from cli.train import main

if __name__ == "__main__":
    sys.exit(main())
