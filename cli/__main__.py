"""`python -m cli` runs simimg-admin."""

from cli.main import app

app(prog_name="simimg-admin")
