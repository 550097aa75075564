"""The three scripts' wiring, and evaluate.py and train_classifier.py end to end, in-process, on files the
tests write (no network, no real MNIST)."""

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, garbage_arrays, rewrite_weights, write_idx, write_mnist_folder

from cli import evaluate as evaluate_cli
from cli import train as train_cli
from cli import train_classifier as classifier_cli
from mnist.data import IMAGES_MAGIC, TEST_IMAGES, TRAIN_IMAGES
from model.classifier import Classifier, save_classifier


@pytest.fixture(scope="module")
def mnist_folder(tmp_path_factory):
    return write_mnist_folder(tmp_path_factory.mktemp("mnist"), n=40)


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    np.random.seed(0)
    folder = tmp_path_factory.mktemp("classifier")
    save_classifier(Classifier(ch=4, n_features=16), folder, {"test_accuracy": 0.1})
    return folder


def evaluate_args(generator_dir, classifier_dir, mnist_folder, report) -> list[str]:
    return [
        "--generator", str(generator_dir), "--classifier", str(classifier_dir), "--data", str(mnist_folder),
        "--per-class", "4", "--sweep-steps", "3", "--sweep-seeds", "2", "--report", str(report),
    ]  # fmt: skip


def test_evaluate_writes_a_report_a_plot_and_a_table(
    generator_dir, classifier_dir, mnist_folder, tmp_path, capsys
):
    report_path = tmp_path / "out" / "report.json"
    assert evaluate_cli.main(evaluate_args(generator_dir, classifier_dir, mnist_folder, report_path)) == 0
    report = json.loads(report_path.read_text())
    assert report["per_class"] == 4 and len(report["accuracy"]["per_class"]) == 10
    assert report["frechet"]["images_per_class"] == 2  # 4 of each digit in the tiny set, halved
    assert report["frechet"]["training_vs_real"] > 0
    assert [(s["source"], s["target"]) for s in report["sweeps"]] == [(0, 1), (3, 8), (4, 9)]
    assert (tmp_path / "out" / "report_sweeps.png").is_file()
    assert "quality bar: FAIL" in capsys.readouterr().out  # random weights are far from the bar


def test_evaluate_strict_exits_1_when_the_bar_is_not_met(
    generator_dir, classifier_dir, mnist_folder, tmp_path
):
    args = evaluate_args(generator_dir, classifier_dir, mnist_folder, tmp_path / "r.json")
    assert evaluate_cli.main([*args, "--strict"]) == 1


def test_evaluate_names_a_missing_generator_folder(classifier_dir, tmp_path, capsys):
    assert (
        evaluate_cli.main(["--generator", str(tmp_path / "none"), "--classifier", str(classifier_dir)]) == 2
    )
    assert (
        capsys.readouterr().err == f"evaluate.py: error: --generator {tmp_path / 'none'}: folder not found\n"
    )


