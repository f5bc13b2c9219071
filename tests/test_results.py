"""Outputs: atomic writes, the resume store, the table, CSV/JSON/PNG."""

import json
import os
import re

import numpy as np
import pandas as pd
import pytest
import torch

from l2l_taskmix.benchmark.report import markdown_table, per_task_table, write_outputs
from l2l_taskmix.benchmark.statistics import summarize
from l2l_taskmix.benchmark.store import RunStore, data_fingerprint, package_versions
from l2l_taskmix.features import FeatureTask
from l2l_taskmix.files import atomic_write


def record(method, seed, f1, tasks=("a", "b")):
    return {"method": method, "seed": seed, "macro_f1": f1, "per_task": {t: f1 for t in tasks}}


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "x.json"
    atomic_write(path, "old")

    def fail(fd):
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", fail)  # fails while writing, after the temporary file exists
        with pytest.raises(OSError, match="disk full"):
            atomic_write(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]  # no temporary file left
    atomic_write(path, b"\x89PNG")
    assert path.read_bytes() == b"\x89PNG"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # like a plain open(), not mkstemp's 0600


def test_atomic_write_takes_only_text_or_bytes(tmp_path):
    path = tmp_path / "x.json"
    atomic_write(path, "old")
    with pytest.raises(TypeError):
        atomic_write(path, 123)  # not text, not bytes: an error, not 123 zero bytes
    assert path.read_text() == "old"
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_run_store_round_trip_and_bad_files(tmp_path):
    store = RunStore(tmp_path, key="k1")
    assert store.load("maml+taskmix", 0) is None
    store.save(record("maml+taskmix", 0, 0.5))
    store.save(record("mtl", 1, 0.25))
    assert store.load("maml+taskmix", 0)["macro_f1"] == 0.5
    assert sorted((r["method"], r["seed"]) for r in store.load_all()) == [("maml+taskmix", 0), ("mtl", 1)]
    # another configuration's store sees nothing
    assert RunStore(tmp_path, key="k2").load_all() == [] and RunStore(tmp_path, key="k2").load("mtl", 1) is None
    # a truncated or foreign file counts as not finished
    store.path("mtl", 1).write_text('{"method": "mtl", "seed": 1, "macro')
    assert store.load("mtl", 1) is None
    store.path("mtl", 2).write_text(json.dumps(record("maml", 2, 0.1)))
    assert store.load("mtl", 2) is None
    assert [r["method"] for r in store.load_all()] == ["maml+taskmix"]
    with pytest.raises(ValueError, match="per_task"):
        store.save({"method": "mtl", "seed": 0, "macro_f1": 0.1})


def old_style(record):
    """``record`` as the code before the rename stored it: its names of the tasks it trained on
    under ``train_tasks``, of its validation tasks under ``val_tasks``."""
    names = {"fit_tasks": "train_tasks", "validation_tasks": "val_tasks"}
    return {names.get(k, k): v for k, v in record.items()}


def test_a_record_stored_under_the_old_field_names_is_read_under_the_new_ones(tmp_path):
    store = RunStore(tmp_path, key="k")
    old = {**record("maml", 0, 0.5), "protocol": "select", "key": "k", "train_tasks": ["t0", "t3"], "val_tasks": ["t2"], "seconds": 1.5}
    store.path("maml", 0).parent.mkdir(parents=True)
    store.path("maml", 0).write_text(json.dumps(old, indent=1, sort_keys=True))
    loaded = store.load("maml", 0)
    assert loaded["fit_tasks"] == ["t0", "t3"] and loaded["validation_tasks"] == ["t2"]
    assert "train_tasks" not in loaded and "val_tasks" not in loaded
    assert {k: v for k, v in loaded.items() if k not in ("fit_tasks", "validation_tasks")} == {
        k: v for k, v in old.items() if k not in ("train_tasks", "val_tasks")
    }  # nothing else touched
    assert store.load_all() == [loaded]
    # a record under today's names is read as it was saved
    new = {**record("mtl", 0, 0.25), "protocol": "select", "fit_tasks": ["t1"], "validation_tasks": []}
    store.save(new)
    assert store.load("mtl", 0, "select") == {**new, "key": "k"}


