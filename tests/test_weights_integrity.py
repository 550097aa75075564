"""Start-up checks of the shipped weights: damaged files stop the app with one line, never half a site."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import (
    ROOT,
    free_port,
    garbage_arrays,
    lively_generator,
    rewrite_weights,
    save,
    save_small_classifier,
    web_command,
)

import webapp
from model.export import WEIGHTS_NAME, save_generator
from model.files import METADATA_ENTRY, WeightsError, zip_bytes
from model.net import Generator
from webapp import EXIT_BAD_WEIGHTS


def edit_architecture(folder: Path, **architecture) -> None:
    """Change the architecture that generator.npz records, keeping its (still matching) sha256."""
    rewrite_weights(
        folder / WEIGHTS_NAME, metadata=lambda metadata: metadata["architecture"].update(architecture)
    )


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def truncate_arrays(entries: dict[str, bytes]) -> None:
    for name, data in entries.items():
        entries[name] = data[: len(data) // 2]


def garbage_with_matching_sha256(folder: Path) -> None:
    """Random bytes as the arrays, their sha256 (wrongly) recorded: the bytes themselves must be refused."""
    rewrite_weights(folder / WEIGHTS_NAME, arrays=garbage_arrays)


def replace_metadata(folder: Path, text: bytes | None) -> None:
    """generator.npz with `text` as its metadata entry (None: without one)."""
    with zipfile.ZipFile(folder / WEIGHTS_NAME) as archive:
        entries = {name: archive.read(name) for name in archive.namelist() if name != METADATA_ENTRY}
    if text is not None:
        entries[METADATA_ENTRY] = text
    (folder / WEIGHTS_NAME).write_bytes(zip_bytes(entries))


def flip_a_bit_of_the_arrays(folder: Path) -> None:
    data = bytearray((folder / WEIGHTS_NAME).read_bytes())
    data[len(data) // 2] ^= 0x10
    (folder / WEIGHTS_NAME).write_bytes(bytes(data))


def sha256_of_other_arrays(folder: Path) -> None:
    """The arrays of one generator, the metadata (and sha256) of another."""
    other = save(lively_generator(seed=1), folder / "other", "other weights")
    with zipfile.ZipFile(other / WEIGHTS_NAME) as archive:
        metadata = archive.read(METADATA_ENTRY)
    replace_metadata(folder, metadata)


DAMAGES = {
    "random arrays, matching sha256": (garbage_with_matching_sha256, "does not fit the architecture"),
    "truncated npz": (lambda folder: truncate(folder / WEIGHTS_NAME), "not a weights file, or damaged"),
    "a bit flipped in the arrays": (flip_a_bit_of_the_arrays, "damaged"),
    "truncated arrays, matching sha256": (
        lambda folder: rewrite_weights(folder / WEIGHTS_NAME, arrays=truncate_arrays),
        "does not fit the architecture",
    ),
    "another generator's sha256": (sha256_of_other_arrays, "sha256 does not match its arrays"),
    "wrong shape": (lambda folder: edit_architecture(folder, ch=32), "does not fit the architecture"),
    "absurd size": (lambda folder: edit_architecture(folder, ch=10**9), "architecture.ch must be an integer"),
    "size of the wrong type": (lambda folder: edit_architecture(folder, z_size="100"), "architecture.z_size"),
    "truncated metadata": (lambda folder: replace_metadata(folder, b'{"architecture": {'), "not valid JSON"),
    "metadata not an object": (lambda folder: replace_metadata(folder, b"[]"), "not a JSON object"),
    "no metadata": (lambda folder: replace_metadata(folder, None), "no metadata.json inside"),
}


@pytest.fixture
def weights(tmp_path) -> Path:
    return save(lively_generator(), tmp_path / "weights", "weights to damage")


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_damaged_weights_stop_create_app_with_a_message_naming_the_problem(make_app, weights, damage):
    spoil, message = DAMAGES[damage]
    spoil(weights)
    with pytest.raises(WeightsError, match=message):
        make_app(GENERATOR_DIR=weights)


def test_a_generator_for_other_labels_is_refused(make_app, tmp_path):
    save_generator(Generator(ch=8, n_classes=3), tmp_path, {"epochs": 0})
    with pytest.raises(WeightsError, match="generator.npz: 3 classes, the app needs 10"):
        make_app(GENERATOR_DIR=tmp_path)


def test_an_empty_weights_folder_starts_and_says_nothing_is_trained(make_app, tmp_path):
    app = make_app(GENERATOR_DIR=tmp_path)
    health = app.test_client().get("/healthz")
    assert health.status_code == 503
    assert "no generator.npz" in health.json["error"]
    assert "train.py --export" in health.json["error"]


def test_the_module_level_app_exits_with_one_line(weights, monkeypatch, capsys):
    (weights / WEIGHTS_NAME).write_bytes(b"damaged")
    monkeypatch.setenv("GENERATOR_DIR", str(weights))
    with pytest.raises(SystemExit) as exit_info:
        webapp.serve()
    assert exit_info.value.code == EXIT_BAD_WEIGHTS != 0
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"app: error: weights failed their check: {weights / WEIGHTS_NAME}: "
        "not a weights file, or damaged (File is not a zip file)"
    ]


def test_the_shipped_weights_pass_their_check_if_there_are_any(make_app):
    folder = ROOT / "weights"
    if not (folder / WEIGHTS_NAME).exists():
        pytest.skip("no weights shipped yet")
    make_app(GENERATOR_DIR=folder)


def python(code: str, generator_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "GENERATOR_DIR": str(generator_dir)}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_garbage_weights_with_a_matching_sha256_end_the_app_with_one_line(weights, monkeypatch, capsys):
    garbage_with_matching_sha256(weights)
    monkeypatch.setenv("GENERATOR_DIR", str(weights))
    with pytest.raises(SystemExit) as exit_info:
        webapp.serve()
    assert exit_info.value.code == EXIT_BAD_WEIGHTS
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"app: error: weights failed their check: {weights / WEIGHTS_NAME}: does not fit the architecture"
    )


def test_a_classifier_of_absurd_size_ends_the_app_with_one_line(weights, monkeypatch, capsys):
    save_small_classifier(weights)
    rewrite_weights(
        weights / "classifier.npz", metadata=lambda metadata: metadata["architecture"].update(ch=1_000_000)
    )
    monkeypatch.setenv("GENERATOR_DIR", str(weights))
    with pytest.raises(SystemExit) as exit_info:
        webapp.serve()
    assert exit_info.value.code == EXIT_BAD_WEIGHTS
    assert capsys.readouterr().err == (
        f"app: error: weights failed their check: {weights / 'classifier.npz'}: "
        "architecture.ch must be an integer from 1 to 256, got 1000000\n"
    )


def test_importing_webapp_reads_no_weights_and_app_py_stops_on_damaged_ones(weights):
    truncate(weights / WEIGHTS_NAME)
    assert python("import webapp", weights).returncode == 0
    done = python("import app", weights)
    assert done.returncode == EXIT_BAD_WEIGHTS
    assert done.stderr.splitlines() == [
        f"app: error: weights failed their check: {weights / WEIGHTS_NAME}: "
        "not a weights file, or damaged (File is not a zip file)"
    ]


def test_app_py_gives_gunicorn_the_flask_app(weights):
    done = python("import app, flask; assert isinstance(app.app, flask.Flask)", weights)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda folder: truncate(folder / WEIGHTS_NAME), "not a weights file, or damaged"),
        (garbage_with_matching_sha256, "does not fit the architecture"),
    ],
    ids=["truncated", "garbage with a matching sha256"],
)
def test_gunicorn_stops_at_once_on_damaged_weights_instead_of_restarting_workers(weights, spoil, message):
    spoil(weights)
    env = {**os.environ, "PORT": str(free_port()), "HOST": "127.0.0.1", "GENERATOR_DIR": str(weights)}
    env.pop("WEB_CONCURRENCY", None)
    done = subprocess.run(web_command(), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == EXIT_BAD_WEIGHTS, output
    # The master checks the weights before it forks: no worker ever boots, one line says why.
    assert "Booting worker" not in output, output
    assert output.count("app: error: weights failed their check:") == 1, output
    assert message in output
    assert "Traceback" not in output
