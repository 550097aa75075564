"""Save and load the generator: weights in generator.npz, metadata in generator.json (model/files.py)."""

from pathlib import Path

import numpy as np

from model.files import checked_sizes, load_chain, save_chain
from model.inference import HANDWRITING_ARRAY
from model.net import Generator
from model.sampling import NOISE_RULE

ARCHITECTURE = "cdcgan-fc7x7-deconv4x2"
WEIGHTS_NAME = "generator.npz"
METADATA_NAME = "generator.json"
PREVIEW_NAME = "preview.png"
MAX_SIZE = 1024  # 8x the default widths; keeps a damaged generator.json from asking for terabytes


class WeightsError(Exception):
    """The generator files are missing, damaged or do not match their metadata."""


def architecture_of(gen: Generator) -> dict:
    """The sizes and options needed to rebuild `gen` before its weights are loaded."""
    return {
        "name": ARCHITECTURE,
        "z_size": gen.z_size,
        "ch": gen.ch,
        "n_classes": gen.n_classes,
    }


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
    """Write generator.npz (float32, CPU) and generator.json into `folder`, with the preview.png
    `preview` beside them when given, committed together; return the metadata.

    handwriting: (directions, how they were fitted) from model.handwriting, stored in the npz and
    under "handwriting" in the JSON, which tells the loader to expect them.
    """
    metadata = {key: value for key, value in metadata.items() if key != "handwriting"}
    if handwriting is not None:
        gen = with_handwriting(gen, handwriting[0])
        metadata["handwriting"] = handwriting[1]
    elif hasattr(gen, HANDWRITING_ARRAY):
        raise ValueError("gen carries handwriting directions: pass them, with how they were fitted")
    described = {
        "architecture": architecture_of(gen),
        "z": {
            "size": gen.z_size,
            "distribution": "uniform[-1, 1)",
            "from_seed": NOISE_RULE,
        },
        **metadata,
    }
    beside = {PREVIEW_NAME: preview} if preview is not None else {}
    return save_chain(gen, folder, WEIGHTS_NAME, METADATA_NAME, described, beside)


def architecture_arguments(metadata: dict, path: Path) -> dict:
    """Generator's arguments from the metadata's architecture, each checked before it sizes arrays.

    A generator of earlier commits with plain batch norms states the same name; its npz lacks the
    labels' gains and biases, which fill_from_npz names when it refuses the file.
    """
    arch = metadata.get("architecture")
    name = arch.get("name") if isinstance(arch, dict) else arch
    if name != ARCHITECTURE:
        raise WeightsError(f"{path}: unknown architecture {name!r}")
    return checked_sizes(arch, dict.fromkeys(("z_size", "ch", "n_classes"), MAX_SIZE), path, WeightsError)


def load_generator(folder: Path) -> tuple[Generator, dict]:
    """Rebuild the generator from `folder`, checking the npz against the metadata's sha256; with the
    handwriting directions (gen.handwriting) when generator.json says it has them."""
    path = Path(folder) / METADATA_NAME

    def build(metadata: dict) -> Generator:
        arguments = architecture_arguments(metadata, path)
        gen = Generator(**arguments)
        if "handwriting" in metadata:  # then the npz must hold the directions, of this shape
            gen.add_persistent(HANDWRITING_ARRAY, np.zeros((3, arguments["z_size"]), np.float32))
        return gen

    return load_chain(folder, WEIGHTS_NAME, METADATA_NAME, build, WeightsError)
