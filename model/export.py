"""Save and load the generator: weights in generator.npz, metadata in generator.json.

Both files are written to a temporary name and renamed, so a crash never leaves
a truncated file under the real name.
"""

import json
import zipfile
from pathlib import Path

import chainer

from model.files import atomic_write, sha256_of
from model.net import Generator

ARCHITECTURE = "cdcgan-fc7x7-deconv4x2"
WEIGHTS_NAME = "generator.npz"
METADATA_NAME = "generator.json"
MAX_SIZE = 1024  # 8x the default widths; keeps a damaged generator.json from asking for terabytes


class WeightsError(Exception):
    """The generator files are missing, damaged or do not match their metadata."""


def architecture_of(gen: Generator) -> dict:
    """The sizes needed to rebuild `gen` before its weights are loaded."""
    return {"name": ARCHITECTURE, "z_size": gen.z_size, "ch": gen.ch, "n_classes": gen.n_classes}


def save_generator(gen: Generator, folder: Path, metadata: dict) -> dict:
    """Write generator.npz (float32, CPU) and generator.json into `folder`; return the metadata."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cpu_gen = gen.copy(mode="copy")
    cpu_gen.to_device("@numpy")
    weights = folder / WEIGHTS_NAME
    atomic_write(weights, lambda tmp: chainer.serializers.save_npz(tmp, cpu_gen, compression=True))
    full = {
        "architecture": architecture_of(gen),
        "z": {
            "size": gen.z_size,
            "distribution": "uniform[-1, 1)",
            "from_seed": "numpy.random.default_rng(seed).uniform(-1, 1, z_size).astype(float32)",
        },
        **metadata,
        "sha256": sha256_of(weights),
    }
    text = json.dumps(full, indent=2, sort_keys=True) + "\n"
    atomic_write(folder / METADATA_NAME, lambda tmp: Path(tmp).write_text(text))
    return full


def load_metadata(folder: Path) -> dict:
    """The parsed generator.json of `folder`."""
    path = Path(folder) / METADATA_NAME
    try:
        metadata = json.loads(path.read_text())
    except FileNotFoundError:
        raise WeightsError(f"{path}: file not found") from None
    except (OSError, ValueError) as error:
        raise WeightsError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(metadata, dict):
        raise WeightsError(f"{path}: not a JSON object")
    return metadata


def architecture_sizes(metadata: dict, path: Path) -> dict:
    """z_size, ch and n_classes from the metadata's architecture, each checked before it sizes arrays."""
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
    return sizes


def load_generator(folder: Path) -> tuple[Generator, dict]:
    """Rebuild the generator from `folder`, checking the npz against the metadata's sha256."""
    folder = Path(folder)
    metadata = load_metadata(folder)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise WeightsError(f"{weights}: file not found")
    if sha256_of(weights) != metadata.get("sha256"):
        raise WeightsError(f"{weights}: sha256 does not match {METADATA_NAME} (damaged or replaced)")
    gen = Generator(**architecture_sizes(metadata, folder / METADATA_NAME))
    try:
        with open(weights, "rb") as f:  # numpy leaks its own handle when the zip is damaged
            chainer.serializers.load_npz(f, gen)
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as error:
        raise WeightsError(f"{weights}: does not fit the architecture ({error})") from None
    return gen, metadata
