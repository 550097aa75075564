"""The loaded generator's folded weights as one binary file, for the page's own forward pass.

static/generator.js draws the picture in the browser while a slider is dragged. It reads the very
arrays the server's FoldedGenerator computes with, so there is one source of truth (generator.npz)
and no second file to keep in step: the file is made from the loaded generator on first request.

Layout: a little-endian uint32 n, n bytes of JSON naming each array's shape (padded with spaces to
a multiple of 4), then the arrays as little-endian float32, one after the other, in that order.
"""

import gzip
import json
import struct
import threading

import numpy as np

from model.inference import FoldedGenerator
from webapp.networks import Networks

FORMAT = "folded-generator-float32"

_lock = threading.Lock()


def weights_file(gen: FoldedGenerator) -> bytes:
    """The file's bytes for a loaded generator."""
    arrays = gen.arrays()
    header = {
        "format": FORMAT,
        "z_size": gen.z_size,
        "ch": gen.ch,
        "n_classes": gen.n_classes,
        "split": gen.split,
        "arrays": [{"name": name, "shape": list(array.shape)} for name, array in arrays.items()],
    }
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 4)  # the float32 data starts on a multiple of 4 bytes
    data = b"".join(np.ascontiguousarray(array, "<f4").tobytes() for array in arrays.values())
    return struct.pack("<I", len(text)) + text + data


def encoded_weights(networks: Networks) -> tuple[bytes, bytes]:
    """(plain, gzip) bytes of the loaded generator's file, made once per app and kept on its networks
    (webapp/networks.py)."""
    with _lock:
        if networks.browser_weights is None:
            plain = weights_file(networks.generator.folded)
            networks.browser_weights = (plain, gzip.compress(plain, 6, mtime=0))
        return networks.browser_weights
