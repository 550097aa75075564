"""Pictures for the API as pure functions of the generator and the checked input."""

import io

import numpy as np
from PIL import Image

from model.images import png_bytes, tile, to_uint8, upscale
from model.inference import FoldedClassifier
from model.sampling import generate
from webapp.state import State, morph_frames


def draw_states(gen, states: list[State]) -> np.ndarray:
    """uint8 pictures (n, IMAGE_SIZE, IMAGE_SIZE) for several states, in one generator call."""
    z = np.stack([s.noise(gen.z_size, gen.handwriting) for s in states])
    labels = np.array([s.labels for s in states], dtype=np.float32)
    return to_uint8(generate(gen, z, labels))


def readings(clf: FoldedClassifier, pictures: np.ndarray) -> list[list[float]]:
    """The classifier's probabilities of digits 0-9 for uint8 pictures (n, 28, 28), as shown or sent."""
    probabilities = clf(pictures[:, None].astype(np.float32) / 255)
    return [[round(float(p), 6) for p in row] for row in probabilities]


def grid_png(gen, rows: list[list[float]], seeds: list[int], scale: int, style: tuple[float, ...]) -> bytes:
    """Row r is label vector r, column c is seed c, all with the same handwriting sliders: the whole
    grid in one generator call."""
    states = [State(tuple(labels), seed, style=style) for labels in rows for seed in seeds]
    return png_bytes(tile(draw_states(gen, states), len(rows), len(seeds)), scale)


def morph_gif(gen, start: State, end: State, frames: int, scale: int, duration_ms: int) -> bytes:
    """An endlessly looping GIF; the GIF encoder merges identical neighbouring frames."""
    z, labels = morph_frames(start, end, frames, gen.z_size, gen.handwriting)
    pictures = [Image.fromarray(upscale(p, scale)) for p in to_uint8(generate(gen, z, labels))]
    buffer = io.BytesIO()
    pictures[0].save(
        buffer, format="GIF", save_all=True, append_images=pictures[1:], duration=duration_ms, loop=0
    )
    return buffer.getvalue()
