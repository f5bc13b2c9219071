"""The one training loop: every method, determinism, model selection, errors."""

import copy

import pytest
import torch

from l2l_taskmix.benchmark.config import BenchmarkConfig
from l2l_taskmix.benchmark.evaluation import evaluate, make_splits
from l2l_taskmix.benchmark.methods import Method
from l2l_taskmix.benchmark.run import validation_scorer
from l2l_taskmix.benchmark.settings import MixSettings
from l2l_taskmix.benchmark.training import train
from l2l_taskmix.features import FeatureTask, Standardizer
from l2l_taskmix.models import make_model, reset_parameters

pytestmark = pytest.mark.usefixtures("one_thread")


TRAINED = ["mtl", "maml", "maml+metamix", "maml+taskmix", "maml+metamix+taskmix"]


def family(num=4, classes=3, dim=8, n=60, seed=0):
    """Related tasks: class c lives near a shared centre c plus a task shift."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g) * 2
    out = []
    for _ in range(num):
        y = torch.arange(n) % classes
        x = centres[y] + 0.5 * torch.randn(n, dim, generator=g) + 0.5 * torch.randn(dim, generator=g)
        out.append(FeatureTask(f"t{len(out)}", x, y, [str(c) for c in range(classes)]))
    return out


def cfg(**kw):
    base = dict(iterations=40, batch_size=8, hidden=(16,), val_tasks=0, outer_lr=1e-2, inner_lr=0.2, inner_steps=1)
    base.update(kw)
    return BenchmarkConfig(**base)


def run(model, method, tasks, config, seed=0, **kw):
    """train() with the config's settings, as a benchmark run calls it."""
    return train(model, method, tasks, seed=seed, progress=False, loop=config.loop, maml=config.maml, mix=config.mix, **kw)


