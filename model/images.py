"""Generator output -> 8-bit grayscale pictures (grids, PNG bytes)."""

import io

import numpy as np
from PIL import Image


def to_uint8(images: np.ndarray) -> np.ndarray:
    """(n, 1, h, w) floats in [0, 1] -> (n, h, w) uint8."""
    return np.clip(np.rint(np.asarray(images)[:, 0] * 255), 0, 255).astype(np.uint8)


def tile(images: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(rows*cols, h, w) uint8 -> one (rows*h, cols*w) grid, filled row by row."""
    n, h, w = images.shape
    if n != rows * cols:
        raise ValueError(f"{n} images do not fill a {rows}x{cols} grid")
    return images.reshape(rows, cols, h, w).transpose(0, 2, 1, 3).reshape(rows * h, cols * w)


def upscale(picture: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscaling by an integer factor (crisp pixels)."""
    return np.kron(picture, np.ones((scale, scale), dtype=picture.dtype)) if scale > 1 else picture


def png_bytes(picture: np.ndarray, scale: int = 1) -> bytes:
    """One 2-D uint8 picture -> 8-bit grayscale PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(upscale(picture, scale)).save(buffer, format="PNG")
    return buffer.getvalue()
