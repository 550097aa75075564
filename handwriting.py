"""Fit the handwriting sliders' directions to a generator and write them into its weights.

python handwriting.py                                   # the shipped weights/, judged by weights/classifier.*
python handwriting.py --weights result --classifier weights

The flags and the run are in cli/handwriting.py; the fit in model/handwriting.py.
"""

import sys

from cli.handwriting import main

if __name__ == "__main__":
    sys.exit(main())
