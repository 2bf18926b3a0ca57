"""Bad input never shows a traceback: the README's error contract, checked on generated input.

Every user error is exactly one line on stderr starting with "blackout: error:" and exit code 2;
valid input exits 0; no other code and no exception. Only ``--check`` commands run here, so
nothing trains and nothing is written but the generated files.
"""

from __future__ import annotations

import contextlib
import io
import math
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blackout.cli import main
from blackout.config import FIXED, SECTIONS, method_settings
from blackout.experiment.methods import registry
from blackout.presets import RUN_PRESETS, STUDY_PRESETS
from blackout.settings import Setting

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

SETTINGS: dict[str, Setting] = {
    **{n: s for n, (_, s) in FIXED.items()},
    **{n: s for n, (s, _) in method_settings().items()},
}
OWNERS: dict[str, list[str]] = {n: owners for n, (_, owners) in method_settings().items()}
METHODS = sorted(registry())
NAMES = sorted(SETTINGS) + ["method"]

NASTY = [
    "",
    " ",
    "-",
    "--",
    ",",
    ";",
    ",,",
    ";;",
    "0",
    "-0",
    "+1",
    "-1",
    "1_0",
    "١٠",
    "٠٫١",
    "１",
    "²",
    "Ⅻ",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e999",
    "-1e999",
    "1e-999",
    "1e308",
    "0x10",
    "0o7",
    "1.",
    ".",
    ".5",
    "1e",
    "5-2",
    "0-4",
    "1-1",
    "0-" + "9" * 30,
    "0-" + "9" * 5000,
    "1,2,3",
    "1;2;3",
    "8,16;",
    "8,16;32",
    "1,,2",
    "true",
    "false",
    "yes",
    "off",
    "TRUE",
    "maybe",
    "sgd,ewc",
    "ewc;sgd",
    "digits,mnist",
    str(10**30),
    str(-(10**30)),
    "1" * 4300,
    "1" * 5000,
    "9" * 400 + ".5",
    "a" * 5000,
    "x\ny",
    "\n",
    "\r\n",
    "\t",
    "\u2028",
    "\x85",
    "\x7f",
    "\x1b[31m",
    "é",
    "日本",
    "🙂",
    "\ufeff1",
    "\u00a01",
    "\udcff",
    "auto",
    "%s",
    "{}",
    "{0}",
    "\\",
    "'",
    '"',
    "[1]",
    "{a=1}",
]

BREAKS = ["x\ny", "\n", "ewc\n", "sgd\r", "a\r\nb", "\u2028", "\x85", "\x0b"]  # each would split a message


