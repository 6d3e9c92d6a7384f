"""docker-compose.yml is valid, rejects unknown options, and wires the services as documented.

Validation needs no Docker engine: Debian's ``docker-compose`` (1.29.2, installed by
``scripts/install.sh --test``) runs ``docker-compose config`` offline. Without the binary
those tests skip; the structural checks on the raw YAML always run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKER_COMPOSE = shutil.which("docker-compose")
needs_compose = pytest.mark.skipif(
    DOCKER_COMPOSE is None,
    reason="docker-compose not installed (scripts/install.sh --test installs Debian's 1.29.2)",
)
# Variables the compose file reads; cleared so the checks see the documented defaults.
_COMPOSE_VARS = re.compile(r"^(SIMIMG_|QDRANT_|COMPOSE_)")


def run_compose(compose_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not _COMPOSE_VARS.match(k)}
    assert DOCKER_COMPOSE is not None
    return subprocess.run(
        [DOCKER_COMPOSE, "-f", str(compose_file), "--project-directory", str(ROOT), *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )


@needs_compose
def test_compose_file_validates_quietly() -> None:
    result = run_compose(COMPOSE_FILE, "config", "-q")
    assert result.returncode == 0, result.stderr
    assert "WARN" not in result.stderr, result.stderr  # e.g. an unset variable


@needs_compose
@pytest.mark.parametrize(
    ("service", "option"),
    [("qdrant", "helthcheck"), ("app", "restart_policy"), ("app", "port")],
)
def test_compose_rejects_unknown_options(tmp_path: Path, service: str, option: str) -> None:
    text = COMPOSE_FILE.read_text()
    anchor = f"\n  {service}:\n"
    assert anchor in text
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace(anchor, f"{anchor}    {option}: 1\n", 1))
    result = run_compose(broken, "config", "-q")
    assert result.returncode != 0
    assert option in result.stderr


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    """The compose file as docker-compose resolves it (anchors merged, defaults filled)."""
    if DOCKER_COMPOSE is None:
        return yaml.safe_load(COMPOSE_FILE.read_text())
    result = run_compose(COMPOSE_FILE, "config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_qdrant_image_matches_the_pinned_client(resolved: dict[str, Any]) -> None:
    """Qdrant wants client and server minor versions to match."""
    image = resolved["services"]["qdrant"]["image"]
    match = re.fullmatch(r"qdrant/qdrant:v(\d+)\.(\d+)\.(\d+)", image)
    assert match, f"pin an exact official image version, got {image}"
    client_major, client_minor = version("qdrant-client").split(".")[:2]
    assert match.group(1, 2) == (client_major, client_minor)


def test_qdrant_service_persists_and_reports_health(resolved: dict[str, Any]) -> None:
    qdrant = resolved["services"]["qdrant"]
    storage = {str(v).split(":")[0] for v in qdrant["volumes"] if ":/qdrant/storage" in str(v)}
    assert storage and storage <= set(resolved["volumes"]), "storage on a named volume"
    ports = " ".join(str(p) for p in qdrant["ports"])
    assert "6333:6333" in ports and "6334:6334" in ports
    test = qdrant["healthcheck"]["test"]
    assert "/readyz" in " ".join(test)


@pytest.mark.skipif(DOCKER_COMPOSE is None, reason="anchors are merged by docker-compose")
@pytest.mark.parametrize("name", ["app"])
def test_app_services_use_qdrant_and_a_read_only_dataset(
    resolved: dict[str, Any], name: str
) -> None:
    service = resolved["services"][name]
    assert service["build"]["context"] == str(ROOT)
    assert (ROOT / "Dockerfile").is_file()
    assert service["environment"]["QDRANT_URL"] == "http://qdrant:6333"
    assert service["depends_on"]["qdrant"]["condition"] == "service_healthy"
    assert f"{ROOT / 'dataset'}:/data/images:ro" in service["volumes"]


def test_commands_are_real_cli_commands(resolved: dict[str, Any]) -> None:
    """The compose commands parse with the real CLI (``--help`` stops before running)."""
    from typer.testing import CliRunner

    from cli.main import app

    services = resolved["services"]
    command = services["app"]["command"]
    assert command[:2] == ["simimg-admin", "serve"]
    assert command[command.index("--watch") + 1] == "/data/images"
    for name in ("app",):
        command = services[name]["command"]
        result = CliRunner().invoke(app, [*command[1:], "--help"])
        assert result.exit_code == 0, (name, result.output)


@pytest.mark.skipif(DOCKER_COMPOSE is None, reason="anchors are merged by docker-compose")
def test_app_is_the_service_with_a_key_and_allowed_roots(resolved: dict[str, Any]) -> None:
    """The app listens on 0.0.0.0, so it gets the API key (it refuses to start without one)
    and may ingest only the mounted dataset."""
    app = resolved["services"]["app"]
    assert set(resolved["services"]) == {"qdrant", "app"}
    assert "SIMIMG_API_KEY" in app["environment"]
    assert app["environment"]["SIMIMG_ALLOWED_ROOTS"] == "/data/images"
    assert app["command"][app["command"].index("--host") + 1] == "0.0.0.0"
