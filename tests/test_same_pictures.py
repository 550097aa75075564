"""One state gives one picture: under any CPU's kernels, in any batch, through every route.

The server draws in float64 (model/inference.py), so that sums taken in another order, by another
machine's BLAS or SIMD kernels or in another batch, do not carry a pixel over a grey level's edge
(docs/operations.md). Here the agreement fixture's 1,200 states (200 with handwriting sliders) are
drawn again under the kernel settings this CPU can run, in batches of 1, 7 and 1,000, and must give
the fixture's very bytes; the fixture was made on another machine, and the page's own drawing is held
to it in Chromium (tests/test_browser_local.py).
"""

import hashlib
import io
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from agreement import FIXTURE, ROOT
from PIL import Image

from bench.pixel_edges import UNIT_ROUNDOFF, forward, page_states, rounding_bound
from model.export import load_generator
from model.images import to_uint8
from model.inference import FoldedGenerator
from model.sampling import generate
from webapp import create_app
from webapp.state import State, morph_frames

X86 = platform.machine().lower() in ("x86_64", "amd64")
AVX512 = "AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR"
BATCHES = (1000, 7, 1)
DRAW = f"""
import hashlib, json
from numpy.core._multiarray_umath import __cpu_features__ as dispatch
from agreement import draw_in_batches, shipped_generator
gen, _ = shipped_generator()
hashes = {{batch: hashlib.sha256(draw_in_batches(gen, batch).tobytes()).hexdigest() for batch in {BATCHES}}}
print(json.dumps({{"hashes": hashes, "avx2": dispatch["AVX2"], "avx512f": dispatch["AVX512F"]}}))
"""


def cpu_flags() -> set[str]:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return set()
    return {flag for line in lines if line.startswith("flags") for flag in line.split(":", 1)[1].split()}


def kernels(env: dict, name: str, needs: str | None = None):
    """One setting of this machine's kernels; x86-64 names, so other machines skip it."""
    marks = [pytest.mark.skipif(not X86, reason=f"{name} is an x86-64 setting; this is {platform.machine()}")]
    if needs:
        flags = cpu_flags()
        marks.append(pytest.mark.skipif(needs not in flags, reason=f"{name} needs a CPU with {needs}"))
    return pytest.param(env, marks=marks, id=name)


KERNEL_SETTINGS = [
    pytest.param({}, id="as-installed"),
    pytest.param({"OPENBLAS_NUM_THREADS": "2"}, id="openblas-2-threads"),
    kernels({"OPENBLAS_CORETYPE": "Nehalem"}, "openblas-nehalem"),
    kernels({"OPENBLAS_CORETYPE": "Sandybridge"}, "openblas-sandybridge", "avx"),
    kernels({"OPENBLAS_CORETYPE": "Haswell"}, "openblas-haswell", "avx2"),
    kernels({"OPENBLAS_CORETYPE": "Zen"}, "openblas-zen", "avx2"),
    kernels({"OPENBLAS_CORETYPE": "SkylakeX"}, "openblas-skylakex", "avx512f"),
    kernels({"NPY_DISABLE_CPU_FEATURES": AVX512}, "numpy-without-avx512"),
    kernels({"NPY_DISABLE_CPU_FEATURES": f"{AVX512} AVX2 FMA3"}, "numpy-without-avx2"),
]


@pytest.fixture(scope="module")
def fixture():
    return dict(np.load(FIXTURE))


@pytest.mark.slow  # a fresh interpreter and 2,000 pictures: about 5 s each
@pytest.mark.parametrize("setting", KERNEL_SETTINGS)
def test_every_kernel_setting_and_batch_draws_the_fixtures_bytes(setting, fixture):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OPENBLAS_VERBOSE": "2", **setting}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    run = subprocess.run([sys.executable, "-c", DRAW], cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    answer = json.loads(run.stdout.splitlines()[-1])
    if "OPENBLAS_CORETYPE" in setting:  # the setting took: OpenBLAS says which kernels it chose
        assert f"Core: {setting['OPENBLAS_CORETYPE']}" in run.stdout + run.stderr
    if "NPY_DISABLE_CPU_FEATURES" in setting:  # and NumPy left out the SIMD loops it was told to
        disabled = setting["NPY_DISABLE_CPU_FEATURES"].split()
        assert not answer["avx512f"] and not ("AVX2" in disabled and answer["avx2"])
    expected = hashlib.sha256(fixture["pixels"].tobytes()).hexdigest()
    assert answer["hashes"] == {str(batch): expected for batch in BATCHES}


