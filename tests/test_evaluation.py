"""Evaluation: fine-tune a copy on the support split, macro-F1 on the test split; one run."""

import copy

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from l2l_taskmix.benchmark.config import BenchmarkConfig
from l2l_taskmix.benchmark.evaluation import (
    draw_seeds,
    evaluate,
    evaluate_draws,
    evaluate_over_draws,
    finetune,
    macro_f1,
    make_splits,
    predict,
)
from l2l_taskmix.benchmark.run import choose_val_tasks, compress_history, run_method
from l2l_taskmix.benchmark.settings import FinetuneSettings
from l2l_taskmix.features import FeatureTask, Standardizer
from l2l_taskmix.models import make_model

pytestmark = pytest.mark.usefixtures("one_thread")


def family(num=5, classes=4, dim=8, n=48, seed=0, offset=0.0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g) * 2
    out = []
    for k in range(num):
        y = torch.arange(n) % classes
        x = centres[y] + 0.6 * torch.randn(n, dim, generator=g) + 0.3 * torch.randn(dim, generator=g) + offset
        out.append(FeatureTask(f"task{k}", x, y, [f"c{i}" for i in range(classes)]))
    return out


def cfg(**kw):
    base = dict(
        iterations=20,
        eval_every=10,
        batch_size=8,
        hidden=(16,),
        val_tasks=1,
        finetune_steps=30,
        finetune_lr=1e-2,
        inner_lr=0.2,
        inner_steps=1,
        outer_lr=1e-2,
        seeds=1,
    )
    base.update(kw)
    return BenchmarkConfig(**base)


def test_macro_f1_is_sklearns():
    y, p = [0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2]
    assert macro_f1(y, p) == pytest.approx(f1_score(y, p, average="macro"))
    assert macro_f1([0, 1], [0, 1]) == 1.0


def test_finetune_fits_the_support_set_and_predict_uses_the_tasks_classes():
    task = family(num=1, classes=3)[0]
    model = make_model(8, 5, hidden=(16,), generator=torch.Generator().manual_seed(0))
    finetune(model, task.x, task.y, 3, finetune_steps=100, finetune_lr=1e-2)
    pred = predict(model, task.x, 3)
    assert pred.shape == (48,) and pred.max() < 3
    assert (pred == task.y.numpy()).mean() > 0.9


def test_make_splits_few_shot_and_fraction():
    tasks = family(num=2)
    for (support, test), task in zip(make_splits(tasks, shots=3, seed=0), tasks):
        assert np.bincount(task.y[support].numpy()).tolist() == [3, 3, 3, 3]
        assert len(np.intersect1d(support, test)) == 0 and len(support) + len(test) == 48
    frac = make_splits(tasks, fraction=0.5, seed=0)
    assert len(frac[0][0]) == 24
    a, b = make_splits(tasks, shots=3, seed=1), make_splits(tasks, shots=3, seed=1)
    assert all(np.array_equal(s, t) for (s, _), (t, _) in zip(a, b))
    assert not np.array_equal(a[0][0], a[1][0])  # tasks get different draws
    with pytest.raises(ValueError, match="task0"):
        make_splits(tasks[:1], shots=20)


@pytest.mark.parametrize("method", ["mtl", "maml"])
def test_evaluate_leaves_the_model_alone_and_repeats(method):
    tasks = family(num=2)
    splits = make_splits(tasks, shots=5, seed=0)
    model = make_model(8, 4, hidden=(16,), generator=torch.Generator().manual_seed(0))
    before = copy.deepcopy(model.state_dict())
    a = evaluate(model, method, tasks, splits, finetune=FinetuneSettings(30, 1e-2), seed=0)
    b = evaluate(model, method, tasks, splits, finetune=FinetuneSettings(30, 1e-2), seed=0)
    assert a == b and list(a) == ["task0", "task1"]
    assert all(0.0 <= v <= 1.0 for v in a.values())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    with pytest.raises(ValueError, match="2 tasks but 1 splits"):
        evaluate(model, method, tasks, splits[:1], finetune=FinetuneSettings(1, 1e-2))


