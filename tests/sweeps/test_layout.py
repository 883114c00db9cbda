"""The layout of ``sweeps/``: imports run one way between its subpackages, with no cycle, read
from the code with ``ast`` (function-level imports included); each subpackage states its
public names; parsing flags imports no heavy library; the wheel ships every subpackage."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SWEEPS = REPO / "sweeps"

#: The layers, top first: a module may import its own layer or a lower one, never a higher
#: one, and never a sibling at its own rank. ``sweeps._lazy`` (the lazy-export helper) is
#: below them all.
LAYERS = {
    "sweeps.beta_frontier": 6,
    "sweeps.driver": 5,
    "sweeps.tracking": 4,
    "sweeps.search": 4,
    "sweeps.trial": 3,
    "sweeps.store": 2,
    "sweeps.config": 1,
    "sweeps._lazy": 0,
}
SUBPACKAGES = ("config", "store", "search", "trial", "tracking", "driver")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every ``sweeps…`` module ``path`` imports, at module level or inside a function."""
    found: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("sweeps")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1],
                                 *([base] if base else [])])  # fmt: skip
            if not base.startswith("sweeps"):
                continue
            for alias in node.names:  # ``from sweeps.x import y``: y may be a module
                candidate = f"{base}.{alias.name}"
                found.add(candidate if _exists(candidate) else base)
    return found


def _exists(module: str) -> bool:
    path = REPO.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in SWEEPS.rglob("*.py")}


def layer(module: str) -> tuple[str, int]:
    for prefix, rank in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            return prefix, rank
    raise AssertionError(f"{module} is in no layer; add it to LAYERS")


def against_the_order(edges: dict[str, set[str]]) -> list[str]:
    wrong = []
    for source, targets in edges.items():
        if source == "sweeps":
            continue
        (home, rank) = layer(source)
        for target in targets:
            if target == "sweeps":
                continue
            there, other = layer(target)
            if there != home and other >= rank:
                wrong.append(f"{source} -> {target}")
    return sorted(wrong)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles between modules (a package's ``__init__`` counts as its own module)."""
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append([*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def test_imports_run_one_way_with_no_cycle():
    edges = graph()
    assert len(edges) > 30  # the reader found the package
    assert against_the_order(edges) == []
    assert cycles(edges) == []


def test_the_reader_catches_a_cycle_and_an_edge_against_the_order():
    """The planted defects the test above guards against are seen."""
    edges = graph()
    edges["sweeps.store.folder"] = {*edges["sweeps.store.folder"], "sweeps.driver.run"}
    assert against_the_order(edges) == ["sweeps.store.folder -> sweeps.driver.run"]
    assert cycles(edges)  # driver.run imports store.folder (via store.lease): a loop


def test_every_subpackage_states_its_public_names():
    for name in SUBPACKAGES:
        package = importlib.import_module(f"sweeps.{name}")
        assert package.__all__, name
        for public in package.__all__:
            assert getattr(package, public) is not None, f"sweeps.{name}.{public}"


def test_the_subpackages_import_no_heavy_library_until_a_name_is_used():
    """Their ``__init__`` names resolve lazily (flags parsing without torch: test_catalogue)."""
    heavy = ("ray", "mlflow", "torch", "optuna", "sklearn", "pyarrow")
    code = (
        "import sys, sweeps.beta_frontier\n"
        f"from sweeps import {', '.join(SUBPACKAGES)}\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_wheel_ships_every_subpackage(tmp_path):
    """``pyproject.toml`` finds the subpackages: a built wheel holds every module of the three
    packages (``betavae.data`` and ``betavae.metrics`` too), and no test."""
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("betavae_frontier-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("sweeps", "betavae", "analysis"):
        for path in (REPO / package).rglob("*.py"):
            assert str(path.relative_to(REPO)) in names, path
    assert not any(n.startswith("tests/") for n in names)