def fresh(seed=0, classes=3):
    return make_model(8, classes, hidden=(16,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("method", TRAINED)
def test_every_method_learns(method):
    result = run(fresh(), method, family(), cfg(), seed=0)
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 40
    assert sum(losses[-8:]) / 8 < 0.7 * sum(losses[:8]) / 8, (losses[:8], losses[-8:])
    assert result.best_iteration == 40


def test_transfer_does_not_train():
    model = fresh()
    before = copy.deepcopy(model.state_dict())
    result = run(model, "transfer", family(), cfg(), seed=0)
    assert result.history == [] and result.model is model
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize("method", ["mtl", "maml+metamix+taskmix"])
def test_same_seed_same_weights(method):
    runs = [run(fresh(), method, family(), cfg(iterations=10), seed=s).model for s in (3, 3, 4)]
    same = [torch.equal(p, q) for p, q in zip(runs[0].parameters(), runs[1].parameters())]
    other = [torch.equal(p, q) for p, q in zip(runs[0].parameters(), runs[2].parameters())]
    assert all(same) and not all(other)


def test_reset_parameters_uses_only_the_generator():
    state = torch.random.get_rng_state()
    a = make_model(8, 3, hidden=(16, 4), generator=torch.Generator().manual_seed(5))
    b = make_model(8, 3, hidden=(16, 4), generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG was not drawn from...
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    bound = 1 / 8**0.5
    assert a.neck[0].weight.abs().max() <= bound and a.neck[1].weight.item() == 0.25
    reset_parameters(b, torch.Generator().manual_seed(6))
    assert not torch.equal(a.head.weight, b.head.weight)


def test_model_selection_keeps_the_best_checkpoint():
    snapshots, calls = [], []

    def score(model):
        snapshots.append(copy.deepcopy(model.state_dict()))
        score = [0.3, 0.9, 0.5, 0.2][len(calls)]  # best at the second check
        calls.append(score)
        return score

    model = fresh()
    result = run(model, "maml", family(), cfg(iterations=40, eval_every=10), seed=0, score=score)
    assert len(calls) == 4  # iterations 10, 20, 30, 40
    assert result.best_iteration == 20 and result.best_score == 0.9
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in snapshots[1].items())
    assert [h.get("val") for h in result.history if "val" in h] == [0.3, 0.9, 0.5, 0.2]


def test_selection_never_keeps_the_untrained_weights_and_ties_keep_the_earliest():
    model = fresh()
    before = copy.deepcopy(model.state_dict())
    seen = []
    result = run(
        model, "mtl", family(), cfg(iterations=7, eval_every=3), seed=0, score=lambda m: seen.append(copy.deepcopy(m.state_dict())) or 0.0
    )
    assert [h["iteration"] for h in result.history if "val" in h] == [3, 6, 7]  # and the last one
    assert result.best_iteration == 3
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in seen[0].items())
    assert not all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_a_nan_loss_stops_training_with_a_clear_error():
    class NaNObjective:
        def __init__(self, model):
            self.model = model

        def parameters(self):
            return list(self.model.parameters())

        def loss(self, tasks):
            return self.model(tasks[0].x).sum() * float("nan")

    class Broken(Method):
        def objective(self, model, task_classes, **values):
            return NaNObjective(model)

    with pytest.raises(FloatingPointError, match="iteration 1"):
        run(fresh(), Broken("broken"), family(), cfg(), seed=0)


def test_bad_inputs():
    with pytest.raises(ValueError, match="at least two meta-training tasks"):
        run(fresh(), "maml+taskmix", family(num=1), cfg())
    with pytest.raises(ValueError, match="at least one"):
        run(fresh(), "maml", [], cfg())
    with pytest.raises(ValueError, match="only 2 outputs"):
        run(fresh(classes=2), "maml", family(classes=3), cfg())
    task = family(num=1)[0]
    with pytest.raises(ValueError, match="fewer than two classes"):
        run(fresh(), "maml", [FeatureTask("one-class", task.x, torch.zeros_like(task.y), task.classes)], cfg())


def test_fast_engine_trains_like_l2l():
    a = run(fresh(), "maml+taskmix", family(), cfg(iterations=5, engine="l2l"), seed=0).model
    b = run(fresh(), "maml+taskmix", family(), cfg(iterations=5, engine="fast"), seed=0).model
    assert all(torch.allclose(p, q, atol=1e-4) for p, q in zip(a.parameters(), b.parameters()))


def test_standardizer():
    x = torch.randn(50, 4) * torch.tensor([1.0, 10.0, 0.1, 3.0]) + 7
    s = Standardizer.fit([x[:20], x[20:]])
    z = s(x)
    assert torch.allclose(z.mean(0), torch.zeros(4), atol=1e-5) and torch.allclose(z.std(0), torch.ones(4), atol=1e-5)
    constant = Standardizer.fit([torch.ones(3, 2)])
    assert torch.isfinite(constant(torch.ones(1, 2))).all()
    with pytest.raises(ValueError, match="NaN"):
        Standardizer.fit([torch.tensor([[float("nan"), 1.0], [0.0, 1.0]])])
    with pytest.raises(ValueError, match="at least one"):
        Standardizer.fit([])


class Spy(Method):
    """MAML that records what the loop hands its sampler and objective."""

    def sampler(self, tasksets, **kwargs):
        SEEN["sampler"] = kwargs
        return super().sampler(tasksets, **kwargs)

    def objective(self, model, task_classes, **kwargs):
        SEEN["objective"] = kwargs
        return super().objective(model, task_classes, **kwargs)


SEEN: dict = {}


def test_the_loop_hands_the_typed_settings_on_to_the_sampler_and_the_objective():
    config = cfg(iterations=2, eta=0.5, num_synthetic=2, meta_batch_size=3, inner_steps=2)
    run(fresh(), Spy("spy", taskmix=True), family(), config)
    assert SEEN["sampler"]["mix"] == config.mix == MixSettings(eta=0.5, num_synthetic=2)
    assert SEEN["sampler"]["meta_batch_size"] == 3
    assert SEEN["objective"]["maml"] == config.maml and SEEN["objective"]["maml"].inner_steps == 2


def wrong_settings_cases():
    config = BenchmarkConfig()
    tasks = family(num=2)
    model = fresh()
    split = make_splits(tasks[:1], shots=2)
    good = dict(loop=config.loop, maml=config.maml, mix=config.mix)
    method = Method("maml")
    return [
        ("loop", lambda: train(model, "maml", tasks, seed=0, **{**good, "loop": {"iterations": 2}})),
        ("maml", lambda: train(model, "maml", tasks, seed=0, **{**good, "maml": config.mix})),
        ("mix", lambda: train(model, "maml", tasks, seed=0, **{**good, "mix": None})),
        ("finetune", lambda: evaluate(model, "maml", tasks[:1], split, finetune={"finetune_steps": 1, "finetune_lr": 0.1})),
        ("mix", lambda: method.sampler([], mix=(1.0, None), meta_batch_size=None, num_classes=3, generator=None)),
        ("maml", lambda: method.objective(model, [3], maml=dict(inner_lr=0.1), generator=None)),
        ("validation", lambda: validation_scorer(method, tasks, seed=0, validation=config, finetune=config.finetune)),
    ]


@pytest.mark.parametrize("case", range(7))
def test_settings_of_the_wrong_type_are_refused_naming_the_parameter(case):
    name, call = wrong_settings_cases()[case]
    with pytest.raises(TypeError, match=rf"^{name} must be a \w+Settings \(e\.g\. BenchmarkConfig\(\)\.{name}\), not \w+"):
        call()