def call(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def assert_contract(argv: list[str]) -> int:
    """Exit 0, or 2 with exactly one non-empty line starting "blackout: error:"; returns the code."""
    code, _, err = call(argv)
    assert code in (0, 2), (argv, code, err)
    if code == 2:
        assert err.startswith("blackout: error:"), (argv, err)
        assert err.endswith("\n") and len(err.splitlines()) == 1, (argv, err)
        assert err.strip() != "blackout: error:", (argv, err)
    return code


# -- values -----------------------------------------------------------------------------------------


def text_value() -> st.SearchStrategy[str]:
    """Hostile command-line text (argv cannot hold NUL)."""
    return st.one_of(
        st.sampled_from(NASTY),
        st.sampled_from(BREAKS),
        st.text(st.characters(blacklist_characters="\x00"), max_size=20),
        st.text(string.digits + ",;-.eE+_ ", max_size=5),
        st.integers(-(10**30), 10**30).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
    )


def valid_value(s: Setting) -> st.SearchStrategy:
    """Values of the setting's type, mostly inside its domain."""
    if s.choices:
        return st.sampled_from(s.choices)
    if s.kind is bool:
        return st.booleans()
    if s.kind is int:
        return st.one_of(st.just(s.default), st.integers(0, 12))
    if s.kind is float:
        return st.one_of(st.just(s.default), st.floats(0, 1), st.floats(0, 100))
    if s.kind is tuple:
        return st.lists(st.integers(1, 64), min_size=1, max_size=3).map(tuple)
    return st.just(s.default)


def as_text(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple):
        return ",".join(map(str, v))
    return str(v)


def near_choice(name: str) -> st.SearchStrategy[str]:
    """A valid name with a line break inside (not at its ends, which are stripped): refused, and shown
    in the message."""
    names = METHODS if name == "method" else SETTINGS[name].choices
    return st.tuples(st.sampled_from(names), st.sampled_from(BREAKS)).map(lambda p: p[0][:1] + p[1] + p[0][1:])


def cli_value(name: str) -> st.SearchStrategy[str]:
    s = SETTINGS.get(name)
    valid = st.sampled_from(METHODS) if name == "method" else valid_value(s).map(as_text)
    if name == "method" or s.choices:
        return st.one_of(valid, valid, valid, text_value(), near_choice(name))
    return st.one_of(valid, valid, valid, text_value())


def flag(name: str, value: str, joined: bool) -> list[str]:
    option = "--" + name.replace("_", "-")
    return [f"{option}={value}"] if joined else [option, value]


@st.composite
def run_flags(draw) -> list[str]:
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=6))
    argv: list[str] = []
    if draw(st.booleans()):
        argv += ["--preset", draw(st.sampled_from(sorted(RUN_PRESETS)))]
    for name in names:
        s = SETTINGS.get(name)
        if name in OWNERS and "method" not in names and draw(st.booleans()):
            argv += ["--method", draw(st.sampled_from(OWNERS[name]))]
        if s is not None and s.kind is bool:
            option = "--" + name.replace("_", "-")
            argv += [draw(st.sampled_from([option, "--no-" + option[2:], f"{option}={draw(text_value())}"]))]
        else:
            argv += flag(name, draw(cli_value(name)), draw(st.booleans()))
    return argv


@st.composite
def axis_text(draw, name: str) -> str:
    """A sweep flag's value: one value, a comma list, a ';' list of tuples, or a range."""
    one = cli_value(name)
    kind = draw(st.sampled_from(["one", "list", "tuples", "range"]))
    if kind == "one":
        return draw(one)
    if kind == "list":
        return ",".join(draw(st.lists(one, min_size=1, max_size=3, unique=True)))
    if kind == "tuples":
        return ";".join(draw(st.lists(one, min_size=1, max_size=3, unique=True))) + draw(st.sampled_from(["", ";"]))
    small, huge = st.integers(0, 6), st.integers(10**7, 10**30)
    lo, hi = draw(st.sampled_from([(small, small), (small, huge), (huge, small)]))
    ends = [str(draw(lo)), str(draw(hi))] if draw(st.integers(0, 5)) else ["0", "1" + "0" * 4400]
    return f"{ends[0]}{draw(st.sampled_from(['-', ' - ', '--']))}{ends[1]}"


@st.composite
def sweep_flags(draw) -> list[str]:
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=4))
    if "method" not in names and draw(st.integers(0, 2)) == 1:
        names.append("method")
    argv: list[str] = []
    if draw(st.integers(0, 3)) == 0:
        argv += ["--preset", draw(st.sampled_from(sorted(STUDY_PRESETS) + ["", "seed-blog", "nope"]))]
    for name in names:
        if name in OWNERS and "method" not in names and draw(st.booleans()):
            argv += ["--method", draw(st.sampled_from(OWNERS[name]))]
        argv += flag(name, draw(axis_text(name)), draw(st.booleans()))
    if draw(st.booleans()):
        argv += flag("seeds", draw(st.one_of(axis_text("seed"), text_value())), draw(st.booleans()))
    if draw(st.booleans()):
        jobs = (
            st.integers(1, 4).map(str)
            if draw(st.integers(0, 3))
            else st.one_of(st.integers(-3, 0).map(str), text_value(), st.just("9" * 5000))
        )
        argv += flag("jobs", draw(jobs), draw(st.booleans()))
    return argv


# -- TOML -------------------------------------------------------------------------------------------


