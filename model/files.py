"""Weight files: a Chain's weights as an npz beside a JSON file that holds their sha256.

One writer and one reader, for the generator and the classifier alike. The writer commits a pair
with one rename: the new npz (and the files beside it, such as preview.png) are written and
fsynced into a staging folder, `.<stem>.staged/<sha256>/`; renaming the new JSON onto its name
commits them; the staged files are then renamed onto their own names. Whenever the writer stops,
the JSON names either the old npz (still in place) or the new one (in place or staged), and the
next write finishes or discards what a stopped one left. The reader reads the npz's bytes once,
hashes those very bytes and builds from them, so that it never loads one npz under another's
sha256; it reads again while a writer is moving the files, and refuses them when they stay
mismatched.

The npz bytes depend on the arrays alone (sorted entries, fixed zip metadata), so that the sha256
names the weights.
"""

import errno
import fcntl
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import time
import zipfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import chainer
import numpy as np

ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip can hold: a file's bytes never carry the time
MAX_METADATA_BYTES = 1 << 20  # the shipped generator.json is 12 KB
READ_ATTEMPTS = 5  # reads while a writer moves the files; each waits RETRY_SECONDS
RETRY_SECONDS = 0.01
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class NoSpaceError(OSError):
    """A file could not be written for want of space; the message names it and the bytes involved."""

    def __init__(self, path: Path, needed: int):
        self.path = Path(path)
        self.needed = needed
        try:
            free = f"{shutil.disk_usage(self.path.parent).free:,} bytes free"
        except OSError:
            free = "free space unknown"
        super().__init__(errno.ENOSPC, f"{path}: no space left on device ({needed:,} bytes to write, {free})")

    def __str__(self) -> str:
        return self.strerror


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An npz (deflated, as numpy.savez_compressed writes it) whose bytes depend on the arrays alone:
    entries sorted by name, every date and attribute fixed."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, whatever the writer's system
            info.external_attr = 0o644 << 16
            array = io.BytesIO()
            np.lib.format.write_array(array, np.asarray(arrays[name]), allow_pickle=False)
            archive.writestr(info, array.getvalue())
    return buffer.getvalue()


def chain_arrays(chain: chainer.Chain) -> dict[str, np.ndarray]:
    """The chain's parameters and persistent values by name, as chainer.serializers.save_npz names them,
    on the CPU."""
    return chainer.serializers.npz.serialize(chain)


def fsync_folder(folder: Path) -> None:
    """Make the folder's entries (a rename, a new name) durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def write_file(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, fsync it, rename it onto `path` and fsync the
    folder: `path` holds the old bytes or the new ones, never a part. The file gets the umask's mode
    (0644 by default), as any other file its user writes; a full disk raises NoSpaceError."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as error:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(error, OSError) and error.errno in DISK_FULL:
            raise NoSpaceError(path, len(data)) from None
        raise
    fsync_folder(path.parent)


def remove_temporaries(folder: Path, names: list[str]) -> None:
    """Delete the temporary files that a stopped write_file of one of `names` left in `folder`."""
    for name in names:
        for leftover in Path(folder).glob(f".{name}.*.tmp"):
            leftover.unlink(missing_ok=True)


@contextmanager
def locked(folder: Path):
    """Hold an exclusive lock on the folder itself (no lock file), so that writers take turns."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def staging_folder(folder: Path, weights_name: str) -> Path:
    return Path(folder) / f".{Path(weights_name).stem}.staged"


def committed_sha256(metadata_path: Path) -> str | None:
    try:
        return json.loads(metadata_path.read_text()).get("sha256")
    except (OSError, ValueError, AttributeError):
        return None


def finish_or_discard(folder: Path, weights_name: str, metadata_name: str, names: list[str]) -> None:
    """What a stopped write left: staged files of the committed sha256 go to their names, the rest
    (an uncommitted write, temporary files) is deleted."""
    staging = staging_folder(folder, weights_name)
    remove_temporaries(folder, [metadata_name, *names])
    if not staging.is_dir():
        return
    committed = committed_sha256(folder / metadata_name)
    for version in staging.iterdir():
        if version.name == committed and version.is_dir():
            remove_temporaries(version, names)
            for staged in version.iterdir():
                os.replace(staged, folder / staged.name)
            fsync_folder(folder)
        if version.is_dir():
            shutil.rmtree(version)
        else:
            version.unlink()
    staging.rmdir()
    fsync_folder(folder)


def save_chain(
    chain: chainer.Chain,
    folder: Path,
    weights_name: str,
    metadata_name: str,
    metadata: dict,
    beside: dict[str, bytes] | None = None,
) -> dict:
    """Write `chain`'s weights (float32 as the chain holds them, on the CPU), `metadata` plus their
    sha256, and the files `beside` them (name -> bytes), committed together; return the metadata."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    beside = beside or {}
    cpu_chain = chain.copy(mode="copy")
    cpu_chain.to_device("@numpy")
    data = npz_bytes(chain_arrays(cpu_chain))
    full = {**metadata, "sha256": hashlib.sha256(data).hexdigest()}
    text = (json.dumps(full, indent=2, sort_keys=True) + "\n").encode()
    names = [weights_name, *beside]
    with locked(folder):
        finish_or_discard(folder, weights_name, metadata_name, names)
        version = staging_folder(folder, weights_name) / full["sha256"]
        try:
            version.mkdir(parents=True, exist_ok=True)
            for name, content in {weights_name: data, **beside}.items():
                try:
                    write_file(version / name, content)
                except NoSpaceError as error:  # named as the user knows it, not by its staged name
                    raise NoSpaceError(folder / name, error.needed) from None
            fsync_folder(version.parent)
            fsync_folder(folder)
            write_file(folder / metadata_name, text)  # the commit
        finally:
            finish_or_discard(folder, weights_name, metadata_name, names)
    return full


def read_metadata(path: Path, error: type[Exception]) -> tuple[dict, bytes]:
    """The metadata JSON object and its bytes; else `error` naming the problem."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_METADATA_BYTES + 1)
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except OSError as problem:
        raise error(f"{path}: cannot be read ({problem.strerror})") from None
    if len(raw) > MAX_METADATA_BYTES:
        raise error(f"{path}: larger than {MAX_METADATA_BYTES:,} bytes, not weights metadata")
    try:
        metadata = json.loads(raw)
    except ValueError as problem:
        raise error(f"{path}: not valid JSON ({problem})") from None
    if not isinstance(metadata, dict):
        raise error(f"{path}: not a JSON object")
    return metadata, raw


