"""The whole command's progress: run costs, the estimate of the time left, the order runs
start in, the early column, featurization's progress reports."""

import re

import pytest
import torch

from l2l_taskmix.benchmark import BenchmarkConfig, BenchmarkData, run_benchmark, run_grid
from l2l_taskmix.benchmark import progress as prog
from l2l_taskmix.benchmark.grid import _start_order
from l2l_taskmix.benchmark.progress import CommandProgress, describe_seconds, run_cost
from l2l_taskmix.benchmark.run import run_method
from l2l_taskmix.benchmark.workers import InProcess
from l2l_taskmix.data import IntentTask, MetaSplit
from l2l_taskmix.features import FeatureTask, featurize_tasks

GRID = dict(
    methods=("mtl", "transfer", "maml", "maml+taskmix"),
    seeds=2,
    iterations=6,
    eval_every=3,
    batch_size=4,
    hidden=(8,),
    val_tasks=1,
    finetune_steps=3,
    inner_steps=1,
)


def feature_tasks(count, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [FeatureTask(f"t{seed}{k}", torch.randn(24, 6, generator=g), torch.arange(24) % 3, ["a", "b", "c"]) for k in range(count)]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


# -- the cost model ---------------------------------------------------------------------------


def test_run_costs_follow_the_work_each_run_does():
    cfg = BenchmarkConfig()
    cost = {(p, m): run_cost(m, p, cfg, num_train=7, num_test=4) for p in ("paper", "select") for m in cfg.methods}
    # no training: only the fine-tuning of the meta-test tasks, once per draw
    assert cost["paper", "transfer"] == pytest.approx(4 * cfg.test_draws * prog.FINETUNE)
    assert run_cost("transfer", "paper", cfg.replace(test_draws=1), num_train=7, num_test=4) == pytest.approx(4 * prog.FINETUNE)
    assert cost["paper", "transfer"] < cost["paper", "mtl"] < cost["paper", "maml"] < cost["paper", "maml+metamix"]
    assert cost["paper", "maml"] < cost["paper", "maml+taskmix"] < cost["paper", "maml+metamix+taskmix"]
    # TaskMix with N = T doubles the tasks of an iteration
    train = {m: cost["paper", m] - cost["paper", "transfer"] for m in cfg.methods}
    assert train["maml+taskmix"] == pytest.approx(2 * train["maml"])
    # model selection trains on 2 tasks fewer and checks 2 validation tasks x 3 draws 8 times
    checks = 400 // 50 * 2 * 3 * prog.FINETUNE
    assert cost["select", "maml"] == pytest.approx(cost["paper", "transfer"] + train["maml"] * 5 / 7 + checks)
    # twice the iterations: twice the training, the same fine-tuning
    longer = run_cost("maml", "paper", cfg.replace(iterations=800), num_train=7, num_test=4)
    assert longer - cost["paper", "transfer"] == pytest.approx(2 * train["maml"])


def test_the_reference_costs_are_close_to_the_runs_measured_on_the_reference_cpu():
    # per-run seconds of the default grid on the README's 2-core CPU, 1 thread each (0.9.0)
    measured = {
        ("paper", "maml"): 9.5,
        ("paper", "maml+taskmix"): 18.8,
        ("paper", "maml+metamix+taskmix"): 25.2,
        ("paper", "mtl"): 5.0,
        ("select", "maml"): 12.3,
        ("select", "maml+metamix+taskmix"): 20.7,
    }
    cfg = BenchmarkConfig()
    for (protocol, method), seconds in measured.items():
        assert 0.6 < run_cost(method, protocol, cfg, num_train=7, num_test=4) / seconds < 1.5, (protocol, method)


@pytest.mark.parametrize("seconds, text", [(0.2, "about 1 s"), (42.4, "about 42 s"), (210, "about 3.5 min"), (7200, "about 2.0 h")])
def test_describe_seconds(seconds, text):
    assert describe_seconds(seconds) == text


# -- the estimate -----------------------------------------------------------------------------


def test_the_estimate_before_during_and_after_featurization_and_runs():
    cfg = BenchmarkConfig(methods=("maml", "maml+taskmix"), seeds=1, protocols=("paper",))
    clock = Clock()
    t = CommandProgress(cfg, slots=2, progress=False, clock=clock)
    t.plan(num_train=7, num_test=4)
    costs = dict(t.costs)
    assert t.seconds_left() == pytest.approx(sum(costs.values()) / 2)  # nothing measured: the reference figures
    t.encoded(200, 1200)  # 200 texts were cached
    clock.now = 5.0
    t.encoded(700, 1200)  # 500 encoded in 5 s: 100 texts/s, slower than the reference's 140
    speed = prog.TEXTS_PER_SECOND / 100
    assert t.seconds_left() == pytest.approx(500 / 100 + sum(costs.values()) * speed / 2)
    t.encoded(1200, 1200)
    clock.now = 10.0
    job_a, job_b = ("paper", "maml", 0), ("paper", "maml+taskmix", 0)
    t.run_started(job_a)
    t.run_started(job_b)
    clock.now = 16.0
    t.run_finished(job_a, seconds=2 * costs[job_a])  # runs go at half the reference speed
    # job_b: its estimated cost at the measured speed, less the 6 s it has run already
    assert t.seconds_left() == pytest.approx((2 * costs[job_b] - 6.0) / 2)
    t.run_finished(job_b, seconds=1.0)
    assert t.seconds_left() == 0 and t.done_runs == 2
    assert t.left_text() == "about 1 s left"


def test_reused_runs_count_as_done_and_are_not_measured():
    cfg = BenchmarkConfig(methods=("maml",), seeds=2, protocols=("paper",))
    t = CommandProgress(cfg, slots=1, progress=False)
    t.plan(num_train=7, num_test=4)
    t.reused(("paper", "maml", 0))
    assert t.done_runs == 1 and t.seconds_left() == pytest.approx(t.costs["paper", "maml", 1])


def test_start_order_first_protocol_in_grid_order_later_ones_longest_first():
    cfg = BenchmarkConfig(**GRID)
    t = CommandProgress(cfg, progress=False)
    t.plan(num_train=4, num_test=2)
    order = _start_order(list(t.jobs), cfg.protocols, t.costs)
    paper = [j for j in order if j[0] == "paper"]
    select = [j for j in order if j[0] == "select"]
    assert order == paper + select and paper == [j for j in t.jobs if j[0] == "paper"]
    assert [t.costs[j] for j in select] == sorted((t.costs[j] for j in select), reverse=True)
    assert select[0][1] == "maml+taskmix" and select[-1][1] == "transfer"


# -- in the runner ----------------------------------------------------------------------------


def test_grid_logs_estimates_and_the_first_protocols_column_early_with_the_same_records(tmp_path, capsys):
    cfg = BenchmarkConfig(**GRID)
    data = BenchmarkData(feature_tasks(4), feature_tasks(2, seed=1))
    runs, new, _ = run_grid(cfg, tmp_path, data, progress=False, executor=InProcess(data, progress=False))
    err = capsys.readouterr().err
    assert new == len(runs) == 16
    lines = err.splitlines()
    column = next(k for k, line in enumerate(lines) if "all 8 runs done" in line)
    # after the last paper run, before any model-selection run
    assert [i for i, line in enumerate(lines) if line.startswith("paper ")][-1] < column
    assert column < min(i for i, line in enumerate(lines) if line.startswith("select "))
    assert "| maml+taskmix" in "\n".join(lines[column : column + 10])
    run_lines = [line for line in lines if line.startswith(("paper ", "select "))]
    assert all(re.search(r"; about \d+(\.\d)? (s|min) left\)$", line) for line in run_lines[:-1])
    assert run_lines[-1].endswith(" s)")  # nothing left to estimate after the last
    # model selection started longest first
    select = [line.split()[1] for line in lines if line.startswith("select ")]
    assert select[:2] == ["maml+taskmix", "maml+taskmix"] and select[-2:] == ["transfer", "transfer"]
    # the order changes no record: each is what run_method gives alone
    for record in (runs[5], runs[-3]):
        alone = run_method(record["method"], record["seed"], data.train, data.test, cfg, protocol=record["protocol"], progress=False)
        assert alone["macro_f1"] == record["macro_f1"] and alone["per_task"] == record["per_task"]
        assert alone["curve"] == record["curve"] and alone["best_iteration"] == record["best_iteration"]


def test_benchmark_prints_the_table_before_writing_the_plots(tmp_path, capsys, monkeypatch):
    from l2l_taskmix.benchmark import runner

    cfg = BenchmarkConfig(**{**GRID, "methods": ("maml",), "seeds": 1, "protocols": ("paper",)})
    data = BenchmarkData(feature_tasks(3), feature_tasks(1, seed=1))
    seen = []
    real = runner.write_outputs

    def spy(*args, **kwargs):
        seen.append(capsys.readouterr().out)
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "write_outputs", spy)
    run_benchmark(cfg, tmp_path, data=data, progress=False)
    assert "| maml" in seen[0] and "Paired differences" in seen[0]
    assert "Wrote" in capsys.readouterr().out