def toml_string(s: str) -> str:
    """A TOML basic string of any text, so generated documents are valid unless meant not to be."""
    out = []
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or c == "\x7f":
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_string(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def toml_doc(doc: dict, arrays: dict[str, list[dict]] | None = None) -> str:
    """Top-level keys first, then one ``[table]`` per dict value and ``[[name]]`` per array entry."""
    lines = [f"{toml_string(k)} = {toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for k, v in doc.items():
        if isinstance(v, dict):
            lines.append(f"[{toml_string(k)}]")
            lines += [f"{toml_string(kk)} = {toml_value(vv)}" for kk, vv in v.items()]
    for k, tables in (arrays or {}).items():
        for t in tables:
            lines.append(f"[[{toml_string(k)}]]")
            lines += [f"{toml_string(kk)} = {toml_value(vv)}" for kk, vv in t.items()]
    return "\n".join(lines) + "\n"


scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.just(10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(blacklist_categories=["Cs"]), max_size=12),
    st.sampled_from(NASTY),
    st.sampled_from(BREAKS),
)
junk = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=2)),
    max_leaves=6,
)


@st.composite
def setting_key(draw) -> str:
    """Mostly a setting's name (sometimes dashed); one in eight unknown or odd."""
    if draw(st.integers(0, 7)) == 3:
        return draw(st.one_of(st.text(max_size=8), st.sampled_from(BREAKS + ["", " lam", "data", "grid", "base"])))
    name = draw(st.sampled_from(NAMES))
    return name.replace("_", "-") if draw(st.integers(0, 3)) == 2 else name


@st.composite
def toml_setting_value(draw, key: str):
    s = SETTINGS.get(key.replace("-", "_"))
    options = [junk, scalars]
    if s is not None:
        valid = valid_value(s).map(lambda v: list(v) if isinstance(v, tuple) else v)
        options = [valid_value(s).map(as_text), valid, valid, valid, valid] + options
    if key == "method":
        options += [st.sampled_from(METHODS)] * 4
    if key == "method" or s is not None and s.choices:
        options.append(near_choice(key.replace("-", "_")))
    return draw(st.one_of(options))


@st.composite
def settings_table(draw, max_size: int = 4) -> dict:
    keys = draw(st.lists(setting_key(), unique=True, max_size=max_size))
    return {k: draw(toml_setting_value(k)) for k in keys}


@st.composite
def config_toml(draw) -> bytes:
    """Flat keys and [section] tables; a section holds any setting, so some are in the wrong one."""
    doc = draw(settings_table())
    sections = (*SECTIONS, "other", "Data") if draw(st.integers(0, 5)) == 2 else tuple(SECTIONS)
    for section in draw(st.lists(st.sampled_from(sections), unique=True, max_size=3)):
        if section not in doc:
            doc[section] = draw(settings_table(3))
    return toml_doc(doc).encode("utf-8", "surrogatepass")


@st.composite
def grid_table(draw) -> dict:
    keys = draw(st.lists(setting_key(), unique=True, max_size=3))
    table = {}
    for k in keys:
        value = toml_setting_value(k)
        table[k] = draw(
            st.one_of(
                st.lists(value, min_size=1, max_size=3),
                st.lists(value, max_size=3),
                value,
                axis_text("seed") if k == "seed" else value,
            )
        )
    return table


@st.composite
def sweep_toml(draw) -> bytes:
    """Mostly the documented shape (study, preset, [base], [grid] or [[grid]]) with random contents;
    one in four with a field of the wrong kind."""
    doc: dict = {}
    odd = draw(st.integers(0, 3)) == 1
    name = st.text(string.ascii_letters + "-_", min_size=1, max_size=10)
    if draw(st.booleans()):
        doc["study"] = draw(
            st.one_of(st.text(max_size=10), scalars, st.dictionaries(st.text(max_size=3), scalars, max_size=2))
            if odd and draw(st.booleans())
            else name
        )
    if draw(st.booleans()):
        doc["preset"] = draw(
            st.one_of(st.sampled_from(sorted(STUDY_PRESETS)), st.text(max_size=8), scalars)
            if odd and draw(st.booleans())
            else st.sampled_from(sorted(RUN_PRESETS))
        )
    if draw(st.booleans()):
        doc["base"] = draw(
            scalars
            if odd and draw(st.booleans())
            else st.one_of(settings_table(), settings_table().map(lambda t: {"data": t}))
        )
    if odd and draw(st.booleans()):
        doc[draw(st.sampled_from(["extra", "Grid", "x\ny"]))] = draw(scalars)
    arrays = None
    shape = draw(
        st.sampled_from(["string", "numbers", "empty"] if odd and draw(st.booleans()) else ["none", "table", "tables"])
    )
    if shape == "table":
        doc["grid"] = draw(grid_table())
    elif shape == "tables":
        arrays = {"grid": draw(st.lists(grid_table(), min_size=1, max_size=3))}
    elif shape == "string":
        doc["grid"] = draw(st.text(max_size=10))
    elif shape == "numbers":
        doc["grid"] = draw(st.lists(st.integers(), max_size=3))
    elif shape == "empty":
        doc["grid"] = []
    return toml_doc(doc, arrays).encode("utf-8", "surrogatepass")