def read_bounded(path: Path, limit: int, error: type[Exception]) -> tuple[bytes | None, tuple]:
    """(The file's bytes, or None when it is missing; its identity, to see whether it was replaced)."""
    try:
        with open(path, "rb") as f:
            stat = os.fstat(f.fileno())
            data = f.read(limit + 1)
    except FileNotFoundError:
        return None, ()
    except OSError as problem:
        raise error(f"{path}: cannot be read ({problem.strerror})") from None
    if len(data) > limit:
        raise error(f"{path}: {stat.st_size:,} bytes, more than weights of this architecture take")
    return data, (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def size_limit(arrays: dict[str, np.ndarray]) -> int:
    """The most bytes an npz of these arrays takes: deflate adds little even to random bytes."""
    raw = sum(array.nbytes for array in arrays.values())
    return raw + raw // 100 + 1024 * len(arrays) + 65536


NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def fill_from_npz(chain: chainer.Chain, data: bytes, path: Path, error: type[Exception]) -> chainer.Chain:
    """Fill `chain` from npz bytes. Every entry's header is checked against the array it fills before
    anything is read, so damaged bytes can ask for no memory, and never run pickled code."""
    expected = chain_arrays(chain)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = {info.filename: info for info in archive.infolist()}
            wanted = {f"{name}.npy" for name in expected}
            if entries.keys() != wanted:
                missing, extra = sorted(wanted - entries.keys()), sorted(entries.keys() - wanted)
                raise ValueError(f"missing {missing[:3]}, unexpected {extra[:3]}")
            for name, array in expected.items():
                info = entries[f"{name}.npy"]
                if info.file_size > array.nbytes + 4096:
                    raise ValueError(f"{name}: {info.file_size:,} bytes for a {array.shape} array")
                with archive.open(info) as f:
                    read_header = NPY_HEADERS.get(np.lib.format.read_magic(f))
                    if read_header is None:
                        raise ValueError(f"{name}: not an npy version numpy writes")
                    shape, _, dtype = read_header(f)
                if (
                    shape != array.shape
                    or dtype.hasobject
                    or not np.can_cast(dtype, array.dtype, "same_kind")
                ):
                    raise ValueError(f"{name}: {dtype} {shape}, expected {array.dtype} {array.shape}")
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                chainer.serializers.NpzDeserializer(npz, strict=True).load(chain)
    except Exception as problem:  # bytes that passed the sha256 check can still fail in any way
        raise error(f"{path}: does not fit the architecture ({problem})") from None
    return chain


def load_chain(
    folder: Path,
    weights_name: str,
    metadata_name: str,
    build: Callable[[dict], chainer.Chain],
    error: type[Exception],
) -> tuple[chainer.Chain, dict]:
    """The chain that build(metadata) makes, filled from the npz whose bytes have the metadata's
    sha256 (in place, or staged by a write that was committed but not finished); else `error`."""
    folder = Path(folder)
    weights, metadata_path = folder / weights_name, folder / metadata_name
    seen = None
    for _ in range(READ_ATTEMPTS):
        metadata, raw = read_metadata(metadata_path, error)
        chain = build(metadata)
        limit = size_limit(chain_arrays(chain))
        expected = metadata.get("sha256")
        data, identity = read_bounded(weights, limit, error)
        if data is not None and hashlib.sha256(data).hexdigest() == expected:
            return fill_from_npz(chain, data, weights, error), metadata
        if isinstance(expected, str) and re.fullmatch("[0-9a-f]{64}", expected):
            staged = staging_folder(folder, weights_name) / expected / weights_name
            staged_data, _ = read_bounded(staged, limit, error)
            if staged_data is not None and hashlib.sha256(staged_data).hexdigest() == expected:
                return fill_from_npz(chain, staged_data, weights, error), metadata
        if (raw, identity) == seen:
            break  # nothing moved since the last look: not a write in progress
        seen = raw, identity
        time.sleep(RETRY_SECONDS)
    if data is None:
        raise error(f"{weights}: file not found")
    raise error(f"{weights}: sha256 does not match {metadata_name} (damaged or replaced)")


def checked_sizes(arch: dict, bounds: dict[str, int], path: Path, error: type[Exception]) -> dict:
    """The architecture's integer sizes, each from 1 to its bound, checked before they size arrays."""
    sizes = {}
    for key, bound in bounds.items():
        value = arch.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= bound:
            raise error(f"{path}: architecture.{key} must be an integer from 1 to {bound}, got {value!r}")
        sizes[key] = value
    return sizes
