"""The agreement fixture: states of the page with the server's noise and pixels for the shipped weights.

The page draws pictures itself while a slider moves (static/generator.js); tests compare its noise
and pixels with these, which the server computed. Made again whenever the shipped weights change:

    python tests/agreement.py          # writes tests/data/agreement.npz (about 0.6 MB)
"""

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "data" / "agreement.npz"
N_STATES = 1000
N_STYLED = 200  # states with handwriting sliders, after the N_STATES without


def fixture_states(n: int = N_STATES, seed: int = 0, styled: int = N_STYLED) -> dict[str, np.ndarray]:
    """Labels, seeds, style seeds, blends and handwriting sliders as the page's controls make them
    (three decimals).

    A quarter each: one digit; the presets' mixtures; one digit with a second slider part way;
    every slider anywhere. Half the states blend toward the style seed, a few all the way. The
    first n have every handwriting slider at 0; `styled` more, drawn the same way from another
    stream, move one slider (a third of them each) or all three anywhere in -1..1, a few to the ends.
    """
    plain = unstyled_states(n, seed)
    more = unstyled_states(styled, seed + 1)
    rng = np.random.default_rng(seed + 2)
    style = np.zeros((styled, 3))
    for i in range(styled):
        if i % 2:
            style[i] = rng.integers(-1000, 1001, 3) / 1000
        else:
            style[i, rng.integers(3)] = (
                rng.choice([-1, 1]) if rng.random() < 0.1 else rng.integers(-1000, 1001) / 1000
            )
    states = {name: np.concatenate([plain[name], more[name]]) for name in plain}
    return {**states, "style": np.concatenate([np.zeros((n, 3)), style])}


def unstyled_states(n: int, seed: int) -> dict[str, np.ndarray]:
    """n states of fixture_states without handwriting sliders, from the stream `seed`."""
    rng = np.random.default_rng(seed)
    both = np.r_[1.0, 1.0, np.zeros(8)]
    presets = [np.zeros(10), np.ones(10), np.full(10, 0.5), both, both / 2]
    labels = np.zeros((n, 10))
    for i in range(n):
        kind = i % 4
        if kind == 0:
            labels[i, rng.integers(10)] = 1
        elif kind == 1:
            labels[i] = presets[rng.integers(len(presets))]
        elif kind == 2:
            first, second = rng.choice(10, 2, replace=False)
            labels[i, first], labels[i, second] = 1, rng.integers(1001) / 1000
        else:
            labels[i] = rng.integers(1001, size=10) / 1000
    seeds = rng.integers(0, 2**32, n)
    seeds[:4] = [0, 1, 42, 2**32 - 1]  # the ends of the range and the page's default
    blends = np.where(rng.random(n) < 0.5, 0.0, rng.integers(1, 1001, n) / 1000)
    blends[rng.random(n) < 0.02] = 1.0
    return {
        "labels": labels,
        "seed": seeds.astype(np.uint32),
        "seed_b": rng.integers(0, 2**32, n).astype(np.uint32),
        "blend": blends,
    }


def state_rows(fixture: dict[str, np.ndarray]):
    """(labels, seed, seed_b, blend, style) of each of the fixture's states."""
    names = ("labels", "seed", "seed_b", "blend", "style")
    return zip(*(fixture[name] for name in names), strict=True)


def server_states(fixture: dict[str, np.ndarray]) -> list:
    """The fixture's states as the server's State objects."""
    from webapp.state import State

    return [
        State(tuple(float(x) for x in labels), int(seed), int(seed_b), float(blend), tuple(map(float, style)))
        for labels, seed, seed_b, blend, style in state_rows(fixture)
    ]


def shipped_generator(folder: Path = ROOT / "weights"):
    """(the folded generator, its metadata) as the app loads them from `folder`."""
    from webapp import create_app

    app = create_app({"GENERATOR_DIR": str(folder), "TESTING": True})
    generator = app.extensions["networks"].generator
    return generator.folded, generator.metadata


def draw_in_batches(gen, batch: int) -> np.ndarray:
    """The fixture states' uint8 pixels, drawn `batch` states per generator call."""
    from webapp.pictures import draw_states

    states = server_states(fixture_states())
    return np.concatenate([draw_states(gen, states[i : i + batch]) for i in range(0, len(states), batch)])


def make_fixture(folder: Path = ROOT / "weights") -> dict[str, np.ndarray]:
    """The states with the noise and the uint8 pixels the server computes for them from `folder`."""
    from webapp.pictures import draw_states

    gen, metadata = shipped_generator(folder)
    fixture = fixture_states()
    states = server_states(fixture)
    fixture["noise"] = np.stack([state.noise(gen.z_size, gen.handwriting) for state in states])
    fixture["pixels"] = draw_states(gen, states)
    fixture["generator_sha256"] = np.array(metadata["sha256"])
    return fixture


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    FIXTURE.parent.mkdir(exist_ok=True)
    np.savez_compressed(FIXTURE, **make_fixture())
    print(f"wrote {FIXTURE.relative_to(ROOT)}: {FIXTURE.stat().st_size:,} bytes")
