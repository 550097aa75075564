"""convert_weights.py's flags and run: a weights folder of the earlier two-file format becomes today's."""

import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import chainer

from cli.flags import OneLineParser, fail
from model import classifier, export
from model.files import METADATA_ENTRY, WeightsError, arrays_sha256, chain_npys, fill, save_network

PROG = "convert_weights.py"
NETWORKS = (
    (export.WEIGHTS_NAME, export.ARCHITECTURE, export.build_generator),
    (classifier.WEIGHTS_NAME, classifier.ARCHITECTURE, classifier.build_classifier),
)


def carries_metadata(path: Path) -> bool:
    """Whether `path` is a weights file of today's format."""
    try:
        with zipfile.ZipFile(path) as archive:
            return METADATA_ENTRY in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def load_earlier_format(path: Path, build: Callable[[dict], chainer.Chain]) -> tuple[chainer.Chain, dict]:
    """The network of a file of the earlier format, and its metadata, read from `<stem>.json` beside it
    with the sha256 of the npz's bytes."""
    metadata_path = path.with_suffix(".json")
    try:
        metadata = json.loads(metadata_path.read_bytes())
        data = path.read_bytes()
    except FileNotFoundError as problem:
        raise WeightsError(f"{problem.filename}: file not found") from None
    except ValueError as problem:
        raise WeightsError(f"{metadata_path}: not valid JSON ({problem})") from None
    if not isinstance(metadata, dict) or hashlib.sha256(data).hexdigest() != metadata.get("sha256"):
        raise WeightsError(f"{path}: sha256 does not match {metadata_path.name} (damaged or replaced)")
    chain = build(metadata)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            fill(chain, archive, path)
    except zipfile.BadZipFile as problem:
        raise WeightsError(f"{path}: not a weights file ({problem})") from None
    return chain, metadata


def renamed(value, names: dict[str, str]):
    """`value` with every string that is a key of `names` replaced by its value, at any depth."""
    if isinstance(value, dict):
        return {key: renamed(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [renamed(item, names) for item in value]
    return names.get(value, value) if isinstance(value, str) else value


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder with generator.npz and classifier.npz (or either)")
    folder = parser.parse_args(argv).folder
    if not folder.is_dir():
        return fail(PROG, f"{folder}: folder not found")

    # Read every network first, so that a damaged one leaves the folder as it was.
    earlier = {}
    for name, architecture, build in NETWORKS:
        path = folder / name
        if not path.exists():
            continue
        if carries_metadata(path):
            print(f"{path}: already carries its metadata")
            continue

        def rebuild(metadata: dict, path=path, architecture=architecture, build=build):
            """The network as its metadata describes it, under today's name of its architecture: an
            earlier network of the same name is refused by the arrays it lacks."""
            if isinstance(metadata.get("architecture"), dict):
                metadata["architecture"]["name"] = architecture
            return build(metadata, path)

        try:
            earlier[path] = load_earlier_format(path, rebuild)
        except WeightsError as error:
            return fail(PROG, f"{error}; nothing was converted")

    names = {metadata["sha256"]: arrays_sha256(chain_npys(chain)) for chain, metadata in earlier.values()}
    for path, (chain, metadata) in earlier.items():
        old = metadata["sha256"]
        save_network(chain, path, renamed(metadata, names))
        print(f"{path}: converted, the same arrays; sha256 {old[:12]}… is now {names[old][:12]}…")
    return 0
