"""The two evaluation protocols, task subsets, and sweeps (resume after a kill, N = 0 is MAML)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from l2l_taskmix.benchmark import BenchmarkConfig, BenchmarkData
from l2l_taskmix.benchmark.datasets import save_feature_split
from l2l_taskmix.benchmark.paper import PAPER_TABLES, paper_column
from l2l_taskmix.benchmark.report import markdown_table
from l2l_taskmix.benchmark.run import choose_train_subset, run_method
from l2l_taskmix.benchmark.statistics import paired_differences, summarize
from l2l_taskmix.benchmark.sweep import num_real_tasks, run_sweep, sweep_markdown, sweep_values
from l2l_taskmix.cli import main
from l2l_taskmix.features import FeatureTask

pytestmark = pytest.mark.usefixtures("one_thread")


def tasks(n=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(3, 8, generator=g) * 2

    def task(name):
        y = torch.arange(30) % 3
        return FeatureTask(name, centres[y] + torch.randn(30, 8, generator=g), y, ["a", "b", "c"])

    return [task(f"t{k}") for k in range(n)]


def config(**changes):
    base = dict(
        iterations=6, eval_every=3, batch_size=4, hidden=(12,), val_tasks=2, finetune_steps=8, finetune_lr=1e-2, inner_steps=1, seeds=2
    )
    return BenchmarkConfig(**{**base, **changes})


# -- protocols -------------------------------------------------------------------------------


def test_paper_protocol_trains_on_every_task_and_keeps_the_final_weights():
    train, test = tasks(5), tasks(2, seed=1)
    paper = run_method("maml", 0, train, test, config(), protocol="paper", progress=False)
    select = run_method("maml", 0, train, test, config(), protocol="select", progress=False)
    assert paper["protocol"] == "paper" and select["protocol"] == "select"
    assert paper["validation_tasks"] == [] and paper["fit_tasks"] == [t.name for t in train]  # nothing held out
    assert paper["best_iteration"] == 6 and paper["val_macro_f1"] is None
    assert all("val" not in point for point in paper["curve"])
    assert len(select["validation_tasks"]) == 2 and len(select["fit_tasks"]) == 3
    assert set(select["validation_tasks"]).isdisjoint(select["fit_tasks"])
    assert [p["iteration"] for p in select["curve"] if "val" in p] == [3, 6]
    # the same meta-test splits under both: only what was trained differs
    assert paper["test_split_sizes"] == select["test_split_sizes"] and paper["curve"] != select["curve"]


def test_paper_protocol_ignores_the_validation_settings():
    train, test = tasks(4), tasks(1, seed=1)
    a = run_method("maml", 1, train, test, config(val_tasks=1, val_repeats=1), protocol="paper", progress=False)
    b = run_method("maml", 1, train, test, config(val_tasks=3, val_repeats=2), protocol="paper", progress=False)
    assert a["per_task"] == b["per_task"] and a["curve"] == b["curve"]


def test_unknown_protocol_is_refused():
    with pytest.raises(ValueError, match="protocol"):
        run_method("maml", 0, tasks(3), tasks(1), config(), protocol="final", progress=False)
    with pytest.raises(ValueError, match="protocols"):
        BenchmarkConfig(protocols=("paper", "paper"))
    with pytest.raises(ValueError, match="protocols"):
        BenchmarkConfig(protocols=("best",))
    assert BenchmarkConfig.from_sources({"protocols": "both"}).protocols == ("paper", "select")


def test_train_subset_is_the_same_for_every_method_and_leaves_meta_test_alone():
    train, test = tasks(6), tasks(2, seed=1)
    cfg = config(train_subset=3)
    a = run_method("maml", 4, train, test, cfg, protocol="paper", progress=False)
    b = run_method("mtl", 4, train, test, cfg, protocol="paper", progress=False)
    full = run_method("maml", 4, train, test, config(), protocol="paper", progress=False)
    assert len(a["fit_tasks"]) == 3 and a["fit_tasks"] == b["fit_tasks"]
    assert a["test_split_sizes"] == full["test_split_sizes"] and list(a["per_task"]) == list(full["per_task"])
    assert choose_train_subset(6, 3, seed=4) == choose_train_subset(6, 3, seed=4)
    assert len({tuple(choose_train_subset(6, 3, seed=s)) for s in range(8)}) > 1
    assert choose_train_subset(6, None, seed=0) == list(range(6))
    with pytest.raises(ValueError, match="train_subset=7"):
        choose_train_subset(6, 7, seed=0)
    # under model selection the subset is drawn from what the validation tasks leave
    with pytest.raises(ValueError, match="train_subset=5"):
        run_method("maml", 0, train, test, config(train_subset=5, val_tasks=2), protocol="select", progress=False)


# -- tables across protocols -----------------------------------------------------------------


def constructed_runs():
    """Two protocols with known per-seed scores: under paper, taskmix is maml + 0.02 on every
    seed (resolved); under select the difference flips sign from seed to seed (not resolved)."""
    maml = [0.50, 0.55, 0.45, 0.52]
    rows = []
    for s, m in enumerate(maml):
        rows += [
            {"protocol": "paper", "method": "maml", "seed": s, "macro_f1": m},
            {"protocol": "paper", "method": "maml+taskmix", "seed": s, "macro_f1": m + 0.02},
            {"protocol": "select", "method": "maml", "seed": s, "macro_f1": m},
            {"protocol": "select", "method": "maml+taskmix", "seed": s, "macro_f1": m + (0.03 if s % 2 else -0.03)},
        ]
    return rows


def test_paired_differences_stay_within_a_protocol():
    paired = paired_differences(constructed_runs(), references=("maml",), margin=0).set_index("protocol")
    assert paired.loc["paper", "mean_diff"] == pytest.approx(0.02)
    assert paired.loc["paper", "ci_low"] == pytest.approx(0.02) and bool(paired.loc["paper", "resolved"])
    assert paired.loc["select", "mean_diff"] == pytest.approx(0.0, abs=1e-12)
    # t(0.975, 3) * std([-.03, .03, -.03, .03]) / 2 = 3.182 * 0.03464 / 2
    assert paired.loc["select", "ci_high"] == pytest.approx(3.18245 * np.std([-0.03, 0.03, -0.03, 0.03], ddof=1) / 2, rel=1e-4)
    assert not bool(paired.loc["select", "resolved"])


def test_table_has_one_column_per_protocol_and_the_papers_beside():
    summary = summarize(constructed_runs(), ["maml", "maml+taskmix"])
    assert summary["protocol"].tolist() == ["paper", "paper", "select", "select"]
    text = markdown_table(summary, paper=paper_column("mtop-long"))
    header, _, maml, taskmix = text.splitlines()
    assert [c.strip() for c in header.split("|")[1:-1]] == [
        "Method",
        "Paper",
        "Average Macro F1, paper protocol (final weights)",
        "Average Macro F1, model selection",
        "Seeds",
    ]
    assert "0.442 ± 0.002" in maml and "0.505 ± 0.042" in maml  # the paper's MAML, then ours
    assert "0.462 ± 0.012" in taskmix and "0.525 ± 0.042" in taskmix


def test_paper_tables_match_the_published_figures():
    """The package's transcription of the paper's Tables 2-4 equals the published figures in
    ``tests/data/paper-tables.md`` (a verbatim copy of the workplace's shared/data/paper-tables.md,
    so the test does not depend on where the checkout sits)."""
    path = os.path.join(os.path.dirname(__file__), "data", "paper-tables.md")
    text = open(path, encoding="utf-8").read()
    names = {
        "MTL": "mtl",
        "Vanilla Transfer": "transfer",
        "MAML": "maml",
        "MAML+MetaMix": "maml+metamix",
        "MAML+TaskMix": "maml+taskmix",
        "MAML+MetaMix+TaskMix": "maml+metamix+taskmix",
    }
    for dataset, table in PAPER_TABLES.items():
        section = text.split(f"## {table['title']}")[1].split("##")[0]
        found = {}
        for line in section.splitlines():
            cells = [c.strip() for c in line.strip("|").split("|")]
            if len(cells) == 2 and cells[0] in names:
                mean, std = cells[1].split("+-")
                found[names[cells[0]]] = (float(mean), float(std))
        assert found == table["scores"], dataset


# -- sweeps ----------------------------------------------------------------------------------


def test_sweep_values():
    assert sweep_values("num_synthetic", None, real_tasks=7, num_train=7) == [0, 3, 7, 14, 28]
    assert sweep_values("num_synthetic", "0.5T,T/2,8", real_tasks=4, num_train=7) == [2, 8]
    assert sweep_values("train_subset", None, real_tasks=7, num_train=7) == [3, 5, 7]
    assert sweep_values("train_subset", None, real_tasks=8, num_train=53) == [3, 5, 7, 14, 28, 53]
    assert sweep_values("eta", None, real_tasks=7, num_train=7) == [0.25, 0.5, 1.0, 2.0, 4.0]
    with pytest.raises(ValueError, match="'x'"):
        sweep_values("eta", "1,x", real_tasks=7, num_train=7)
    with pytest.raises(ValueError, match="eta"):
        sweep_values("eta", "0,1", real_tasks=7, num_train=7)
    with pytest.raises(ValueError, match="over"):
        sweep_values("lr", None, real_tasks=7, num_train=7)
    assert num_real_tasks(config(protocols=("paper",)), 7) == 7
    assert num_real_tasks(config(protocols=("select",)), 7) == 5
    assert num_real_tasks(config(protocols=("paper",), meta_batch_size=4, train_subset=3), 7) == 3


def sweep_data():
    return BenchmarkData(tasks(4), tasks(2, seed=1))


def test_sweep_n_zero_is_maml_bitwise(tmp_path):
    cfg = config(protocols=("paper",), seeds=2)
    table = run_sweep(cfg, "num_synthetic", tmp_path, values="0,T", data=sweep_data(), progress=False, echo=False)
    runs = json.loads((tmp_path / "sweep_num_synthetic.json").read_text())["runs"]
    by = {(r["value"], r["method"], r["seed"]): r for r in runs}
    for seed in (0, 1):
        assert by[(0, "maml+taskmix", seed)]["per_task"] == by[(0, "maml", seed)]["per_task"]
    row = table[(table["value"] == 0) & (table["method"] == "maml+taskmix")].iloc[0]
    assert (row.diff_maml, row.low_maml, row.high_maml) == (0.0, 0.0, 0.0)
    # bit for bit: the whole loss curve and every score, not only the rounded table
    data = sweep_data()
    zero = run_method("maml+taskmix", 1, data.train, data.test, cfg.replace(num_synthetic=0), protocol="paper", progress=False)
    maml = run_method("maml", 1, data.train, data.test, cfg, protocol="paper", progress=False)
    assert zero["curve"] == maml["curve"] and zero["per_task"] == maml["per_task"]
    n_equals_t = run_method("maml+taskmix", 1, data.train, data.test, cfg, protocol="paper", progress=False)
    assert n_equals_t["curve"] != maml["curve"]  # while N = T trains differently
    assert (tmp_path / "sweep_num_synthetic.png").stat().st_size > 0


def test_sweep_references_follow_the_number_of_tasks(tmp_path):
    cfg = config(protocols=("paper",), seeds=2)
    table = run_sweep(cfg, "train_subset", tmp_path, values="2,all", data=sweep_data(), progress=False, echo=False)
    assert table["value"].tolist() == [2, 2, 2, 4, 4, 4] and table["method"].tolist()[:3] == ["maml+taskmix", "maml", "mtl"]
    text = sweep_markdown(table, "train_subset")
    assert "(any)" not in text and text.count("| maml ") == 2


def test_sweep_refuses_two_protocols_and_a_reference_as_method(tmp_path):
    with pytest.raises(ValueError, match="one protocol"):
        run_sweep(config(), "eta", tmp_path, data=sweep_data(), progress=False, echo=False)
    with pytest.raises(ValueError, match="reference"):
        run_sweep(config(protocols=("paper",)), "eta", tmp_path, method="maml", data=sweep_data(), progress=False, echo=False)


@pytest.mark.slow
def test_sweep_resumes_after_a_kill_with_the_same_table(tmp_path):
    """A sweep killed (SIGKILL) mid-run and started again ends with the table of an
    uninterrupted sweep; the runs finished before the kill are reused, not redone."""
    data = tmp_path / "tiny.pt"
    save_feature_split(data, tasks(4), tasks(2, seed=1))
    argv = [
        "sweep",
        "--over",
        "num_synthetic",
        "--values",
        "0,T,2T",
        "--dataset",
        str(data),
        "--iterations",
        "60",
        "--batch-size",
        "4",
        "--hidden",
        "12",
        "--finetune-steps",
        "8",
        "--inner-steps",
        "1",
        "--seeds",
        "2",
        "--no-progress",
    ]
    command = [sys.executable, "-m", "l2l_taskmix.cli", *argv]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*command, "--out", str(killed)], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(killed.glob("runs/*/*.json"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {p: p.stat().st_mtime_ns for p in killed.glob("runs/*/*.json")}
    assert 3 <= len(before) < 10 and not (killed / "sweep_num_synthetic.csv").exists()
    assert main([*argv, "--out", str(killed)]) == 0
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())  # reused, not redone
    assert main([*argv, "--out", str(tmp_path / "straight")]) == 0
    resumed = pd.read_csv(killed / "sweep_num_synthetic.csv")
    straight = pd.read_csv(tmp_path / "straight" / "sweep_num_synthetic.csv")
    pd.testing.assert_frame_equal(resumed, straight)
    assert len(list(killed.glob("runs/*/*.json"))) == 10  # 3 values x 2 seeds + maml, mtl x 2 seeds


def test_a_long_run_gives_every_shorter_horizon_bit_for_bit():
    train, test = tasks(4), tasks(2, seed=1)
    cfg = config(protocols=("paper",), iterations=9, eval_every=2)
    for method in ("maml+metamix+taskmix", "mtl", "transfer"):
        long = run_method(method, 1, train, test, cfg, protocol="paper", horizons=(4, 7), progress=False)
        for h in (4, 7):
            short = run_method(method, 1, train, test, cfg.replace(iterations=h), protocol="paper", progress=False)
            got = long["horizons"][h]
            assert got["per_task"] == short["per_task"] and got["curve"] == short["curve"], (method, h)
        assert long["per_task"] == run_method(method, 1, train, test, cfg, protocol="paper", progress=False)["per_task"]
    with pytest.raises(ValueError, match="paper protocol"):
        run_method("maml", 0, train, test, cfg, protocol="select", horizons=(3,), progress=False)


def test_iterations_sweep_stores_each_horizon_for_the_benchmark_to_reuse(tmp_path, monkeypatch):
    from l2l_taskmix.benchmark import grid, runner

    cfg = config(protocols=("paper",), seeds=2, iterations=6)
    data = sweep_data()
    table = run_sweep(cfg, "iterations", tmp_path, values="3,6", data=data, progress=False, echo=False)
    assert table["value"].tolist() == [3, 3, 3, 6, 6, 6]
    calls = []
    monkeypatch.setattr(grid, "run_method", lambda *a, **k: calls.append(a[:2]))
    summary = runner.run_benchmark(
        cfg.replace(iterations=3, methods=("maml+taskmix", "maml", "mtl")), tmp_path, data=data, progress=False, echo=False
    )
    assert calls == []  # every run of the 3-iteration benchmark came from the sweep's 6-iteration runs
    ours = table[table["value"] == 3].set_index("method")["macro_f1_mean"]
    assert summary.set_index("method")["macro_f1_mean"].to_dict() == pytest.approx(ours.to_dict(), abs=0)
    with pytest.raises(ValueError, match="--protocols paper"):
        run_sweep(config(protocols=("select",)), "iterations", tmp_path, values="3,6", data=data, progress=False, echo=False)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--over", "eta", "--values", "1,x"], "cannot read 'x' as a value of eta"),
        (["--over", "eta", "--protocols", "paper,select"], "one protocol"),
        (["--over", "iterations", "--protocols", "select"], "--protocols paper"),
        (["--over", "num_synthetic", "--method", "mtl"], "reference"),
        (["--over", "num_synthetic", "--method", "maml+nothing"], "unknown method"),
        (["--over", "train_subset", "--values", "99"], "no value of train_subset"),
    ],
)
def test_sweep_command_names_what_is_wrong(tmp_path, capsys, extra, message):
    data = tmp_path / "tiny.pt"
    save_feature_split(data, tasks(3), tasks(1, seed=1))
    argv = [
        "sweep",
        "--dataset",
        str(data),
        "--iterations",
        "2",
        "--hidden",
        "4",
        "--seeds",
        "1",
        "--no-progress",
        "--out",
        str(tmp_path / "out"),
        *extra,
    ]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not list((tmp_path / "out").glob("runs/*/*.json"))  # refused before any run


def test_seeds_to_resolve_a_difference():
    from scipy import stats

    from l2l_taskmix.benchmark.report import paired_table
    from l2l_taskmix.benchmark.statistics import seeds_to_resolve

    # t(0.975, 8) * 0.013 / 3 = 0.00999 < 0.01, while t(0.975, 7) * 0.013 / sqrt(8) = 0.0109
    assert seeds_to_resolve(0.013) == 9
    assert stats.t.ppf(0.975, 7) * 0.013 / 8**0.5 >= 0.01
    assert seeds_to_resolve(0.026) > seeds_to_resolve(0.013) > seeds_to_resolve(0.005)
    assert seeds_to_resolve(0.013, delta=0.02) < 9 and seeds_to_resolve(float("nan")) is None
    assert seeds_to_resolve(5.0, most=50) is None
    runs = [
        {"method": m, "seed": s, "macro_f1": 0.5 + (0.013 * (1 if s % 2 else -1) if m == "maml+taskmix" else 0)}
        for m in ("maml", "maml+taskmix")
        for s in range(4)
    ]
    text = paired_table(paired_differences(runs, references=("maml",), margin=0))
    std = np.std([-0.013, 0.013, -0.013, 0.013], ddof=1)
    assert f"median per-seed std of the differences to MAML is {std:.3f}" in text
    assert f"a 0.02 difference needs {seeds_to_resolve(std, delta=0.02)} seeds" in text


def test_sweep_table_pairs_each_value_with_its_references():
    from l2l_taskmix.benchmark.sweep import sweep_table

    maml = [0.50, 0.55, 0.45, 0.52]
    runs = []
    for value, lift in ((1, [0.01, -0.01, 0.02, -0.02]), (2, [0.02] * 4)):
        for s, m in enumerate(maml):
            runs += [
                {"value": value, "method": "maml+taskmix", "seed": s, "macro_f1": m + lift[s], "protocol": "paper"},
                {"value": value, "method": "maml", "seed": s, "macro_f1": m, "protocol": "paper"},
                {"value": value, "method": "mtl", "seed": s, "macro_f1": m + 0.1, "protocol": "paper"},
            ]
    table = sweep_table(runs, "maml+taskmix")
    swept = table[table["method"] == "maml+taskmix"].set_index("value")
    assert swept.loc[1, "diff_maml"] == pytest.approx(0.0) and not swept.loc[1, "resolved_maml"]
    assert swept.loc[2, "diff_maml"] == pytest.approx(0.02) and swept.loc[2, "resolved_maml"]
    assert swept.loc[2, "diff_mtl"] == pytest.approx(-0.08) and swept.loc[2, "resolved_mtl"]
    assert table[table["method"] == "maml"]["diff_maml"].isna().all()  # references carry no difference
    text = sweep_markdown(table, "eta")
    assert "Resolved against MAML at eta = 2 (above)." in text and "Resolved against MTL at eta = 1 (below), 2 (below)." in text
    assert text.count("| maml ") == 1 and "(any)" in text  # the unchanged references are listed once


def test_a_sweep_resolves_what_its_interval_excludes_with_no_rounding_margin():
    from l2l_taskmix.benchmark.statistics import ROUNDING_MARGIN
    from l2l_taskmix.benchmark.sweep import sweep_table

    assert ROUNDING_MARGIN == 0  # benchmarks/variance.py: the seed interval holds rounding
    lifts = {1: [0.004, -0.002, 0.001], 2: [0.003, 0.003, 0.003]}  # at 2 every seed the same small lift: a zero-width interval
    runs = [
        {"value": v, "method": m, "seed": s, "macro_f1": base + (lifts[v][s] if m == "maml+taskmix" else 0.0), "protocol": "paper"}
        for v in (1, 2)
        for s, base in enumerate([0.50, 0.55, 0.45])
        for m in ("maml", "maml+taskmix")
    ]
    table = sweep_table(runs, "maml+taskmix").set_index("value")
    row1, row2 = table[table["method"] == "maml+taskmix"].loc[1], table[table["method"] == "maml+taskmix"].loc[2]
    assert row1["low_maml"] < 0 < row1["high_maml"] and not row1["resolved_maml"]
    assert row2["low_maml"] == pytest.approx(0.003) and row2["resolved_maml"]  # 0.003 > 0: no margin to clear
    text = sweep_markdown(sweep_table(runs, "maml+taskmix"), "eta")
    assert "the 95% interval of the paired difference excludes 0." in text and "widened" not in text
    assert "Resolved against MAML at eta = 2 (above)." in text


def test_paired_table_has_one_column_per_protocol():
    from l2l_taskmix.benchmark.report import paired_table

    text = paired_table(paired_differences(constructed_runs(), references=("maml",), margin=0))
    header, _, row = text.splitlines()[:3]
    assert "Paper protocol (final weights): mean [95% interval]" in header and "Model selection: mean [95% interval]" in header
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "maml+taskmix − maml" and cells[1].startswith("+0.020 [+0.020, +0.020] *")
    assert cells[2].startswith("+0.000 [") and not cells[2].endswith("*")
    assert "Seeds per difference: 4." in text and "Resolved at 95%: paper: maml+taskmix above maml (+0.020)" in text
    assert "differences to MAML under the paper protocol is 0.000" in text  # +0.02 on every seed: no spread
    assert f"differences to MAML under model selection is {np.std([-0.03, 0.03, -0.03, 0.03], ddof=1):.3f}" in text


def test_a_horizon_s_stored_record_holds_its_own_per_draw_scores(tmp_path):
    """With several meta-test draws, the record a horizon is stored under (which a benchmark of
    that length reuses) holds that horizon's per-draw scores, as the run of that length does,
    not the longer run's."""
    from l2l_taskmix.benchmark.grid import run_grid

    data = BenchmarkData(tasks(4), tasks(2, seed=1))
    cfg = config(
        protocols=("paper",), iterations=30, eval_every=2, test_draws=2, methods=("maml",), seeds=1, finetune_steps=1, outer_lr=0.05
    )
    runs, _, _ = run_grid(cfg, tmp_path, data, horizons=(1,), progress=False, echo=False)
    short = run_method("maml", 0, data.train, data.test, cfg.replace(iterations=1), protocol="paper", progress=False)
    at_1 = next(r for r in runs if r["horizon"] == 1)
    assert at_1["per_task"] == short["per_task"]
    assert at_1["draw_macro_f1"] == short["draw_macro_f1"] != next(r for r in runs if r["horizon"] == 30)["draw_macro_f1"]
