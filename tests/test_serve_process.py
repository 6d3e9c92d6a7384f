"""`simimg-admin serve` as a real process: loopback by default, answers the CLI while it holds
the data directory, names itself to commands that cannot go through it, and shuts down
cleanly on SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from service.config import Settings
from tests.processes import ADMIN, admin_env, free_port, run_admin


def _listening_addresses(pid: int) -> set[str]:
    return {
        conn.laddr.ip
        for conn in psutil.Process(pid).net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    }


@pytest.fixture
def served(settings: Settings, imagenet_dir: Path):
    done = run_admin(settings, "ingest", str(imagenet_dir), "--json")
    assert done.returncode == 0, done.stderr
    port = free_port()
    server = subprocess.Popen([*ADMIN, "serve", "--port", str(port)], env=admin_env(settings),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert server.poll() is None, server.stderr.read() if server.stderr else ""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail("serve did not start listening")
    yield server, port
    if server.poll() is None:
        server.kill()
        server.wait(timeout=30)


def test_serve_binds_loopback_names_itself_and_stops_cleanly(
    served: tuple[subprocess.Popen, int], settings: Settings, tmp_path: Path
) -> None:
    server, port = served
    assert _listening_addresses(server.pid) == {"127.0.0.1"}

    answered = run_admin(settings, "status", "--json")
    assert answered.returncode == 0, answered.stderr
    assert json.loads(answered.stdout)["points"] == 20
    assert f"done by the running service at http://127.0.0.1:{port}" in answered.stderr

    # migrate reads the embedded store itself: refused, naming the holder
    refused = run_admin(settings, "migrate", "--to", f"path:{tmp_path / 'copy'}")
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"in use by `simimg-admin serve` at http://127.0.0.1:{port}" in lines[0]
    assert "QDRANT_URL" in lines[0]

    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=60) == 0
    after = run_admin(settings, "status", "--json")
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["points"] == 20
