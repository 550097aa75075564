"""What a benchmark ran on, printed with every result."""

import os
import platform

import chainer
import numpy as np

# What picks the CPU kernels that BLAS and NumPy run, and so a timing and the last bits of a float32 sum.
KERNEL_SETTINGS = (
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "OPENBLAS_NUM_THREADS",
    "NPY_DISABLE_CPU_FEATURES",
)


def cpu_model() -> str:
    """The CPU's model name where Linux tells it (an AMD EPYC and a Xeon differ), else its architecture."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device=None) -> dict:
    """Cores, Python, numpy, Chainer (and CuPy and the GPU when one is used)."""
    info = {
        "cpu_cores": os.cpu_count(),
        "cpu": cpu_model(),
        "kernel_settings": {name: os.environ[name] for name in KERNEL_SETTINGS if name in os.environ},
        "python": platform.python_version(),
        "numpy": np.__version__,
        "chainer": chainer.__version__,
    }
    if device is not None and device.xp is not np:
        import cupy

        info["cupy"] = cupy.__version__
        info["gpu"] = cupy.cuda.runtime.getDeviceProperties(device.device.id)["name"].decode()
    return info
