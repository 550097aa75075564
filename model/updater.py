"""One training step of the conditional DCGAN."""

import chainer
import chainer.functions as F
import numpy as np
from chainer import training

from model.net import N_CLASSES


def discriminator_loss(y_real, y_fake):
    """Non-saturating D loss: softplus(-y_real) + softplus(y_fake), batch means."""
    return F.mean(F.softplus(-y_real)) + F.mean(F.softplus(y_fake))


def generator_loss(y_fake):
    """Non-saturating G loss: softplus(-y_fake), batch mean."""
    return F.mean(F.softplus(-y_fake))


class ConditionalGANUpdater(training.updaters.StandardUpdater):
    """Alternates one D step and one G step per batch.

    The D step sees the fake images detached from G, and each optimizer's
    update() clears its own gradients first, so G's step uses only G's loss.
    Noise comes from `rng`, whose state is saved in snapshots so that a resumed
    run draws exactly the noise an uninterrupted run would.

    In data-parallel training, process `rank` of `size` gets the batches of its own data shard
    and the same seed as all the others.
    """

    def __init__(
        self,
        iterator,
        gen_optimizer,
        dis_optimizer,
        device,
        rng: np.random.RandomState,
        rank: int = 0,
        size: int = 1,
    ):
        super().__init__(iterator, {"gen": gen_optimizer, "dis": dis_optimizer}, device=device)
        self.rng = rng
        self.rank = rank
        self.size = size

    def sample_noise(self, n: int, z_size: int) -> np.ndarray:
        """Training noise, uniform in [-1, 1), on the CPU (so CPU and GPU runs draw the same).

        Every process draws the noise of the whole global batch and keeps its own rows, so the
        noise depends on the seed and the global batch, not on the number of processes, and the
        processes' random states stay equal (rank 0's snapshot resumes them all).
        """
        z = self.rng.uniform(-1, 1, (n * self.size, z_size)).astype(np.float32)
        return z[self.rank * n : (self.rank + 1) * n]

    def update_core(self):
        gen_optimizer = self.get_optimizer("gen")
        dis_optimizer = self.get_optimizer("dis")
        gen, dis = gen_optimizer.target, dis_optimizer.target
        x_real, digits = self.converter(self.get_iterator("main").next(), self.device)
        labels = self.device.xp.eye(N_CLASSES, dtype=np.float32)[digits]
        z = self.device.send(self.sample_noise(len(digits), gen.z_size))

        x_fake = gen(z, labels)
        dis_optimizer.update(
            self._reported, dis, discriminator_loss, dis(x_real, labels), dis(x_fake.array, labels)
        )
        gen_optimizer.update(self._reported, gen, generator_loss, dis(x_fake, labels))

    @staticmethod
    def _reported(observer, lossfun, *logits):
        loss = lossfun(*logits)
        chainer.report({"loss": loss}, observer)
        return loss

    def serialize(self, serializer):
        super().serialize(serializer)
        name, keys, position, has_gauss, cached_gaussian = self.rng.get_state()
        self.rng.set_state(
            (
                name,
                serializer("rng_keys", keys.copy()),
                int(serializer("rng_position", position)),
                int(serializer("rng_has_gauss", has_gauss)),
                float(serializer("rng_cached_gaussian", cached_gaussian)),
            )
        )
