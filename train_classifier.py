"""Train the MNIST classifier that evaluate.py uses to judge the generator.

python train_classifier.py --data ../shared/mnist            # -> weights/classifier.npz + .json
python train_classifier.py --epoch 2 --out /tmp/clf          # quick try, downloads MNIST
"""

import sys

from cli.train_classifier import main

if __name__ == "__main__":
    sys.exit(main())