def test_runs_stored_under_the_old_field_names_are_reused_and_give_the_same_results_md(tmp_path, monkeypatch):
    from l2l_taskmix.benchmark import BenchmarkConfig, BenchmarkData, grid, runner

    g = torch.Generator().manual_seed(0)

    def task(name):
        return FeatureTask(name, torch.randn(24, 6, generator=g), torch.arange(24) % 3, ["a", "b", "c"])

    data = BenchmarkData([task(f"t{k}") for k in range(4)], [task("z")], info={"train_tasks": [f"t{k}" for k in range(4)]})
    cfg = BenchmarkConfig(
        methods=("mtl", "maml"), seeds=1, iterations=2, eval_every=1, batch_size=4, hidden=(8,), val_tasks=1, finetune_steps=3, shots=2
    )
    runner.run_benchmark(cfg, tmp_path, data=data, progress=False, echo=False)
    table = (tmp_path / "results.md").read_bytes()
    files = sorted((tmp_path / "runs").glob("*/*.json"))
    assert len(files) == 4
    for path in files:  # as the code before the rename stored them
        stored = json.loads(path.read_text())
        assert stored["validation_tasks"] == ([] if path.name.startswith("paper") else stored["validation_tasks"][:1])
        path.write_text(json.dumps(old_style(stored), indent=1, sort_keys=True))
        assert "train_tasks" in path.read_text() and "fit_tasks" not in path.read_text()

    def computed(*args, **kwargs):
        raise AssertionError("a run was computed again instead of reused")

    monkeypatch.setattr(grid, "run_method", computed)
    (tmp_path / "results.md").unlink()
    runner.run_benchmark(cfg, tmp_path, data=data, progress=False, echo=False)
    assert (tmp_path / "results.md").read_bytes() == table
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert all("fit_tasks" in r and "train_tasks" not in r and "val_tasks" not in r for r in runs)
    assert [len(r["validation_tasks"]) for r in runs] == [0, 0, 1, 1]  # paper, then select


def test_tables_name_the_protocols_in_the_order_statistics_sorts_them():
    from l2l_taskmix.benchmark.config import PROTOCOLS
    from l2l_taskmix.benchmark.report import PROTOCOL_TITLES
    from l2l_taskmix.benchmark.statistics import protocol_order

    assert tuple(PROTOCOL_TITLES) == PROTOCOLS
    assert protocol_order(["select", "x", "paper"]) == ["paper", "select", "x"]


