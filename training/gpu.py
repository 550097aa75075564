"""Whether this process can use a GPU, and if not why, in one line (Chainer's message runs to two)."""

import chainer


def visible_gpus() -> int:
    """How many GPUs CUDA shows this process (CUDA_VISIBLE_DEVICES may hide others); 0 without CuPy."""
    if not chainer.backends.cuda.available:
        return 0
    cupy = chainer.backends.cuda.cupy
    try:
        return cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError:
        return 0


def why_no_gpu() -> str | None:
    """Why no GPU can be used here (no CuPy, or CUDA finds no GPU), or None when one can."""
    if not chainer.backends.cuda.available:
        return "needs CuPy (pip install -r requirements-gpu.txt) and a GPU"
    return None if visible_gpus() else "needs a GPU, and CUDA finds none"


def device_problem(spec: str, error: Exception) -> str:
    """One line on why Chainer cannot use device `spec`: for a GPU, what is missing where something
    is, else the first line of Chainer's message."""
    names_gpu = spec.startswith("@cupy") or (spec.isdigit() and int(spec) >= 0)
    return (names_gpu and why_no_gpu()) or str(error).splitlines()[0]
