"""Sweeps: grid parsing, the local pool and Ray giving the same results as run(), resume after failure or kill."""

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from blackout.config import RunConfig
from blackout.errors import ConfigError
from blackout.experiment.train import run
from blackout.study.pools import LocalPool, run_sweep
from blackout.study.spec import SweepSpec, load_spec, parse_axis
from blackout.study.store import Store
from tests.conftest import store_rows

BASE = RunConfig.from_flat({"dataset": "digits", "tasks": 2, "hidden": (16,), "iterations": 60, "batch_size": 64})


def grid_configs():
    return SweepSpec(BASE, ({"hidden": ((8,), (16,)), "seed": (0, 1)},)).configs()


def test_parse_axis_values_ranges_and_tuples():
    assert parse_axis("seed", "0-3,7") == (0, 1, 2, 3, 7)
    assert parse_axis("hidden", "25,50") == ((25,), (50,))
    assert parse_axis("hidden", "50,50;100,100") == ((50, 50), (100, 100))
    assert parse_axis("channels", "8,16;") == ((8, 16),)
    assert parse_axis("lam", [5, 15]) == (5.0, 15.0)
    assert parse_axis("method", "sgd,ewc") == ("sgd", "ewc")
    with pytest.raises(ConfigError, match="unknown setting 'lamda'"):
        parse_axis("lamda", "1,2")
    with pytest.raises(ConfigError, match="lam: repeated value"):
        parse_axis("lam", "1,1")
    with pytest.raises(ConfigError, match=r"seed: range '5-2' runs backwards; write 2-5"):
        parse_axis("seed", "0-1,5-2")
    with pytest.raises(ConfigError, match="seed: expected at least one value, got an empty string"):
        parse_axis("seed", "")
    with pytest.raises(ConfigError, match="seed: empty value in '1,,2'"):
        parse_axis("seed", "1,,2")
    with pytest.raises(ConfigError, match="seed: expected an integer, got '१'"):
        parse_axis("seed", "0,१")


def test_grid_expands_in_order_and_validates_every_combination():
    configs = grid_configs()
    assert [(c.model.hidden, c.seed) for c in configs] == [((8,), 0), ((8,), 1), ((16,), 0), ((16,), 1)]
    assert len({c.run_id for c in configs}) == 4
    with pytest.raises(ConfigError, match="lr: expected a learning rate > 0, got 0"):
        SweepSpec(BASE, ({"lr": (0.1, 0.0)},)).configs()


