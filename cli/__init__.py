"""The ``simimg-admin`` command line (Typer)."""
