"""The weights' one writer and one reader: a kill at any step of a write leaves the old file or the new
one, a reader never loads one generator's arrays under another's metadata, and the sha256 names the
arrays."""

import errno
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, rewrite_weights, write_mnist_folder

from model import classifier, export, files
from model.classifier import Classifier, load_classifier, save_classifier
from model.export import PREVIEW_NAME, WEIGHTS_NAME, load_generator, save_generator
from model.files import WeightsError
from model.net import Generator

WRITE_STEPS = ("open", "write", "fsync", "replace", "unlink", "mkdir", "rmdir")
WRITTEN = ["generator.json", WEIGHTS_NAME, PREVIEW_NAME]


class Killed(BaseException):
    """The writer's process died here: nothing it would do next reaches the disk."""


class Steps:
    """Counts the writer's calls that change the disk; from call `kill_at` on, each raises Killed."""

    def __init__(self, monkeypatch, kill_at: int | None = None):
        self.count = 0
        self.kill_at = kill_at
        for name in WRITE_STEPS:
            monkeypatch.setattr(os, name, self.wrap(getattr(os, name)))

    def wrap(self, function):
        def step(*args, **kwargs):
            self.count += 1
            if self.kill_at is not None and self.count >= self.kill_at:
                raise Killed
            return function(*args, **kwargs)

        return step


def small_generator(seed: int) -> Generator:
    """A generator small enough to write and load a hundred times in a second, of random weights."""
    gen = Generator(ch=4)
    rng = np.random.RandomState(seed)
    for _, param in sorted(gen.namedparams()):
        param.array[...] = rng.normal(0, 0.3, param.shape)
    return gen


def arrays(gen: Generator) -> dict[str, np.ndarray]:
    return {name: param.array.copy() for name, param in gen.namedparams()}


def which(loaded: Generator, candidates: dict[str, Generator]) -> str:
    """The name of the candidate whose weights `loaded` holds exactly."""
    found = arrays(loaded)
    for name, gen in candidates.items():
        if all(np.array_equal(found[key], value) for key, value in arrays(gen).items()):
            return name
    raise AssertionError("the loaded weights are none of the candidates'")


def preview_of(name: str) -> bytes:
    return f"preview of {name}".encode()


def save(gen: Generator, folder: Path, name: str) -> dict:
    return save_generator(gen, folder, {"note": name}, preview=preview_of(name))


@pytest.fixture(scope="module")
def generators() -> dict[str, Generator]:
    return {"old": small_generator(seed=0), "new": small_generator(seed=1)}