class Recording(CommandProgress):
    """A reporter that keeps what it is told instead of writing it."""

    said: list = []

    def log(self, message):
        Recording.said.append(("log", message))

    def results(self, text):
        Recording.said.append(("results", text))


def test_every_line_of_a_benchmark_and_a_sweep_goes_through_the_reporter(tmp_path, capsys, monkeypatch):
    from l2l_taskmix.benchmark import grid, runner, sweep

    for module in (runner, grid, sweep):
        monkeypatch.setattr(module, "CommandProgress", Recording)
    monkeypatch.setattr(Recording, "said", [])
    cfg = BenchmarkConfig(**{**GRID, "methods": ("maml", "mtl"), "seeds": 1})
    data = BenchmarkData(feature_tasks(3), feature_tasks(1, seed=1))
    run_benchmark(cfg, tmp_path / "b", data=data, progress=False)
    out, err = capsys.readouterr()
    assert out == err == ""  # nothing written past the reporter
    logs = [text for kind, text in Recording.said if kind == "log"]
    results = "\n".join(text for kind, text in Recording.said if kind == "results")
    assert logs[0].startswith("4 runs, 1 at a time; about ") and logs[0].endswith("(an estimate, updated as runs finish)")
    assert [line.split()[:2] for line in logs if line.startswith(("paper ", "select "))] == [
        ["paper", "maml"],
        ["paper", "mtl"],
        ["select", "maml"],
        ["select", "mtl"],
    ]
    assert any("Paper protocol (final weights), all 2 runs done (the other protocol's runs go on)" in line for line in logs)
    assert "Average Macro F1 on" in results and "Paired differences" in results and "Wrote " in results
    Recording.said.clear()
    sweep.run_sweep(
        cfg.replace(protocols=("paper",)),
        "eta",
        tmp_path / "s",
        values="0.5,2",
        method="maml+taskmix",
        references=("maml",),
        data=data,
        progress=False,
    )
    out, err = capsys.readouterr()
    assert out == err == ""
    logs = [text for kind, text in Recording.said if kind == "log"]
    assert logs[0].startswith("sweep of eta over [0.5, 2.0] (maml+taskmix; references maml;")
    assert any(line.startswith("paper  maml+taskmix") for line in logs)
    assert [kind for kind, _ in Recording.said][-1] == "results" and "Sweep of eta on" in Recording.said[-1][1]


