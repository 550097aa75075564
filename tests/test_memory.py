"""The allocator settings train.py makes: freed memory is kept and reused, not faulted in again."""

import subprocess
import sys

import pytest
from helpers import ROOT

# Allocates and frees a 40 MB array ten times, as training steps do with their largest arrays at
# large batches, and prints the page faults that cost; with "kept", after keep_freed_memory().
CHURN = """
import resource, sys
import numpy as np
from training.memory import keep_freed_memory

if sys.argv[1] == "kept":
    assert keep_freed_memory()
np.ones(10_000_000, np.float32)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    np.ones(10_000_000, np.float32)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def churn_faults(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", CHURN, mode], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt() is Linux's")
def test_kept_memory_is_reused_without_page_faults():
    default, kept = churn_faults("default"), churn_faults("kept")
    assert kept * 10 < default, f"{kept} page faults with the memory kept, {default} without"
