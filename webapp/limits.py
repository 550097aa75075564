"""What one request may ask for, and the largest request of each endpoint.

The caps keep one request under 100 ms of CPU with the full-size generator (about 0.4 ms a picture,
plus encoding the scaled pixels as PNG or GIF): bench/request_cost.py measures LARGEST_REQUESTS, and the
tests check that each is answered and that one step past it is refused.
"""

from model.net import IMAGE_SIZE, N_CLASSES
from model.sampling import one_hot
from server import framing

# A full grid of labels written with 17 digits each still fits. The worker's framer refuses a larger
# body before the app sees it, with the app's own 413: one limit, one number.
MAX_BODY_BYTES = framing.MAX_BODY_BYTES
MAX_SCALE = 16
MAX_GRID = 10  # rows (label vectors) or columns (seeds) of /grid: every digit in a row of its own
MAX_GRID_PICTURES = 40  # rows x columns: all ten digits with four seeds
MIN_FRAMES, MAX_FRAMES, DEFAULT_FRAMES = 2, 24, 24
MIN_DURATION_MS, MAX_DURATION_MS, DEFAULT_DURATION_MS = 20, 2000, 80
MAX_PICTURE_PIXELS = 512 * 1024  # one /grid PNG, after scaling: 10x4 pictures at scale 4
MAX_ANIMATION_PIXELS = MAX_FRAMES * (IMAGE_SIZE * 4) ** 2  # all /interpolate frames: 24 at scale 4
# Repeated /generate requests (a slider dragged back and forth) are answered from memory, their PNGs and
# the classifier's readings of them: a digit PNG is 0.3-3 KB, so the byte bound, per worker, is the one
# that holds for large scales.
ANSWER_CACHE_ENTRIES = 8192
ANSWER_CACHE_BYTES = 16 * 1024 * 1024

DIGITS = one_hot(range(N_CLASSES)).tolist()
MORPH = {"from": {"labels": DIGITS[1], "seed": 1}, "to": {"labels": DIGITS[8], "seed": 2}}
LARGEST_REQUESTS = {
    "generate": ("/generate", {"labels": DIGITS[3], "seed": 1, "scale": MAX_SCALE}),
    "grid": ("/grid", {"labels": DIGITS, "seeds": [1, 2, 3, 4], "scale": 4}),
    "grid, big pictures": ("/grid", {"labels": DIGITS[:3], "seeds": [1, 2, 3], "scale": 8}),
    "interpolate": ("/interpolate", {**MORPH, "frames": MAX_FRAMES, "scale": 4}),
    "interpolate, big frames": ("/interpolate", {**MORPH, "frames": 6, "scale": 8}),
}
