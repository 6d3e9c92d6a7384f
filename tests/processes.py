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


def start_serve(
    env: dict[str, str], port: int, *args: str, api_key: str | None = None,
    timeout: float = 240,
) -> subprocess.Popen:
    """``simimg-admin serve --port PORT ARGS...``, returned once its API answers."""
    import tempfile
    import time

    import httpx

    # a file, not a pipe: a full pipe would block the server; closed with the test process
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
    server = subprocess.Popen([*ADMIN, "serve", "--port", str(port), *args], env=env,
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=log, text=True)
    server.log = log  # type: ignore[attr-defined]
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"serve exited: {log.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", headers=headers,
                         timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    server.kill()
    raise RuntimeError("serve did not answer in time")


def stop(server: subprocess.Popen) -> None:
    """Kill ``server`` if it still runs and reap it."""
    if server.poll() is None:
        server.kill()
    server.wait(timeout=30)


def server_log(server: subprocess.Popen) -> str:
    """What a server started by :func:`start_serve` wrote to stderr so far."""
    log = server.log  # type: ignore[attr-defined]
    log.seek(0)
    return log.read()
