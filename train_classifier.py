"""Train the MNIST classifier that evaluate.py uses to judge the generator.

python train_classifier.py --data ../shared/mnist            # -> weights/classifier.npz + .json
python train_classifier.py --epoch 2 --export /tmp/clf       # quick try, downloads MNIST

The flags and the run are in cli/train_classifier.py; the network in model/classifier.py, its
augmentation and Trainer in training/classifier.py.
"""

import sys

from cli.train_classifier import main

if __name__ == "__main__":
    sys.exit(main())
