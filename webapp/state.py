"""The request state: what one picture depends on (labels, seed, style blend, handwriting sliders),
and its noise."""

from dataclasses import dataclass

import numpy as np

from model.handwriting import HANDWRITING, styled_noise
from model.sampling import MAX_SEED, one_hot, seed_noise, slerp
from webapp.validation import ApiError, integer, label_vector, number, query_state

NO_STYLE = (0.0,) * len(HANDWRITING)
STATE_FIELDS = {"seed_b", "blend", *HANDWRITING}  # optional beside labels and seed
DEFAULT_STATE = {"labels": one_hot(3).tolist(), "seed": 42, "seed_b": 7, "blend": 0.0}


@dataclass(frozen=True)
class State:
    """The label vector and the noise seed, optionally blended toward a style seed, and the
    handwriting sliders (slant, thickness, width) that move the noise."""

    labels: tuple[float, ...]
    seed: int
    seed_b: int | None = None
    blend: float = 0.0
    style: tuple[float, ...] = NO_STYLE

    def noise(self, z_size: int, handwriting: np.ndarray | None = None) -> np.ndarray:
        """The seed's noise, or its spherical blend toward seed_b's (the ends are exact), moved by the
        sliders along the generator's handwriting directions (not needed while the sliders are at 0)."""
        if self.seed_b is None or self.blend == 0:
            z = seed_noise(self.seed, z_size)
        else:
            z = slerp(seed_noise(self.seed, z_size), seed_noise(self.seed_b, z_size), self.blend)
        return styled_noise(z, self.style, handwriting)

    def as_json(self) -> dict:
        answer = {"labels": list(self.labels), "seed": self.seed}
        if self.seed_b is not None:
            answer.update(seed_b=self.seed_b, blend=self.blend)
        return {**answer, **dict(zip(HANDWRITING, self.style, strict=True))}

    def query(self) -> dict:
        """The state as the page's URL writes it: one URL, one cache entry (static/app.js builds the same)."""
        query = {"labels": ",".join(f"{x:g}" for x in self.labels), "seed": self.seed}
        if self.seed_b is not None and self.blend > 0:
            query.update(seed_b=self.seed_b, blend=f"{self.blend:g}")
        query.update(
            {name: f"{value:g}" for name, value in zip(HANDWRITING, self.style, strict=True) if value}
        )
        return query


def parse_style(data: dict, prefix: str = "") -> tuple[float, ...]:
    """The handwriting sliders of an already checked object, each in [-1, 1], 0 when absent."""
    return tuple(number(data.get(name, 0), prefix + name, -1, 1) for name in HANDWRITING)


def parse_state(data: dict, prefix: str = "") -> State:
    """labels, seed, the optional style blend (seed_b, blend) and handwriting sliders of an already
    checked object."""
    seed_b = None if data.get("seed_b") is None else integer(data["seed_b"], prefix + "seed_b", 0, MAX_SEED)
    blend = number(data.get("blend", 0), prefix + "blend", 0, 1)
    if blend > 0 and seed_b is None:
        raise ApiError(prefix + "seed_b", "missing (needed when blend is above 0)")
    return State(
        tuple(label_vector(data["labels"], prefix + "labels")),
        integer(data["seed"], prefix + "seed", 0, MAX_SEED),
        seed_b,
        blend,
        parse_style(data, prefix),
    )


def page_state(args, has_handwriting: bool = True) -> tuple[State, str | None]:
    """The page's state from its URL; a broken link still shows a page (defaults) and says why, as
    does a link with handwriting sliders for weights without their directions."""
    if not args:
        return parse_state(DEFAULT_STATE), None
    known = {"labels", "seed"} | STATE_FIELDS  # others (a tracker's utm_source...) are not ours to refuse
    data = {k: v for k, v in query_state(args, known).items() if k in known}
    try:
        state = parse_state({**DEFAULT_STATE, "seed_b": None, **data})
    except ApiError as error:
        return parse_state(DEFAULT_STATE), f"The link's state was not used: {error}"
    if any(state.style) and not has_handwriting:
        unstyled = State(state.labels, state.seed, state.seed_b, state.blend)
        return (
            unstyled,
            "The link's handwriting sliders were not used: these weights have no handwriting directions",
        )
    return state, None


def morph_frames(
    start: State, end: State, frames: int, z_size: int, handwriting: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(noise, labels) for each frame: labels move linearly, noise along the great circle between
    the ends' (styled) noise."""
    za, zb = start.noise(z_size, handwriting), end.noise(z_size, handwriting)
    a, b = np.array(start.labels), np.array(end.labels)
    ts = np.linspace(0.0, 1.0, frames)
    z = np.stack([slerp(za, zb, t) for t in ts])
    labels = np.stack([(1 - t) * a + t * b for t in ts]).astype(np.float32)
    return z, labels
