import pytest

from blackout.config import RunConfig, load_toml
from blackout.errors import ConfigError


def test_flat_settings_land_in_their_sections():
    c = RunConfig.from_flat({"hidden": "400,400", "lam": "5", "stop-on-blackout": "false", "tasks": 7})
    assert c.model.hidden == (400, 400)
    assert c.method.lam == 5.0
    assert c.blackout.stop_on_blackout is False
    assert c.data.tasks == 7


@pytest.mark.parametrize("key,value,message", [
    ("lr", 0, "lr: expected a learning rate > 0, got 0"),
    ("hidden", "0", r"hidden: expected one or more widths >= 1, got \[0\]"),
    ("tasks", 0, "tasks: expected at least 1, got 0"),
    ("lam", -1, "lam: expected lambda >= 0, got -1"),
    ("method", "ewk", "method: expected one of .*ewc.*, got 'ewk'"),
    ("dataset", "cifar", "dataset: expected one of digits, mnist, fashion-mnist, got 'cifar'"),
    ("stream", "shuffled", "stream: expected one of permuted, split, rotated"),
    ("lr", "fast", "lr: expected a number, got 'fast'"),
    ("tasks", 2.5, "tasks: expected an integer, got 2.5"),
    ("hidden", "a,b", "hidden: expected a comma-separated list of integers"),
    ("gamma", 1.5, "gamma: expected 0 < gamma <= 1"),
    ("fisher_labels", "true", "fisher_labels: expected one of sampled, empirical, expected"),
])
def test_bad_values_name_the_field_and_the_expectation(key, value, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_flat({key: value})


def test_unknown_setting_is_rejected_with_its_source():
    with pytest.raises(ConfigError, match="x.toml: unknown setting 'lamda'"):
        RunConfig.from_flat({"lamda": 3}, where="x.toml: ")


def test_run_id_is_a_hash_of_the_canonical_config():
    a = RunConfig.from_flat({"lam": 15, "hidden": "50"})
    b = RunConfig.from_flat({"hidden": [50], "lam": 15.0})
    assert a.run_id == b.run_id and len(a.run_id) == 16
    assert RunConfig.from_flat({"lam": 15, "hidden": "50", "seed": 1}).run_id != a.run_id
    # JSON round trip gives the same identity
    assert RunConfig.from_dict(a.to_dict()).run_id == a.run_id


def test_toml_sections_and_errors(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('[model]\nhidden = [20, 20]\n[method]\nmethod = "sgd"\n')
    c = RunConfig.from_dict(load_toml(good))
    assert c.model.hidden == (20, 20) and c.method.method == "sgd"
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nhidden = 3\n")
    with pytest.raises(ConfigError, match=r"bad.toml: not valid TOML .*line 1"):
        load_toml(bad)
    with pytest.raises(ConfigError, match="missing.toml: no such config file"):
        load_toml(tmp_path / "missing.toml")
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("[model]\nwidth = 3\n")
    with pytest.raises(ConfigError, match="unknown setting model.width"):
        RunConfig.from_dict(load_toml(wrong))


def test_config_is_frozen():
    c = RunConfig()
    with pytest.raises(Exception):
        c.train.lr = 1.0  # type: ignore[misc]
