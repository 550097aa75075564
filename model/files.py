"""A network's weights file: one npz holding its arrays and its metadata, committed by one rename.

`generator.npz` (or `classifier.npz`) holds an `<array>.npy` entry per array, named as
chainer.serializers.save_npz names them, and the entry `metadata.json`: the architecture the network
is rebuilt from, how it was made, and the sha256 of its arrays. It is written under a temporary name,
fsynced and renamed onto its name, so that a reader, which reads it through one descriptor, gets the
old file or the new one, whole. The `.json` (and preview) beside it are written from it, for people,
and renamed after it: no loader reads them.

The sha256 covers the arrays alone (each entry's name and npy bytes, in name order), so that it
names the weights whatever the metadata and whatever zlib compressed them; the file's bytes depend on
the arrays and the metadata alone (sorted entries, fixed zip dates and attributes).
"""

import errno
import hashlib
import io
import json
import os
import secrets
import shutil
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import chainer
import numpy as np

ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip can hold: a file's bytes never carry the time
METADATA_ENTRY = "metadata.json"
MAX_METADATA_BYTES = 1 << 20  # the shipped generator's metadata is 12 KB
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class WeightsError(Exception):
    """A network's weights file is missing, damaged, or not of the network asked for."""


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


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    """A zip of the entries (deflated, as numpy.savez_compressed writes them) whose bytes depend on
    the entries alone: sorted by name, every date and attribute fixed."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, whatever the writer's system
            info.external_attr = 0o644 << 16
            archive.writestr(info, entries[name])
    return buffer.getvalue()


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An npz of the arrays alone (a trainer snapshot), whose bytes depend on the arrays alone."""
    return zip_bytes({f"{name}.npy": npy_bytes(array) for name, array in arrays.items()})


def arrays_sha256(npys: dict[str, bytes]) -> str:
    """Hex sha256 of the arrays: each entry's name, a NUL and its npy bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(npys):
        digest.update(name.encode() + b"\0" + npys[name])
    return digest.hexdigest()


def json_bytes(metadata: dict) -> bytes:
    return (json.dumps(metadata, indent=2, sort_keys=True) + "\n").encode()


def chain_arrays(chain: chainer.Chain) -> dict[str, np.ndarray]:
    """The chain's parameters and persistent values by name, as chainer.serializers.save_npz names them,
    on the CPU."""
    return chainer.serializers.npz.serialize(chain)


def chain_npys(chain: chainer.Chain) -> dict[str, bytes]:
    """The chain's entries (`<array>.npy` -> npy bytes) as its weights file holds them: float32 as the
    chain holds them, on the CPU."""
    cpu_chain = chain.copy(mode="copy")
    cpu_chain.to_device("@numpy")
    return {f"{name}.npy": npy_bytes(array) for name, array in chain_arrays(cpu_chain).items()}


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    """Write each file (name -> bytes) under a temporary name in `folder` and fsync it; then rename
    each onto its name, in order, and fsync the folder. A file holds its old bytes or its new ones,
    never a part, and whatever stops the writes (a full disk: NoSpaceError naming the file) leaves
    every file as it was; only a stop between the renames leaves the first files new. The files get
    the umask's mode (0644 by default), as any other file their user writes."""
    temporaries = {}
    try:
        for name, data in files.items():
            temporaries[name] = Path(folder) / f".{name}.{secrets.token_hex(4)}.tmp"
            try:
                fd = os.open(temporaries[name], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as error:
                if error.errno in DISK_FULL:
                    raise NoSpaceError(Path(folder) / name, len(data)) from None
                raise
        for name, temporary in temporaries.items():
            os.replace(temporary, Path(folder) / name)
    except BaseException:
        for temporary in temporaries.values():
            try:
                os.unlink(temporary)
            except FileNotFoundError:  # renamed already, or never made
                pass
        raise
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)  # make the renames durable
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: Path, data: bytes) -> None:
    """write_files for one file."""
    write_files(Path(path).parent, {Path(path).name: data})


def remove_temporaries(folder: Path, names: list[str]) -> None:
    """Delete the temporary files that a stopped write_files of one of `names` left in `folder`."""
    for name in names:
        for leftover in Path(folder).glob(f".{name}.*.tmp"):
            leftover.unlink(missing_ok=True)


