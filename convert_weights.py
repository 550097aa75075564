"""Convert a weights folder of the earlier two-file format into today's one file per network.

python convert_weights.py weights/

The earlier format kept each network's metadata in a JSON file beside its npz (generator.json with
generator.npz, classifier.json with classifier.npz), tied to it by the sha256 of the npz's bytes.
Today each npz carries its metadata, and its sha256 names its arrays (model/files.py). The arrays
are kept as they are; each sha256 recorded for a converted network (its own, the classifier's in the
generator's evaluation report and handwriting fit) becomes the new one; preview.png is left alone.
The flags and the run are in cli/convert_weights.py.
"""

import sys

from cli.convert_weights import main

if __name__ == "__main__":
    sys.exit(main())
