"""One training step of the conditional DCGAN."""

import chainer
import numpy as np
from chainer import training

from model.sampling import one_hot
from training.losses import ClassLoss, HingeDiscriminatorLoss, HingeGeneratorLoss, loss_sum


class DeviceData:
    """The training images and their one-hot labels, sent to the device once.

    Batches are gathered there by index, so an iteration moves only the batch's indices and noise
    to a GPU, not its images, and builds no per-example Python objects.
    """

    def __init__(self, dataset, device: chainer.backend.Device):
        images, digits = chainer.dataset.concat_examples(dataset[: len(dataset)])
        self.images = device.send(images)
        self.labels = device.send(one_hot(digits))

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, indices) -> tuple:
        """(images, one-hot labels) of the examples at `indices`, on the device."""
        at = chainer.backend.get_array_module(self.images).asarray(np.asarray(indices, dtype=np.int32))
        return self.images[at], self.labels[at]


class ConditionalGANUpdater(training.updaters.StandardUpdater):
    """One D step, then one G step on the same batch, both with the hinge loss.

    The iterator yields indices into `data` (a DeviceData), in the order Chainer's shuffling picks.

    D's step sees the fake images detached from G; G's step uses the same fake images and labels.
    With a class weight, D also has a class head (an auxiliary classifier, as in AC-GAN) trained on
    the real images, and G's loss adds that head's cross-entropy on its fakes.
    D's update() clears D's gradients first. G's step backpropagates only along the paths to G's
    weights: D's weight gradients of G's loss would be thrown away, and in a step they cost as much
    as D's largest convolution.
    Noise comes from `rng`, whose state is saved in snapshots so that a resumed
    run draws exactly the noise an uninterrupted run would.

    In data-parallel training, process `rank` of `size` gets the batches of its own data shard
    and the same seed as all the others.
    """

    LOSS = "hinge"  # as run records name it: HingeDiscriminatorLoss and HingeGeneratorLoss

    def __init__(
        self,
        iterator,
        data: DeviceData,
        gen_optimizer,
        dis_optimizer,
        device,
        rng: np.random.RandomState,
        rank: int = 0,
        size: int = 1,
        class_weight: float = 0.0,
    ):
        super().__init__(iterator, {"gen": gen_optimizer, "dis": dis_optimizer}, device=device)
        self.class_weight = class_weight
        self.data = data
        self.rng = rng
        self.rank = rank
        self.size = size
        self.types_checked = False

    def own_rows(self, global_batch: np.ndarray) -> np.ndarray:
        """This process's rows of something drawn for the whole global batch.

        Every process draws for the whole global batch and keeps its own rows, so what it gets
        depends on the seed and the global batch, not on the number of processes, and the
        processes' random states stay equal (rank 0's snapshot resumes them all).
        """
        n = len(global_batch) // self.size
        return global_batch[self.rank * n : (self.rank + 1) * n]

    def sample_noise(self, n: int, z_size: int) -> np.ndarray:
        """Training noise, uniform in [-1, 1), on the CPU (so CPU and GPU runs draw the same)."""
        return self.own_rows(self.rng.uniform(-1, 1, (n * self.size, z_size)).astype(np.float32))

    def update_core(self) -> None:
        # Chainer checks the types and shapes of every function's inputs in the first step of a
        # process; the steps after it apply the same functions to arrays of the same types and
        # shapes, so they skip the checks (about 1 ms of a 24 ms step at batch 1 on one core).
        with chainer.using_config("type_check", not self.types_checked):
            self.step()
        self.types_checked = True

    def step(self) -> None:
        """One D step and one G step on the next batch."""
        gen_optimizer = self.get_optimizer("gen")
        dis_optimizer = self.get_optimizer("dis")
        gen, dis = gen_optimizer.target, dis_optimizer.target
        x_real, labels = self.data.batch(self.get_iterator("main").next())
        z = self.device.send(self.sample_noise(len(labels), gen.z_size))

        x_fake = gen(z, labels)
        # D's pass over the real batch, then over the fake one (detached from G), one node a layer
        h_real, h_detached = dis.features_of((x_real, x_fake.array))
        hinge = (HingeDiscriminatorLoss(), dis.judge_each((h_real, h_detached), labels))
        dis_optimizer.update(self._reported, dis, loss_sum(hinge, *self._class_terms(dis, h_real, labels)))
        h_fake = dis.features(x_fake)
        hinge = (HingeGeneratorLoss(), (dis.judge(h_fake, labels),))
        gen_loss = loss_sum(hinge, *self._class_terms(dis, h_fake, labels))
        self._reported(gen, gen_loss)
        gen.cleargrads()
        chainer.grad([gen_loss], list(gen.params()), set_grad=True)  # through D, but not into D's weights
        gen_optimizer.update()

    def _class_terms(self, dis, h, labels) -> list:
        """With a class weight, the loss term of that much of the class head's loss on features `h`:
        D learns to name the digits of real images, G to draw digits that D names as asked."""
        if not self.class_weight:
            return []
        return [(ClassLoss(self.class_weight), (dis.classify(h), labels))]

    @staticmethod
    def _reported(observer, loss):
        chainer.report({"loss": loss}, observer)
        return loss

    def serialize(self, serializer: chainer.AbstractSerializer) -> None:
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