@pytest.mark.parametrize("method", ["mtl", "maml"])
def test_one_draw_is_todays_evaluation_number_for_number(method):
    tasks = family(num=3)
    model = make_model(8, 4, hidden=(16,), generator=torch.Generator().manual_seed(0))
    hp = dict(finetune=FinetuneSettings(finetune_steps=20, finetune_lr=1e-2))
    today = evaluate(model, method, tasks, make_splits(tasks, shots=5, seed=7), seed=7, **hp)
    per_task, per_draw = evaluate_over_draws(model, method, tasks, 7, test_draws=1, shots=5, **hp)
    assert per_task == today  # exactly: the same splits, the same heads
    assert per_draw == [float(np.mean(list(today.values())))]


@pytest.mark.parametrize("method", ["mtl", "maml"])
def test_several_draws_average_per_task_and_draw_0_is_the_seeds_own(method):
    tasks = family(num=3)
    model = make_model(8, 4, hidden=(16,), generator=torch.Generator().manual_seed(0))
    hp = dict(finetune=FinetuneSettings(finetune_steps=20, finetune_lr=1e-2))
    per_task, per_draw = evaluate_over_draws(model, method, tasks, 7, test_draws=4, shots=5, **hp)
    seeds = draw_seeds(7, 4)
    each = evaluate_draws(model, method, tasks, [(make_splits(tasks, shots=5, seed=s), s) for s in seeds], **hp)
    assert each[0] == evaluate(model, method, tasks, make_splits(tasks, shots=5, seed=7), seed=7, **hp)
    for name in per_task:  # the per-task score is the mean over the draws
        assert per_task[name] == pytest.approx(np.mean([d[name] for d in each]), abs=1e-12)
    assert per_draw == pytest.approx([np.mean(list(d.values())) for d in each], abs=1e-12)
    assert len(set(per_draw)) > 1  # the draws are different splits


def test_draw_seeds_are_their_own_stream():
    for seed in (0, 1, 9_999):
        seeds = draw_seeds(seed, 50)
        assert seeds[0] == seed and seeds == draw_seeds(seed, 60)[:50]  # more draws keep the first ones
        assert len(set(seeds)) == 50 and min(seeds[1:]) >= 2**32
        validation = {seed + 500 + r for r in range(10_000)}  # runner.validation_scorer's draws
        assert not validation & set(seeds[1:]) and not set(range(10_000)) & set(seeds[1:])
    assert not set(draw_seeds(0, 50)[1:]) & set(draw_seeds(1, 50)[1:])  # another run's further draws differ
    tasks = family(num=1)
    a, b = (make_splits(tasks, shots=5, seed=s)[0][0] for s in draw_seeds(3, 2))
    assert not np.array_equal(np.sort(a), np.sort(b))  # another support set
    with pytest.raises(ValueError, match="test_draws"):
        draw_seeds(0, 0)


def test_a_run_scores_test_draws_and_one_draw_keeps_todays_record():
    tasks = family(num=6)
    one = run_method("maml", 1, tasks[:4], tasks[4:], cfg(test_draws=1), progress=False)
    assert "draw_macro_f1" not in one
    three = run_method("maml", 1, tasks[:4], tasks[4:], cfg(test_draws=3), progress=False)
    assert len(three["draw_macro_f1"]) == 3 and three["draw_macro_f1"][0] == pytest.approx(one["macro_f1"], abs=1e-12)
    assert three["macro_f1"] == pytest.approx(np.mean(three["draw_macro_f1"]), abs=1e-12)
    assert three["curve"] == one["curve"]  # training and validation do not see the meta-test draws


def test_choose_val_tasks():
    assert choose_val_tasks(7, 0, seed=0) == []
    a = choose_val_tasks(7, 2, seed=3)
    assert a == choose_val_tasks(7, 2, seed=3) and len(set(a)) == 2 and max(a) < 7
    assert len({tuple(choose_val_tasks(7, 2, seed=s)) for s in range(10)}) > 1
    with pytest.raises(ValueError, match="leaves no meta-training task"):
        choose_val_tasks(2, 2, seed=0)