def test_progress_bar_counts_the_whole_command(tmp_path, capsys):
    cfg = BenchmarkConfig(**{**GRID, "methods": ("maml",), "seeds": 1})
    data = BenchmarkData(feature_tasks(3), feature_tasks(1, seed=1))
    run_benchmark(cfg, tmp_path, data=data, progress=True)
    err = capsys.readouterr().err
    assert "benchmark: 100%" in err and "runs 2/2" in err and "runs 0/2" in err


# -- featurization's reports ------------------------------------------------------------------


class BatchEncoder:
    cache_key, dim = "toy-batches", 2

    def __init__(self):
        self.calls = []

    def encode(self, texts, batch_size=None, on_batch=None):
        out = torch.tensor([[len(t), 1.0] for t in texts])
        for start in range(0, len(texts), 2):
            index = list(range(start, min(start + 2, len(texts))))
            self.calls.append(len(index))
            if on_batch is not None:
                on_batch(index, out[index])
        return out


def test_featurization_reports_cached_then_each_batch(tmp_path):
    first = IntentTask("a", ["one", "two", "three", "four", "five"], ["x", "y", "x", "y", "x"])
    seen = []
    featurize_tasks([first], BatchEncoder(), cache_dir=tmp_path, on_progress=lambda done, total: seen.append((done, total)))
    assert seen == [(0, 5), (2, 5), (4, 5), (5, 5), (5, 5)]
    second = IntentTask("b", ["one", "two", "six"], ["x", "y", "x"])
    seen.clear()
    featurize_tasks([second], BatchEncoder(), cache_dir=tmp_path, on_progress=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 3), (3, 3), (3, 3)]  # two cached; one encoded
    # the cache still holds every text (the counting wrapper hands the batches on)
    seen.clear()
    enc = BatchEncoder()
    featurize_tasks([first, second], enc, cache_dir=tmp_path, on_progress=lambda done, total: seen.append((done, total)))
    assert enc.calls == [] and seen == [(6, 6)]


def test_an_encoder_without_on_batch_reports_at_the_start_and_the_end(tmp_path):
    class Plain:
        cache_key, dim = "toy-plain", 2

        def encode(self, texts, batch_size=None):
            return torch.ones(len(texts), 2)

    seen = []
    featurize_tasks(
        [IntentTask("a", ["one", "two"], ["x", "y"])],
        Plain(),
        cache_dir=tmp_path,
        on_progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(0, 2), (2, 2)]


def test_load_features_reports_the_tasks_before_encoding(tmp_path, monkeypatch):
    from l2l_taskmix.benchmark import datasets

    split = MetaSplit(
        [IntentTask("a", ["w1", "w2", "w3", "w4"], ["x", "y", "x", "y"])], [IntentTask("b", ["v1", "v2", "v3", "v4"], ["x", "y", "x", "y"])]
    )
    monkeypatch.setattr(datasets, "load_split", lambda *a, **k: split)
    events = []

    class Recording(BatchEncoder):
        def encode(self, texts, batch_size=None, on_batch=None):
            events.append("encode")
            return super().encode(texts, batch_size, on_batch)

    datasets.load_features(
        "anything",
        encoder=Recording(),
        shots=1,
        cache_dir=str(tmp_path),
        device="cpu",
        on_tasks=lambda train, test: events.append(("tasks", train, test)),
        on_progress=lambda done, total: events.append((done, total)),
    )
    assert events[0] == ("tasks", 1, 1) and events[1] == (0, 8) and events[2] == "encode" and events[-1] == (8, 8)
