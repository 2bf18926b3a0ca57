"""The package's shape: two levels, imports pointing one way, no cycles, and a fast command line."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "blackout"


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(top_level_only: bool) -> dict[str, set[str]]:
    """blackout module -> the blackout modules it imports (at module level only, or anywhere)."""
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        name = _module(path)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text())
        out = set()
        for node in _walk(tree.body, top_level_only):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                if base.startswith("blackout"):
                    for alias in node.names:  # "from . import metrics" imports a module
                        full = f"{base}.{alias.name}"
                        out.add(
                            full
                            if (SRC.parent / full.replace(".", "/")).with_suffix(".py").exists()
                            or (SRC.parent / full.replace(".", "/")).is_dir()
                            else base
                        )
            elif isinstance(node, ast.Import):
                out |= {a.name for a in node.names if a.name.startswith("blackout")}
        graph[name] = out - {name}
    return graph


def _walk(body: list[ast.stmt], top_level_only: bool):
    """Statements that import at run time: ``if TYPE_CHECKING:`` blocks import nothing."""
    for node in body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            continue
        yield node
        if not top_level_only:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    yield from _walk([child], False)
                else:
                    yield from (n for n in ast.walk(child) if isinstance(n, ast.stmt))


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m) :] + [m]
            if m not in state and (found := visit(m)):
                return found
        state[n] = 2
        stack.pop()
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_no_import_cycles():
    assert _cycle(_imports(top_level_only=True)) is None, _cycle(_imports(top_level_only=True))
    # imports made inside functions (to start the command line fast) form no cycle either, apart
    # from ``Result.plot``, a notebook convenience that reaches up to the study level's figures
    lazy = _imports(top_level_only=False)
    lazy["blackout.experiment.result"].discard("blackout.study.plots")
    lazy["blackout.experiment.result"].discard("blackout.study")
    assert _cycle(lazy) is None, _cycle(lazy)


def test_the_run_level_does_not_import_the_study_level_or_the_command_line():
    graph = _imports(top_level_only=True)
    for module, deps in graph.items():
        if module.startswith("blackout.experiment"):
            assert not {d for d in deps if d.startswith(("blackout.study", "blackout.cli", "blackout.api"))}, module
        if module.startswith("blackout.study"):
            assert not {d for d in deps if d.startswith(("blackout.cli", "blackout.api"))}, module


def test_the_command_line_starts_without_torch_or_the_study_libraries():
    code = (
        "import sys; import blackout.cli as c; p = c.parser(['--help']);"
        "heavy = [m for m in ('torch', 'matplotlib', 'scipy', 'sqlite3', 'ray', 'pandas', 'sklearn') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


READ = """
import sys
from blackout.cli import main
code = main(sys.argv[1:])
print("\\nIMPORTED", ",".join(m for m in ("torch", "ray") if m in sys.modules))
sys.exit(code)
"""


def _reads_without_torch(argv: list[str]) -> None:
    p = subprocess.run([sys.executable, "-c", READ, *argv], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.rsplit("IMPORTED", 1)[1].strip() == "", argv[0]


ARCHIVE = SRC.parents[1] / "docs" / "studies" / "seed-capacity-10.jsonl.gz"


def test_reading_results_does_not_import_torch(tmp_path):
    """analyze and export read stored results: a fresh process of each imports no torch."""
    from blackout.study.results import ResultSet
    from blackout.study.store import Store

    runs = ResultSet.load(ARCHIVE).runs[:6]
    with Store(tmp_path / "study" / "results.sqlite", "read", create=True) as store:
        store.add((r.run_id, r.config) for r in runs)
        for r in runs:
            store.claim(r.run_id)
            store.finish(r.run_id, r.to_dict(), 1.0)
    _reads_without_torch(["analyze", str(ARCHIVE), "--bootstrap", "50"])
    _reads_without_torch(["export", str(tmp_path / "study"), "--out", str(tmp_path / "x.csv")])


@pytest.mark.slow
def test_a_report_does_not_import_torch(tmp_path):
    _reads_without_torch(["report", str(ARCHIVE), "--out", str(tmp_path / "r.html")])
    # the same report again: every figure is current, so none is drawn and matplotlib's figures stay unimported
    code = READ.replace('("torch", "ray")', '("torch", "ray", "blackout.study.plots", "matplotlib.figure")')
    p = subprocess.run(
        [sys.executable, "-c", code, "report", str(ARCHIVE), "--out", str(tmp_path / "r.html")],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.rsplit("IMPORTED", 1)[1].strip() == ""
