"""Import boundaries between the parts of the one `edgescore` distribution.

The client, the agent and the server are deployed apart (a board has no torch, a client no
server), so each imports only the shared `edgescore` modules (the v1 contract, transport, logs,
the grammar) and itself. The offline evaluations may use all three; the umbrella `edgescore`
command (edgescore.cli) may import anything. import-linter cannot check this: its import graph
(grimp) walks the folder of the `edgescore` package, and pyproject's package-dir puts the parts in
folders beside it. So every import statement is read here from the source: module level and
inside functions alike, relative ones resolved.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="reads pyproject.toml (Python 3.11+)")

ROOT = Path(__file__).resolve().parents[1]
UMBRELLA = "edgescore.cli"
SHARED = "shared"  # the modules of the edgescore/ folder except the umbrella

# Which parts each part may import. The integrations (edgescore.integrations: Optuna) are
# client-side: built on the SDK, and the client's `edgescore search` runs their studies (inside
# the command, since their tools are extras); neither ever imports the server.
ALLOWED: dict[str, set[str]] = {
    SHARED: {SHARED},
    "client": {SHARED, "client", "integrations"},
    "integrations": {SHARED, "client", "integrations"},
    "device_agent": {SHARED, "device_agent"},
    "server": {SHARED, "server"},
    "evaluation": {SHARED, "client", "device_agent", "server", "evaluation", "integrations"},
    "cli": {SHARED, "client", "device_agent", "server", "evaluation", "integrations", "cli"},
}
# (importer, imported) edges that break a boundary today, each to be removed with its import.
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()


def package_folders() -> dict[str, Path]:
    """Package name -> its folder, as pyproject.toml maps them."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {name: ROOT / folder
            for name, folder in config["tool"]["setuptools"]["package-dir"].items()}


def source_modules() -> dict[str, Path]:
    """Every module of the distribution: dotted name -> file."""
    modules = {}
    for package, folder in package_folders().items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            modules[".".join((package, *parts)).removesuffix(".__init__")] = path
    return modules


def part_of(module: str) -> str:
    if module == UMBRELLA:
        return "cli"
    segments = module.split(".")
    if len(segments) > 1 and segments[1] in ALLOWED and segments[1] != "cli":
        return segments[1]
    return SHARED


def imports_of(module: str, path: Path, known: set[str]) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every `edgescore` import in the file, wherever it stands."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")
                anchor = package[:len(package) - node.level + is_package]
                base = ".".join([*anchor, *filter(None, [node.module])])
            # `from edgescore.x import y` imports the module edgescore.x.y when there is one.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        else:
            continue
        for target in targets:
            if target == "edgescore" or target.startswith("edgescore."):
                yield node.lineno, target


def import_edges() -> list[tuple[str, str, str]]:
    """(importer, imported, where) for every import between modules of the distribution."""
    modules = source_modules()
    known = set(modules)
    return [(module, target, f"{path.relative_to(ROOT)}:{line}")
            for module, path in sorted(modules.items())
            for line, target in imports_of(module, path, known)]


def test_the_walk_sees_every_part() -> None:
    modules = source_modules()
    assert {part_of(m) for m in modules} == set(ALLOWED)
    assert {"edgescore.server.main", "edgescore.client.api", "edgescore.device_agent.main",
            "edgescore.evaluation.nb201_eval", "edgescore.v1.scoring_pb2",
            "edgescore.integrations.optuna.study", UMBRELLA} <= set(modules)


def test_each_part_imports_only_what_it_may() -> None:
    found = set()
    broken = []
    for importer, imported, where in import_edges():
        if part_of(imported) in ALLOWED[part_of(importer)]:
            continue
        if (importer, imported) in KNOWN_EXCEPTIONS:
            found.add((importer, imported))
            continue
        broken.append(f"{where}: {importer} imports {imported}")
    assert not broken, "imports across a boundary:\n" + "\n".join(broken)
    assert found == KNOWN_EXCEPTIONS, f"no longer imported, drop: {KNOWN_EXCEPTIONS - found}"


def test_the_evaluations_import_no_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for importer, imported, _ in import_edges():
        if part_of(importer) == part_of(imported) == "evaluation" and importer != imported:
            graph.setdefault(importer, set()).add(imported)
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = path[path.index(module):] + [module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for target in sorted(graph.get(module, ())):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_the_client_and_its_integrations_import_without_optuna() -> None:
    """optuna is an extra: the client (its CLI included) and the integration's modules load
    without it, and only a study or a sampler imports it."""
    code = ("import sys; import edgescore.cli, edgescore.client.cli_search, "
            "edgescore.integrations.optuna; assert 'optuna' not in sys.modules, 'optuna'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
