"""Measure a generator against the quality bar with the shipped MNIST classifier.

python evaluate.py --data ../shared/mnist                       # weights/ -> result/evaluation.json
python evaluate.py --generator result --per-class 100 --report /tmp/quick.json
"""

import sys

from cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