@st.composite
def mangled(draw, doc: st.SearchStrategy[bytes]) -> bytes:
    """Mostly a document as written; else cut short, with invalid UTF-8 inside, or raw bytes."""
    kind = draw(st.integers(0, 11))
    if kind == 4:
        return draw(doc)[: draw(st.integers(0, 200))]
    if kind == 6:
        text, bad = draw(doc), draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\xef\xbb\xbf"]))
        return text[: len(text) // 2] + bad + text[len(text) // 2 :]
    if kind == 8:
        return draw(
            st.one_of(
                st.binary(max_size=60),
                st.sampled_from(
                    [b"", b"[", b"[[grid]", b"a = ", b'a = "', b"= 1", b"[data]\n[data]\n", b"x = 1" + b"1" * 5000]
                ),
            )
        )
    return draw(doc)


# -- the properties --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A fresh folder, also the working directory, so a stray write could not land in the project."""
    path = tmp_path_factory.mktemp("fuzz")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(path)
        yield path


@FUZZ
@given(argv=run_flags())
def test_run_check_flags(workdir, argv):
    """Any mix of setting flags, valid and hostile, over an optional preset."""
    assert_contract(["run", "--check", *argv])


@FUZZ
@given(argv=sweep_flags())
def test_sweep_check_flags(workdir, argv):
    """Axes as comma lists, ';' tuples and ranges, plus --seeds and --jobs; --check creates no study."""
    study = workdir / "study"
    assert_contract(["sweep", str(study), "--check", *argv])
    assert not study.exists()


@FUZZ
@given(content=mangled(config_toml()), flags=st.one_of(st.just([]), st.just([]), run_flags()))
def test_run_check_config_file(workdir, content, flags):
    """Config files with sections, flat keys, wrong types and broken bytes, under optional flags."""
    path = workdir / "config.toml"
    path.write_bytes(content)
    assert_contract(["run", "--check", "--config", str(path), *flags])


@FUZZ
@given(content=mangled(sweep_toml()))
def test_sweep_check_spec_file(workdir, content):
    """Sweep files of every shape the format allows and some it does not."""
    path, study = workdir / "sweep.toml", workdir / "study"
    path.write_bytes(content)
    assert_contract(["sweep", str(study), "--check", "--spec", str(path)])
    assert not study.exists()


CHOICE_NAMES = ["method"] + sorted(n for n, s in SETTINGS.items() if s.choices)


@st.composite
def choice_axis(draw) -> tuple[str, list[str]]:
    """A string setting swept over valid names and names with a line break inside."""
    name = draw(st.sampled_from(CHOICE_NAMES))
    valid = st.sampled_from(METHODS if name == "method" else SETTINGS[name].choices)
    return name, draw(st.lists(st.one_of(valid, near_choice(name)), min_size=2, max_size=3, unique=True))


@settings(FUZZ, max_examples=100)
@given(axis=choice_axis(), in_file=st.booleans())
def test_sweep_choice_axes(workdir, axis, in_file):
    """Each combination's message names its grid values: they must not break the line."""
    name, values = axis
    study = workdir / "study"
    if in_file:
        path = workdir / "choices.toml"
        path.write_bytes(toml_doc({"grid": {name: values}}).encode())
        assert_contract(["sweep", str(study), "--check", "--spec", str(path)])
    else:
        assert_contract(["sweep", str(study), "--check", "--" + name.replace("_", "-"), ",".join(values)])
    assert not study.exists()


NASTIEST = [
    (["run", "--check", "--tasks", "1" * 4300], None),
    (["run", "--check", "--hidden", "1" * 4300], None),
    (["run", "--check", "--tasks", str(10**200)], None),
    (["run", "--check", "--lr", "1e999"], None),
    (["sweep", "s", "--check", "--seeds", "0-1000000000000"], None),
    (["sweep", "s", "--check", "--seeds", "0-" + "9" * 5000], None),
    (["sweep", "s", "--check", "--method", "sgd\nx,ewc"], None),
    (["sweep", "s", "--check", "--jobs", "9" * 5000], None),
    (["run", "--check", "--config", "a\nb.toml"], None),
    (["run", "--check", "--config", "{dir}/c.toml"], "lam = 1" + "0" * 400),
    (["run", "--check", "--config", "{dir}/c.toml"], "tasks = " + "1" * 5000),
    (["run", "--check", "--config", "{dir}/c.toml"], "tasks = 1e300"),
    (["run", "--check", "--config", "{dir}/c.toml"], '[data]\n"x\\ny" = 1'),
    (["sweep", "s", "--check", "--spec", "{dir}/c.toml"], '[grid]\nmethod = ["sgd\\nx", "ewc"]'),
    (["sweep", "s", "--check", "--spec", "{dir}/c.toml"], "[grid]\nlam = [1" + "0" * 400 + "]"),
    (["sweep", "s", "--check", "--spec", "{dir}/c.toml"], '[grid]\nseed = "0-' + "9" * 40 + '"'),
]


@pytest.mark.parametrize("argv,content", NASTIEST, ids=[f"case{i}" for i in range(len(NASTIEST))])
def test_nastiest_inputs_are_one_line_errors(tmp_path, monkeypatch, argv, content):
    """The sharpest inputs: numbers past a float or Python's 4300-digit limit on int text, ranges too
    large to expand, and newlines in values, TOML keys and file names."""
    monkeypatch.chdir(tmp_path)
    if content is not None:
        (tmp_path / "c.toml").write_text(content)
    argv = [a.replace("{dir}", str(tmp_path)) for a in argv]
    assert assert_contract(argv) == 2
    assert not (tmp_path / "s").exists()


NESTINGS = {  # TOML that nests ``d`` levels deep, in each way the format allows; True: the reader recurses per level
    "arrays": (lambda d: "tasks = " + "[" * d + "1" + "]" * d, True),
    "inline tables": (lambda d: "tasks = " + "{a = " * d + "1" + "}" * d, True),
    "grid arrays": (lambda d: "[grid]\nhidden = " + "[" * d + "8" + "]" * d, True),
    "dotted keys": (lambda d: ".".join(["a"] * d) + " = 1", False),
    "table headers": (lambda d: "[" + ".".join(["a"] * d) + "]\nb = 1", False),
    "arrays of tables": (lambda d: "[[" + ".".join(["a"] * d) + "]]\nb = 1", False),
}


@pytest.mark.parametrize("shape", sorted(NESTINGS))
def test_nesting_grown_until_the_reader_gives_up_is_always_one_line(workdir, shape):
    """Depth quadruples from 1 to 4096 for every way TOML nests, as a run config and as a sweep spec:
    never a RecursionError or a traceback, never a message of more than one short line; past the
    reader's depth the message says so."""
    text, recursive = NESTINGS[shape]
    too_deep = []
    for depth in (4**k for k in range(7)):
        path = workdir / "deep.toml"
        path.write_text(text(depth))
        for argv in (
            ["run", "--check", "--config", str(path)],
            ["sweep", str(workdir / "study"), "--check", "--spec", str(path)],
        ):
            code, _, err = call(argv)
            assert code == 2 or code == 0 and depth == 1, (shape, depth, argv, err[-300:])
            assert code == 0 or err.startswith("blackout: error:") and len(err.splitlines()) == 1, (
                shape,
                depth,
                err[-300:],
            )
            assert len(err) < 1000, (shape, depth, len(err))
            too_deep.append("nested too deeply for the TOML reader" in err)
    assert any(too_deep) == recursive
