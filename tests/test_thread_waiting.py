"""Library worker threads must not spin between calls: `import service` sets their policy."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# A product spread over the cores, then idle time, as a whitened search leaves it; CPU time
# per product measured in a fresh interpreter that imports simimg's core before numpy.
PROBE = """
import resource, time
import service  # noqa: F401  (first, as every entry point)
import numpy as np
x = np.ones((50, 1280), np.float32); w = np.ones((1280, 1280), np.float32)
x @ w
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
before = cpu()
for _ in range(5):
    x @ w
    time.sleep(0.3)
print((cpu() - before) / 5 * 1000)
"""


def cpu_ms_per_product(env: dict[str, str]) -> float:
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, check=True, timeout=120)
    return float(done.stdout.strip())


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="BLAS spreads work only over 2+ cores")
def test_blas_workers_sleep_after_a_product() -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    spinning = cpu_ms_per_product({**env, "OPENBLAS_THREAD_TIMEOUT": "28"})  # OpenBLAS's own
    ours = cpu_ms_per_product(env)
    # spinning workers: about 140 ms of CPU per 4 ms product on the 2-core machine
    assert ours < 40, f"{ours:.0f} ms of CPU per 50x1280x1280 product (spinning: {spinning:.0f})"
