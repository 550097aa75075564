"""Save and load the generator: weights in generator.npz, metadata in generator.json (model/files.py)."""

from pathlib import Path

from model.files import checked_sizes, load_chain, save_chain
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


def save_generator(gen: Generator, folder: Path, metadata: dict, preview: bytes | None = None) -> dict:
    """Write generator.npz (float32, CPU) and generator.json into `folder`, with the preview.png
    `preview` beside them when given, committed together; return the metadata."""
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
    """Rebuild the generator from `folder`, checking the npz against the metadata's sha256."""
    path = Path(folder) / METADATA_NAME

    def build(metadata: dict) -> Generator:
        return Generator(**architecture_arguments(metadata, path))

    return load_chain(folder, WEIGHTS_NAME, METADATA_NAME, build, WeightsError)