@pytest.mark.parametrize("method", ["mtl", "transfer", "maml", "maml+metamix", "maml+taskmix", "maml+metamix+taskmix"])
def test_each_method_runs_on_tiny_data_and_beats_chance(method):
    tasks = family(num=6)
    out = run_method(method, 0, tasks[:4], tasks[4:], cfg(), progress=False)
    assert out["method"] == method and out["seed"] == 0
    assert set(out["per_task"]) == {"task4", "task5"}
    assert out["macro_f1"] == pytest.approx(np.mean(list(out["per_task"].values())))
    assert out["macro_f1"] > 0.6  # 4 classes: chance is 0.25
    assert len(out["validation_tasks"]) == 1 and len(out["fit_tasks"]) == 3
    assert "val_tasks" not in out and "train_tasks" not in out  # those words mean a count and the data's tasks
    assert out["test_split_sizes"]["task4"] == [20, 28]
    if method == "transfer":
        assert out["best_iteration"] == 0 and out["curve"] == []
    else:
        assert [c["iteration"] for c in out["curve"]] == [10, 20] and "val" in out["curve"][-1]


def test_run_is_deterministic_and_methods_share_the_seeds_split():
    tasks = family(num=6)
    a = run_method("maml+taskmix", 1, tasks[:4], tasks[4:], cfg(), progress=False)
    b = run_method("maml+taskmix", 1, tasks[:4], tasks[4:], cfg(), progress=False)
    c = run_method("mtl", 1, tasks[:4], tasks[4:], cfg(), progress=False)

    def drop(r):
        return {k: v for k, v in r.items() if k not in ("seconds", "stage_seconds")}

    assert drop(a) == drop(b)
    assert a["validation_tasks"] == c["validation_tasks"] and a["test_split_sizes"] == c["test_split_sizes"]


def test_features_are_standardized_with_meta_training_statistics_only(monkeypatch):
    fitted, seen = [], []
    real_fit = Standardizer.fit

    def spy(features, *args, **kwargs):
        fitted.append(torch.cat(list(features)))
        s = real_fit(features, *args, **kwargs)
        original_call = s.__call__

        class Spy:
            def __call__(self, x):
                out = original_call(x)
                seen.append(out)
                return out

            def transform(self, task):
                return task.with_x(self(task.x))

        return Spy()

    monkeypatch.setattr(Standardizer, "fit", staticmethod(spy))
    tasks = family(num=6)
    run_method("transfer", 0, tasks[:4], tasks[4:], cfg(), progress=False)
    assert len(fitted) == 1
    assert torch.equal(fitted[0], torch.cat([t.x for t in tasks[:4]]))  # all meta-training tasks, nothing else
    train_z = torch.cat(seen[:4])
    assert torch.allclose(train_z.mean(0), torch.zeros(8), atol=1e-5)
    assert len(seen) == 6  # the meta-test tasks are transformed with the same statistics
    fitted.clear()
    run_method("transfer", 0, tasks[:4], tasks[4:], cfg(standardize=False), progress=False)
    assert fitted == []


def test_fractional_regime():
    tasks = family(num=6)
    out = run_method("transfer", 0, tasks[:4], tasks[4:], cfg(shots=None, fraction=0.25), progress=False)
    assert out["test_split_sizes"]["task4"] == [12, 36]


def test_bad_inputs():
    tasks = family(num=6)
    with pytest.raises(ValueError, match="no meta-test tasks"):
        run_method("maml", 0, tasks[:4], [], cfg(), progress=False)
    wrong = [FeatureTask("odd", torch.randn(48, 5), tasks[5].y, tasks[5].classes)]
    with pytest.raises(ValueError, match="odd"):
        run_method("transfer", 0, tasks[:4], wrong, cfg(), progress=False)


def test_compress_history():
    history = [{"iteration": i, "loss": float(i)} for i in range(1, 7)]
    history[3]["val"] = 0.5
    assert compress_history(history, 2) == [
        {"iteration": 2, "loss": 1.5},
        {"iteration": 4, "loss": 3.5, "val": 0.5},
        {"iteration": 6, "loss": 5.5},
    ]
