"""Weight files: a Chain's weights as a compressed npz beside a JSON file that holds their sha256.

Both files are written to a temporary name and renamed, so a crash never leaves a truncated file
under the real name; loading checks the npz against the sha256 before anything is built from it.
"""

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import chainer


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Call write(tmp_path), then rename the temporary file onto `path`."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def save_chain(chain: chainer.Chain, weights: Path, metadata_path: Path, metadata: dict) -> dict:
    """Write `chain`'s weights (float32, CPU) and `metadata` plus their sha256; return what was written."""
    weights.parent.mkdir(parents=True, exist_ok=True)
    cpu_chain = chain.copy(mode="copy")
    cpu_chain.to_device("@numpy")
    atomic_write(weights, lambda tmp: chainer.serializers.save_npz(tmp, cpu_chain, compression=True))
    full = {**metadata, "sha256": sha256_of(weights)}
    text = json.dumps(full, indent=2, sort_keys=True) + "\n"
    atomic_write(metadata_path, lambda tmp: Path(tmp).write_text(text))
    return full


def checked_metadata(weights: Path, metadata_path: Path, error: type[Exception]) -> dict:
    """The metadata JSON object, once the weights file is found to match its sha256; else `error`."""
    try:
        metadata = json.loads(metadata_path.read_text())
    except FileNotFoundError:
        raise error(f"{metadata_path}: file not found") from None
    except (OSError, ValueError) as problem:
        raise error(f"{metadata_path}: not valid JSON ({problem})") from None
    if not isinstance(metadata, dict):
        raise error(f"{metadata_path}: not a JSON object")
    if not weights.is_file():
        raise error(f"{weights}: file not found")
    if sha256_of(weights) != metadata.get("sha256"):
        raise error(f"{weights}: sha256 does not match {metadata_path.name} (damaged or replaced)")
    return metadata


def load_weights(weights: Path, chain: chainer.Chain, error: type[Exception]) -> None:
    """Fill `chain` from the npz; weights of other shapes or names raise `error`."""
    try:
        with open(weights, "rb") as f:  # numpy leaks its own handle when the zip is damaged
            chainer.serializers.load_npz(f, chain)
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as problem:
        raise error(f"{weights}: does not fit the architecture ({problem})") from None