@pytest.fixture(scope="module")
def shipped():
    """A client of the app serving the shipped weights, and its generator."""
    app = create_app({"GENERATOR_DIR": str(ROOT / "weights"), "TESTING": True})
    return app.test_client(), app.extensions["networks"].generator.folded


def png_pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"))


def single_picture(client, state: State) -> np.ndarray:
    response = client.post("/generate", json=state.as_json())
    assert response.status_code == 200
    return png_pixels(response.data)


MIXTURES = np.random.default_rng(4).integers(0, 1001, (4, 10)) / 1000  # as the page's sliders give them


def test_each_cell_of_a_4x10_grid_is_the_single_picture(shipped):
    client, _ = shipped
    rows, seeds = MIXTURES.tolist(), list(range(100, 110))
    response = client.post("/grid", json={"labels": rows, "seeds": seeds})
    grid = png_pixels(response.data)
    cells = grid.reshape(len(rows), 28, len(seeds), 28).transpose(0, 2, 1, 3)
    for row, labels in enumerate(rows):
        for col, seed in enumerate(seeds):
            single = single_picture(client, State(tuple(labels), seed))
            np.testing.assert_array_equal(cells[row, col], single, err_msg=f"row {row}, seed {seed}")


def test_each_frame_of_a_morph_is_the_single_picture_of_its_noise_and_labels(shipped):
    client, gen = shipped
    start = State(tuple(MIXTURES[0]), 3, 11, 0.4)
    end = State(tuple(MIXTURES[1]), 8)
    body = {"from": start.as_json(), "to": end.as_json(), "frames": 16}
    gif = Image.open(io.BytesIO(client.post("/interpolate", json=body).data))
    frames = []
    for index in range(gif.n_frames):
        gif.seek(index)
        frames.append(np.asarray(gif.convert("L")))
    z, labels = morph_frames(start, end, 16, gen.z_size)
    singles = [to_uint8(generate(gen, z[i : i + 1], labels[i : i + 1]))[0] for i in range(16)]
    distinct = [p for i, p in enumerate(singles) if i == 0 or not np.array_equal(p, singles[i - 1])]
    assert len(frames) == len(distinct) > 8  # the GIF keeps one of identical neighbouring frames
    for index, (frame, single) in enumerate(zip(frames, distinct, strict=True)):
        np.testing.assert_array_equal(frame, single, err_msg=f"frame {index}")
    np.testing.assert_array_equal(frames[0], single_picture(client, start))
    np.testing.assert_array_equal(frames[-1], single_picture(client, end))


def test_the_rounding_bound_holds_and_describes_the_served_arithmetic(shipped):
    """docs/operations.md's argument rests on bench/pixel_edges.py: its float64 forward pass is the
    served one, and its bound covers what float64 and float32 sums really do against extended
    precision."""
    if np.finfo(np.longdouble).nmant <= np.finfo(np.float64).nmant:
        pytest.skip("numpy.longdouble is float64 on this machine: nothing more precise to compare with")
    _, served = shipped
    chainer_gen = load_generator(ROOT / "weights")[0]
    z, labels = page_states(12, seed=1)
    exact = forward(FoldedGenerator(chainer_gen, np.longdouble), z, labels)
    np.testing.assert_array_equal(forward(FoldedGenerator(chainer_gen), z, labels), 255 * served(z, labels))
    for dtype, unit in UNIT_ROUNDOFF.items():
        moved = np.abs(forward(FoldedGenerator(chainer_gen, dtype), z, labels).astype(np.longdouble) - exact)
        bound = rounding_bound(served, z, labels, unit)
        assert (moved <= bound).all() and moved.max() > 0, dtype