def test_sweep_file_errors_name_file_line_and_field(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('study = "x"\n[base]\ntasks = 3\n[grid]\nlam = [1, 2]\nwidthh = [3]\n')
    with pytest.raises(ConfigError, match=r"s.toml:6: unknown setting 'widthh'"):
        load_spec(f)
    f.write_text("[base]\ntasks = 3\n[grid]\nlr = [0.1, -1]\n")
    with pytest.raises(ConfigError, match=r"lr: expected a learning rate > 0"):
        load_spec(f)
    f.write_text("[base]\ntasks = 3\n[grids]\nlr = [0.1]\n")
    with pytest.raises(ConfigError, match=r"s.toml:3: unknown section or key 'grids'"):
        load_spec(f)
    f.write_text('study = "cap"\npreset = "digits"\n[base.model]\nhidden = [20]\n[grid]\nseed = [0, 1]\n')
    spec = load_spec(f)
    assert spec.name == "cap" and spec.base.model.hidden == (20,) and spec.grids == ({"seed": (0, 1)},)
    f.write_text(
        '[base]\ntasks = 2\n[[grid]]\nmethod = ["sgd"]\n[[grid]]\nmethod = ["ewc"]\nlam = [5, 15]\n'
        '[[grid]]\nmethod = ["sgd", "l2"]\n'
    )
    union = load_spec(f).configs()  # one sgd run, not two: the union has no repeats
    assert [(c.method.method, c.method.get("lam")) for c in union] == [
        ("sgd", None),
        ("ewc", 5.0),
        ("ewc", 15.0),
        ("l2", 0.1),
    ]
    with_seeds = load_spec(f).with_settings({"seed": (0, 1)})
    assert len(with_seeds.configs()) == 8 and with_seeds.with_settings({"seed": (3,)}).base.seed == 3
    # settings valid only together are applied together, from a file and from flags alike
    f.write_text('[base]\nmethod = "lwf"\nstream = "split"\nmulti_head = true\ntasks = 5\n')
    assert load_spec(f).base.method.method == "lwf"
    together = SweepSpec(BASE).with_settings(
        {"method": ("lwf",), "stream": ("split",), "multi_head": (True,), "tasks": (5,), "seed": (0, 1)}
    )
    assert [c.seed for c in together.configs()] == [0, 1] and together.base.data.multi_head


def test_a_grids_own_value_overrides_base_and_a_flag_overrides_both(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text(
        "[base]\ntasks = 50\nlam = 15\n[[grid]]\nseed = [0]\n"
        '[[grid]]\nstream = ["split"]\ntasks = [5]\nlam = [3]\nseed = [0]\n'
    )
    runs = [(c.data.stream, c.data.tasks, c.method.get("lam")) for c in load_spec(f).configs()]
    assert runs == [("permuted", 50, 15.0), ("split", 5, 3.0)]
    flagged = load_spec(f).with_settings({"tasks": (4,), "lam": (7,)}).configs()
    assert [(c.data.tasks, c.method.get("lam")) for c in flagged] == [(4, 7.0), (4, 7.0)]


def test_local_pool_gives_the_same_numbers_as_run(tmp_path):
    configs = grid_configs()
    store = Store(tmp_path / "results.sqlite", "t")
    report = run_sweep(configs, store, LocalPool(2))
    assert (report.ran, report.failed, report.done_before) == (4, 0, 0)
    got = {r.run_id: r for r in store.results()}
    direct = run(configs[3]).to_dict()
    assert got[configs[3].run_id].to_dict()["acc"] == direct["acc"]
    # nothing left to do: a second sweep runs nothing
    again = run_sweep(configs, store, LocalPool(2))
    assert (again.ran, again.done_before) == (0, 4)


def test_failed_runs_are_recorded_and_retried(tmp_path):
    configs = SweepSpec(BASE, ({"dataset": ("digits", "mnist")},)).configs()
    store = Store(tmp_path / "results.sqlite", "t")
    report = run_sweep(configs, store, LocalPool(1), data_dir=str(tmp_path / "nowhere"))
    assert (report.ran, report.failed) == (1, 1)
    [failed] = store.rows("failed")
    assert failed["run_id"] == configs[1].run_id and "DataError" in failed["error"] and "nowhere" in failed["error"]
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    if not shared.exists():
        pytest.skip("MNIST test files not available")
    retry = run_sweep(configs, store, LocalPool(1), data_dir=str(shared))
    assert (retry.ran, retry.failed, retry.done_before) == (1, 0, 1)
    assert store.status_counts()["done"] == 2


def _sweep_cmd(study, *extra):
    """12 runs in six stacked units of two, on two workers: after the first unit, four wait their turn."""
    return [
        sys.executable,
        "-m",
        "blackout",
        "sweep",
        str(study),
        "--dataset",
        "digits",
        "--tasks",
        "3",
        "--hidden",
        "16,20,24,28,32,40",
        "--iterations",
        "400",
        "--seeds",
        "0-1",
        "--jobs",
        "2",
        "--verbose",
        *extra,
    ]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_right_after_a_claim_hands_the_run_back(tmp_path, monkeypatch, sig):
    """The signal lands after the claim committed and before the claim returned: the run must go
    back to pending, not stay ``running`` under a process that has given up."""
    configs = grid_configs()
    store = Store(tmp_path / "results.sqlite", "t")
    real_claim = Store.claim

    def claim_then_signal(self, run_id):
        got = real_claim(self, run_id)
        os.kill(os.getpid(), sig)
        return got

    def interrupt(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(Store, "claim", claim_then_signal)
    previous = signal.signal(signal.SIGTERM, interrupt)  # as the command line turns SIGTERM into an interrupt
    try:
        with pytest.raises(KeyboardInterrupt):
            run_sweep(configs, store, LocalPool(1))
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert store.status_counts()["running"] == 0
    assert store.status_counts()["pending"] == len(configs)


def test_a_write_interrupted_before_its_commit_is_undone_by_the_next_write(tmp_path):
    """A signal can land after a write's BEGIN and before its block ends or its COMMIT runs; the
    interrupted caller saw the write fail, so the next write rolls it back instead of failing with
    "cannot start a transaction within a transaction"."""
    configs = grid_configs()
    store = Store(tmp_path / "results.sqlite", "t")
    store.add((c.run_id, c.to_dict()) for c in configs)
    abandoned = store._write()
    conn = abandoned.__enter__()  # the write lock taken, then the interrupt: no block end, no COMMIT
    conn.execute("UPDATE runs SET status = 'running' WHERE run_id = ?", (configs[0].run_id,))
    assert store.claim(configs[1].run_id)
    assert [r["run_id"] for r in store.rows("running")] == [configs[1].run_id]
    store.close()
    del abandoned  # its late clean-up finds the store closed and stays quiet


@pytest.mark.parametrize("handed_back", [True, False])
def test_a_run_another_sweep_holds_is_run_here_once_it_is_handed_back(tmp_path, handed_back):
    """Two sweeps share a study; the other holds one run, then is interrupted and hands it back while
    this one works: this one runs it, instead of ending with it pending. A run the other still holds
    at the end is reported as held elsewhere, never as already done."""
    configs = grid_configs()
    store = Store(tmp_path / "results.sqlite", "t")
    store.add((c.run_id, c.to_dict()) for c in configs)
    other = Store(tmp_path / "results.sqlite", "t")
    other.owner = "another-host:1"  # a sweep elsewhere: alive as far as this one can tell
    assert other.claim(configs[0].run_id)

    def hand_back(event, rid, out):
        if handed_back:
            other.release(configs[0].run_id)

    report = run_sweep(configs, store, LocalPool(1), on_event=hand_back)
    assert report.done_before == 0 and report.failed == 0
    assert (report.ran, report.skipped_elsewhere) == ((4, 0) if handed_back else (3, 1))
    counts = {k: n for k, n in store.status_counts().items() if n}
    assert counts == ({"done": 4} if handed_back else {"done": 3, "running": 1})


def _frozen_sweep(study, sigint=signal.SIG_DFL):
    """A 12-run sweep started as a fresh process, once two runs are done, with its workers stopped:
    runs are still pending and none can finish, so the sweep cannot end before a signal arrives,
    however slowly this test is scheduled. ``sigint``: the SIGINT disposition it inherits."""
    proc = subprocess.Popen(
        _sweep_cmd(study),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, sigint),
    )
    db = study / "results.sqlite"
    deadline = time.time() + 300
    while len(store_rows(db, "done")) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    workers = _descendants(proc.pid)
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    assert proc.poll() is None and store_rows(db, "pending"), "the sweep finished before it could be interrupted"
    return proc, workers


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_killed_sweep_resumes_without_duplicate_or_lost_rows(tmp_path, sig):
    study = tmp_path / "study"
    # as from a terminal (a job started in the background of a script would inherit SIGINT ignored)
    proc, workers = _frozen_sweep(study)
    db = study / "results.sqlite"
    if sig == signal.SIGKILL:
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its workers, with no chance to clean up
    else:
        os.kill(proc.pid, sig)  # Ctrl-C, or a polite kill
        for pid in workers:
            os.kill(pid, signal.SIGCONT)
    code = proc.wait(60)
    assert code == (-9 if sig == signal.SIGKILL else 130), proc.stderr.read()
    before = store_rows(db, "done")
    assert 2 <= len(before) < 12
    with sqlite3.connect(db) as c:
        running = c.execute("SELECT count(*) FROM runs WHERE status = 'running'").fetchone()[0]
    if sig != signal.SIGKILL:
        assert running == 0  # in-flight runs were handed back
    done = subprocess.run(_sweep_cmd(study), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{len(before)} already done" in done.stdout and f"{12 - len(before)} ran" in done.stdout
    after = store_rows(db, "done")
    assert len(after) == 12
    assert all(after[k] == v for k, v in before.items())  # finished runs were not run again
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT count(*), count(DISTINCT run_id) FROM runs").fetchone() == (12, 12)


def test_a_sigint_the_shell_ignores_stays_ignored_and_sigterm_still_stops(tmp_path):
    """A sweep started as `blackout sweep ... &` from a script inherits SIGINT ignored, as any Python
    program respects; SIGTERM must still stop it and hand its runs back, as the README says."""
    study = tmp_path / "study"
    proc, workers = _frozen_sweep(study, sigint=signal.SIG_IGN)
    os.kill(proc.pid, signal.SIGINT)
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(2)
    os.kill(proc.pid, signal.SIGTERM)
    for pid in workers:
        os.kill(pid, signal.SIGCONT)
    assert proc.wait(60) == 130, proc.stderr.read()
    assert not store_rows(study / "results.sqlite", "running")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A real single-node Ray cluster on 127.0.0.1, stopped afterwards."""
    ray_bin = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    if not Path(ray_bin).exists():
        pytest.skip("ray is not installed (pip install 'blackout[ray]')")
    port = _free_port()
    # a user's Ray settings (a token in ~/.ray/auth_token turns token authentication on) must not
    # reach this private loopback cluster: head and driver both run with authentication off
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    temp = tmp_path_factory.mktemp("ray")
    start = subprocess.run(
        [
            ray_bin,
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={temp}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert start.returncode == 0, start.stdout + start.stderr
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_AUTH_MODE", "disabled")
        yield f"127.0.0.1:{port}"
    subprocess.run([ray_bin, "stop", "--force"], capture_output=True, env=env, timeout=120)


def test_ray_executor_matches_the_local_pool(tmp_path, ray_cluster):
    from blackout.study.pools import RayPool

    configs = grid_configs()
    local = Store(tmp_path / "local.sqlite", "t")
    run_sweep(configs, local, LocalPool(2))
    remote = Store(tmp_path / "ray.sqlite", "t")
    report = run_sweep(configs, remote, RayPool(ray_cluster))
    assert (report.ran, report.failed) == (4, 0)
    a = {r.run_id: r.to_dict()["acc"] for r in local.results()}
    b = {r.run_id: r.to_dict()["acc"] for r in remote.results()}
    assert a == b
    # resume and failure handling are the executor-independent part of run_sweep: check them on Ray too
    again = run_sweep(configs, remote, RayPool(ray_cluster))
    assert (again.ran, again.done_before) == (0, 4)
    bad = SweepSpec(BASE, ({"dataset": ("mnist",)},)).configs()
    failed = run_sweep(bad, remote, RayPool(ray_cluster), data_dir=str(tmp_path / "nowhere"))
    assert failed.failed == 1 and "DataError" in remote.rows("failed")[0]["error"]


def test_a_cluster_that_wants_a_token_is_refused_in_one_line(tmp_path):
    """A head started with token authentication refuses a driver without the token: one line that says
    what to set, not Ray's chained tracebacks; with the token the same sweep runs."""
    ray_bin = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    if not Path(ray_bin).exists():
        pytest.skip("ray is not installed (pip install 'blackout[ray]')")
    port, token = _free_port(), "0123456789abcdef0123456789abcdef"
    home = tmp_path / "home"  # no ~/.ray/auth_token of the user's can answer for the driver
    home.mkdir()
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    base.update(HOME=str(home), RAY_USAGE_STATS_ENABLED="0")
    head = {**base, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    temp = tempfile.mkdtemp(prefix="ray-")  # Ray's socket paths must stay under 108 bytes
    start = subprocess.run(
        [ray_bin, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=1",
         "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
        capture_output=True, text=True, env=head, timeout=180,
    )  # fmt: skip
    assert start.returncode == 0, start.stdout + start.stderr
    try:
        argv = [sys.executable, "-m", "blackout", "sweep", str(tmp_path / "s"), "--dataset", "digits",
                "--tasks", "2", "--iterations", "30", "--ray", f"127.0.0.1:{port}"]  # fmt: skip
        refused = subprocess.run(argv, capture_output=True, text=True, env=base, timeout=300)
        assert refused.returncode == 2, refused.stderr[-2000:]
        last = refused.stderr.strip().splitlines()[-1]
        assert last.startswith("blackout: error: --ray 127.0.0.1:") and "RAY_AUTH_MODE=token" in last, last
        assert "Traceback" not in refused.stderr
        ran = subprocess.run(argv, capture_output=True, text=True, env=head, timeout=300)
        assert ran.returncode == 0, ran.stderr[-2000:]
    finally:
        subprocess.run([ray_bin, "stop", "--force"], capture_output=True, env=head, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def test_settings_given_once_apply_to_the_methods_that_have_them_and_must_be_used():
    spec = SweepSpec(BASE, ({"method": ("sgd", "online-ewc", "replay")},)).with_settings(
        {"memory": (50,), "gamma": (0.8,)}
    )
    runs = {c.method.method: c.to_dict()["method"] for c in spec.configs()}
    assert runs == {
        "sgd": {"method": "sgd"},
        "online-ewc": {**runs["online-ewc"], "gamma": 0.8},
        "replay": {"method": "replay", "memory": 50},
    }
    with pytest.raises(ConfigError, match=r"temperature: no run of this sweep has this setting"):
        SweepSpec(BASE, ({"method": ("sgd", "ewc")},)).with_settings({"temperature": (3.0,)}).configs()


@pytest.mark.parametrize(
    "text,message",
    [
        ("study = 5\n", r"s.toml:1: study: expected a name in quotes, got 5"),
        ('grid = "lam"\n', r"s.toml:1: grid: expected a table \(\[grid\]\) or tables"),
        ("grid = [1, 2]\n", r"s.toml:1: grid: expected a table"),
        ("base = 3\n", r"s.toml:1: base: expected a table \[base\], got 3"),
        ("preset = 7\n", r"s.toml:1: preset: expected a name in quotes"),
        ("[grid]\nlam = 5\n", r"s.toml:2: lam: expected a list of values, got 5"),
    ],
)
def test_malformed_sweep_files_are_one_line_errors(tmp_path, text, message):
    f = tmp_path / "s.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_spec(f)


def test_a_killed_sweep_leaves_no_worker_behind(tmp_path):
    """SIGKILL of the sweep process alone: its workers notice their parent is gone and exit."""
    proc = subprocess.Popen(_sweep_cmd(tmp_path / "s"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    children: list[int] = []
    while time.time() < deadline and len(children) < 2:
        time.sleep(0.3)
        children = _descendants(proc.pid)
    assert children, "no worker processes started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    deadline = time.time() + 20
    while time.time() < deadline and any(_alive(pid) for pid in children):
        time.sleep(0.3)
    assert not [pid for pid in children if _alive(pid)], "orphaned workers still running"


def _descendants(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout.split()
    pairs = list(zip(map(int, out[0::2]), map(int, out[1::2])))
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in pairs if pp == parent]
        found += kids
        frontier += kids
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize(
    "base,message",
    [
        ("[base.model]\nlr = 0.1\n", r"{f}: (\[base\] )?unknown setting model.lr$"),
        ("[base.nosuchsection]\nlr = 0.1\n", r"{f}: unknown setting 'nosuchsection'"),
        (
            "[base]\nbatch_size = 10\n[base.train]\nbatch_size = 20\n",
            r"{f}: (\[base\] )?batch_size is given twice \(as batch_size and as train.batch_size\)$",
        ),
        (
            "[base]\nbatch-size = 10\nbatch_size = 20\n",
            r"{f}: (\[base\] )?batch_size is given twice \(as batch-size and as batch_size\)$",
        ),
    ],
)
def test_sweep_base_is_validated_as_a_run_config_is(tmp_path, base, message):
    from blackout.config import RunConfig, load_toml

    f = tmp_path / "s.toml"
    f.write_text(base)
    with pytest.raises(ConfigError, match=message.format(f="s.toml")):
        load_spec(f)
    run_file = tmp_path / "r.toml"  # the same table as a run config is refused the same way
    run_file.write_text(base.replace("[base.", "[").replace("[base]", ""))
    with pytest.raises(ConfigError, match=message.format(f="r.toml")):
        RunConfig.from_dict(load_toml(run_file), where="r.toml: ")
