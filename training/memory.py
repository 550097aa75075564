"""The C library's allocator, set for training on the CPU.

A training step allocates and frees NumPy arrays of several MB (im2col columns, activations,
gradients). With glibc's defaults the freed memory goes back to the kernel (the largest blocks are
unmapped, the heap's top is trimmed), and the next step faults it in again page by page. Measured by
bench/train_speed.py on one core: about 7,000 page faults an iteration at batch 64 and 10% more
images/s with the memory kept (25% at batch 256; no change at batch 32, whose arrays glibc reuses).
"""

import ctypes
import ctypes.util

# glibc's mallopt() parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
KEEP_BYTES = 1 << 30  # blocks up to this size come from the heap, and this much free stays there


def keep_freed_memory() -> bool:
    """Keep freed blocks of up to 1 GiB in the process for reuse; False where the C library
    has no glibc mallopt() (then nothing changes). The process's memory stays at its peak."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    # Both or neither: a trim threshold alone turns off glibc's adaptive mmap threshold, so every
    # large array is mapped afresh (measured: 110.7 against 201.7 images/s at batch 64).
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
