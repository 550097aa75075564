"""convert_weights.py: a weights folder of the earlier two-file format becomes today's, its arrays kept;
the app refuses the earlier format with one line naming that command."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, lively_generator

import webapp
from model import export
from model.classifier import Classifier, load_classifier
from model.files import chain_arrays, npz_bytes
from webapp import EXIT_BAD_WEIGHTS


def write_earlier_format(chain, path: Path, metadata: dict) -> str:
    """`path` and the json beside it as the earlier format wrote them: the arrays alone, and the
    metadata with the npz's sha256 (returned)."""
    data = npz_bytes(chain_arrays(chain))
    sha256 = hashlib.sha256(data).hexdigest()
    path.write_bytes(data)
    path.with_suffix(".json").write_text(json.dumps({**metadata, "sha256": sha256}))
    return sha256


def convert(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "convert_weights.py", str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def earlier(tmp_path) -> tuple[dict, Path]:
    """A folder of the earlier format: a generator, and a classifier whose sha256 its metadata records."""
    networks = {"generator": lively_generator(), "classifier": Classifier(ch=4, n_features=8)}
    architecture = {
        "name": "mnist-cnn-conv3x3x4-fc",
        "ch": 4,
        "n_features": 8,
        "n_classes": 10,
        "dropout": 0.3,
    }
    sha256 = write_earlier_format(
        networks["classifier"], tmp_path / "classifier.npz", {"architecture": architecture}
    )
    architecture = {"name": "cdcgan-fc7x7-deconv4x2", "z_size": 100, "ch": 16, "n_classes": 10}
    metadata = {"architecture": architecture, "epochs": 3, "evaluation": {"classifier": {"sha256": sha256}}}
    write_earlier_format(networks["generator"], tmp_path / "generator.npz", metadata)
    return networks, tmp_path


def test_the_app_refuses_the_earlier_format_with_one_line_naming_the_command(earlier, monkeypatch, capsys):
    _, folder = earlier
    monkeypatch.setenv("GENERATOR_DIR", str(folder))
    with pytest.raises(SystemExit) as exit_info:
        webapp.serve()
    assert exit_info.value.code == EXIT_BAD_WEIGHTS
    assert capsys.readouterr().err.splitlines() == [
        f"app: error: weights failed their check: {folder / 'generator.npz'}: no metadata.json inside; if "
        "these are weights of the earlier format (their metadata in generator.json), convert them with: "
        f"python convert_weights.py {folder}"
    ]


def test_conversion_keeps_the_arrays_and_the_metadata_and_renames_each_sha256(earlier):
    networks, folder = earlier
    done = convert(folder)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("converted, the same arrays") == 2
    gen, metadata = export.load_generator(folder)
    clf, clf_metadata = load_classifier(folder)
    for loaded, original in ((gen, networks["generator"]), (clf, networks["classifier"])):
        arrays = chain_arrays(loaded)
        for name, array in chain_arrays(original).items():
            np.testing.assert_array_equal(arrays[name], array, err_msg=name)
    assert metadata["architecture"] == {"name": export.ARCHITECTURE, "z_size": 100, "ch": 16, "n_classes": 10}
    assert (
        metadata["epochs"] == 3 and metadata["evaluation"]["classifier"]["sha256"] == clf_metadata["sha256"]
    )
    assert json.loads((folder / "generator.json").read_text()) == metadata

    files = {path.name: path.read_bytes() for path in folder.iterdir()}
    again = convert(folder)
    assert again.returncode == 0 and again.stdout.count("already carries its metadata") == 2
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == files


def test_a_damaged_file_is_refused_in_one_line_and_nothing_is_converted(earlier):
    _, folder = earlier
    (folder / "classifier.npz").write_bytes((folder / "classifier.npz").read_bytes()[:-10])
    generator = (folder / "generator.npz").read_bytes()
    done = convert(folder)
    assert done.returncode == 2
    assert done.stderr == (
        f"convert_weights.py: error: {folder / 'classifier.npz'}: sha256 does not match classifier.json "
        "(damaged or replaced); nothing was converted\n"
    )
    assert (folder / "generator.npz").read_bytes() == generator


def test_a_missing_folder_is_one_line(tmp_path):
    done = convert(tmp_path / "none")
    assert (done.returncode, done.stderr) == (
        2,
        f"convert_weights.py: error: {tmp_path / 'none'}: folder not found\n",
    )