def test_the_statistics_need_neither_markdown_nor_matplotlib():
    import subprocess
    import sys

    code = (
        "import sys, l2l_taskmix.benchmark.statistics, l2l_taskmix.benchmark.store; "
        "print(sorted(m for m in sys.modules if m.startswith(('matplotlib', 'l2l_taskmix.markdown', 'l2l_taskmix.benchmark.report'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_summarize_mean_and_sample_std_in_method_order():
    runs = [record("maml", s, f) for s, f in enumerate([0.2, 0.4, 0.6])] + [record("mtl", 0, 0.5)]
    table = summarize(runs, ["mtl", "maml", "transfer"])
    assert list(table.columns) == ["protocol", "method", "macro_f1_mean", "macro_f1_std", "seeds"]
    assert table["method"].tolist() == ["mtl", "maml"] and table["protocol"].tolist() == ["select", "select"]
    assert table.loc[1, "macro_f1_mean"] == pytest.approx(0.4)
    assert table.loc[1, "macro_f1_std"] == pytest.approx(0.2)  # ddof=1
    assert table.loc[0, "macro_f1_std"] == 0.0 and table.loc[0, "seeds"] == 1
    assert summarize([], None).empty


def test_markdown_tables():
    runs = [record("maml", 0, 0.5), record("maml", 1, 0.7), record("mtl", 0, 0.25, tasks=("a",))]
    text = markdown_table(summarize(runs, ["maml", "mtl"]))
    lines = text.splitlines()
    assert lines[0].split("|")[1].strip() == "Method" and "Average Macro F1" in lines[0]
    assert "0.600 ± 0.141" in lines[2] and "0.250 ± 0.000" in lines[3]
    per_task = per_task_table(runs, ["maml", "mtl"]).splitlines()
    assert per_task[0].split("|")[2].strip() == "maml"
    assert "0.600" in per_task[2] and "0.250" in per_task[2]
    assert per_task[3].split("|")[-2].strip() == ""  # mtl has no score on task b


def test_write_outputs(tmp_path):
    runs = [record(m, s, 0.1 * (k + 1) + 0.01 * s) for k, m in enumerate(["mtl", "maml"]) for s in range(2)]
    paths = write_outputs(
        tmp_path, runs, {"dataset": "toy", "encoder": "e"}, "few-shot: 5", data={"train_tasks": ["x"]}, methods=["mtl", "maml"]
    )
    csv = pd.read_csv(tmp_path / "results.csv")
    assert list(csv.columns) == ["protocol", "method", "macro_f1_mean", "macro_f1_std", "seeds"]
    assert csv["method"].tolist() == ["mtl", "maml"] and csv["seeds"].tolist() == [2, 2]
    blob = json.loads((tmp_path / "results.json").read_text())
    assert blob["config"]["dataset"] == "toy" and blob["regime"] == "few-shot: 5"
    assert blob["data"] == {"train_tasks": ["x"]} and "torch" in blob["versions"]
    assert [(r["method"], r["seed"]) for r in blob["runs"]] == [("mtl", 0), ("mtl", 1), ("maml", 0), ("maml", 1)]
    assert blob["runs"][0]["per_task"] == {"a": 0.1, "b": 0.1}
    md = (tmp_path / "results.md").read_text()
    assert "few-shot: 5" in md and "| mtl" in md
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_package_versions_and_fingerprint():
    versions = package_versions()
    assert torch.__version__.startswith(versions["torch"].split("+")[0]) and versions["learn2learn"] == "0.2.0"
    x, y = torch.randn(5, 3), torch.arange(5) % 2

    def task(x, y, name="t", classes=("a", "b")):
        return FeatureTask(name, x, y, list(classes))

    a = data_fingerprint([task(x, y)])
    assert a == data_fingerprint([task(x.clone(), y.clone())])
    x2 = x.clone()
    x2[0, 0] += 1e-3
    assert a != data_fingerprint([task(x2, y)]) and a != data_fingerprint([task(x, 1 - y)])
    assert a != data_fingerprint([task(x, y, name="u")]) and a != data_fingerprint([task(x, y, classes=("a", "c"))])


# -- paired statistics ------------------------------------------------------------------------


def scores(table):
    """Runs from ``{method: [macro-F1 per seed]}`` (None: that seed did not run)."""
    return [
        {"method": m, "seed": s, "macro_f1": f, "per_task": {"t": f}} for m, fs in table.items() for s, f in enumerate(fs) if f is not None
    ]


def test_paired_differences_on_tables_with_known_answers():
    from l2l_taskmix.benchmark.statistics import paired_differences

    runs = scores(
        {"mtl": [0.6, 0.5, 0.55], "maml": [0.50, 0.40, 0.45], "maml+taskmix": [0.51, 0.42, 0.48], "maml+metamix": [0.52, 0.42, 0.47]}
    )
    p = paired_differences(runs, ["mtl", "maml", "maml+taskmix", "maml+metamix"], margin=0).set_index(["method", "reference"])
    # differences to maml 0.01, 0.02, 0.03: mean 0.02, sd 0.01, t(0.975, 2) = 4.302653
    row = p.loc[("maml+taskmix", "maml")]
    half = 4.302653 * 0.01 / 3**0.5
    assert row.seeds == 3 and row.mean_diff == pytest.approx(0.02)
    assert (row.ci_low, row.ci_high) == (pytest.approx(0.02 - half, abs=1e-6), pytest.approx(0.02 + half, abs=1e-6))
    assert not row.resolved
    # the same shift on every seed: no spread, resolved
    row = p.loc[("maml+metamix", "maml")]
    assert row.mean_diff == pytest.approx(0.02) and row.ci_low == pytest.approx(0.02) and row.resolved
    # against mtl: 0.1 below on every seed for maml
    assert p.loc[("maml", "mtl")].mean_diff == pytest.approx(-0.1) and p.loc[("maml", "mtl")].resolved
    assert ("mtl", "mtl") not in p.index and ("maml", "maml") not in p.index


def test_a_split_effect_shared_by_all_methods_cancels_in_the_pairs():
    from l2l_taskmix.benchmark.statistics import paired_differences

    base = {"maml": [0.50, 0.51, 0.49, 0.50], "maml+taskmix": [0.52, 0.52, 0.51, 0.53]}
    shift = [0.0, 0.08, -0.06, 0.03]  # the split of each seed moves every method
    moved = {m: [f + d for f, d in zip(fs, shift)] for m, fs in base.items()}
    a = paired_differences(scores(base), references=("maml",), margin=0)
    b = paired_differences(scores(moved), references=("maml",), margin=0)
    assert a[["mean_diff", "ci_low", "ci_high"]].to_numpy() == pytest.approx(b[["mean_diff", "ci_low", "ci_high"]].to_numpy())
    assert bool(b.resolved.iloc[0])  # resolved, although the unpaired stds overlap
    assert summarize(scores(moved))["macro_f1_std"].iloc[0] > 0.03


def test_pairs_use_the_common_seeds_and_say_so_in_words(tmp_path):
    from l2l_taskmix.benchmark.report import paired_table
    from l2l_taskmix.benchmark.statistics import paired_differences

    runs = scores({"maml": [0.5, 0.4, None], "maml+taskmix": [0.6, None, 0.7]})
    p = paired_differences(runs, references=("maml",), margin=0)
    assert p.seeds.tolist() == [1] and np.isnan(p.ci_low.iloc[0]) and not p.resolved.iloc[0]
    text = paired_table(p)
    assert "No difference is resolved at 95% with 1 seed(s)" in text and "n/a" in text
    resolved = paired_table(paired_differences(scores({"maml": [0.5, 0.4, 0.45], "mtl": [0.6, 0.5, 0.55]}), references=("maml",), margin=0))
    assert "Resolved at 95%: mtl above maml (+0.100)" in resolved
    paths = write_outputs(
        tmp_path, scores({"maml": [0.5, 0.4, 0.45], "maml+taskmix": [0.52, 0.41, 0.48]}), {"dataset": "x"}, "few-shot", plot=False
    )
    md = paths["markdown"].read_text()
    assert "## Paired differences" in md and "maml+taskmix − maml" in md
    assert json.loads(paths["json"].read_text())["paired"][0]["reference"] == "maml"


# -- curves -------------------------------------------------------------------------------------


def test_curve_frame_averages_each_method_over_seeds(tmp_path):
    from l2l_taskmix.benchmark.report import curve_frame

    runs = [
        {
            "method": "maml",
            "seed": s,
            "macro_f1": 0.5,
            "per_task": {"t": 0.5},
            "curve": [{"iteration": 50, "loss": 0.4 + s / 10, "val": 0.70 - s / 100}, {"iteration": 100, "loss": 0.1, "val": 0.6}],
        }
        for s in range(3)
    ] + [{"method": "transfer", "seed": 0, "macro_f1": 0.4, "per_task": {"t": 0.4}, "curve": []}]
    c = curve_frame(runs, ["transfer", "maml"]).set_index(["method", "iteration", "metric"])
    assert c.loc[("maml", 50, "val")]["mean"] == pytest.approx(0.69) and c.loc[("maml", 50, "val")]["std"] == pytest.approx(0.01)
    assert c.loc[("maml", 50, "loss")]["mean"] == pytest.approx(0.5) and c.loc[("maml", 100, "loss")]["std"] == 0
    assert c.loc[("maml", 100, "val")]["seeds"] == 3 and "transfer" not in c.index.get_level_values("method")
    paths = write_outputs(tmp_path / "a", runs, {"dataset": "x"}, "few-shot")
    assert paths["curves"].name == "curves.png" and paths["curves"].read_bytes()[:4] == b"\x89PNG"
    # runs without validation curves (val_tasks=0, transfer only): no curves figure
    assert "curves" not in write_outputs(tmp_path / "b", [dict(r, curve=[]) for r in runs], {"dataset": "x"}, "few-shot")


def test_per_task_table_does_not_depend_on_the_records_key_order():
    """A fresh run lists its tasks in data order, a stored one (JSON, sorted keys) by name: 0.4.0's
    results.md ordered the per-task rows differently on a first run and a rerun."""
    from l2l_taskmix.benchmark.report import per_task_table

    fresh = [{"method": "maml", "seed": 0, "per_task": {"weather": 0.5, "calling": 0.25}}]
    stored = [{"method": "maml", "seed": 0, "per_task": {"calling": 0.25, "weather": 0.5}}]
    assert per_task_table(fresh) == per_task_table(stored)
    assert per_task_table(fresh).index("calling") < per_task_table(fresh).index("weather")


def test_names_with_markdown_characters_stay_one_cell_in_results_md(tmp_path):
    # a task named "billing|fr" once split its row of the per-task table into three cells
    import markdown_it

    runs = [record("maml", 0, 0.5, tasks=("billing|fr", "a`b")), record("mtl", 0, 0.25, tasks=("billing|fr", "a`b"))]
    write_outputs(
        tmp_path,
        runs,
        {"dataset": "x|y.csv", "encoder": "e"},
        "few-shot: 5",
        data={"train_tasks": ["t|1"], "test_tasks": ["billing|fr", "a`b"]},
        methods=["maml", "mtl"],
    )
    html = markdown_it.MarkdownIt("commonmark").enable("table").render((tmp_path / "results.md").read_text())
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in re.findall(r"<tr>(.*?)</tr>", html, re.S)]
    per_task = {r[0]: r[1:] for r in rows if r and r[0] in ("billing|fr", "a`b")}
    assert per_task == {"billing|fr": ["0.500", "0.250"], "a`b": ["0.500", "0.250"]}
    assert ["dataset", "x|y.csv"] in rows  # the configuration table too
    assert "<code>t|1</code>" in html and "<code>a`b</code>" in html  # the task lists' code spans
