"""Running simimg-admin the way a user does: a separate process, a clean environment."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from service.config import Settings

REPO = Path(__file__).resolve().parent.parent
ADMIN = [sys.executable, "-m", "cli"]


def cli_env() -> dict[str, str]:
    """This environment without simimg's or Qdrant's settings; offline; the repo importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIMIMG_", "QDRANT_"))}
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONPATH"] = str(REPO)
    return env


def cli(data_dir: Path, *args: str) -> list[str]:
    """The command line of ``simimg-admin --data-dir DATA_DIR ARGS...``."""
    return [*ADMIN, "--data-dir", str(data_dir), *args]


def admin_env(settings: Settings) -> dict[str, str]:
    """The environment of a user whose settings are ``settings`` (data dir and file limit)."""
    env = cli_env()
    env["SIMIMG_DATA_DIR"] = str(settings.data_dir)
    env["SIMIMG_MAX_FILE_BYTES"] = str(settings.max_file_bytes)
    return env


def run_admin(settings: Settings, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*ADMIN, *args], env=admin_env(settings), capture_output=True,
                          text=True, timeout=timeout, check=False, cwd=REPO)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