def save_network(
    chain: chainer.Chain, path: Path, metadata: dict, beside: dict[str, bytes] | None = None
) -> dict:
    """Write `chain`'s weights file at `path`, and from it `<stem>.json` and the files `beside` it
    (name -> bytes); return the metadata, with the arrays' sha256, that the file holds.

    Renaming the weights file onto its name commits the write: a write stopped before leaves the old
    files, one stopped after leaves the new weights (and perhaps the old json or preview, which the
    next write replaces, as it removes the temporary files a stopped one left)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    npys = chain_npys(chain)
    full = {**metadata, "sha256": arrays_sha256(npys)}
    text = json_bytes(full)
    files = {path.name: zip_bytes({**npys, METADATA_ENTRY: text}), path.with_suffix(".json").name: text}
    files.update(beside or {})
    remove_temporaries(path.parent, list(files))
    write_files(path.parent, files)
    return full


def architecture_sizes(metadata: dict, path: Path, name: str, bounds: dict[str, int]) -> dict[str, int]:
    """The integer sizes of the metadata's architecture, once its name is `name` and each size is from 1
    to its bound (checked before they size arrays, so that damaged metadata cannot ask for terabytes)."""
    arch = metadata.get("architecture")
    found = arch.get("name") if isinstance(arch, dict) else arch
    if found != name:
        raise WeightsError(f"{path}: unknown architecture {found!r} (expected {name!r})")
    sizes = {}
    for key, bound in bounds.items():
        value = arch.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= bound:
            raise WeightsError(
                f"{path}: architecture.{key} must be an integer from 1 to {bound}, got {value!r}"
            )
        sizes[key] = value
    return sizes


NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def read_arrays(
    archive: zipfile.ZipFile, expected: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], str]:
    """(The arrays the archive holds for `expected`'s names, their sha256). Every entry's header is
    checked against the array it fills before it is read, so that damaged bytes can ask for no memory,
    and none can run pickled code; ValueError says what does not fit."""
    entries = {info.filename: info for info in archive.infolist() if info.filename != METADATA_ENTRY}
    wanted = {f"{name}.npy" for name in expected}
    if entries.keys() != wanted:
        missing, extra = sorted(wanted - entries.keys()), sorted(entries.keys() - wanted)
        raise ValueError(f"missing {missing[:3]}, unexpected {extra[:3]}")
    npys = {}
    for name, array in expected.items():
        info = entries[f"{name}.npy"]
        if info.file_size > array.nbytes + 4096:
            raise ValueError(f"{name}: {info.file_size:,} bytes for a {array.shape} array")
        with archive.open(info) as f:
            read_header = NPY_HEADERS.get(np.lib.format.read_magic(f))
            if read_header is None:
                raise ValueError(f"{name}: not an npy version numpy writes")
            shape, _, dtype = read_header(f)
        if shape != array.shape or dtype.hasobject or not np.can_cast(dtype, array.dtype, "same_kind"):
            raise ValueError(f"{name}: {dtype} {shape}, expected {array.dtype} {array.shape}")
        npys[info.filename] = archive.read(info)
    arrays = {
        name: np.lib.format.read_array(io.BytesIO(npys[f"{name}.npy"]), allow_pickle=False)
        for name in expected
    }
    return arrays, arrays_sha256(npys)


def read_metadata(archive: zipfile.ZipFile, path: Path) -> dict:
    if METADATA_ENTRY not in archive.namelist():
        raise WeightsError(
            f"{path}: no {METADATA_ENTRY} inside; if these are weights of the earlier format (their "
            f"metadata in {path.stem}.json), convert them with: python convert_weights.py {path.parent}"
        )
    info = archive.getinfo(METADATA_ENTRY)
    if info.file_size > MAX_METADATA_BYTES:
        raise WeightsError(f"{path}: {METADATA_ENTRY} larger than {MAX_METADATA_BYTES:,} bytes")
    try:
        metadata = json.loads(archive.read(info))
    except ValueError as problem:
        raise WeightsError(f"{path}: {METADATA_ENTRY} is not valid JSON ({problem})") from None
    if not isinstance(metadata, dict):
        raise WeightsError(f"{path}: {METADATA_ENTRY} is not a JSON object")
    return metadata


def fill(chain: chainer.Chain, archive: zipfile.ZipFile, path: Path) -> str:
    """Fill `chain` from the archive's arrays; return their sha256."""
    try:
        arrays, sha256 = read_arrays(archive, chain_arrays(chain))
        chainer.serializers.NpzDeserializer(arrays, strict=True).load(chain)
    except (zipfile.BadZipFile, zlib.error, EOFError) as problem:  # a CRC or a deflated stream is wrong
        raise WeightsError(f"{path}: damaged ({problem})") from None
    except Exception as problem:  # bytes that passed their CRC can still fail in any way
        raise WeightsError(f"{path}: does not fit the architecture ({problem})") from None
    return sha256


def load_network(path: Path, build: Callable[[dict], chainer.Chain]) -> tuple[chainer.Chain, dict]:
    """The network that build(metadata) makes (or refuses, with WeightsError), filled from the weights
    file at `path` once its arrays have the sha256 its metadata records; else WeightsError naming the
    file and the problem."""
    path = Path(path)
    try:
        with open(path, "rb") as f, zipfile.ZipFile(f) as archive:
            metadata = read_metadata(archive, path)
            chain = build(metadata)
            sha256 = fill(chain, archive, path)
    except WeightsError:
        raise
    except FileNotFoundError:
        raise WeightsError(f"{path}: file not found") from None
    except Exception as problem:  # unreadable, not a zip, or a zip whose directory or metadata is damaged
        raise WeightsError(f"{path}: not a weights file, or damaged ({problem})") from None
    if sha256 != metadata.get("sha256"):
        raise WeightsError(f"{path}: sha256 does not match its arrays (damaged)")
    return chain, metadata
