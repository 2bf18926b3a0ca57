import re

import pytest

from blackout.config import RunConfig, load_toml
from blackout.errors import ConfigError


def test_flat_settings_land_in_their_sections():
    c = RunConfig.from_flat({"hidden": "400,400", "lam": "5", "stop-on-blackout": "false", "tasks": 7})
    assert c.model.hidden == (400, 400)
    assert c.method.lam == 5.0
    assert c.blackout.stop_on_blackout is False
    assert c.data.tasks == 7


@pytest.mark.parametrize(
    "key,value,message",
    [
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
        ("fisher_labels", "true", "fisher_labels: expected one of sampled, empirical, expected"),
        ("tasks", "1_0", "tasks: expected an integer, got '1_0'"),
        ("tasks", "١٠", "tasks: expected an integer"),
        ("lr", "inf", "lr: expected a number, got 'inf'"),
        ("lr", "nan", "lr: expected a number, got 'nan'"),
        ("lr", float("inf"), "lr: expected a finite number"),
        ("tasks", True, "tasks: expected an integer, got True"),
        ("tasks", 100000, r"tasks: 100,000 tasks need an accuracy matrix of about .* GiB, more than this machine's"),
        ("hidden", "1000000000", r"hidden: a network of .* parameters needs about .* GiB"),
    ],
)
def test_bad_values_name_the_field_and_the_expectation(key, value, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_flat({key: value})


def test_method_settings_belong_to_their_method():
    c = RunConfig.from_flat({"method": "online-ewc", "gamma": 0.9, "lam": 5})
    assert c.method.gamma == 0.9 and c.method.lam == 5.0
    assert c.to_dict()["method"] == {
        "method": "online-ewc",
        "lam": 5.0,
        "gamma": 0.9,
        "fisher_samples": 200,
        "fisher_labels": "sampled",
    }
    with pytest.raises(ConfigError, match=r"gamma: expected 0 < gamma <= 1, got 1.5"):
        RunConfig.from_flat({"method": "online-ewc", "gamma": 1.5})
    with pytest.raises(
        ConfigError, match=r"gamma: not a setting of method 'ewc' \(its settings: ewc_form, fisher_labels"
    ):
        RunConfig.from_flat({"method": "ewc", "gamma": 0.9})
    with pytest.raises(ConfigError, match=r"lam: not a setting of method 'sgd' \(it has no settings\)"):
        RunConfig.from_flat({"method": "sgd", "lam": 5})
    # a base's settings that the new method does not have are dropped, not errors
    ewc = RunConfig.from_flat({"lam": 15})
    assert RunConfig.from_flat({"method": "sgd"}, ewc).to_dict()["method"] == {"method": "sgd"}
    assert RunConfig.from_flat({"method": "sgd", "lam": 5}, strict=False).to_dict()["method"] == {"method": "sgd"}


def test_unknown_setting_is_rejected_with_its_source():
    with pytest.raises(ConfigError, match="x.toml: unknown setting 'lamda'"):
        RunConfig.from_flat({"lamda": 3}, where="x.toml: ")


def test_run_id_is_a_hash_of_the_canonical_config():
    a = RunConfig.from_flat({"lam": 15, "hidden": "50"})
    b = RunConfig.from_flat({"hidden": [50], "lam": 15.0})
    # an unused setting of another method never enters the identity
    assert (
        RunConfig.from_flat({"method": "sgd"}).run_id
        == RunConfig.from_flat({"method": "sgd"}, RunConfig.from_flat({"lam": 5})).run_id
    )
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
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'dataset = "caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"latin.toml: not UTF-8 text \(byte 14\)"):
        load_toml(latin)
    with pytest.raises(ConfigError, match="is a folder, expected a TOML file"):
        load_toml(tmp_path)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("[model]\nwidth = 3\n")
    with pytest.raises(ConfigError, match="unknown setting model.width"):
        RunConfig.from_dict(load_toml(wrong))


def test_config_is_frozen():
    c = RunConfig()
    with pytest.raises(Exception):
        c.train.lr = 1.0  # type: ignore[misc]


def test_device_auto_resolves_to_the_best_present_and_an_absent_device_is_refused():
    from blackout.config import best_device

    assert RunConfig.from_flat({"device": "auto"}).train.device == best_device()
    if best_device() == "cpu":
        with pytest.raises(ConfigError, match="device: cuda is not available on this machine"):
            RunConfig.from_flat({"device": "cuda"})
    assert RunConfig.from_flat({"device": "cpu"}).run_id != RunConfig.from_flat({"device": "cpu", "threads": 2}).run_id


# -- every number bounded by what the libraries accept and the machine can hold -------------------


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("seed", 2**64, r"seed: expected a seed from 0 to 4294967295 .*, got 18446744073709551616"),
        ("seed", 2**32, r"seed: expected a seed from 0 to 4294967295"),
        ("epochs", 1e308, r"epochs: expected 0 <= epochs <= 100000 .*, got 1e\+308"),
        ("iterations", 10**30, r"iterations: expected at most 100,000,000 steps per task, got 10+$"),
        ("threads", 10**5, r"threads: expected 1 to 256 threads, got 100000"),
        ("threads", 257, r"threads: expected 1 to 256 threads, got 257"),
        ("pad", 17, r"pad: expected 0 to 16 pixels, got 17"),
        ("pad", -1, r"pad: expected 0 to 16 pixels, got -1"),
        (
            "maturity",
            2**63,
            r"maturity: expected 0 <= maturity < 2\^63 \(compared with 64-bit ages\), got 9223372036854775808",
        ),
    ],
)
def test_numbers_past_what_a_run_can_use_are_refused(key, value, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_flat({key: value, **({"method": "cbp"} if key == "maturity" else {})})


def test_largest_accepted_numbers_still_build_a_config():
    c = RunConfig.from_flat({"seed": 2**32 - 1, "epochs": 100000, "iterations": 10**8, "threads": 256})
    assert (c.seed, c.train.epochs, c.train.iterations, c.train.threads) == (2**32 - 1, 100000.0, 10**8, 256)


def test_sharpness_steps_are_bounded_by_the_network_and_counted_in_its_memory(monkeypatch):
    from blackout import config

    # digits 64-16-10: 1,210 parameters, so Lanczos has at most 1,210 directions to find
    with pytest.raises(
        ConfigError,
        match=r"sharpness: expected at most 1,210 Lanczos steps \(the network's "
        r"parameters\), got 100000",
    ):
        RunConfig.from_flat({"hidden": "16", "sharpness": 100000})
    assert RunConfig.from_flat({"hidden": "16", "sharpness": 1210}).train.sharpness == 1210
    # its k x k tridiagonal eigenproblem is held densely: 10,000 steps need about 3.0 GiB
    monkeypatch.setattr(config, "_physical_memory", lambda: 2**30)
    with pytest.raises(
        ConfigError,
        match=r"sharpness: 10,000 Lanczos steps need about 3.0 GiB, more than this "
        r"machine's 1.0 GiB",
    ):
        RunConfig.from_flat({"hidden": "1000", "sharpness": 10000})


# -- deeply nested TOML ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["tasks = " + "[" * 5000 + "]" * 5000, "tasks = " + "{a = " * 5000 + "1" + "}" * 5000])
def test_deeply_nested_toml_is_one_error_naming_the_file(tmp_path, text):
    f = tmp_path / "deep.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=r"deep.toml: not valid TOML \(nested too deeply for the TOML reader\)$"):
        load_toml(f)


# -- one setting given once -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "doc,message",
    [
        (
            {"batch_size": 10, "train": {"batch_size": 20}},
            r"x.toml: batch_size is given twice \(as batch_size and as train.batch_size\)",
        ),
        (
            {"batch-size": 10, "batch_size": 20},
            r"x.toml: batch_size is given twice \(as batch-size and as batch_size\)",
        ),
        (
            {"train": {"batch-size": 10, "batch_size": 20}},
            r"x.toml: batch_size is given twice \(as train.batch-size and as train.batch_size\)",
        ),
        ({"method": {"lam": 1}, "lam": 2}, r"x.toml: lam is given twice \(as method.lam and as lam\)"),
    ],
)
def test_a_setting_given_twice_is_refused_naming_both(doc, message):
    from blackout.config import flat_settings

    with pytest.raises(ConfigError, match=message):
        flat_settings(doc, "x.toml: ")


