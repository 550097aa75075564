"""Faster NumPy kernels for Chainer's 2-D convolutions and leaky ReLU on the CPU; same results.

Chainer's CPU convolution builds im2col columns as (n, c, kh, kw, oh, ow) with one tiny strided copy
per row of output pixels, then `tensordot` transposes them into yet another copy, and the answer is
a non-contiguous view that the next reshape copies again: in a cDCGAN step these copies cost more
than the matrix products. Here the padded input is split once into its stride phases, so that every
kernel tap's columns are one contiguous run per (channel, image) plane, laid out (c*kh*kw, n*pixels)
for a single BLAS product whose result needs one small transpose. Each output row carries a few
extra columns (the phase plane's width) that are computed and dropped, or zero in gradients.

`install()` swaps these kernels into Chainer's Convolution2D, its weight gradient and
Deconvolution2D (which is also the convolution's input gradient) for the common case: no dilation,
no cover_all, one group. Anything else, and every GPU array, keeps Chainer's own code.

Chainer's leaky ReLU scales the negative entries through a boolean mask, a gather and a scatter;
for a slope in [0, 1] the same numbers are max(x, slope * x) forward, and backward the gradient
times max(output > 0, slope), which is 1 or the slope: NumPy's where() and masked copies branch on
every element and take ten times as long on a mixed mask.
"""

import chainer
import numpy as np
from chainer.functions.activation import leaky_relu
from chainer.functions.connection import convolution_2d, deconvolution_2d

_ORIGINAL = {
    "conv": convolution_2d.Convolution2DFunction._forward_cpu_core,
    "grad_w": convolution_2d.Convolution2DGradW._forward_cpu_core,
    "grad_w_init": convolution_2d.Convolution2DGradW.__init__,
    "deconv": deconvolution_2d.Deconvolution2DFunction._forward_cpu_core,
    "leaky_relu": leaky_relu.LeakyReLU.forward_cpu,
    "leaky_relu_grad": leaky_relu._LeakyReLUGrad.forward_cpu,
}


