"""The project's import graph: no cycles, and imports flow one way.

Built with ``ast`` from every import statement of every module in the project's top-level
packages (everything at the repository root with an ``__init__.py``, except ``tests``),
including imports inside functions (lazy) and under ``TYPE_CHECKING``: a lazy import
hides a cycle from the interpreter but not from a reader.

Layers: ``service`` imports only itself; ``ingest``, ``training`` and ``ui`` import only
``service`` and themselves; nothing but ``cli`` imports ``cli``. And the core's modules stay
small enough to have one job each.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.processes import REPO

LAYERS = {
    "service": {"service"},
    "ingest": {"service", "ingest"},
    "training": {"service", "training"},
    "ui": {"service", "ui"},
}
TOP = "cli"  # imported by nothing else
MAX_SERVICE_MODULE_LINES = 350
NOT_SCANNED = {"tests"}

Graph = dict[str, set[str]]


def project_packages(root: Path) -> list[str]:
    return sorted(
        path.parent.name for path in root.glob("*/__init__.py")
        if path.parent.name not in NOT_SCANNED
    )


def module_files(root: Path, packages: list[str]) -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``packages``."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def import_graph(root: Path, packages: list[str]) -> Graph:
    """Module -> the project modules it imports (anywhere in its body)."""
    modules = module_files(root, packages)
    graph: Graph = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for imported in _imported_names(node, name, is_package):
                target = _resolve(imported, modules)
                if target is not None and target != name:
                    targets.add(target)
        graph[name] = targets
    return graph


def _imported_names(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """Candidate dotted names: ``import a.b`` -> a.b; ``from a import b`` -> a.b and a."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        anchor = package[: len(package) - (node.level - 1)]
        base = ".".join([*anchor, *([base] if base else [])])
    return [f"{base}.{alias.name}" if base else alias.name for alias in node.names]


def _resolve(dotted: str, modules: dict[str, Path]) -> str | None:
    """The longest project module that ``dotted`` names or lies in (None: not ours).

    ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to
    ``pkg``. A parent package that Python initialises on the way is not an edge of its
    own: ``pkg/__init__.py`` importing ``pkg.sub``, which imports ``pkg.other``, is no
    cycle.
    """
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def find_cycle(graph: Graph) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path = [start]
        stack = [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            child = next(stack[-1], None)
            if child is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(child) == 1:
                return [*path[path.index(child) :], child]
            elif not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append(iter(sorted(graph.get(child, ()))))
    return None


def layer_violations(graph: Graph) -> list[str]:
    """Imports that go against the layers (see the module docstring)."""
    bad = []
    for module, targets in sorted(graph.items()):
        top = module.split(".")[0]
        for target in sorted(targets):
            target_top = target.split(".")[0]
            allowed = LAYERS.get(top)
            if (allowed is not None and target_top not in allowed) or (
                target_top == TOP and top != TOP
            ):
                bad.append(f"{module} imports {target}")
    return bad


# --------------------------------------------------------------------------- the project


@pytest.fixture(scope="module")
def project_graph() -> Graph:
    packages = project_packages(REPO)
    assert {"service", "cli", "ingest", "training", "ui"} <= set(packages)
    return import_graph(REPO, packages)


def test_the_graph_sees_lazy_and_relative_imports(project_graph: Graph) -> None:
    # A function-level import in service/pipeline.py, and a package's own submodules.
    assert "service.embedders.mobilenet" in project_graph["service.pipeline"]
    assert "service.store.edge" in project_graph["service.store"]
    assert "cli.main" in project_graph["cli.__main__"]


def test_no_import_cycles(project_graph: Graph) -> None:
    cycle = find_cycle(project_graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_imports_flow_one_way(project_graph: Graph) -> None:
    assert layer_violations(project_graph) == []


def test_core_modules_stay_small() -> None:
    sizes = {path.relative_to(REPO).as_posix(): len(path.read_text().splitlines())
             for path in (REPO / "service").rglob("*.py")}
    assert len(sizes) > 20
    assert {name: n for name, n in sizes.items() if n > MAX_SERVICE_MODULE_LINES} == {}


# --------------------------------------------------------------------------- the checker


def _write(root: Path, files: dict[str, str]) -> None:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)


def test_checker_finds_a_planted_lazy_cycle(tmp_path: Path) -> None:
    _write(tmp_path, {
        "service/__init__.py": "",
        "service/config.py": "X = 1\n",
        "service/a.py": "from service.b import f\n",
        "service/b.py": "def f():\n    from service import c\n    return c\n",
        "service/c.py": "from . import a\nfrom .config import X\n",
        "service/pkg/__init__.py": "def load():\n    from service.pkg.sub import y\n",
        "service/pkg/sub.py": "from service.pkg import other\ny = 1\n",
        "service/pkg/other.py": "",
        "tests/__init__.py": "",
        "tests/test_x.py": "import service.a\n",
    })
    assert project_packages(tmp_path) == ["service"]
    graph = import_graph(tmp_path, ["service"])
    assert graph["service.c"] == {"service.a", "service.config"}
    assert graph["service.pkg"] == {"service.pkg.sub"}
    assert graph["service.pkg.sub"] == {"service.pkg.other"}
    assert find_cycle(graph) == ["service.a", "service.b", "service.c", "service.a"]
    # Break it: no cycle is reported (the parent-package pattern in pkg is not one).
    _write(tmp_path, {"service/c.py": "from .config import X\n"})
    assert find_cycle(import_graph(tmp_path, ["service"])) is None


def test_checker_finds_layer_violations(tmp_path: Path) -> None:
    _write(tmp_path, {
        "service/__init__.py": "",
        "service/core.py": "def f():\n    import ingest.runner\n",
        "ingest/__init__.py": "",
        "ingest/runner.py": "from service.core import f\nfrom training import loop\n",
        "training/__init__.py": "",
        "training/loop.py": "",
        "cli/__init__.py": "",
        "cli/main.py": "import ingest.runner, training.loop, service.core\n",
        "benchmarks/__init__.py": "",
        "benchmarks/run.py": "import service.core\nfrom cli.main import app\n",
    })
    graph = import_graph(tmp_path, project_packages(tmp_path))
    assert layer_violations(graph) == [
        "benchmarks.run imports cli.main",
        "ingest.runner imports training.loop",
        "service.core imports ingest.runner",
    ]
    assert find_cycle(graph) == ["ingest.runner", "service.core", "ingest.runner"]
