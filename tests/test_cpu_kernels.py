"""model/cpu_kernels.py gives Chainer's own results: outputs and every gradient, for several shapes."""

from collections.abc import Callable

import chainer
import chainer.functions as F
import numpy as np
import pytest
from chainer.functions.connection import convolution_2d

from model import cpu_kernels

CASES = [  # n, c, h, w, out_c, kernel, stride, pad: the cDCGAN's layers first, then odd ones
    (4, 11, 28, 28, 64, 4, 2, 1),
    (4, 64, 14, 14, 128, 4, 2, 1),
    (3, 5, 9, 7, 6, 3, 1, 1),
    (2, 3, 10, 11, 4, 5, 3, 2),
    (2, 3, 8, 8, 4, 3, 2, 0),
    (2, 2, 6, 6, 3, 1, 1, 0),
]


def chainers_and_ours(compute: Callable[[], list[np.ndarray]]) -> tuple[list, list]:
    """compute() with Chainer's own CPU kernels, then with these; Chainer's are back after."""
    try:
        cpu_kernels.uninstall()
        expected = compute()
        cpu_kernels.install()
        got = compute()
    finally:
        cpu_kernels.uninstall()
    return expected, got


def outputs_and_gradients(arrays, stride: int, pad: int) -> list[np.ndarray]:
    x, W, b, xd, Wd = (chainer.Variable(a.copy()) for a in arrays)
    y = F.convolution_2d(x, W, b, stride, pad)
    yd = F.deconvolution_2d(xd, Wd, None, stride, pad)
    (F.sum(y * y) + F.sum(yd * yd)).backward()
    return [y.array, yd.array, x.grad, W.grad, b.grad, xd.grad, Wd.grad]


@pytest.mark.parametrize("case", CASES)
def test_fast_kernels_match_chainers_convolution_and_deconvolution(case):
    n, c, h, w, out_c, k, stride, pad = case
    rng = np.random.RandomState(0)
    shapes = [(n, c, h, w), (out_c, c, k, k), (out_c,), (n, out_c, h, w), (out_c, c, k, k)]
    arrays = [rng.randn(*shape).astype(np.float32) for shape in shapes]
    expected, got = chainers_and_ours(lambda: outputs_and_gradients(arrays, stride, pad))
    for want, have in zip(expected, got, strict=True):
        assert have.shape == want.shape and have.dtype == want.dtype
        np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def leaky_outputs_and_gradients(x: np.ndarray, w: np.ndarray, slope: float) -> list[np.ndarray]:
    """Output, input gradient of sum(y * w), and that gradient's own gradient with respect to w."""
    v, weights = chainer.Variable(x.copy()), chainer.Variable(w.copy())
    y = F.leaky_relu(v, slope)
    (gx,) = chainer.grad([F.sum(y * weights)], [v], enable_double_backprop=True)
    F.sum(gx * gx).backward()
    return [y.array, gx.array, weights.grad]


@pytest.mark.parametrize("slope", [0.0, 0.2, 1.0, -0.5, 2.0])
def test_fast_leaky_relu_is_bitwise_chainers(slope):
    rng = np.random.RandomState(1)
    x = rng.randn(3, 5, 7, 7).astype(np.float32)
    x[0, 0, 0, :3] = [0.0, -0.0, 1e-30]
    w = rng.randn(*x.shape).astype(np.float32)
    expected, got = chainers_and_ours(lambda: leaky_outputs_and_gradients(x, w, slope))
    for want, have in zip(expected, got, strict=True):
        assert have.dtype == want.dtype
        np.testing.assert_array_equal(have, want)


def test_the_weight_gradient_reads_the_forward_pass_columns_and_gets_the_same_bits(monkeypatch):
    """The forward pass's columns of x are kept for the weight gradient: one phase_columns() a
    convolution instead of two, the gradients as from columns computed again."""
    rng = np.random.RandomState(2)
    arrays = [rng.randn(*shape).astype(np.float32) for shape in ((4, 64, 14, 14), (128, 64, 4, 4), (128,))]
    calls = []
    counted = cpu_kernels.phase_columns
    monkeypatch.setattr(cpu_kernels, "phase_columns", lambda *args: calls.append(args[1:]) or counted(*args))

    def gradients(keep: bool) -> list[np.ndarray]:
        x, W, b = (chainer.Variable(a.copy()) for a in arrays)
        y = F.convolution_2d(x, W, b, 2, 1)
        if not keep:
            y.creator.phase_columns = None
        F.sum(y * y).backward()
        return [x.grad, W.grad, b.grad]

    cpu_kernels.install()
    try:
        recomputed = gradients(keep=False)
        assert len(calls) == 2
        calls.clear()
        kept = gradients(keep=True)
        assert len(calls) == 1
        node = convolution_2d.Convolution2DFunction(stride=2, pad=1)
        with chainer.no_backprop_mode():  # no gradient to come: nothing kept
            node.apply(arrays)
        assert getattr(node, "phase_columns", None) is None
    finally:
        cpu_kernels.uninstall()
    for want, have in zip(recomputed, kept, strict=True):
        np.testing.assert_array_equal(have, want)
