"""What a benchmark ran on, printed with every result."""

import os
import platform

import chainer
import numpy as np


def machine_info(device=None) -> dict:
    """Cores, Python, numpy, Chainer (and CuPy and the GPU when one is used)."""
    info = {
        "cpu_cores": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "chainer": chainer.__version__,
    }
    if device is not None and device.xp is not np:
        import cupy

        info["cupy"] = cupy.__version__
        info["gpu"] = cupy.cuda.runtime.getDeviceProperties(device.device.id)["name"].decode()
    return info
