"""Runnable benchmarks (`python -m benchmarks.NAME`); each prints a table of its figures.

simimg's core is imported first, as every entry point does, so its thread-waiting policies
(see ``service/__init__.py``) apply to the libraries the benchmarks load: the figures are
those of the CLI and the service.
"""

import service  # noqa: F401
