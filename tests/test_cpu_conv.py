"""model/cpu_conv.py gives Chainer's own results: outputs and every gradient, for several shapes."""

import chainer
import chainer.functions as F
import numpy as np
import pytest

from model import cpu_conv

CASES = [  # n, c, h, w, out_c, kernel, stride, pad: the cDCGAN's layers first, then odd ones
    (4, 11, 28, 28, 64, 4, 2, 1),
    (4, 64, 14, 14, 128, 4, 2, 1),
    (3, 5, 9, 7, 6, 3, 1, 1),
    (2, 3, 10, 11, 4, 5, 3, 2),
    (2, 3, 8, 8, 4, 3, 2, 0),
    (2, 2, 6, 6, 3, 1, 1, 0),
]


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
    try:
        cpu_conv.uninstall()
        expected = outputs_and_gradients(arrays, stride, pad)
        cpu_conv.install()
        got = outputs_and_gradients(arrays, stride, pad)
    finally:
        cpu_conv.install()
    for want, have in zip(expected, got, strict=True):
        assert have.shape == want.shape and have.dtype == want.dtype
        np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