def test_evaluate_names_a_damaged_classifier(generator_dir, classifier_dir, tmp_path, capsys):
    for name in ("classifier.npz", "classifier.json"):
        (tmp_path / name).write_bytes((classifier_dir / name).read_bytes())
    (tmp_path / "classifier.npz").write_bytes(b"not a zip")
    assert evaluate_cli.main(["--generator", str(generator_dir), "--classifier", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("evaluate.py: error: ") and "classifier.npz" in err and err.count("\n") == 1


def test_evaluate_repeats_print_the_spread_of_the_frechet_ratio(
    generator_dir, classifier_dir, mnist_folder, tmp_path, capsys
):
    args = evaluate_args(generator_dir, classifier_dir, mnist_folder, tmp_path / "r.json")
    assert evaluate_cli.main([*args, "--repeats", "2"]) == 0
    assert len(json.loads((tmp_path / "r.json").read_text())["frechet"]["spread"]["ratios"]) == 4
    out = capsys.readouterr().out
    assert "Fréchet ratio over 2 seed sets x 2 real halves: mean " in out
    assert "accuracy over those seed sets (" in out


def listed_flags(help_text: str) -> set[str]:
    """The flags on the help's option lines (indented two spaces), not those its help texts mention."""
    flags = set()
    for line in help_text.splitlines():
        if option := re.match(r"  (-\S.*?)(?:\s{2,}|$)", line):
            flags.update(re.findall(r"(?<![\w-])--?[A-Za-z][\w-]*", option.group(1)))
    return flags


@pytest.mark.parametrize(
    ("script", "cli"),
    [("train.py", train_cli), ("evaluate.py", evaluate_cli), ("train_classifier.py", classifier_cli)],
)
def test_a_scripts_help_lists_exactly_its_parsers_flags(script, cli):
    """The script runs its package's main, and the help shows every flag the parser takes, and no other."""
    result = subprocess.run(
        [sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {script} ")
    options = {flag for action in cli.build_parser()._actions for flag in action.option_strings}
    assert "--help" in options and len(options) > 10
    assert listed_flags(result.stdout) == options


@pytest.mark.parametrize(
    ("cli", "argv", "message"),
    [
        (evaluate_cli, ["--per-class", "1"], "argument --per-class/-n: must be between 2 and 10000, got 1"),
        (evaluate_cli, ["--sweep-steps", "x"], "argument --sweep-steps: not a whole number: 'x'"),
        (classifier_cli, ["--epoch", "0"], "argument --epoch/-e: must be at least 1, got 0"),
        (classifier_cli, ["--result", "r"], "unrecognized arguments: --result r"),
    ],
)
def test_a_bad_flag_is_one_line_and_exit_2(cli, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"{cli.PROG}: error: {message}\n"


def test_train_classifier_writes_weights_metadata_and_log(mnist_folder, tmp_path):
    out, result = tmp_path / "weights", tmp_path / "result"
    argv = [
        "--data",
        str(mnist_folder),
        "--epoch",
        "1",
        "--limit",
        "20",
        "--batchsize",
        "8",
        "--export",
        str(out),
        "--out",
        str(result),
    ]
    assert classifier_cli.main(argv) == 0
    metadata = json.loads((out / "classifier.json").read_text())
    assert metadata["train_images"] == 20 and metadata["test_images"] == 40
    assert 0 <= metadata["test_accuracy"] <= 1
    assert (out / "classifier.npz").is_file() and (result / "log").is_file()


@pytest.mark.parametrize(
    ("argv", "export", "out"),
    [
        (["--export", "w", "--out", "r"], "w", "r"),
        (["--out", "r"], "weights", "r"),
        ([], "weights", "result/classifier"),
    ],
)
def test_train_classifier_sends_the_classifier_to_export_and_the_log_to_out(argv, export, out, capsys):
    args = classifier_cli.parse_args(argv)
    assert (args.export, args.out) == (Path(export), Path(out))
    assert capsys.readouterr().err == ""


def test_train_classifier_without_network_or_data_is_one_line(no_network, tmp_path, capsys):
    assert classifier_cli.main(["--export", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("train_classifier.py: error: could not download MNIST (") and err.count("\n") == 1


def test_train_classifier_names_a_missing_data_folder(tmp_path, capsys):
    assert classifier_cli.main(["--data", str(tmp_path / "nowhere"), "--export", str(tmp_path)]) == 2
    assert (
        capsys.readouterr().err
        == f"train_classifier.py: error: {tmp_path / 'nowhere'}: data directory not found\n"
    )


# ---------------------------------------------------------------- faults: checks before the work, signals


def test_train_classifier_refuses_an_export_it_cannot_write_before_training(mnist_folder, tmp_path, capsys):
    (tmp_path / "weights").write_text("a file")
    argv = ["--data", str(mnist_folder), "--batchsize", "8", "--export", str(tmp_path / "weights")]
    argv += ["--out", str(tmp_path / "log")]
    assert classifier_cli.main(argv) == 2
    assert capsys.readouterr().err == (
        f"train_classifier.py: error: --export {tmp_path / 'weights'}: "
        f"{tmp_path / 'weights'} is not a folder\n"
    )
    assert not (tmp_path / "log").exists(), "it trained"


@pytest.mark.parametrize(
    ("name", "images", "message"),
    [
        (TRAIN_IMAGES, np.zeros((40, 28, 27)), "images are 28x27, expected 28x28"),
        (TEST_IMAGES, np.zeros((40, 32, 32)), "images are 32x32, expected 28x28"),
        (TEST_IMAGES, np.zeros((0, 28, 28)), "holds no images"),
    ],
)
def test_train_classifier_refuses_images_it_cannot_use(mnist_folder, tmp_path, capsys, name, images, message):
    data = shutil.copytree(mnist_folder, tmp_path / "mnist")
    write_idx(data / name, images, IMAGES_MAGIC)
    assert classifier_cli.main(["--data", str(data), "--export", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"train_classifier.py: error: {data / name}: {message}\n"
    assert not (tmp_path / "out").exists()


def test_train_classifier_refuses_a_batch_larger_than_the_data(mnist_folder, tmp_path, capsys):
    argv = ["--data", str(mnist_folder), "--limit", "10", "--batchsize", "16", "--export", str(tmp_path)]
    assert classifier_cli.main(argv) == 2
    assert (
        capsys.readouterr().err
        == "train_classifier.py: error: --batchsize 16: more than the 10 training images\n"
    )


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_train_classifier_stops_on_a_signal_with_one_line(
    mnist_folder, tmp_path, monkeypatch, capsys, signum, status
):
    real = classifier_cli.build_trainer

    def build(*args, **kwargs):
        trainer = real(*args, **kwargs)
        trainer.extend(lambda trainer: signal.raise_signal(signum), trigger=(1, "iteration"), name="signal")
        return trainer

    monkeypatch.setattr(classifier_cli, "build_trainer", build)
    argv = ["--data", str(mnist_folder), "--batchsize", "8", "--export", str(tmp_path / "out")]
    assert classifier_cli.main([*argv, "--out", str(tmp_path / "log")]) == status
    name = signal.Signals(signum).name
    assert capsys.readouterr().err == (
        f"train_classifier.py: stopped by {name}; nothing was written to {tmp_path / 'out'}\n"
    )
    assert not (tmp_path / "out").exists()


def test_train_classifier_on_a_full_disk_keeps_the_classifier_there(
    mnist_folder, classifier_dir, tmp_path, monkeypatch, capsys
):
    out = shutil.copytree(classifier_dir, tmp_path / "weights")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    real_save = classifier_cli.save_classifier

    def save_on_a_full_disk(*args):
        monkeypatch.setattr(os, "write", full)
        return real_save(*args)

    monkeypatch.setattr(classifier_cli, "save_classifier", save_on_a_full_disk)
    argv = ["--data", str(mnist_folder), "--epoch", "1", "--batchsize", "8", "--export", str(out)]
    argv += ["--out", str(tmp_path / "log")]
    assert classifier_cli.main(argv) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert err.startswith(f"train_classifier.py: error: {out / 'classifier.npz'}: no space left on device (")
    assert err.endswith(f"; the files in {out} are as they were\n") and err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("flag", ["--report", "--plot"])
def test_evaluate_refuses_an_output_it_cannot_write_before_evaluating(
    generator_dir, classifier_dir, mnist_folder, tmp_path, capsys, flag
):
    (tmp_path / "file").write_text("a file")
    args = evaluate_args(generator_dir, classifier_dir, mnist_folder, tmp_path / "r.json")
    target = tmp_path / "file" / "out.json"
    assert evaluate_cli.main([*args, flag, str(target)]) == 2
    assert (
        capsys.readouterr().err
        == f"evaluate.py: error: {flag} {target.parent}: {target.parent} is not a folder\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_evaluate_refuses_training_images_of_another_shape(
    generator_dir, classifier_dir, mnist_folder, tmp_path, capsys
):
    data = shutil.copytree(mnist_folder, tmp_path / "mnist")
    write_idx(data / TRAIN_IMAGES, np.zeros((40, 32, 32)), IMAGES_MAGIC)
    assert evaluate_cli.main(evaluate_args(generator_dir, classifier_dir, data, tmp_path / "r.json")) == 2
    assert (
        capsys.readouterr().err
        == f"evaluate.py: error: {data / TRAIN_IMAGES}: images are 32x32, expected 28x28\n"
    )
    assert not (tmp_path / "r.json").exists()


def test_evaluate_refuses_garbage_weights_with_a_matching_sha256(
    generator_dir, classifier_dir, tmp_path, capsys
):
    folder = shutil.copytree(generator_dir, tmp_path / "weights")
    rewrite_weights(folder / "generator.npz", arrays=garbage_arrays)
    assert evaluate_cli.main(["--generator", str(folder), "--classifier", str(classifier_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"evaluate.py: error: {folder / 'generator.npz'}: does not fit the architecture (")
    assert err.count("\n") == 1