@pytest.fixture(scope="module")
def old_folder(generators, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("old")
    save(generators["old"], folder, "old")
    return folder


def test_a_kill_at_any_step_of_a_write_leaves_the_old_weights_or_the_new_ones(
    generators, old_folder, tmp_path, monkeypatch
):
    with monkeypatch.context() as patch:
        steps = Steps(patch)
        save(generators["new"], tmp_path / "count", "new")
    assert steps.count >= 15, "the write was expected to take its steps through os"
    outcomes, left = [], set()
    for kill_at in range(1, steps.count + 1):
        folder = tmp_path / f"killed_at_{kill_at}"
        shutil.copytree(old_folder, folder)
        with monkeypatch.context() as patch, pytest.raises(Killed):
            Steps(patch, kill_at)
            save(generators["new"], folder, "new")
        loaded, metadata = load_generator(folder)
        outcomes.append(which(loaded, generators))
        assert metadata["note"] == outcomes[-1], (
            f"killed at step {kill_at}: weights of one, metadata of the other"
        )
        if outcomes[-1] == "old":
            assert (folder / PREVIEW_NAME).read_bytes() == preview_of("old")
        left.update(
            str(Path("weights") / path.relative_to(folder))
            for path in folder.rglob("*")
            if path.is_file() and path.name not in WRITTEN
        )
        # The next write removes what the killed one left.
        save(generators["new"], folder, "new")
        assert sorted(p.name for p in folder.iterdir()) == sorted(WRITTEN), f"killed at step {kill_at}"
        assert (folder / PREVIEW_NAME).read_bytes() == preview_of("new")
        assert which(load_generator(folder)[0], generators) == "new"
    # Early kills keep the old pair, late ones (after the commit) give the new one, nothing in between.
    assert outcomes[0] == "old" and outcomes[-1] == "new"
    assert outcomes == sorted(outcomes, key=["old", "new"].index)
    # Whatever a kill left in weights/ is ignored by git until the next write removes it.
    assert left, "no kill left anything: the test proved nothing"
    ignored = subprocess.run(["git", "check-ignore", *left], cwd=ROOT, capture_output=True, text=True)
    assert set(ignored.stdout.split()) == left


def test_a_loader_beside_a_writer_always_gets_the_weights_its_sha256_names(tmp_path):
    """A thread exports two generators in turn while the main thread loads: every load is consistent."""
    candidates = {"a": small_generator(seed=0), "b": small_generator(seed=1)}
    sha = {name: save(gen, tmp_path, name)["sha256"] for name, gen in candidates.items()}
    stop, writes = threading.Event(), []

    def writer():
        while not stop.is_set() and len(writes) < 2000:
            name = "ab"[len(writes) % 2]
            save(candidates[name], tmp_path, name)
            writes.append(name)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(100):
            loaded, metadata = load_generator(tmp_path)
            name = which(loaded, candidates)
            assert (metadata["note"], metadata["sha256"]) == (name, sha[name])
    finally:
        stop.set()
        thread.join()
    assert len(writes) > 10, "the writer barely ran: the test proved nothing"


def test_a_full_disk_names_the_file_and_the_bytes_and_keeps_the_old_weights(
    generators, old_folder, tmp_path, monkeypatch
):
    folder = shutil.copytree(old_folder, tmp_path / "weights")

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(files.NoSpaceError) as raised:
        save(generators["new"], folder, "new")
    monkeypatch.undo()
    message = str(raised.value)
    assert message.startswith(f"{folder / WEIGHTS_NAME}: no space left on device (")
    assert " bytes to write, " in message and " bytes free)" in message
    assert which(load_generator(folder)[0], generators) == "old"
    assert sorted(p.name for p in folder.iterdir()) == sorted(WRITTEN), "a temporary file was left"


def test_the_npz_bytes_depend_on_the_arrays_alone(monkeypatch):
    weights = {"b/W": np.arange(6, dtype=np.float32).reshape(2, 3), "a/N": np.asarray(3)}
    first = files.npz_bytes(weights)
    monkeypatch.setattr("time.time", lambda: 2_000_000_000.0)  # another day: no date in the file
    assert files.npz_bytes(dict(reversed(weights.items()))) == first
    with np.load(io.BytesIO(first), allow_pickle=False) as npz:
        assert npz.files == ["a/N", "b/W"]
        np.testing.assert_array_equal(npz["b/W"], weights["b/W"])
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert {info.date_time for info in archive.infolist()} == {files.ZIP_DATE}


@pytest.mark.slow
def test_two_same_seed_runs_export_the_same_arrays_whatever_the_hash_seed(tmp_path):
    """Chainer keeps a link's parameters in a set, whose order follows PYTHONHASHSEED."""
    data = write_mnist_folder(tmp_path, n=16)
    flags = ["--gen-ch", "8", "--dis-ch", "8", "--batchsize", "8", "--epoch", "1", "--data", str(data)]
    runs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
        command = [sys.executable, "train.py", *flags, "--out", str(tmp_path / seed)]
        runs.append(
            subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        )
    for run in runs:
        assert run.wait(timeout=300) == 0, run.stderr.read()
        run.stderr.close()
    assert load_generator(tmp_path / "1")[1]["sha256"] == load_generator(tmp_path / "2")[1]["sha256"]


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_exported_files_get_the_umasks_mode(generators, tmp_path, umask):
    previous = os.umask(umask)
    try:
        save(generators["new"], tmp_path, "new")
    finally:
        os.umask(previous)
    assert {name: (tmp_path / name).stat().st_mode & 0o777 for name in WRITTEN} == dict.fromkeys(
        WRITTEN, 0o666 & ~umask
    )


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def huge_header(entries: dict) -> None:
    name = next(iter(entries))
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }"
    entries[name] = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\0" * 16


def flipped(data: bytes, at: float) -> bytes:
    spoiled = bytearray(data)
    spoiled[int(at * len(data))] ^= 0x10
    return bytes(spoiled)


FILE_DAMAGES = {
    "random bytes": lambda data: np.random.RandomState(0).bytes(len(data)),
    "empty": lambda data: b"",
    **{
        f"cut at {at:.0%}": (lambda data, at=at: data[: int(at * len(data))])
        for at in (0.01, 0.3, 0.7, 0.999)
    },
    **{
        f"bit flipped at {at:.0%}": (lambda data, at=at: flipped(data, at))
        for at in (0.001, 0.2, 0.5, 0.9, 0.999)
    },
}


@pytest.mark.parametrize("damage", FILE_DAMAGES, ids=list(FILE_DAMAGES))
def test_a_damaged_weights_file_is_refused_by_name_or_loads_the_very_same_weights(
    generators, old_folder, tmp_path, damage
):
    """The sha256 covers the arrays, each entry's CRC-32 its bytes; a bit no reader uses (such as a
    date in the zip's directory, which the flip at 99.9% hits) may change and load the same weights."""
    path = shutil.copytree(old_folder, tmp_path / "weights") / WEIGHTS_NAME
    path.write_bytes(FILE_DAMAGES[damage](path.read_bytes()))
    try:
        loaded, metadata = load_generator(path.parent)
    except WeightsError as error:
        assert str(error).startswith(f"{path}: ")
    else:
        assert damage == "bit flipped at 100%", "only a flip in the zip's directory was expected to load"
        assert which(loaded, generators) == "old" and metadata == load_generator(old_folder)[1]


