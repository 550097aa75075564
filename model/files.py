"""File helpers shared by the weight files: content hashes and crash-safe writes."""

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Call write(tmp_path), then rename the temporary file onto `path`: a crash never leaves a
    truncated file under the real name."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
