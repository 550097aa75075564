"""Measure a generator against the quality bar with the shipped MNIST classifier.

python evaluate.py --data ../shared/mnist                       # weights/ -> result/evaluation.json
python evaluate.py --generator result --per-class 100 --report /tmp/quick.json

The flags and the run are in cli/evaluate.py; the measures in evaluation/.
"""

import sys

from cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
