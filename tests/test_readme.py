"""Every example in the README is checked: TOML blocks load, and every `blackout` command parses."""

import re
import shlex
from pathlib import Path

import pytest

from blackout.api import Study
from blackout.cli import parser
from blackout.cli.commands import build_config, given_settings
from blackout.config import RunConfig, load_toml
from blackout.study.spec import load_spec

README = Path(__file__).resolve().parents[1] / "README.md"
FINDINGS = Path(__file__).resolve().parents[1] / "docs" / "findings.md"


def blocks(path: Path, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", path.read_text(), re.S)


def commands() -> list[list[str]]:
    out = []
    for path in (README, FINDINGS):
        for block in blocks(path, "bash"):
            for line in block.splitlines():
                line = line.split("#")[0].strip()
                for part in line.split("&&"):
                    words = shlex.split(part)
                    while words and re.fullmatch(r"[A-Za-z_]\w*=\S*", words[0]):  # VAR=value before the command
                        words = words[1:]
                    if words and words[0] == "blackout":
                        out.append(words[1:])
    return out


def _as_script(tmp_path, name: str, code: str):
    """Run ``code`` saved as a file, as a user runs it: ``python NAME.py`` in a fresh process."""
    import subprocess
    import sys

    (tmp_path / name).write_text(code)
    return subprocess.run([sys.executable, name], cwd=tmp_path, capture_output=True, text=True, timeout=600)


def test_readme_python_example_runs_as_a_script(tmp_path):
    """The README's example saved as a file and run unguarded: sweep workers never re-run the caller's script."""
    notebook, method = blocks(README, "python")
    p = _as_script(tmp_path, "example.py", notebook)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "8 width report.html"
    assert (tmp_path / "studies" / "notebook" / "report.html").exists()
    # the method of one's own, as written, then run
    use = method + (
        "\nimport blackout\nr = blackout.run(method='scale', factor=0.5, dataset='digits', tasks=1, "
        "iterations=20, hidden=8)\nprint(r.method, r.method_settings)\n"
    )
    p = _as_script(tmp_path, "method.py", use)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "scale {'factor': 0.5}"


def test_readme_python_example_runs_in_a_notebook_kernel(tmp_path):
    """The same example as notebook cells (one per paragraph), executed by a Jupyter kernel."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    notebook, _ = blocks(README, "python")
    cells = [nbformat.v4.new_code_cell(c.strip()) for c in notebook.split("\n\n") if c.strip()]
    nb = nbformat.v4.new_notebook(
        cells=cells, metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}}
    )
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    assert printed.strip().splitlines()[-1] == "8 width report.html"
    assert (tmp_path / "studies" / "notebook" / "report.html").exists()


def test_readme_toml_examples_load(tmp_path):
    run_toml, sweep_toml = blocks(README, "toml")
    f = tmp_path / "run.toml"
    f.write_text(run_toml)
    cfg = RunConfig.from_dict(load_toml(f))
    assert cfg.data.dataset == "fashion-mnist" and cfg.model.arch == "cnn" and cfg.method.gamma == 0.9
    s = tmp_path / "sweep.toml"
    s.write_text(sweep_toml)
    spec = load_spec(s)
    assert spec.name == "width-vs-lambda" and len(spec.configs()) == 3 * 2 * 3


@pytest.mark.parametrize("argv", commands(), ids=lambda a: " ".join(a)[:60])
def test_documented_commands_parse(argv, tmp_path):
    args = parser(argv).parse_args(argv)
    if args.command == "run":
        build_config(args)
    elif args.command == "sweep":  # every combination validated, nothing run
        flags = given_settings(args)
        if args.seeds:
            flags["seed"] = args.seeds
        Study(tmp_path / "s").spec(args.preset, args.spec, **flags).configs()
