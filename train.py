"""Train the conditional DCGAN on MNIST with Chainer and export the generator.

python train.py --data ../shared/mnist --epoch 1 --limit 2000 --out result
python train.py --device 0 --export weights/      # the shipped generator's recipe, on a GPU (CuPy)
mpiexec -n 8 python train.py --communicator pure_nccl   # data-parallel on 8 GPUs
"""

import sys

from cli.train import main

if __name__ == "__main__":
    sys.exit(main())
