"""A real `simimg-admin serve` process for the service benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_process(settings: object, *args: str, env: dict[str, str] | None = None,
                  timeout: float = 300) -> Iterator[str]:
    """Serve ``settings.data_dir`` on a free loopback port (``env``: extra variables);
    yields the base URL."""
    port = free_port()
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIMIMG_", "QDRANT_"))}
    env.update(HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO),
               SIMIMG_DATA_DIR=str(settings.data_dir), **extra)  # type: ignore[attr-defined]
    server = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--port", str(port), *args],
                              env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                raise RuntimeError("serve exited during start-up")
            try:
                if httpx.get(url + "/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("serve did not answer in time")
            time.sleep(0.5)
        yield url
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
