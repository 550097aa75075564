"""Save and load the generator: weights in generator.npz, metadata in generator.json (model/files.py)."""

from pathlib import Path

from model.files import checked_metadata, load_weights, save_chain
from model.net import Generator
from model.sampling import NOISE_RULE

ARCHITECTURE = "cdcgan-fc7x7-deconv4x2"
WEIGHTS_NAME = "generator.npz"
METADATA_NAME = "generator.json"
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
        "label_bn": gen.label_bn,
    }


def save_generator(gen: Generator, folder: Path, metadata: dict) -> dict:
    """Write generator.npz (float32, CPU) and generator.json into `folder`; return the metadata."""
    folder = Path(folder)
    described = {
        "architecture": architecture_of(gen),
        "z": {
            "size": gen.z_size,
            "distribution": "uniform[-1, 1)",
            "from_seed": NOISE_RULE,
        },
        **metadata,
    }
    return save_chain(gen, folder / WEIGHTS_NAME, folder / METADATA_NAME, described)


def architecture_arguments(metadata: dict, path: Path) -> dict:
    """Generator's arguments from the metadata's architecture, each checked before it sizes arrays.

    An architecture without label_bn holds the plain batch norms, as label_bn false does.
    """
    arch = metadata.get("architecture")
    name = arch.get("name") if isinstance(arch, dict) else arch
    if name != ARCHITECTURE:
        raise WeightsError(f"{path}: unknown architecture {name!r}")
    sizes = {}
    for key in ("z_size", "ch", "n_classes"):
        value = arch.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIZE:
            raise WeightsError(
                f"{path}: architecture.{key} must be an integer from 1 to {MAX_SIZE}, got {value!r}"
            )
        sizes[key] = value
    label_bn = arch.get("label_bn", False)
    if not isinstance(label_bn, bool):
        raise WeightsError(f"{path}: architecture.label_bn must be true or false, got {label_bn!r}")
    return {**sizes, "label_bn": label_bn}


def load_generator(folder: Path) -> tuple[Generator, dict]:
    """Rebuild the generator from `folder`, checking the npz against the metadata's sha256."""
    folder = Path(folder)
    metadata = checked_metadata(folder / WEIGHTS_NAME, folder / METADATA_NAME, WeightsError)
    gen = Generator(**architecture_arguments(metadata, folder / METADATA_NAME))
    load_weights(folder / WEIGHTS_NAME, gen, WeightsError)
    return gen, metadata
