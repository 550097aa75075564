"""Trainer extensions: the generator average, the learning-rate decay, the preview grid and the export."""

import datetime
from pathlib import Path

from chainer import training
from PIL import Image

from model.export import save_generator
from model.images import tile, to_uint8
from model.net import N_CLASSES
from model.sampling import generate, one_hot, seeds_noise

PREVIEW_SEEDS = range(10)


class GeneratorAverage(training.Extension):
    """Exponential moving average of the generator's weights and BN statistics.

    Averaged GAN generators give cleaner, steadier samples than the last
    iterate; `averaged` is what gets previewed and exported. Its state is
    part of the trainer snapshot, so resuming keeps the average.
    """

    trigger = (1, "iteration")
    priority = training.PRIORITY_WRITER

    def __init__(self, gen, decay: float):
        self.gen = gen
        self.decay = decay
        self.averaged = gen.copy(mode="copy")

    def __call__(self, trainer):
        live = dict(self.gen.namedparams())
        for name, param in self.averaged.namedparams():
            param.array *= self.decay
            param.array += (1 - self.decay) * live[name].array
        for (_, link), (_, live_link) in zip(self.averaged.namedlinks(), self.gen.namedlinks(), strict=True):
            for name in link._persistent:
                value = getattr(link, name)
                if isinstance(value, link.xp.ndarray):
                    value *= self.decay
                    value += (1 - self.decay) * getattr(live_link, name)

    def serialize(self, serializer):
        self.averaged.serialize(serializer["averaged"])


class LinearDecay(training.Extension):
    """Lowers every optimizer's Adam `alpha` linearly from `lr` at iteration `start` to 0 at `end`.

    The rate follows from the iteration alone, so a run resumed from any snapshot, taken with or
    without the decay, trains with the rates an uninterrupted run would have used. (Chainer's
    LinearShift counts its own calls instead, which a snapshot without it cannot restore.)
    """

    def __init__(self, lr: float, start: int, end: int):
        self.lr = lr
        self.start = start
        self.end = end

    def rate(self, iteration: int) -> float:
        """Adam's alpha for the update that follows `iteration` completed ones."""
        left = min(1.0, (self.end - iteration) / (self.end - self.start))
        return self.lr * max(0.0, left)

    @staticmethod
    def trigger(trainer) -> bool:
        """Every iteration, with no state to save: Chainer's IntervalTrigger would expect its own."""
        return True

    def initialize(self, trainer):
        self(trainer)

    def __call__(self, trainer):
        alpha = self.rate(trainer.updater.iteration)
        for optimizer in trainer.updater.get_all_optimizers().values():
            optimizer.alpha = alpha


def preview_grid(gen):
    """10x10 uint8 grid: row r is digit r, column c is noise seed c (as the app draws it)."""
    digits = [d for d in range(N_CLASSES) for _ in PREVIEW_SEEDS]
    z = seeds_noise([s for _ in range(N_CLASSES) for s in PREVIEW_SEEDS], gen.z_size)
    return tile(to_uint8(generate(gen, z, one_hot(digits))), N_CLASSES, len(PREVIEW_SEEDS))


def preview(gen, out: Path):
    """Extension writing preview_epoch_N.png into `out`."""

    @training.make_extension(trigger=(1, "epoch"))
    def write_preview(trainer):
        path = Path(out) / f"preview_epoch_{trainer.updater.epoch}.png"
        Image.fromarray(preview_grid(gen)).save(path)

    return write_preview


def generator_metadata(trainer, run_info: dict) -> dict:
    """Run facts plus how far training has come, for generator.json."""
    updater = trainer.updater
    global_batch = updater.get_iterator("main").batch_size * run_info.get("processes", 1)
    return {
        **run_info,
        "epochs": updater.epoch_detail,
        "iterations": updater.iteration,
        "images_seen": updater.iteration * global_batch,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def export_generator(gen, out: Path, trigger, run_info: dict):
    """Extension writing generator.npz and generator.json into `out`."""

    @training.make_extension(trigger=trigger, priority=training.PRIORITY_READER)
    def write_generator(trainer):
        save_generator(gen, out, generator_metadata(trainer, run_info))

    return write_generator