ENTRY_DAMAGES = {
    "random bytes": lambda entries: entries.update(
        {name: np.random.RandomState(0).bytes(len(data)) for name, data in entries.items()}
    ),
    **{
        f"cut at {at:.0%}": lambda entries, at=at: entries.update(
            {name: data[: int(at * len(data))] for name, data in entries.items()}
        )
        for at in (0.01, 0.5, 0.999)
    },
    "a pickled entry": lambda entries: entries.update(
        {next(iter(entries)): npy(np.array([{}], dtype=object))}
    ),
    "an entry claiming a terabyte": huge_header,
    "an extra entry": lambda entries: entries.update({"x.npy": npy(np.zeros(1))}),
    "an entry missing": lambda entries: entries.pop(next(iter(entries))),
}


@pytest.mark.parametrize("damage", ENTRY_DAMAGES, ids=list(ENTRY_DAMAGES))
def test_damaged_arrays_with_a_matching_sha256_are_refused_by_name(old_folder, tmp_path, damage):
    path = shutil.copytree(old_folder, tmp_path / "weights") / WEIGHTS_NAME
    rewrite_weights(path, arrays=ENTRY_DAMAGES[damage])
    with pytest.raises(WeightsError, match=f"^{path}: does not fit the architecture"):
        load_generator(path.parent)


def test_generator_json_is_written_from_the_weights_file_and_never_read(old_folder, tmp_path):
    folder = shutil.copytree(old_folder, tmp_path / "weights")
    written = json.loads((folder / "generator.json").read_text())
    assert load_generator(folder)[1] == written
    (folder / "generator.json").write_text("[]")
    assert load_generator(folder)[1] == written
    (folder / "generator.json").unlink()
    assert load_generator(folder)[1] == written


def test_the_sha256_names_the_arrays_and_the_file_its_contents(generators, tmp_path, monkeypatch):
    first = save(generators["old"], tmp_path / "a", "a note")
    assert save(generators["old"], tmp_path / "b", "another note")["sha256"] == first["sha256"]
    assert save(generators["new"], tmp_path / "c", "a note")["sha256"] != first["sha256"]
    monkeypatch.setattr("time.time", lambda: 2_000_000_000.0)  # another day: no date in the file
    save(generators["old"], tmp_path / "d", "a note")
    assert (tmp_path / "d" / WEIGHTS_NAME).read_bytes() == (tmp_path / "a" / WEIGHTS_NAME).read_bytes()


@pytest.mark.parametrize(
    ("architecture", "message"),
    [
        ({"ch": 1_000_000}, "architecture.ch must be an integer from 1 to 256, got 1000000"),
        ({"n_features": 0}, "architecture.n_features must be an integer from 1 to 1024, got 0"),
        ({"n_classes": "10"}, "architecture.n_classes must be an integer"),
        ({"dropout": 1.5}, r"architecture.dropout must be a number in \[0, 1\), got 1.5"),
    ],
)
def test_the_classifiers_sizes_are_bounded_before_they_size_arrays(tmp_path, architecture, message):
    save_classifier(Classifier(ch=4, n_features=8), tmp_path, {})
    rewrite_weights(
        tmp_path / "classifier.npz", metadata=lambda metadata: metadata["architecture"].update(architecture)
    )
    with pytest.raises(WeightsError, match=message):
        load_classifier(tmp_path)


# Each architecture name and a digest of the arrays (names and shapes, at small sizes) of the network it
# names: a changed network needs a new name (ARCHITECTURE), so that no file of the old one claims it.
ARRAYS_OF = {
    "cdcgan-fc7x7-deconv4x2-labelbn": "c2c3755bbca54f23",
    "mnist-cnn-conv3x3x4-fc": "6473832379d7efba",
}


@pytest.mark.parametrize(
    ("architecture", "network"),
    [
        (export.ARCHITECTURE, lambda: Generator(z_size=3, ch=2, n_classes=2)),
        (classifier.ARCHITECTURE, lambda: Classifier(ch=2, n_features=3, n_classes=2)),
    ],
    ids=["generator", "classifier"],
)
def test_the_architecture_name_changes_whenever_the_network_does(architecture, network):
    layout = sorted((name, array.shape) for name, array in files.chain_arrays(network()).items())
    digest = hashlib.sha256(repr(layout).encode()).hexdigest()[:16]
    assert ARRAYS_OF.get(architecture) == digest, (
        f"the network named {architecture!r} changed: give it a new ARCHITECTURE, added here with {digest!r}"
    )
