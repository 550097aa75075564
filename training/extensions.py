"""Trainer extensions: the generator average, the learning-rate decay, the run's recipe, the preview
grid, the export and the snapshot writer."""

import datetime
import json
from collections.abc import Callable
from pathlib import Path

import chainer
import numpy as np
from chainer import training
from chainer.training.extensions import snapshot_writers
from PIL import Image

from model.export import save_generator
from model.files import npz_bytes, remove_temporaries, write_file
from model.images import tile, to_uint8
from model.net import N_CLASSES, Generator
from model.sampling import generate, one_hot, seeds_noise

PREVIEW_SEEDS = range(10)


EMA_WARMUP = "min(ema_decay, (1 + t) / (10 + t)) at update t = 1, 2, ..."
"""The decay of the weight average (TensorFlow's ExponentialMovingAverage with num_updates), as
generator.json states it."""


class GeneratorAverage(training.Extension):
    """Exponential moving average of the generator's weights and BN statistics.

    Averaged GAN generators give cleaner, steadier samples than the last
    iterate; `averaged` is what gets previewed and exported. The decay warms up
    (EMA_WARMUP), so that the average of a short run, or of the first epochs of a
    long one, has left the random initial weights behind. It follows from the
    updater's iteration, and the average is part of the trainer snapshot, so a
    resumed run averages exactly as an uninterrupted one.
    """

    trigger = (1, "iteration")
    priority = training.PRIORITY_WRITER

    def __init__(self, gen: Generator, decay: float):
        self.gen = gen
        self.decay = decay
        self.averaged = gen.copy(mode="copy")

    def decay_at(self, t: int) -> float:
        """The decay used after update `t` (1 for the first)."""
        return min(self.decay, (1 + t) / (10 + t))

    def __call__(self, trainer: training.Trainer) -> None:
        decay = self.decay_at(trainer.updater.iteration)
        live = dict(self.gen.namedparams())
        for name, param in self.averaged.namedparams():
            param.array *= decay
            param.array += (1 - decay) * live[name].array
        for (_, link), (_, live_link) in zip(self.averaged.namedlinks(), self.gen.namedlinks(), strict=True):
            for name in link._persistent:
                value = getattr(link, name)
                if isinstance(value, link.xp.ndarray):
                    value *= decay
                    value += (1 - decay) * getattr(live_link, name)

    def serialize(self, serializer: chainer.AbstractSerializer) -> None:
        self.averaged.serialize(serializer["averaged"])


class LinearDecay(training.Extension):
    """Lowers every optimizer's Adam `alpha` linearly from `lr` at iteration `start` to 0 at `end`.

    The rate follows from the iteration alone, so a run resumed from any snapshot, whatever decay it
    was taken with, trains with the rates an uninterrupted run of its own flags would have used.
    (Chainer's LinearShift counts its own calls instead, which a snapshot without it cannot
    restore.) With `start` equal to `end` the rate stays constant.
    """

    def __init__(self, lr: float, start: int, end: int):
        self.lr = lr
        self.start = start
        self.end = end

    def rate(self, iteration: int) -> float:
        """Adam's alpha for the update that follows `iteration` completed ones."""
        left = min(1.0, (self.end - iteration) / max(1, self.end - self.start))
        return self.lr * max(0.0, left)

    @staticmethod
    def trigger(trainer: training.Trainer) -> bool:
        """Every iteration, with no state to save: Chainer's IntervalTrigger would expect its own."""
        return True

    def initialize(self, trainer: training.Trainer) -> None:
        self(trainer)

    def __call__(self, trainer: training.Trainer) -> None:
        alpha = self.rate(trainer.updater.iteration)
        for optimizer in trainer.updater.get_all_optimizers().values():
            optimizer.alpha = alpha


class RunRecord(training.Extension):
    """The run's recipe, kept in its snapshots: that of each leg and the iteration it began at.

    A run resumed with other flags or on another device (a longer --epoch, say) begins a new leg, so
    that generator.json says how its weights were made, and --export-only takes the snapshot's
    recipe, not its own flags.
    """

    def __init__(self, info: dict):
        self.info = info
        self.legs: list[dict] = []  # from a snapshot, or begun by the run that starts

    @staticmethod
    def trigger(trainer: training.Trainer) -> bool:
        """Never: the record only travels in snapshots."""
        return False

    def initialize(self, trainer: training.Trainer) -> None:
        """A run starts, fresh or resumed: its flags begin a leg unless they are the last leg's."""
        if not self.legs or self.flags(self.legs[-1]) != self.info:
            self.legs.append({"from_iteration": trainer.updater.iteration, **self.info})

    @staticmethod
    def flags(leg: dict) -> dict:
        return {key: value for key, value in leg.items() if key != "from_iteration"}

    def recipe(self) -> dict:
        """The latest leg's flags, with every leg when there were several."""
        if len(self.legs) == 1:
            return self.flags(self.legs[0])
        return {**self.flags(self.legs[-1]), "legs": self.legs}

    def serialize(self, serializer: chainer.AbstractSerializer) -> None:
        if isinstance(serializer, chainer.serializer.Serializer):
            serializer("legs", np.array(json.dumps(self.legs)))
        else:
            self.legs = json.loads(str(serializer("legs", None)))


def preview_grid(gen: Generator) -> np.ndarray:
    """10x10 uint8 grid: row r is digit r, column c is noise seed c (as the app draws it)."""
    digits = [d for d in range(N_CLASSES) for _ in PREVIEW_SEEDS]
    z = seeds_noise([s for _ in range(N_CLASSES) for s in PREVIEW_SEEDS], gen.z_size)
    return tile(to_uint8(generate(gen, z, one_hot(digits))), N_CLASSES, len(PREVIEW_SEEDS))


def preview(gen: Generator, out: Path) -> Callable[[training.Trainer], None]:
    """Extension writing preview_epoch_N.png into `out`."""

    @training.make_extension(trigger=(1, "epoch"))
    def write_preview(trainer: training.Trainer) -> None:
        path = Path(out) / f"preview_epoch_{trainer.updater.epoch}.png"
        Image.fromarray(preview_grid(gen)).save(path)

    return write_preview


def generator_metadata(trainer: training.Trainer, recipe: dict) -> dict:
    """The run's recipe plus how far training has come, for generator.json."""
    updater = trainer.updater
    real_per_iteration = recipe["batchsize"] * recipe.get("processes", 1)
    return {
        **recipe,
        "epochs": updater.epoch_detail,
        "iterations": updater.iteration,
        "images_seen": updater.iteration * real_per_iteration,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def export_generator(
    gen: Generator, out: Path, trigger: Callable[[training.Trainer], bool], record: RunRecord
) -> Callable[[training.Trainer], None]:
    """Extension writing generator.npz and generator.json into `out`."""

    @training.make_extension(trigger=trigger, priority=training.PRIORITY_READER)
    def write_generator(trainer: training.Trainer) -> None:
        save_generator(gen, out, generator_metadata(trainer, record.recipe()))

    return write_generator


class SnapshotWriter(snapshot_writers.Writer):
    """Writes each snapshot through model.files.write_file: built in memory, fsynced and renamed into
    place, so that a killed run leaves whole snapshots and at most one temporary file, which the next
    snapshot removes, and a full disk raises NoSpaceError naming the file."""

    def __call__(self, filename: str, outdir: str, target: dict) -> None:
        remove_temporaries(Path(outdir), ["snapshot_iter_*"])
        write_file(Path(outdir) / filename, npz_bytes(target))
        self._post_save()