def test_toml_integers_with_underscores_are_toml_numbers_and_flag_strings_are_refused(tmp_path):
    """TOML defines ``1_0`` as the integer 10; on the command line the string '1_0' is refused."""
    f = tmp_path / "u.toml"
    f.write_text("tasks = 1_0\n")
    assert RunConfig.from_dict(load_toml(f)).data.tasks == 10
    with pytest.raises(ConfigError, match="tasks: expected an integer, got '1_0'"):
        RunConfig.from_flat({"tasks": "1_0"})


# -- settings under which a verdict means nothing -------------------------------------------------


@pytest.mark.parametrize("limit", [1, 3, 9])
def test_a_test_limit_too_small_for_a_verdict_is_refused(limit):
    with pytest.raises(
        ConfigError,
        match=rf"test_limit: expected 0 \(all\) or at least 10 test images per task "
        rf"\(fewer cannot tell learning from chance\), got {limit}$",
    ):
        RunConfig.from_flat({"test_limit": limit})
    assert RunConfig.from_flat({"test_limit": 10}).data.test_limit == 10


# --------------------------------------------------------------------------- scenario and inert settings


def test_scenario_is_explicit_in_the_canonical_config_and_multi_head_reads_as_task():
    split = {"stream": "split", "tasks": 5}
    assert RunConfig.from_flat(split).to_dict()["data"]["scenario"] == "class"  # a split stream's own
    assert RunConfig.from_flat({}).to_dict()["data"]["scenario"] == "domain"  # permuted: one 10-way head
    old = RunConfig.from_flat({**split, "multi_head": True})  # configs and archives written before the setting
    assert (
        old.to_dict()["data"]["scenario"] == "task"
        and old.run_id == RunConfig.from_flat({**split, "scenario": "task"}).run_id
    )
    assert RunConfig.from_flat({**split, "multi_head": False}).run_id == RunConfig.from_flat(split).run_id
    stored = RunConfig.from_dict(old.to_dict())
    assert stored.run_id == old.run_id and "multi_head" not in stored.to_dict()["data"]
    # a preset's scenario does not stick when the stream changes: auto follows the stream
    assert RunConfig.from_flat({"stream": "permuted"}, RunConfig.from_flat(split)).data.resolved_scenario == "domain"


