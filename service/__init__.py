"""simimg's core: config, image decoding, embedders, store, search and clustering.

Imported by every entry point (CLI, UI, ingest, training) before torch and numpy are, which
is why two thread-waiting policies are set here; each only takes effect if its library is
not loaded yet, and a user's own value wins:

* ``OMP_WAIT_POLICY=PASSIVE``: with the default (active) policy torch's worker threads spin
  while waiting, and on cores shared with other work (an ingest beside the UI, a second job)
  that made training 30-100x slower in our measurements (2 threads: 7 vs 808 images/s at
  32 px).
* ``OPENBLAS_THREAD_TIMEOUT=4``: numpy's OpenBLAS lets its worker threads spin for 2^28
  cycles (about 0.1 s here) after every product it spreads over the cores. A whitened search
  (one 50 x 1280 x 1280 product) then cost 187 ms of CPU for 31-45 ms of wall time, the spin
  taking the second core from the next query's MobileNet pass or an ingest beside it; with
  the workers waiting 2^4 cycles, 42-52 ms (measured on the 2-core machine, 1M points).
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
