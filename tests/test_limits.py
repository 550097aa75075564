"""Request caps: the largest request each endpoint accepts is answered, the next is a 400.

What the largest ones cost (the caps aim at about 100 ms of CPU each) is measured by
bench/request_cost.py, not here: timings belong in benchmarks.
"""

import numpy as np
import pytest
from helpers import save

from model.net import Generator
from webapp.limits import DIGITS, LARGEST_REQUESTS, MAX_FRAMES, MAX_GRID, MAX_SCALE, MORPH

TOO_LARGE = {
    "scale": ("/generate", {"labels": DIGITS[3], "seed": 1, "scale": MAX_SCALE + 1}, "scale"),
    "rows": ("/grid", {"labels": DIGITS + DIGITS[:1], "seeds": [1]}, "labels"),
    "columns": ("/grid", {"labels": DIGITS[:1], "seeds": list(range(MAX_GRID + 1))}, "seeds"),
    "pictures": ("/grid", {"labels": DIGITS[:9], "seeds": list(range(5)), "scale": 1}, "seeds"),
    "grid pixels": ("/grid", {"labels": DIGITS, "seeds": [1, 2, 3, 4], "scale": 5}, "scale"),
    "frames": ("/interpolate", {**MORPH, "frames": MAX_FRAMES + 1}, "frames"),
    "animation pixels": ("/interpolate", {**MORPH, "frames": MAX_FRAMES, "scale": 5}, "scale"),
}


@pytest.fixture(scope="module")
def full_size_client(make_app, tmp_path_factory):
    """The app serving a generator of the shipped size (ch=128) with weights that draw busy pictures."""
    gen = Generator()
    rng = np.random.RandomState(0)
    for _, param in sorted(gen.namedparams()):
        if param.ndim > 1:
            param.array[...] = rng.normal(0, 0.05, param.shape)
    folder = save(gen, tmp_path_factory.mktemp("full_size"), "full-size random weights")
    return make_app(GENERATOR_DIR=folder).test_client()


@pytest.mark.parametrize("name", LARGEST_REQUESTS)
@pytest.mark.parametrize("accept", ["*/*", "application/json"])
def test_the_largest_allowed_request_is_answered(full_size_client, name, accept):
    path, body = LARGEST_REQUESTS[name]
    response = full_size_client.post(path, json=body, headers={"Accept": accept})
    assert response.status_code == 200, response.json


@pytest.mark.parametrize("name", TOO_LARGE)
def test_a_request_past_a_cap_is_a_400_naming_the_field(full_size_client, name):
    path, body, field = TOO_LARGE[name]
    response = full_size_client.post(path, json=body)
    assert response.status_code == 400 and response.json["field"] == field
    assert response.json["error"].startswith(f"{field}: ")
