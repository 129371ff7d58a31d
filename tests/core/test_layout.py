"""The house: the core loads alone, and the layering contracts cover every core module."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import workerpoolxt

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_package_loads_the_core_only() -> None:
    """`import workerpoolxt` loads no wing, no sqlite3, no psycopg and no click."""
    probe = (
        "import sys, workerpoolxt; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sqlite3', '_sqlite3', 'psycopg', 'psycopg_pool', 'click') "
        "or m.startswith(('workerpoolxt.durable', 'workerpoolxt.supervise', 'workerpoolxt.observe'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_the_core_contract_names_every_core_module() -> None:
    """A new top-level module is core, so the contract that keeps the core off the wings must list it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    core = next(contract for contract in contracts if contract["name"].startswith("The core imports no wing"))
    modules = {
        f"workerpoolxt.{path.stem}"
        for path in Path(workerpoolxt.__file__).parent.glob("*.py")
        if path.stem not in ("__init__", "__main__")
    }
    assert set(core["source_modules"]) == modules


def test_only_the_attempt_engine_asks_a_backoff_for_a_delay() -> None:
    """The pool, chain steps, supervised services and durable tasks all take their retry delay from one place."""
    package = Path(workerpoolxt.__file__).parent
    callers = sorted(str(path.relative_to(package)) for path in package.rglob("*.py") if ".delay(" in path.read_text())
    assert callers == ["_attempts.py"]


def _runtime_imports(path: Path) -> set[str]:
    """The package modules ``path`` imports when it runs: at any depth, except under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(node)
        for guard in ast.walk(tree)
        if isinstance(guard, ast.If) and ast.unparse(guard.test) == "TYPE_CHECKING"
        for statement in guard.body
        for node in ast.walk(statement)
    }
    package = path.parent.relative_to(Path(workerpoolxt.__file__).parent.parent).as_posix().replace("/", ".")
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level and id(node) not in skipped:
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            if node.module:
                imported.add(f"{base}.{node.module}")
            else:
                imported.update(f"{base}.{alias.name}" for alias in node.names)
    return imported


def test_the_core_has_no_import_cycle() -> None:
    """No core module imports, at run time, one that imports it back, not even lazily inside a function."""
    package = Path(workerpoolxt.__file__).parent
    graph = {f"workerpoolxt.{path.stem}": _runtime_imports(path) for path in package.glob("_*.py")}
    cycles = []

    def visit(module: str, trail: list[str]) -> None:
        for target in sorted(graph.get(module, ())):
            if target in trail:
                cycles.append([*trail[trail.index(target) :], target])
            elif target in graph:
                visit(target, [*trail, target])

    for module in sorted(graph):
        visit(module, [module])
    assert cycles == []
