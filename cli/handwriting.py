"""handwriting.py's command line: fit the handwriting sliders' directions to existing weights."""

import argparse
import time
from pathlib import Path

from cli.flags import OneLineParser, fail
from model.export import load_generator, save_generator
from model.files import WeightsError
from model.handwriting import HANDWRITING, HandwritingError, fit_with_classifier

PROG = "handwriting.py"


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog=PROG,
        description="Fit the handwriting sliders (slant, thickness, width) to a generator and write their "
        "directions into its generator.npz and generator.json (train.py does this with every --export).",
    )
    parser.add_argument(
        "--weights", type=Path, default=Path("weights"), help="folder with generator.npz and generator.json"
    )
    parser.add_argument(
        "--classifier",
        type=Path,
        default=Path("weights"),
        help="folder with the classifier.npz and classifier.json that judge the sliders' range",
    )
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Fit and write the directions: 0, or 2 after a one-line error."""
    args = parse_args(argv)
    start = time.perf_counter()
    if not args.weights.is_dir():
        return fail(PROG, f"--weights {args.weights}: folder not found")
    try:
        gen, metadata = load_generator(args.weights)
        print(f"fitting the handwriting directions of {args.weights} (a few minutes on 2 CPU cores)")
        directions, fit = fit_with_classifier(gen, args.classifier)
    except (WeightsError, HandwritingError) as error:
        return fail(PROG, str(error))
    try:
        written = save_generator(gen, args.weights, metadata, handwriting=(directions, fit))
    except OSError as error:
        return fail(PROG, f"{args.weights}: cannot write the weights ({error}); they are as they were")
    steps = ", ".join(f"{name} {step:g}" for name, step in zip(HANDWRITING, fit["steps"], strict=True))
    print(
        f"wrote the directions into {args.weights} ({time.perf_counter() - start:.0f} s): steps {steps}; "
        f"sha256 {written['sha256'][:12]}"
    )
    return 0
