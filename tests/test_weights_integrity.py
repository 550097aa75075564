"""Start-up checks of the shipped weights: damaged files stop the app with one line, never half a site."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    ROOT,
    free_port,
    lively_generator,
    replace_npz_keeping_sha256,
    save,
    save_small_classifier,
    web_command,
)

import webapp
from model.export import METADATA_NAME, WEIGHTS_NAME, WeightsError, save_generator
from model.net import Generator
from webapp import EXIT_BAD_WEIGHTS


def edit_metadata(folder: Path, **architecture) -> None:
    """Change generator.json's architecture, keeping the (still matching) sha256 of the npz."""
    metadata = json.loads((folder / METADATA_NAME).read_text())
    metadata["architecture"].update(architecture)
    (folder / METADATA_NAME).write_text(json.dumps(metadata))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def replace_npz(folder: Path) -> None:
    other = save(lively_generator(seed=1), folder / "other", "other weights")
    (folder / WEIGHTS_NAME).write_bytes((other / WEIGHTS_NAME).read_bytes())


def truncate_consistently(folder: Path) -> None:
    """A truncated npz whose sha256 was (wrongly) recorded as it is: the npz itself must be refused."""
    data = (folder / WEIGHTS_NAME).read_bytes()
    replace_npz_keeping_sha256(folder, data[: len(data) // 2])


def garbage_with_matching_sha256(folder: Path) -> None:
    """Random bytes as the npz, their sha256 (wrongly) recorded: the bytes themselves must be refused."""
    replace_npz_keeping_sha256(folder, np.random.RandomState(0).bytes(50_000))


DAMAGES = {
    "random bytes, matching sha256": (garbage_with_matching_sha256, "does not fit the architecture"),
    "missing npz": (lambda folder: (folder / WEIGHTS_NAME).unlink(), "generator.npz: file not found"),
    "missing json": (lambda folder: (folder / METADATA_NAME).unlink(), "generator.json: file not found"),
    "truncated npz": (lambda folder: truncate(folder / WEIGHTS_NAME), "sha256 does not match"),
    "truncated json": (lambda folder: truncate(folder / METADATA_NAME), "not valid JSON"),
    "truncated npz, matching sha256": (truncate_consistently, "does not fit the architecture"),
    "replaced npz": (replace_npz, "sha256 does not match"),
    "wrong shape": (lambda folder: edit_metadata(folder, ch=32), "does not fit the architecture"),
    "absurd size": (lambda folder: edit_metadata(folder, ch=10**9), "architecture.ch must be an integer"),
    "size of the wrong type": (lambda folder: edit_metadata(folder, z_size="100"), "architecture.z_size"),
    "not an object": (lambda folder: (folder / METADATA_NAME).write_text("[]"), "not a JSON object"),
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
    with pytest.raises(WeightsError, match="3 label inputs, the app needs 10"):
        make_app(GENERATOR_DIR=tmp_path)


def test_an_empty_weights_folder_starts_and_says_nothing_is_trained(make_app, tmp_path):
    app = make_app(GENERATOR_DIR=tmp_path)
    health = app.test_client().get("/healthz")
    assert health.status_code == 503
    assert "no generator.json or generator.npz" in health.json["error"]
    assert "train.py --export" in health.json["error"]


def test_the_module_level_app_exits_with_one_line(weights, monkeypatch, capsys):
    (weights / WEIGHTS_NAME).write_bytes(b"damaged")
    monkeypatch.setenv("GENERATOR_DIR", str(weights))
    with pytest.raises(SystemExit) as exit_info:
        webapp.serve()
    assert exit_info.value.code == EXIT_BAD_WEIGHTS != 0
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"app: error: the generator's weights failed their check: {weights / WEIGHTS_NAME}: "
        "sha256 does not match generator.json (damaged or replaced)"
    ]


def test_the_shipped_weights_pass_their_check_if_there_are_any(make_app):
    folder = ROOT / "weights"
    if not (folder / METADATA_NAME).exists() and not (folder / WEIGHTS_NAME).exists():
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
        f"app: error: the generator's weights failed their check: {weights / WEIGHTS_NAME}: does not fit"
    )


def test_a_classifier_of_absurd_size_ends_the_app_with_one_line(weights, monkeypatch, capsys):
    save_small_classifier(weights)
    metadata = json.loads((weights / "classifier.json").read_text())
    metadata["architecture"]["ch"] = 1_000_000
    (weights / "classifier.json").write_text(json.dumps(metadata))
    monkeypatch.setenv("GENERATOR_DIR", str(weights))
    with pytest.raises(SystemExit) as exit_info:
        webapp.serve()
    assert exit_info.value.code == EXIT_BAD_WEIGHTS
    assert capsys.readouterr().err == (
        f"app: error: the classifier's weights failed their check: {weights / 'classifier.json'}: "
        "architecture.ch must be an integer from 1 to 256, got 1000000\n"
    )


def test_importing_webapp_reads_no_weights_and_app_py_stops_on_damaged_ones(weights):
    truncate(weights / WEIGHTS_NAME)
    assert python("import webapp", weights).returncode == 0
    done = python("import app", weights)
    assert done.returncode == EXIT_BAD_WEIGHTS
    assert done.stderr.splitlines() == [
        f"app: error: the generator's weights failed their check: {weights / WEIGHTS_NAME}: "
        "sha256 does not match generator.json (damaged or replaced)"
    ]


def test_app_py_gives_gunicorn_the_flask_app(weights):
    done = python("import app, flask; assert isinstance(app.app, flask.Flask)", weights)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda folder: truncate(folder / WEIGHTS_NAME), "sha256 does not match"),
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
    assert output.count("app: error: the generator's weights failed their check:") == 1, output
    assert message in output
    assert "Traceback" not in output
