"""Tests for settings.py: each training setting is declared once, and the presets, the
flags, the checks, the frozen-on-resume list and the checkpoint schema are all made
from that one list.
"""

import ast
import dataclasses
import sys

import pytest

import checkpoints
import settings
import train_minimal as tm
from helpers import REPO_ROOT


def _broken(**changes):
    """SETTINGS with the hidden_size row changed."""
    return tuple(dataclasses.replace(s, **changes) if s.name == "hidden_size" else s for s in settings.SETTINGS)


def _bad_value(s: settings.Setting):
    """A value that breaks the setting's rule."""
    return 5 if s.rule is settings.TEXT else "not a value"


# -----------------------------------------------------------------------------
# The list and the presets
# -----------------------------------------------------------------------------

def test_every_preset_names_exactly_the_declared_settings():
    assert tuple(tm.PRESETS) == settings.PRESET_NAMES and tm.PRESETS is settings.PRESETS
    for preset, values in tm.PRESETS.items():
        undeclared = sorted(set(values) - set(settings.NAMES))
        missing = sorted(set(settings.NAMES) - set(values))
        assert not undeclared, \
            f"the {preset} preset names settings that settings.py does not declare: {undeclared}"
        assert not missing, f"the {preset} preset has no value for the declared settings {missing}"


def test_check_declarations_accepts_the_list_and_refuses_a_contradiction():
    settings.check_declarations()                    # the real list (also run on import)
    cases = {
        "a value for a preset that does not exist":
            (_broken(values={"textbook": 100, "default": 256, "fats": 384}), "'fats'"),
        "no textbook value": (_broken(values={"default": 256}), "textbook"),
        "a preset value its own rule refuses": (_broken(values={"textbook": 0, "default": 256}), "--hidden-size"),
        "an unknown group": (_broken(group="model"), "group"),
        "a name twice": (settings.SETTINGS + settings.SETTINGS[:1], "twice"),
    }
    for case, (rows, keyword) in cases.items():
        with pytest.raises(ValueError, match=keyword):
            settings.check_declarations(rows)
            pytest.fail(f"check_declarations should refuse {case}")


def test_a_preset_without_its_own_value_follows_its_parent():
    rows = settings.SETTINGS
    fast, long = settings.presets(rows)["fast"], settings.presets(rows)["long"]
    assert fast["hidden_size"] == 384 and fast["seq_length"] == tm.PRESETS["default"]["seq_length"]
    assert long["hidden_size"] == fast["hidden_size"] and long["dropout"] == 0.05
    assert settings.BY_NAME["hidden_size"].default_text() == "(default: 256; textbook: 100)"
    assert settings.BY_NAME["clip"].default_text() == "(default: 5.0)", "one value in every preset is said once"
    assert settings.BY_NAME["random_offsets"].as_flags(False) == "--no-random-offsets"
    assert settings.BY_NAME["learning_rate"].as_flags(0.01) == "--learning-rate 0.01"


def test_unknown_settings_and_presets_are_refused_by_name():
    with pytest.raises(tm.UserError, match="unknown setting 'hidden_sise'"):
        tm.resolve_config("default", hidden_sise=3)
    with pytest.raises(tm.UserError, match="unknown preset 'fats'"):
        tm.resolve_config("fats")


