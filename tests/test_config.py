"""One configuration flow: each setting defined once, its flag generated, checked at the boundary,
explicit values passed down."""

import dataclasses
import inspect
import json

import pytest

from l2l_taskmix import MetaMix, TaskMix, make_model, mixing, models
from l2l_taskmix.benchmark import evaluation, run, settings, training
from l2l_taskmix.benchmark.config import BenchmarkConfig
from l2l_taskmix.benchmark.datasets import load_features
from l2l_taskmix.benchmark.methods import METHOD_NAMES, Method
from l2l_taskmix.cli import build_parser, config_from_args

FIELDS = [f.name for f in dataclasses.fields(BenchmarkConfig) if f.name != "per_method"]  # per_method: config files only

#: A value other than the default for every field, as typed on the command line and as parsed.
OTHER = {
    "dataset": ("mtop-wide", "mtop-wide"),
    "data_root": ("/data/mtop", "/data/mtop"),
    "encoder": ("xlmr", "xlmr"),
    "cache_dir": ("/tmp/c", "/tmp/c"),
    "num_train": ("5", 5),
    "standardize": (None, False),
    "methods": ("maml,mtl", ("maml", "mtl")),
    "seeds": ("4", 4),
    "shots": ("3", 3),
    "fraction": ("0.3", 0.3),
    "val_tasks": ("1", 1),
    "val_repeats": ("2", 2),
    "test_draws": ("4", 4),
    "hidden": ("64,32", (64, 32)),
    "iterations": ("7", 7),
    "eval_every": ("3", 3),
    "meta_batch_size": ("4", 4),
    "batch_size": ("16", 16),
    "inner_lr": ("0.5", 0.5),
    "inner_steps": ("2", 2),
    "outer_lr": ("0.01", 0.01),
    "first_order": (None, True),
    "engine": ("l2l", "l2l"),
    "eta": ("2.5", 2.5),
    "finetune_steps": ("20", 20),
    "finetune_lr": ("0.02", 0.02),
    "protocols": ("paper", ("paper",)),
    "train_subset": ("3", 3),
    "num_synthetic": ("0", 0),
    "device": ("CPU", "cpu"),
}


def parse(*argv):
    return config_from_args(build_parser().parse_args(["benchmark", *argv]))


def test_every_field_has_a_flag_with_its_default_in_the_help():
    sub = build_parser()._subparsers._group_actions[0].choices["benchmark"]
    by_dest = {a.dest: a for a in sub._actions}
    assert "per_method" not in by_dest  # a section of config files, not a flag
    for f in dataclasses.fields(BenchmarkConfig):
        if f.name == "per_method":
            continue
        action = by_dest[f.name]
        assert "--" + f.name.replace("_", "-") in action.option_strings
        assert f.metadata["help"] in action.help and "[default: " in action.help
        default = f.metadata["default_text"] or (",".join(map(str, f.default)) if isinstance(f.default, tuple) else str(f.default))
        assert action.help.endswith(f"[default: {default}]")
    assert set(OTHER) == set(FIELDS)  # this test knows every field


@pytest.mark.parametrize("name", FIELDS)
def test_each_flag_sets_its_field_and_nothing_else(name):
    typed, value = OTHER[name]
    flag = "--" + name.replace("_", "-")
    if name == "standardize":
        argv = ["--no-standardize"]
    elif name == "first_order":
        argv = ["--first-order"]
    else:
        argv = [flag, typed]
    cfg = parse(*argv)
    assert getattr(cfg, name) == value
    changed = {f for f in FIELDS if getattr(cfg, f) != getattr(BenchmarkConfig(), f)}
    assert changed == {name} | ({"shots"} if name == "fraction" else set())  # fraction switches the regime


def test_flags_win_over_the_file_and_the_file_over_the_defaults(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"eta": 0.5, "iterations": 9, "fraction": 0.5}))
    cfg = parse("--config", str(path), "--eta", "3")
    assert (cfg.eta, cfg.iterations, cfg.fraction, cfg.shots) == (3.0, 9, 0.5, None)
    cfg = parse("--config", str(path), "--shots", "2")  # a flag's regime wins over the file's
    assert (cfg.shots, cfg.fraction) == (2, None)


