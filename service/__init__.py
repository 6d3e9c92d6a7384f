"""simimg's core: config, image decoding, embedders, store, search and clustering.

Imported by every entry point (CLI, UI, ingest, training) before torch is, which is why the
OpenMP wait policy is set here: with the default (active) policy torch's worker threads spin
while waiting, and on cores shared with other work (an ingest beside the UI, a second job)
that made training 30-100x slower in our measurements (2 threads: 7 vs 808 images/s at
32 px). The variable only takes effect if torch is not imported yet; a user's own value wins.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
