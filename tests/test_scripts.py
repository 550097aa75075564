"""The three scripts' wiring, and evaluate.py and train_classifier.py end to end, in-process, on files the
tests write (no network, no real MNIST)."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from helpers import ROOT, write_mnist_folder

from evaluation import classifier_cli
from evaluation import cli as evaluate_cli
from model.classifier import Classifier, save_classifier
from training import cli as train_cli


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
        "--out",
        str(out),
        "--result",
        str(result),
    ]
    assert classifier_cli.main(argv) == 0
    metadata = json.loads((out / "classifier.json").read_text())
    assert metadata["train_images"] == 20 and metadata["test_images"] == 40
    assert 0 <= metadata["test_accuracy"] <= 1
    assert (out / "classifier.npz").is_file() and (result / "log").is_file()


def test_train_classifier_without_network_or_data_is_one_line(no_network, tmp_path, capsys):
    assert classifier_cli.main(["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("train_classifier.py: error: could not download MNIST (") and err.count("\n") == 1


def test_train_classifier_names_a_missing_data_folder(tmp_path, capsys):
    assert classifier_cli.main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 2
    assert (
        capsys.readouterr().err
        == f"train_classifier.py: error: {tmp_path / 'nowhere'}: data directory not found\n"
    )
