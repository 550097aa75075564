"""FlatAdam: Chainer's Adam to the bit, one step for a whole network, snapshots as Chainer's."""

import io

import chainer
import numpy as np
import pytest

from model.net import ProjectionDiscriminator
from training import optimizer as flat_adam
from training.optimizer import FlatAdam


def network() -> chainer.Link:
    np.random.seed(0)
    return ProjectionDiscriminator(ch=4, classifier=True)


def set_up(optimizer_class, net=None, **hyperparameters):
    net = net or network()
    optimizer = optimizer_class(alpha=2e-4, **hyperparameters)
    optimizer.setup(net)
    return net, optimizer


def step(optimizer: chainer.Optimizer, rng: np.random.RandomState, t: int) -> None:
    """Gradients as from a backward pass (new arrays), a rate that moves as LinearDecay moves it."""
    for param in optimizer.target.params():
        param.grad = (rng.randn(*param.shape) * 10.0 ** rng.randint(-8, 0)).astype(np.float32)
    optimizer.alpha = 2e-4 * (1 - t / 20)
    optimizer.update()


def weights(net: chainer.Link) -> dict:
    return {name: param.array.copy() for name, param in net.namedparams()}


def assert_same_weights(ours: chainer.Link, chainers: chainer.Link) -> None:
    theirs = weights(chainers)
    for name, array in weights(ours).items():
        assert np.array_equal(array, theirs[name]), name


@pytest.mark.parametrize(
    "hyperparameters",
    [
        {"beta1": 0.0},
        {"beta1": 0.5},
        {"beta1": 0.0, "eta": 0.5},
        {"beta1": 0.0, "weight_decay_rate": 1e-2},  # Chainer's own step over the gathered gradients
        {"beta1": 0.0, "amsgrad": True},
    ],
)
@pytest.mark.parametrize("small", [flat_adam.SMALL, 64, 0], ids=["all-small", "biases-small", "none-small"])
def test_flat_adam_steps_every_weight_as_chainers_adam_to_the_bit(hyperparameters, small, monkeypatch):
    monkeypatch.setattr(flat_adam, "SMALL", small)  # which parameters step together (this net's are small)
    ours, flat = set_up(FlatAdam, **hyperparameters)
    theirs, adam = set_up(chainer.optimizers.Adam, **hyperparameters)
    rng_ours, rng_theirs = np.random.RandomState(1), np.random.RandomState(1)
    for t in range(5):
        step(flat, rng_ours, t)
        step(adam, rng_theirs, t)
    assert flat._flat is not None, "the whole network did not step at once"
    in_place = "weight_decay_rate" not in hyperparameters and "amsgrad" not in hyperparameters
    assert (flat._flat.grads is None) == in_place  # the gradients gathered only for Chainer's step
    assert_same_weights(ours, theirs)
    for (name, param), (_, chainer_param) in zip(ours.namedparams(), theirs.namedparams(), strict=True):
        assert param.update_rule.t == chainer_param.update_rule.t == 5
        ours_state, chainers_state = param.update_rule.state, chainer_param.update_rule.state
        for moment in ("m", "v"):
            assert np.array_equal(ours_state[moment], chainers_state[moment]), name


def saved(*objects) -> list[bytes]:
    files = [io.BytesIO() for _ in objects]
    for file, obj in zip(files, objects, strict=True):
        chainer.serializers.save_npz(file, obj)
    return [file.getvalue() for file in files]


@pytest.mark.parametrize("first", [FlatAdam, chainer.optimizers.Adam])
def test_a_run_resumed_from_a_snapshot_steps_as_if_uninterrupted(first):
    """Snapshots keep Chainer's layout, so either optimizer resumes the other's."""
    net, optimizer = set_up(first, beta1=0.0)
    rng = np.random.RandomState(2)
    for t in range(3):
        step(optimizer, rng, t)
    resumed, resumed_optimizer = set_up(FlatAdam, beta1=0.0)
    for file, obj in zip(saved(net, optimizer), (resumed, resumed_optimizer), strict=True):
        chainer.serializers.load_npz(io.BytesIO(file), obj)
    resumed_rng = np.random.RandomState(0)
    resumed_rng.set_state(rng.get_state())
    for t in range(3, 6):
        step(optimizer, rng, t)
        step(resumed_optimizer, resumed_rng, t)
    assert resumed_optimizer._flat is not None
    assert_same_weights(resumed, net)


def test_arrays_replaced_from_outside_are_taken_into_the_layout():
    """What replaces a parameter's array (to_device, a deserializer) is stepped, not a stale copy."""
    ours, flat = set_up(FlatAdam, beta1=0.0)
    theirs, adam = set_up(chainer.optimizers.Adam, beta1=0.0)
    rng_ours, rng_theirs = np.random.RandomState(3), np.random.RandomState(3)
    step(flat, rng_ours, 0)
    step(adam, rng_theirs, 0)
    for net in (ours, theirs):
        net.c2.W.array = net.c2.W.array * 0.5
    for t in range(1, 3):
        step(flat, rng_ours, t)
        step(adam, rng_theirs, t)
    assert_same_weights(ours, theirs)


def test_a_parameter_with_its_own_rate_or_hook_steps_alone_as_in_chainer():
    ours, flat = set_up(FlatAdam, beta1=0.0)
    theirs, adam = set_up(chainer.optimizers.Adam, beta1=0.0)
    for net in (ours, theirs):
        net.fc.W.update_rule.hyperparam.alpha = 1e-3
        net.c1.b.update_rule.add_hook(chainer.optimizer_hooks.WeightDecay(1e-2))
    rng_ours, rng_theirs = np.random.RandomState(4), np.random.RandomState(4)
    for t in range(3):
        step(flat, rng_ours, t)
        step(adam, rng_theirs, t)
    assert_same_weights(ours, theirs)
    assert flat._flat is None


def test_update_with_a_loss_function_clears_the_gradients_first():
    """As Chainer's update(lossfun): gradients left from before do not add to the new ones."""
    ours, flat = set_up(FlatAdam, beta1=0.0)
    theirs, adam = set_up(chainer.optimizers.Adam, beta1=0.0)
    x = np.random.RandomState(5).rand(2, 1, 28, 28).astype(np.float32)
    labels = np.eye(10, dtype=np.float32)[[1, 2]]
    for net, optimizer in ((ours, flat), (theirs, adam)):
        for param in net.params():
            param.grad = np.ones_like(param.array)
        for _ in range(2):
            optimizer.update(lambda net=net: chainer.functions.sum(net(x, labels)))
    assert_same_weights(ours, theirs)
