"""evaluate.py's command line: its flags, and the report it writes and prints."""

import argparse
import datetime
import json
import time
from collections.abc import Callable
from pathlib import Path

from cli.flags import OneLineParser, count_at_least, fail, unwritable, whole_number
from evaluation.handwriting import measure_sliders, plot_handwriting
from evaluation.handwriting import table as handwriting_table
from evaluation.report import MAX_PER_CLASS, evaluate_generator, load_real, plot_sweeps, table
from mnist.data import DataError
from model.classifier import load_classifier
from model.export import load_generator
from model.files import WeightsError
from model.inference import FoldedClassifier, FoldedGenerator
from model.net import N_CLASSES

PROG = "evaluate.py"


def count_between(minimum: int, maximum: int) -> Callable[[str], int]:
    """A value type for whole numbers from `minimum` to `maximum`, both included."""

    def parse(text: str) -> int:
        value = whole_number(text)
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"must be between {minimum} and {maximum}, got {value}")
        return value

    return parse


def build_parser() -> OneLineParser:
    """The flags; the defaults judge the shipped generator as the README reports it."""
    parser = OneLineParser(
        prog=PROG,
        description="Measure a generator against the quality bar with the shipped MNIST classifier.",
    )
    parser.add_argument(
        "--generator",
        "-g",
        type=Path,
        default=Path("weights"),
        help="folder with generator.npz and generator.json",
    )
    parser.add_argument(
        "--classifier",
        type=Path,
        default=Path("weights"),
        help="folder with classifier.npz and classifier.json (train_classifier.py)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="folder with the MNIST IDX .gz files; the test images are the real "
        "reference (default: download with Chainer)",
    )
    parser.add_argument(
        "--per-class",
        "-n",
        type=count_between(2, MAX_PER_CLASS),
        default=500,
        help="generated images per digit, seeds 0..N-1",
    )
    parser.add_argument(
        "--sweep-steps",
        type=count_at_least(2),
        default=21,
        help="values of t from 0 to 1 in each soft-label sweep",
    )
    parser.add_argument(
        "--sweep-seeds",
        type=count_at_least(1),
        default=32,
        help="noise seeds averaged in each soft-label sweep",
    )
    parser.add_argument(
        "--repeats",
        type=count_at_least(1),
        default=1,
        help="also measure the Fréchet ratio on this many disjoint seed sets, each against both real "
        "halves, and report its spread (each extra set adds about 20 s on 2 CPU cores)",
    )
    parser.add_argument(
        "--batchsize", "-b", type=count_at_least(1), default=500, help="images per forward pass"
    )
    parser.add_argument(
        "--report", type=Path, default=Path("result/evaluation.json"), help="where to write the JSON report"
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        help="where to draw the sweeps (default: <report>_sweeps.png next to the report)",
    )
    parser.add_argument(
        "--handwriting-seeds",
        type=count_at_least(2),
        default=100,
        help="seeds per digit on which each handwriting slider is measured over -1..1, seeds 0..N-1",
    )
    parser.add_argument(
        "--handwriting-plot",
        type=Path,
        default=None,
        help="where to draw the handwriting sliders (default: <report>_handwriting.png next to the report)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 when the quality bar is not met"
    )
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags; a bad one exits with one line and status 2."""
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Evaluate, write the report and plot, print the table: 0, 1 for --strict and a missed bar, or
    2 after a one-line error."""
    args = parse_args(argv)
    start = time.perf_counter()
    report_path = args.report
    plot_path = args.plot or report_path.with_name(f"{report_path.stem}_sweeps.png")
    handwriting_path = args.handwriting_plot or report_path.with_name(f"{report_path.stem}_handwriting.png")
    for flag, path in (
        ("--report", report_path),
        ("--plot", plot_path),
        ("--handwriting-plot", handwriting_path),
    ):
        if path.is_dir():
            return fail(PROG, f"{flag} {path}: is a folder, not a file")
        if error := unwritable(flag, path.parent):
            return fail(PROG, error)
    if not args.generator.is_dir():
        return fail(PROG, f"--generator {args.generator}: folder not found")
    try:
        gen, gen_metadata = load_generator(args.generator)
        clf, clf_metadata = load_classifier(args.classifier)
    except WeightsError as error:
        return fail(PROG, str(error))
    if gen.n_classes != N_CLASSES:
        return fail(
            PROG, f"{args.generator}: generator has {gen.n_classes} label inputs, expected {N_CLASSES}"
        )
    try:
        real_images, real_labels = load_real(args.data)
        training = load_real(args.data, train=True)
    except DataError as error:
        return fail(PROG, str(error))
    except OSError as error:  # Chainer's download: no network, no disk space, ...
        return fail(PROG, f"could not download MNIST with Chainer ({error}); pass --data FOLDER")
    try:
        for path in (report_path, plot_path, handwriting_path):
            path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return fail(PROG, f"cannot create the output folder ({error})")

    try:
        numbers = evaluate_generator(
            gen,
            clf,
            real_images,
            real_labels,
            training,
            per_class=args.per_class,
            sweep_steps=args.sweep_steps,
            sweep_seeds=args.sweep_seeds,
            batchsize=args.batchsize,
            repeats=args.repeats,
        )
    except ValueError as error:  # e.g. a real data set missing a digit
        return fail(PROG, f"{args.data}: {error}")
    folded = FoldedGenerator(gen)
    if folded.handwriting is not None:
        numbers["handwriting"] = measure_sliders(
            folded, FoldedClassifier(clf), folded.handwriting, args.handwriting_seeds
        )
        numbers["handwriting"]["plot"] = str(handwriting_path)
    report = {
        "generator": {
            "folder": str(args.generator),
            "sha256": gen_metadata.get("sha256"),
            "epochs": gen_metadata.get("epochs"),
            "iterations": gen_metadata.get("iterations"),
        },
        "classifier": {
            "folder": str(args.classifier),
            "sha256": clf_metadata.get("sha256"),
            "test_accuracy": clf_metadata.get("test_accuracy"),
        },
        "real_data": str(args.data) if args.data else "chainer.datasets.get_mnist (test)",
        "real_images": len(real_labels),
        **numbers,
        "plot": str(plot_path),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    try:
        plot_sweeps(report["sweeps"], plot_path, f"soft-label sweeps, generator {args.generator}")
        if "handwriting" in report:
            plot_handwriting(folded, folded.handwriting, handwriting_path)
        report["seconds"] = round(time.perf_counter() - start, 1)
        report_path.write_text(json.dumps(report, indent=2) + "\n")
    except OSError as error:
        return fail(PROG, f"cannot write the report ({error})")
    print(table(report))
    if "handwriting" in report:
        print(handwriting_table(report["handwriting"]))
        print(f"wrote {report_path}, {plot_path} and {handwriting_path}")
    else:
        print(f"wrote {report_path} and {plot_path} (no handwriting directions to measure)")
    return 1 if args.strict and not report["quality_bar"]["pass"] else 0
