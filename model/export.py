"""Save and load the generator: its weights file generator.npz (model/files.py), with preview.png and
generator.json written from it for people."""

from pathlib import Path

import numpy as np

from model.files import architecture_sizes, load_network, save_network
from model.inference import HANDWRITING_ARRAY
from model.net import Generator
from model.sampling import NOISE_RULE

ARCHITECTURE = "cdcgan-fc7x7-deconv4x2-labelbn"  # a new name whenever the network changes
WEIGHTS_NAME = "generator.npz"
PREVIEW_NAME = "preview.png"
SIZE_BOUNDS = dict.fromkeys(("z_size", "ch", "n_classes"), 1024)  # 8x the default widths


def architecture_of(gen: Generator) -> dict:
    """The sizes and options needed to rebuild `gen` before its weights are loaded."""
    return {"name": ARCHITECTURE, "z_size": gen.z_size, "ch": gen.ch, "n_classes": gen.n_classes}


def with_handwriting(gen: Generator, directions: np.ndarray) -> Generator:
    """A copy of `gen` (sharing its weights) that carries the handwriting directions (3, z_size),
    saved in generator.npz beside its weights."""
    carrier = gen.copy(mode="share")
    if hasattr(carrier, HANDWRITING_ARRAY):
        setattr(carrier, HANDWRITING_ARRAY, np.asarray(directions, np.float32))
    else:
        carrier.add_persistent(HANDWRITING_ARRAY, np.asarray(directions, np.float32))
    return carrier


def save_generator(
    gen: Generator,
    folder: Path,
    metadata: dict,
    preview: bytes | None = None,
    handwriting: tuple[np.ndarray, dict] | None = None,
) -> dict:
    """Write generator.npz (float32, CPU) into `folder`, then generator.json and the preview.png
    `preview` when given; return the metadata.

    handwriting: (directions, how they were fitted) from model.handwriting, stored as the array
    `handwriting` and under "handwriting" in the metadata, which tells the loader to expect them.
    """
    metadata = {key: value for key, value in metadata.items() if key != "handwriting"}
    if handwriting is not None:
        gen = with_handwriting(gen, handwriting[0])
        metadata["handwriting"] = handwriting[1]
    elif hasattr(gen, HANDWRITING_ARRAY):
        raise ValueError("gen carries handwriting directions: pass them, with how they were fitted")
    described = {
        "architecture": architecture_of(gen),
        "z": {"size": gen.z_size, "distribution": "uniform[-1, 1)", "from_seed": NOISE_RULE},
        **metadata,
    }
    beside = {PREVIEW_NAME: preview} if preview is not None else {}
    return save_network(gen, Path(folder) / WEIGHTS_NAME, described, beside)


def build_generator(metadata: dict, path: Path) -> Generator:
    """The empty generator that the metadata describes, with room for the handwriting directions
    when it says it has them."""
    sizes = architecture_sizes(metadata, path, ARCHITECTURE, SIZE_BOUNDS)
    gen = Generator(**sizes)
    if "handwriting" in metadata:
        gen.add_persistent(HANDWRITING_ARRAY, np.zeros((3, sizes["z_size"]), np.float32))
    return gen


def load_generator(folder: Path) -> tuple[Generator, dict]:
    """The generator of `folder`'s generator.npz, with its metadata; WeightsError if it cannot be."""
    path = Path(folder) / WEIGHTS_NAME
    return load_network(path, lambda metadata: build_generator(metadata, path))
