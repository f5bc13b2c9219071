"""Per-method settings: a config file's ``per_method`` section, checked at the boundary and used
by every run of that method (through the run records), its runs stored under their own key."""

import json

import pytest
import torch

from l2l_taskmix.benchmark import BenchmarkConfig, BenchmarkData
from l2l_taskmix.benchmark.config import METHOD_FIELDS
from l2l_taskmix.benchmark.runner import run_benchmark
from l2l_taskmix.benchmark.sweep import run_sweep
from l2l_taskmix.cli import build_parser, config_from_args
from l2l_taskmix.features import FeatureTask

pytestmark = pytest.mark.usefixtures("one_thread")


def data():
    g = torch.Generator().manual_seed(0)

    def task(name):
        return FeatureTask(name, torch.randn(24, 8, generator=g), torch.arange(24) % 3, ["a", "b", "c"])

    return BenchmarkData([task(f"t{k}") for k in range(4)], [task("z")])


def small(**changes):
    base = dict(iterations=4, eval_every=2, batch_size=4, hidden=(8,), val_tasks=1, finetune_steps=3, seeds=1, protocols=("paper",))
    return BenchmarkConfig(**{**base, **changes})


def test_for_method_applies_the_section_over_the_shared_values():
    cfg = small(per_method={"maml": {"inner_lr": 0.3, "iterations": 6}, "mtl": {"outer-lr": 0.01}})
    assert cfg.per_method == (("maml", (("inner_lr", 0.3), ("iterations", 6))), ("mtl", (("outer_lr", 0.01),)))
    maml = cfg.for_method("maml")
    assert (maml.inner_lr, maml.iterations, maml.outer_lr, maml.per_method) == (0.3, 6, 1e-3, ())
    assert cfg.for_method("MTL").outer_lr == 0.01 and cfg.for_method("transfer") == cfg.replace(per_method=())
    # a method without a section runs under the shared key; the section's values make their own
    assert cfg.for_method("transfer").run_hash() == small().run_hash()
    assert maml.run_hash() == small(inner_lr=0.3, iterations=6).run_hash() != small().run_hash()
    assert cfg.method_settings("maml")["inner_lr"] == 0.3 and set(cfg.method_settings("maml")) == set(METHOD_FIELDS)
    assert cfg.to_dict()["per_method"] == {"maml": {"inner_lr": 0.3, "iterations": 6}, "mtl": {"outer_lr": 0.01}}


@pytest.mark.parametrize(
    "section, error, message",
    [
        ({"mam": {}}, ValueError, "per_method: unknown method 'mam'"),
        ({"maml": {"hidden": [8]}}, ValueError, "per_method.maml: 'hidden' cannot be set per method"),
        ({"maml": {"inner_lr": -1}}, ValueError, r"per_method.maml: inner_lr == -1.0, must be > 0"),
        ({"maml": {"inner_lr": 0.1, "inner-lr": 0.2}}, ValueError, "inner_lr is given twice"),
        ({"maml": 3}, TypeError, "per_method.maml must be a mapping"),
        ([1, 2], TypeError, "per_method must map method names"),
    ],
)
def test_a_bad_section_is_refused_naming_it(section, error, message):
    with pytest.raises(error, match=message):
        small(per_method=section)


def test_a_config_file_section_reaches_the_runs_and_their_store(tmp_path):
    path = tmp_path / "best.yaml"
    path.write_text("per_method:\n  maml:\n    iterations: 6\n    inner_lr: 0.3\n")
    flags = "--methods maml,mtl --iterations 4 --eval-every 2 --batch-size 4 --hidden 8 --finetune-steps 3 --seeds 1 --protocols paper"
    cfg = config_from_args(build_parser().parse_args(["benchmark", "--config", str(path), *flags.split()]))
    run_benchmark(cfg, tmp_path / "out", data=data(), progress=False, echo=False)
    runs = {r["method"]: r for r in json.loads((tmp_path / "out" / "results.json").read_text())["runs"]}
    assert runs["maml"]["curve"][-1]["iteration"] == 6 and runs["mtl"]["curve"][-1]["iteration"] == 4
    assert runs["maml"]["key"] != runs["mtl"]["key"]
    # the same run under the shared settings with those values given as flags has the same numbers and key
    alone = tmp_path / "alone"
    run_benchmark(cfg.replace(per_method=(), methods=("maml",), iterations=6, inner_lr=0.3), alone, data=data(), progress=False, echo=False)
    same = json.loads((alone / "results.json").read_text())["runs"][0]
    assert (same["key"], same["per_task"], same["curve"]) == (runs["maml"]["key"], runs["maml"]["per_task"], runs["maml"]["curve"])
    assert json.loads((tmp_path / "out" / "results.json").read_text())["config"]["per_method"] == {
        "maml": {"inner_lr": 0.3, "iterations": 6}
    }


def test_a_sweep_over_a_setting_a_section_sets_is_refused(tmp_path):
    cfg = small(per_method={"maml": {"eta": 2.0}})
    with pytest.raises(ValueError, match="per_method.maml sets eta, which the sweep varies"):
        run_sweep(cfg, "eta", tmp_path, data=data(), progress=False, echo=False)


def test_a_sweep_of_num_synthetic_counts_t_by_the_method_s_own_settings(tmp_path):
    """T, N's unit, is the real tasks per meta-iteration of the swept method: a section that sets
    its meta_batch_size sets T, and each point runs the N it is labelled with."""
    from l2l_taskmix.benchmark.run import run_method

    cfg = small(per_method={"maml+taskmix": {"meta_batch_size": 2}})  # 4 meta-training tasks: T is 4 shared, 2 here
    table = run_sweep(cfg, "num_synthetic", tmp_path, values="T,2T", data=data(), progress=False, echo=False)
    assert sorted(set(table["value"])) == [2, 4]
    runs = json.loads((tmp_path / "sweep_num_synthetic.json").read_text())["runs"]
    at_4 = next(r for r in runs if r["value"] == 4 and r["method"] == "maml+taskmix")
    direct = run_method(
        "maml+taskmix", 0, data().train, data().test, small(meta_batch_size=2, num_synthetic=4), protocol="paper", progress=False
    )
    assert at_4["per_task"] == direct["per_task"]


def test_the_outputs_state_each_method_s_own_iteration_count(tmp_path):
    """results.md and the printed block say how long each method trained: a section's iterations
    is named, not only the shared count."""
    cfg = small(methods=("maml", "mtl"), per_method={"maml": {"iterations": 6}})
    run_benchmark(cfg, tmp_path, data=data(), progress=False, echo=False)
    text = (tmp_path / "results.md").read_text()
    assert "for 4 iterations (maml: 6, its per_method setting)" in text, text