def phase_columns(x: np.ndarray, kh: int, kw: int, sy: int, sx: int, ph: int, pw: int, oh: int, ow: int):
    """im2col columns (c*kh*kw, n*oh*wq) and wq, the row width (ow plus the dropped columns)."""
    n, c, h, w = x.shape
    hq, wq = oh + (kh - 1) // sy + 1, ow + (kw - 1) // sx
    # phases[a, b] is every sy-th row from a and every sx-th column from b of the zero-padded input,
    # flattened per plane, copied from the input one phase at a time (padding it first and then
    # transposing took twice as long).
    phases = np.zeros((sy, sx, c, n, hq, wq), x.dtype)
    planes = x.transpose(1, 0, 2, 3)
    rows, cols = min(h, hq * sy - ph), min(w, wq * sx - pw)  # input never read past the last tap
    for a in range(sy):
        first_row = (a - ph) % sy  # the input rows r with (r + ph) % sy == a
        for b in range(sx):
            first_col = (b - pw) % sx
            source = planes[:, :, first_row:rows:sy, first_col:cols:sx]
            i, j = (first_row + ph) // sy, (first_col + pw) // sx
            phases[a, b, :, :, i : i + source.shape[2], j : j + source.shape[3]] = source
    phases = phases.reshape(sy, sx, c, n, hq * wq)
    col = np.empty((c, kh, kw, n, oh * wq), x.dtype)
    for j, i, rows, cols in tap_groups(kh, kw, sy, sx):
        start = (j // sy) * wq + i // sx  # where taps (j.., i..) read their phases
        source = phases[j % sy : j % sy + rows, i % sx : i % sx + cols, :, :, start : start + oh * wq]
        col[:, j : j + rows, i : i + cols] = source.transpose(2, 0, 1, 3, 4)
    return col.reshape(c * kh * kw, n * oh * wq), wq


def tap_groups(kh: int, kw: int, sy: int, sx: int) -> list:
    """The kernel taps grouped by where in the stride phases they read or write, as (j, i, rows,
    cols): taps (j + a, i + b) for a < rows, b < cols, one per phase (j % sy + a, i % sx + b).

    With a kernel that the stride divides, a group is sy * sx taps: one copy or sum for the group
    instead of one a tap, each phase's in the same order. Otherwise each tap is its own group.
    """
    if kh % sy or kw % sx:
        return [(j, i, 1, 1) for j in range(kh) for i in range(kw)]
    return [(j, i, sy, sx) for j in range(0, kh, sy) for i in range(0, kw, sx)]


def conv_forward(self, x, W, b):
    """Convolution2DFunction on the CPU: W (oc, c, kh, kw) over x (n, c, h, w)."""
    if not _handled(self):
        return _ORIGINAL["conv"](self, x, W, b)
    oh, ow = self._get_out_size(x.shape, W.shape)
    columns = phase_columns(x, *W.shape[2:], self.sy, self.sx, self.ph, self.pw, oh, ow)
    if chainer.config.enable_backprop:  # the weight gradient, where one is asked for, reads them again
        self.phase_columns = (x, columns)
    return (convolve_columns(columns, x, W, b, (oh, ow)),)


def convolve(x: np.ndarray, W: np.ndarray, b, stride: tuple, pad: tuple, out_size: tuple) -> np.ndarray:
    """The convolution of x (n, c, h, w) by W (oc, c, kh, kw), plus bias b (oc,) or None: one BLAS product."""
    (sy, sx), (ph, pw), (oh, ow) = stride, pad, out_size
    columns = phase_columns(x, *W.shape[2:], sy, sx, ph, pw, oh, ow)
    return convolve_columns(columns, x, W, b, out_size)


def convolve_columns(columns: tuple, x: np.ndarray, W: np.ndarray, b, out_size: tuple) -> np.ndarray:
    """convolve() given phase_columns() of x."""
    col, wq = columns
    out_c = len(W)
    oh, ow = out_size
    y = (W.reshape(out_c, -1) @ col).reshape(out_c, len(x), oh, wq)[..., :ow]
    y = np.ascontiguousarray(y.transpose(1, 0, 2, 3), dtype=x.dtype)
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def conv_grad_w(self, x, gy):
    """Convolution2DGradW on the CPU: the weight gradient (oc, c, kh, kw)."""
    if not _handled(self):
        return _ORIGINAL["grad_w"](self, x, gy)
    n, out_c, oh, ow = gy.shape
    kept, self.phase_columns = getattr(self, "phase_columns", None), None
    if kept is not None and kept[0] is x:  # the forward pass's columns of the same input
        col, wq = kept[1]
    else:
        col, wq = phase_columns(x, self.kh, self.kw, self.sy, self.sx, self.ph, self.pw, oh, ow)
    gy_rows = np.zeros((out_c, n, oh, wq), gy.dtype)  # the dropped columns get no gradient
    gy_rows[..., :ow] = gy.transpose(1, 0, 2, 3)
    gW = gy_rows.reshape(out_c, -1) @ col.T
    return (gW.reshape(out_c, x.shape[1], self.kh, self.kw).astype(self.W_dtype, copy=False),)


def deconv_forward(self, x, W, b):
    """Deconvolution2DFunction on the CPU: W (c, oc, kh, kw) spread over the output (n, oc, H, W)."""
    kh, kw = W.shape[2:]
    hq, wq = x.shape[2] + (kh - 1) // self.sy + 1, x.shape[3] + (kw - 1) // self.sx
    if not _handled(self) or hq * self.sy < self.ph + self.outh or wq * self.sx < self.pw + self.outw:
        return _ORIGINAL["deconv"](self, x, W, b)
    taps = tap_matrices(W)
    return (deconvolve(x, taps, b, (self.sy, self.sx), (self.ph, self.pw), (self.outh, self.outw)),)


def tap_matrices(W: np.ndarray) -> np.ndarray:
    """A deconvolution's W (c, oc, kh, kw) as one contiguous (oc, c) matrix per kernel tap.

    In two copies, taps first and then each tap's transpose: one copy straight to that layout reads
    W a float per cache line, which took 2.3 times as long (a training step makes four).
    """
    c, oc, kh, kw = W.shape
    by_tap = np.ascontiguousarray(W.reshape(c, oc, kh * kw).transpose(2, 0, 1))
    return np.ascontiguousarray(by_tap.transpose(0, 2, 1)).reshape(kh, kw, oc, c)


def deconvolve(x: np.ndarray, taps: np.ndarray, b, stride: tuple, pad: tuple, out_size: tuple) -> np.ndarray:
    """The transposed convolution of x (n, c, h, w) by tap_matrices(W), plus bias b (oc,) or None.

    One BLAS product gives every tap's contribution, one contiguous block per tap; the taps are
    summed into the stride phases of the output. Needs an output that the phases cover
    (deconv_forward checks, Chainer's code covers the rest).
    """
    n, c, h, w = x.shape
    kh, kw, out_c, _ = taps.shape
    (sy, sx), (ph, pw), (outh, outw) = stride, pad, out_size
    hq, wq = h + (kh - 1) // sy + 1, w + (kw - 1) // sx
    x_rows = np.zeros((c, n, h, wq), x.dtype)  # zero columns spread zeros
    x_rows[..., :w] = x.transpose(1, 0, 2, 3)
    gcol = (taps.reshape(-1, c) @ x_rows.reshape(c, -1)).reshape(kh, kw, out_c, n, h * wq)
    phases = np.zeros((sy, sx, out_c, n, hq * wq), x.dtype)
    for j, i, rows, cols in tap_groups(kh, kw, sy, sx):  # each phase's taps in order
        start = (j // sy) * wq + i // sx
        phases[j % sy : j % sy + rows, i % sx : i % sx + cols, :, :, start : start + h * wq] += gcol[
            j : j + rows, i : i + cols
        ]
    phases = phases.reshape(sy, sx, out_c, n, hq, wq)
    y = np.empty((n, out_c, outh, outw), x.dtype)
    for a in range(sy):  # output rows r with (r + ph) % sy == a come from phase row (r + ph) // sy
        r0 = (a - ph) % sy
        rows = slice((r0 + ph) // sy, (r0 + ph) // sy + len(range(r0, outh, sy)))
        for e in range(sx):
            c0 = (e - pw) % sx
            cols = slice((c0 + pw) // sx, (c0 + pw) // sx + len(range(c0, outw, sx)))
            y[:, :, r0::sy, c0::sx] = phases[a, e, :, :, rows, cols].transpose(1, 0, 2, 3)
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def _leaky_handled(function) -> bool:
    """The case the leaky ReLU kernels cover: a slope in [0, 1], without iDeep."""
    return 0 <= function.slope <= 1 and not leaky_relu.intel64.should_use_ideep(">=auto")


def leaky_relu_forward(self, inputs):
    """LeakyReLU on the CPU: the output, kept for the gradient as Chainer keeps it."""
    if not _leaky_handled(self):
        return _ORIGINAL["leaky_relu"](self, inputs)
    (x,) = inputs
    self.retain_outputs((0,))
    return (np.maximum(x, x * self.slope),)


def leaky_relu_gradient(self, inputs):
    """The leaky ReLU's input gradient on the CPU; `cond` is the retained output."""
    if not _leaky_handled(self):
        return _ORIGINAL["leaky_relu_grad"](self, inputs)
    (gy,) = inputs
    gx = (self.cond > 0).astype(gy.dtype)
    np.maximum(gx, self.slope, out=gx)
    gx *= gy
    return (gx,)


def grad_w_init(self, conv2d, *args):
    """Convolution2DGradW's constructor, also taking the columns that the forward pass kept."""
    _ORIGINAL["grad_w_init"](self, conv2d, *args)
    self.phase_columns, conv2d.phase_columns = getattr(conv2d, "phase_columns", None), None


def _handled(function) -> bool:
    """The case these kernels cover; iDeep, dilation and cover_all stay with Chainer."""
    return (
        not function._use_ideep
        and function.dy == function.dx == 1
        and not getattr(function, "cover_all", False)
    )


def install() -> None:
    """Use these kernels for every CPU convolution and leaky ReLU from now on (idempotent)."""
    convolution_2d.Convolution2DFunction._forward_cpu_core = conv_forward
    convolution_2d.Convolution2DGradW._forward_cpu_core = conv_grad_w
    convolution_2d.Convolution2DGradW.__init__ = grad_w_init
    deconvolution_2d.Deconvolution2DFunction._forward_cpu_core = deconv_forward
    leaky_relu.LeakyReLU.forward_cpu = leaky_relu_forward
    leaky_relu._LeakyReLUGrad.forward_cpu = leaky_relu_gradient


def uninstall() -> None:
    """Back to Chainer's own kernels (for comparisons)."""
    convolution_2d.Convolution2DFunction._forward_cpu_core = _ORIGINAL["conv"]
    convolution_2d.Convolution2DGradW._forward_cpu_core = _ORIGINAL["grad_w"]
    convolution_2d.Convolution2DGradW.__init__ = _ORIGINAL["grad_w_init"]
    deconvolution_2d.Deconvolution2DFunction._forward_cpu_core = _ORIGINAL["deconv"]
    leaky_relu.LeakyReLU.forward_cpu = _ORIGINAL["leaky_relu"]
    leaky_relu._LeakyReLUGrad.forward_cpu = _ORIGINAL["leaky_relu_grad"]