def test_settings_imports_only_the_standard_library():
    tree = ast.parse((REPO_ROOT / "settings.py").read_text(encoding="utf-8"))
    names = {a.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    names |= {node.module.split(".")[0] for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.module and node.module != "__future__"}
    assert names <= set(sys.stdlib_module_names), \
        f"settings.py imports {sorted(names - set(sys.stdlib_module_names))}: it must stay standard-library only"


# -----------------------------------------------------------------------------
# What is made from the list
# -----------------------------------------------------------------------------

def test_the_parser_has_one_flag_per_setting_from_the_list():
    actions = {a.dest: a for a in tm.build_parser()._actions}
    for s in settings.SETTINGS:
        assert s.name in actions, f"build_parser has no flag for the setting {s.name!r}"
        assert tuple(actions[s.name].option_strings) == (s.flag, *s.aliases) or \
            s.rule.parse is bool, f"{s.name}: flags {actions[s.name].option_strings}"
        assert s.help in actions[s.name].help and s.default_text() in actions[s.name].help
    args = tm.build_parser().parse_args([])
    assert set(tm.config_from_args(args)) == set(settings.NAMES) | {"preset"}, \
        "the resolved config holds every declared setting and the preset's name"
    day1 = {a.dest for a in tm.build_parser(all_options=False)._actions if a.help != "==SUPPRESS=="}
    assert {s.name for s in settings.SETTINGS if s.day1} <= day1
    assert not {s.name for s in settings.SETTINGS if not s.day1} & day1, "--help shows only the Day-1 settings"


@pytest.mark.parametrize("name", settings.NAMES)
def test_check_config_refuses_a_bad_value_of_every_setting_naming_its_flag(name, tmp_path):
    s = settings.BY_NAME[name]
    config = tm.resolve_config("default", out=str(tmp_path / "o"))
    tm.check_config(config)
    with pytest.raises(tm.UserError, match=f"^{s.flag} must be "):
        tm.check_config(dict(config, **{name: _bad_value(s)}))
    with pytest.raises(tm.UserError, match=f"no {name!r}"):
        tm.check_config({k: v for k, v in config.items() if k != name})


@pytest.mark.parametrize("preset", settings.PRESET_NAMES)
def test_every_preset_passes_the_checks(preset, tmp_path):
    tm.check_config(tm.resolve_config(preset, out=str(tmp_path / "o")))


def test_the_frozen_list_is_made_from_the_list():
    assert tm.FROZEN_ON_RESUME == tuple(s.name for s in settings.SETTINGS if s.frozen)
    assert {"hidden_size", "seq_length", "batch_size", "optimizer", "dtype", "seed", "ema"} <= \
        set(tm.FROZEN_ON_RESUME), "the shapes, the data walk and the optimiser state must stay on resume"
    assert "max_steps" not in tm.FROZEN_ON_RESUME, "a resumed run may be made longer"


def test_the_checkpoint_schema_is_made_from_the_list():
    for s in settings.SETTINGS:
        test, what = checkpoints.CONFIG_SCHEMA[s.name]
        assert what == s.schema_rule()[1], f"CONFIG_SCHEMA[{s.name!r}] says {what!r}"
        for preset in settings.PRESET_NAMES:
            assert test(s.value(preset)), f"CONFIG_SCHEMA refuses the {preset} preset's {s.name}"
        assert not test(_bad_value(s)), f"CONFIG_SCHEMA accepts a bad {s.name}"
        assert test(None) == s.optional, f"{s.name}: null is allowed exactly when the setting is optional"
    others = set(checkpoints.CONFIG_SCHEMA) - set(settings.NAMES)
    assert others == {"preset", "vocab_size", "train_chars", "val_chars", "chars_per_epoch", "windows_per_epoch"}


def test_older_checkpoints_stand_for_valid_values():
    for name, value in settings.if_absent().items():
        assert settings.BY_NAME[name].problem(value) is None, f"{name}: {value!r} for older checkpoints is invalid"
    assert settings.if_absent()["dropout"] == 0.0 and "hidden_size" not in settings.if_absent()


# -----------------------------------------------------------------------------
# Limits: every count has one, stated, and the parser and the checkpoint schema keep it
# -----------------------------------------------------------------------------

def test_every_count_setting_states_an_upper_bound_that_the_parser_and_the_schema_keep():
    """No setting typed by a user or read from a crafted checkpoint can make a run loop or allocate
    without end: every whole-number setting, and the time budget, has a stated maximum."""
    parser = tm.build_parser()
    bounded = [(s, 2**53) for s in settings.SETTINGS if s.rule.parse is int]
    bounded.append((settings.BY_NAME["time_budget"], settings.SECONDS_LIMIT))
    assert len(bounded) >= 12
    for s, too_big in bounded:
        test, what = checkpoints.CONFIG_SCHEMA[s.name]
        assert not s.rule.test(too_big) and not test(too_big), f"{s.name}: no upper bound below {too_big:g}"
        assert " to " in what or "below" in what, f"{s.name}: the rule should state its bound: {what!r}"
        with pytest.raises(SystemExit):
            parser.parse_args([s.flag, str(too_big)])
    sample = settings.BY_NAME["sample_length"]
    assert sample.rule.test(settings.MAX_SAMPLE) and not sample.rule.test(settings.MAX_SAMPLE + 1)
    assert f"at most {settings.MAX_SAMPLE:,}" in sample.help, "the flag's help says the limit"


def test_the_limits_agree_with_what_checkpoints_and_logs_can_hold():
    import runlog

    assert settings.MAX_DIM == checkpoints.CHECKPOINT_MAX_DIM
    assert settings.COUNT_LIMIT == checkpoints.META_MAX_COUNT
    assert settings.SECONDS_LIMIT == checkpoints.META_MAX_SECONDS
    assert settings.SEED_LIMIT <= runlog.MAX_COUNT, "a run's log must keep its seed exactly and read it back"
    assert runlog.check_entry({"kind": "config", **tm.resolve_config(seed=settings.SEED_LIMIT - 1)}) is None
    worst = runlog.json_line("sample", step=1, chars=1, text="\U0001F600" * settings.MAX_SAMPLE, prime="\n",
                             temperature=1.0)
    assert len(worst.encode("utf-8")) <= runlog.MAX_LINE_BYTES, \
        "the longest sample, every character written as \\uXXXX\\uXXXX, must fit in one log line"


@pytest.mark.parametrize("name, bad", [("vocab_size", settings.MAX_DIM + 1), ("vocab_size", 0),
                                       ("train_chars", 10**12), ("chars_per_epoch", 10**400),
                                       ("windows_per_epoch", -1), ("val_chars", 1.5)])
def test_the_data_sizes_a_checkpoint_stores_are_checked_from_settings(name, bad):
    test, what = checkpoints.CONFIG_SCHEMA[name]
    assert what == settings.DATA_SIZES[name].what
    assert test(1) and not test(bad), f"CONFIG_SCHEMA[{name!r}] ({what}) should refuse {bad!r:.40}"
