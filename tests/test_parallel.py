"""Issue 12's faster paths against the sequential references they replace: batched fine-tuning
(finetune_many, evaluate(batched=True)) and grids on worker processes (LocalWorkers)."""

import copy
import json

import pytest
import torch

from l2l_taskmix.benchmark import grid, runner
from l2l_taskmix.benchmark.config import BenchmarkConfig
from l2l_taskmix.benchmark.datasets import BenchmarkData
from l2l_taskmix.benchmark.evaluation import evaluate, evaluate_draws, finetune, finetune_many, make_splits
from l2l_taskmix.benchmark.methods import get_method
from l2l_taskmix.benchmark.settings import FinetuneSettings
from l2l_taskmix.benchmark.workers import InProcess, LocalWorkers, available_cpus, make_executor
from l2l_taskmix.features import FeatureTask
from l2l_taskmix.models import make_model

pytestmark = pytest.mark.usefixtures("one_thread")

#: The batched path is the one taken on CUDA: these tests run there too where a GPU is present.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def tasks(classes=(3, 5, 2, 4), n=40, dim=8, seed=0):
    """Tasks of different sizes and class counts (so the batch pads rows and masks outputs)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for k, c in enumerate(classes):
        rows = n + 7 * k
        y = torch.arange(rows) % c
        centres = torch.randn(c, dim, generator=g) * 2
        out.append(FeatureTask(f"t{k}", centres[y] + torch.randn(rows, dim, generator=g), y, [f"c{i}" for i in range(c)]))
    return out


def weights(model):
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("head", ["shared", "new"])
def test_finetune_many_gives_each_model_its_sequential_weights(head, device):
    """Padded rows and masked outputs change nothing: every model ends where finetune() alone takes it."""
    ts = [t.to(device) for t in tasks()]
    base = make_model(8, 5, (16, 16), torch.Generator().manual_seed(1)).to(device)
    method = get_method("maml" if head == "shared" else "mtl")
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    alone = [method.finetune_model(base, t.num_classes, g1) for t in ts]
    together = [method.finetune_model(base, t.num_classes, g2) for t in ts]
    if head == "new":  # heads of 3, 5, 2, 4 outputs: widened to 5 by zero rows to stack
        from l2l_taskmix.benchmark.evaluation import _pad_head

        together = [_pad_head(m, 5) for m in together]
    xs, ys = [t.x[: 20 + 3 * k] for k, t in enumerate(ts)], [t.y[: 20 + 3 * k] for k, t in enumerate(ts)]
    for m, x, y, t in zip(alone, xs, ys, ts):
        finetune(m, x, y, t.num_classes, finetune_steps=25, finetune_lr=1e-2)
    finetune_many(together, xs, ys, [t.num_classes for t in ts], finetune_steps=25, finetune_lr=1e-2)
    for a, b, t in zip(alone, together, ts):
        wa, wb = weights(a), weights(b)
        wb[-2], wb[-1] = wb[-2][: wa[-2].shape[0]], wb[-1][: wa[-1].shape[0]]  # the head's real rows
        for p, q in zip(wa, wb):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
        if head == "new":  # the padding rows got no gradient: still exactly zero
            assert torch.count_nonzero(b.head.weight[t.num_classes :]) == 0
        assert not torch.equal(weights(a)[0], weights(base)[0])  # it did train


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", ["maml", "mtl", "transfer"])
def test_batched_evaluation_scores_equal_the_sequential_ones(method, device):
    ts = [t.to(device) for t in tasks(seed=2)]
    model = make_model(8, 5, (16,), torch.Generator().manual_seed(0)).to(device)
    splits = make_splits(ts, shots=3, seed=0)
    before = weights(model)
    seq = evaluate(model, method, ts, splits, finetune=FinetuneSettings(30, 1e-2), seed=4, batched=False)
    bat = evaluate(model, method, ts, splits, finetune=FinetuneSettings(30, 1e-2), seed=4, batched=True)
    assert list(seq) == list(bat) == [t.name for t in ts]
    assert bat == pytest.approx(seq, abs=1e-12)
    assert all(torch.equal(p, q) for p, q in zip(before, weights(model)))  # the model itself untouched


def test_evaluate_draws_is_one_evaluate_per_draw():
    ts = tasks(seed=5)
    model = make_model(8, 5, (16,), torch.Generator().manual_seed(0))
    draws = [(make_splits(ts, shots=2, seed=s), 100 + s) for s in range(3)]
    for batched in (False, True):
        together = evaluate_draws(model, "mtl", ts, draws, finetune=FinetuneSettings(20, 1e-2), batched=batched)
        one_by_one = [
            evaluate(model, "mtl", ts, splits, finetune=FinetuneSettings(20, 1e-2), seed=seed, batched=False) for splits, seed in draws
        ]
        assert (
            together == one_by_one
            if not batched
            else [d == pytest.approx(e, abs=1e-12) for d, e in zip(together, one_by_one)] == [True] * 3
        )


def test_finetune_many_rejects_mismatched_input():
    a, b = make_model(8, 3, (4,)), make_model(8, 3, (6,))
    x, y = torch.randn(4, 8), torch.arange(4) % 3
    with pytest.raises(ValueError, match="differ in shape"):
        finetune_many([a, b], [x, x], [y, y], [3, 3], finetune_steps=1, finetune_lr=1e-2)
    with pytest.raises(ValueError, match="2 models, 1 xs"):
        finetune_many([a, copy.deepcopy(a)], [x], [y, y], [3, 3], finetune_steps=1, finetune_lr=1e-2)
    with pytest.raises(FloatingPointError, match="model 1"):
        finetune_many([a, copy.deepcopy(a)], [x, x * float("nan")], [y, y], [3, 3], finetune_steps=2, finetune_lr=1e-2)


# -- grids on worker processes ------------------------------------------------------------------


def grid_data():
    train, test = tasks((3, 4, 3, 2), n=36, seed=7), tasks((3, 2), n=40, seed=8)
    test = [FeatureTask(f"z{k}", t.x, t.y, t.classes) for k, t in enumerate(test)]
    return BenchmarkData(train, test)


GRID = dict(
    methods=("mtl", "transfer", "maml", "maml+metamix+taskmix"),
    seeds=2,
    iterations=6,
    eval_every=3,
    batch_size=6,
    hidden=(16,),
    val_tasks=1,
    finetune_steps=10,
    finetune_lr=1e-2,
    shots=2,
)


def stored(out):
    records = {}
    for path in sorted(out.glob("runs/*/*.json")):
        record = json.loads(path.read_text())
        record.pop("seconds"), record.pop("stage_seconds")
        records[path.name] = record
    return records


def test_a_grid_on_two_workers_gives_the_serial_records_bit_for_bit(tmp_path):
    cfg, data = BenchmarkConfig(**GRID), grid_data()
    runner.run_benchmark(cfg, tmp_path / "serial", data=data, progress=False, echo=False, workers=1)
    runner.run_benchmark(cfg, tmp_path / "pool", data=data, progress=False, echo=False, workers=2)
    serial, pool = stored(tmp_path / "serial"), stored(tmp_path / "pool")
    assert len(serial) == 16 and serial == pool  # every score, curve and name, exactly
    assert (tmp_path / "serial" / "results.csv").read_text() == (tmp_path / "pool" / "results.csv").read_text()


def test_workers_stop_after_max_runs_and_resume(tmp_path, capsys):
    cfg, data = BenchmarkConfig(**{**GRID, "methods": ("maml", "mtl"), "protocols": ("paper",)}), grid_data()
    with LocalWorkers(data, workers=2) as pool:
        runs, new, _ = grid.run_grid(cfg, tmp_path, data, progress=False, echo=False, max_runs=3, executor=pool)
        assert new == 3 and len(stored(tmp_path)) == 3
        assert len(runs) < 4  # incomplete: the grid's runs up to the first missing one
        runs, new, _ = grid.run_grid(cfg, tmp_path, data, progress=False, echo=True, executor=pool)
    assert new == 1 and len(runs) == 4 and capsys.readouterr().err.count("reused") == 3


def test_a_failing_run_in_a_worker_raises_its_own_error(tmp_path):
    cfg, data = BenchmarkConfig(**{**GRID, "methods": ("maml",), "outer_lr": 1e30, "inner_lr": 1e30}), grid_data()
    with pytest.raises(FloatingPointError, match="training loss became"):
        runner.run_benchmark(cfg, tmp_path, data=data, progress=False, echo=False, workers=2)


def test_make_executor_picks_by_workers_and_checks_them():
    assert isinstance(make_executor(None, workers=1), InProcess)
    assert available_cpus() >= 1
    with pytest.raises(ValueError, match="workers == 0"):
        make_executor(None, workers=0)
    with pytest.raises(TypeError, match="workers"):
        make_executor(None, workers="2")


@pytest.fixture
def two_process_threads(torch_threads):
    """This process on 2 torch threads for the test, its own count restored after."""
    with torch_threads(2):
        yield


def test_threads_apply_to_the_runs_only(tmp_path, monkeypatch, two_process_threads):
    """--threads sets each run's torch threads; the process keeps its own (featurization uses
    every core: 0.4.0 featurized on one thread because the command had lowered them first)."""
    from l2l_taskmix import cli

    seen = []
    real = grid.run_method
    monkeypatch.setattr(grid, "run_method", lambda *a, **k: seen.append(torch.get_num_threads()) or real(*a, **k))
    cfg = BenchmarkConfig(**{**GRID, "methods": ("maml",), "seeds": 1, "protocols": ("paper",)})
    runner.run_benchmark(cfg, tmp_path, data=grid_data(), progress=False, echo=False, workers=1, threads=1)
    assert seen == [1] and torch.get_num_threads() == 2
    args = cli.build_parser().parse_args(["benchmark", "--threads", "1", "--out", str(tmp_path)])
    cli._prepare(args, cli.config_from_args(args))
    assert torch.get_num_threads() == 2  # the command leaves the process's threads to featurization


def test_reproduce_tables_runs_its_grids_on_the_workers(tmp_path, monkeypatch, two_process_threads, benchmark_script):
    """benchmarks/reproduce_tables.py takes the benchmark's --workers/--threads and hands them to
    each table's grid, leaving the process's threads to featurization (it used to run every
    table one run at a time, on one thread, featurization included)."""
    script = benchmark_script("reproduce_tables")
    seen = {}

    class Stop(Exception):
        pass

    def fake_run_benchmark(config, out, **kwargs):
        seen.update(kwargs, threads_now=torch.get_num_threads())
        raise Stop

    monkeypatch.setattr(script, "run_benchmark", fake_run_benchmark)
    with pytest.raises(Stop):
        script.main(["--tables", "mtop-long", "--out", str(tmp_path), "--workers", "2", "--threads", "1"])
    assert (seen["workers"], seen["threads"], seen["threads_now"]) == (2, 1, 2)
    with pytest.raises(Stop):
        script.main(["--tables", "mtop-long", "--out", str(tmp_path)])
    assert (seen["workers"], seen["threads"]) == (None, 1)  # the CLI's defaults: a run per core
    with pytest.raises(ValueError, match="--workers"):
        script.main(["--tables", "mtop-long", "--out", str(tmp_path), "--workers", "0"])