@pytest.mark.parametrize(
    "values, message",
    [
        (
            {"scenario": "task"},
            "scenario: a permuted stream is domain-incremental (one 10-way head for every task); "
            "task and class scenarios need stream split, got task",
        ),
        ({"stream": "rotated", "multi_head": True}, "scenario: a rotated stream is domain-incremental"),
        (
            {"stream": "split", "tasks": 5, "multi_head": True, "scenario": "domain"},
            "multi_head: true contradicts scenario 'domain' (multi_head true means scenario task); give only scenario",
        ),
    ],
)
def test_a_scenario_a_stream_does_not_offer_is_refused_in_one_line(values, message):
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        RunConfig.from_flat(values)


@pytest.mark.parametrize(
    "inert, base",
    [
        ({"keep_first": True}, {"stream": "split", "tasks": 5}),
        ({"keep_first": True}, {"stream": "rotated"}),
        ({"channels": (8, 8)}, {"arch": "mlp"}),
        ({"angle_step": 30.0}, {"stream": "permuted"}),
        ({"classes_per_task": 3}, {"stream": "rotated"}),
        ({"class_order": "natural"}, {"stream": "permuted"}),
        ({"mask_unseen": True}, {"stream": "split", "tasks": 5, "scenario": "task"}),
        ({"mask_unseen": True}, {"stream": "permuted"}),
        ({"keep_optimizer": True}, {"optimizer": "sgd"}),
    ],
)
def test_a_setting_without_effect_does_not_change_the_run_id(inert, base):
    """The same numbers under two ids would count one result twice in a sweep."""
    assert RunConfig.from_flat({**base, **inert}).run_id == RunConfig.from_flat(base).run_id


@pytest.mark.parametrize(
    "live, base",
    [
        ({"keep_first": True}, {"stream": "permuted"}),
        ({"channels": (8, 8)}, {"arch": "cnn"}),
        ({"angle_step": 30.0}, {"stream": "rotated"}),
        ({"classes_per_task": 3}, {"stream": "split", "tasks": 3}),
        ({"class_order": "natural"}, {"stream": "split", "tasks": 3}),
        ({"mask_unseen": True}, {"stream": "split", "tasks": 3, "class_order": "natural"}),
        ({"keep_optimizer": True}, {"optimizer": "adam"}),
        ({"pad": 2}, {}),
        ({"normalize": True}, {}),
    ],
)
def test_the_same_settings_where_they_act_do_change_it(live, base):
    assert RunConfig.from_flat({**base, **live}).run_id != RunConfig.from_flat(base).run_id