def test_values_are_checked_once_at_the_boundary_naming_the_field():
    # booleans from text: exactly true/false/yes/no/1/0 ("no" was once silently True)
    assert BenchmarkConfig.from_sources({"first_order": "no"}).first_order is False
    assert BenchmarkConfig.from_sources({"standardize": "FALSE"}).standardize is False
    assert BenchmarkConfig.from_sources({"first_order": "Yes", "standardize": 0}).first_order is True
    with pytest.raises(ValueError, match="first_order == 'nope', must be one of true/false/yes/no/1/0"):
        BenchmarkConfig.from_sources({"first_order": "nope"})
    with pytest.raises(TypeError, match="standardize must be a bool or one of the texts"):
        BenchmarkConfig.from_sources({"standardize": 2.5})
    with pytest.raises(ValueError, match=r"hidden\[1\] == 0, must be >= 1"):
        BenchmarkConfig(hidden=(8, 0))
    with pytest.raises(ValueError, match="methods\\[0\\] == 'nope', must be one of"):
        BenchmarkConfig(methods=("nope",))
    with pytest.raises(ValueError, match="engine == 'jax'"):
        BenchmarkConfig(engine="jax")
    with pytest.raises(ValueError, match="exactly one of shots"):
        BenchmarkConfig(shots=None)
    with pytest.raises(ValueError, match="unknown configuration keys \\['etaa'\\]"):
        BenchmarkConfig.from_sources({"etaa": 1})
    assert BenchmarkConfig(outer_lr=1).outer_lr == 1.0 and isinstance(BenchmarkConfig(outer_lr=1).outer_lr, float)


def test_the_old_meta_batch_key_still_reads_with_a_warning():
    with pytest.warns(DeprecationWarning, match="'meta_batch' is now 'meta_batch_size'"):
        cfg = BenchmarkConfig.from_sources({"meta_batch": 3})
    assert cfg.meta_batch_size == 3


def test_one_default_per_hyperparameter():
    cfg = BenchmarkConfig()
    assert cfg.eta is mixing.DEFAULT_ETA
    assert inspect.signature(TaskMix).parameters["eta"].default is mixing.DEFAULT_ETA
    assert inspect.signature(MetaMix).parameters["eta"].default is mixing.DEFAULT_ETA
    assert cfg.hidden == models.DEFAULT_HIDDEN
    assert inspect.signature(make_model).parameters["hidden"].default is models.DEFAULT_HIDDEN
    assert cfg.methods == METHOD_NAMES
    # the loop, the strategies and the data loader have no defaults of their own for the config's
    # settings: a parameter named after a field is required, or defaults to None ("not given")
    # exactly where the field does
    for function in (training.train, evaluation.evaluate, run.validation_scorer, load_features, Method.sampler, Method.objective):
        for name, param in inspect.signature(function).parameters.items():
            if name in FIELDS and param.default is not inspect.Parameter.empty:
                assert param.default is None and getattr(cfg, name) is None, f"{function.__qualname__}({name}=...)"


SETTINGS = {
    "loop": settings.LoopSettings,
    "maml": settings.MAMLSettings,
    "mix": settings.MixSettings,
    "finetune": settings.FinetuneSettings,
    "validation": settings.ValidationSettings,
}


@pytest.mark.parametrize("name", SETTINGS)
def test_each_settings_type_takes_its_values_from_the_config_fields_of_the_same_names(name):
    """One place per default: a settings type has no defaults of its own, its fields are config
    fields, and the config builds it from them."""
    kind = SETTINGS[name]
    names = [f.name for f in dataclasses.fields(kind)]
    assert set(names) <= set(FIELDS)
    assert all(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING for f in dataclasses.fields(kind))
    other = BenchmarkConfig.from_sources(
        {n: parsed for n, (_, parsed) in OTHER.items() if n in names and n != "shots"}
    )  # fraction: shots None
    for cfg in (BenchmarkConfig(), other):
        built = getattr(cfg, name)
        assert type(built) is kind and dataclasses.asdict(built) == {n: getattr(cfg, n) for n in names}
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(BenchmarkConfig().__getattribute__(name), names[0], None)


def test_train_takes_typed_settings_and_no_config_value_by_name():
    """train() takes the loop's, MAML's and the mixes' settings as typed groups, no config field by
    name and no config object."""
    own = {"model", "method", "tasks", "seed", "num_classes", "score", "checkpoints", "on_checkpoint", "progress", "desc"}
    params = set(inspect.signature(training.train).parameters)
    assert params - own == {"loop", "maml", "mix"} and not params & set(FIELDS)
    assert not hasattr(BenchmarkConfig, "kwargs_for")


def test_meta_batch_size_none_and_large_counts_pass_the_memory_estimate():
    """``meta_batch_size=None`` (every task each iteration) and a count far above the tasks there
    are build a config: the batch estimate is a lower bound (T is at most the tasks there are)."""
    assert BenchmarkConfig(meta_batch_size=None).meta_batch_size is None
    assert BenchmarkConfig(meta_batch_size=100_000, batch_size=256).meta_batch_size == 100_000
    with pytest.raises(ValueError, match="batch_size == 256 with num_synthetic == 100000: .* GiB"):
        BenchmarkConfig(num_synthetic=100_000, batch_size=256)
