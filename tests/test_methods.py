"""The six methods as strategies: samplers, objectives and the weights fine-tuning starts from."""

import copy

import pytest
import torch
import torch.nn.functional as F

from l2l_taskmix import BatchTaskset, RealTasks, make_model
from l2l_taskmix.benchmark.config import BenchmarkConfig
from l2l_taskmix.benchmark.methods import METHOD_NAMES, METHODS, MAMLObjective, Method, MultiTaskObjective, get_method
from l2l_taskmix.benchmark.settings import MixSettings

pytestmark = pytest.mark.usefixtures("one_thread")


def tasksets(num=4, classes=3, dim=6, seed=0, support=5):
    g = torch.Generator().manual_seed(seed)
    out = []
    for k in range(num):
        y = torch.arange(30) % classes
        out.append(BatchTaskset(torch.randn(30, dim, generator=g), y, num_support=support, num_classes=classes, generator=g, name=f"t{k}"))
    return out


def test_six_methods_in_the_papers_order():
    assert tuple(METHODS) == METHOD_NAMES == ("mtl", "transfer", "maml", "maml+metamix", "maml+taskmix", "maml+metamix+taskmix")
    assert get_method("MAML+TaskMix") is METHODS["maml+taskmix"]
    with pytest.raises(ValueError, match="unknown method 'reptile'"):
        get_method("reptile")


@pytest.mark.parametrize(
    "name, tasks_per_iteration, synthetic, mixed_points",
    [
        ("mtl", 4, 0, 0),
        ("maml", 4, 0, 0),
        ("maml+metamix", 4, 0, 5),
        ("maml+taskmix", 8, 4, 0),
        ("maml+metamix+taskmix", 8, 4, 5),
    ],
)
def test_sampler_of_each_method(name, tasks_per_iteration, synthetic, mixed_points):
    g = torch.Generator().manual_seed(1)
    sampler = get_method(name).sampler(tasksets(), mix=MixSettings(2.0, None), meta_batch_size=None, num_classes=3, generator=g)
    tasks = sampler.sample_iteration()
    assert len(tasks) == tasks_per_iteration
    assert sum(t.source is not None for t in tasks) == synthetic
    assert all(t.num_mixed == mixed_points for t in tasks)
    assert all(t.num_support == 5 for t in tasks)
    if synthetic:  # synthetic tasks mix the same iteration's real tasks (N = T)
        i, j, lam = tasks[-1].source
        assert torch.allclose(tasks[-1].x[:5], lam * tasks[i].x[:5] + (1 - lam) * tasks[j].x[:5], atol=1e-6)


def test_meta_batch_draws_distinct_tasks_reproducibly():
    ts = tasksets(num=6)
    a = RealTasks(ts, meta_batch_size=3, seed=4)
    seen = set()
    for _ in range(10):
        a.sample_iteration()
        assert len(set(a.last_index)) == 3
        seen.update(a.last_index)
    assert len(seen) == 6  # every task gets drawn
    b = RealTasks(tasksets(num=6), meta_batch_size=3, seed=4)
    c = RealTasks(tasksets(num=6), meta_batch_size=3, seed=4)
    for _ in range(3):
        assert all(torch.equal(x.x, y.x) for x, y in zip(b.sample_iteration(), c.sample_iteration()))
    assert len(RealTasks(ts, meta_batch_size=50)) == 6
    with pytest.raises(ValueError, match="meta_batch_size == 0"):
        RealTasks(ts, meta_batch_size=0)
    with pytest.raises(TypeError, match="meta_batch_size"):
        RealTasks(ts, meta_batch_size=2.5)
    # TaskMix wraps the subset sampler: T = meta_batch_size real tasks + N = T synthetic
    tasks = (
        get_method("maml+taskmix")
        .sampler(ts, mix=MixSettings(2.0, None), meta_batch_size=3, num_classes=3, generator=torch.Generator().manual_seed(0))
        .sample_iteration()
    )
    assert len(tasks) == 6 and sum(t.source is not None for t in tasks) == 3


def test_finetune_model_keeps_or_replaces_the_head():
    model = make_model(6, 5, hidden=(8,), generator=torch.Generator().manual_seed(0))
    before = copy.deepcopy(model.state_dict())
    g = torch.Generator().manual_seed(3)
    maml_copy = get_method("maml").finetune_model(model, 3, g)
    assert maml_copy is not model and maml_copy.head.out_features == 5
    assert torch.equal(maml_copy.head.weight, model.head.weight)
    for name in ("mtl", "transfer"):
        fresh = get_method(name).finetune_model(model, 3, g)
        assert fresh.head.out_features == 3
        assert torch.equal(fresh.neck[0].weight, model.neck[0].weight)  # the neck carries over
    with torch.no_grad():
        maml_copy.neck[0].weight.add_(1.0)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # original untouched


def test_new_heads_are_seeded():
    model = make_model(6, 5, hidden=(8,), generator=torch.Generator().manual_seed(0))
    a = get_method("mtl").finetune_model(model, 3, torch.Generator().manual_seed(9))
    b = get_method("mtl").finetune_model(model, 3, torch.Generator().manual_seed(9))
    c = get_method("mtl").finetune_model(model, 3, torch.Generator().manual_seed(10))
    assert torch.equal(a.head.weight, b.head.weight) and not torch.equal(a.head.weight, c.head.weight)


def test_multitask_objective_one_head_per_task():
    model = make_model(6, 5, hidden=(8,), generator=torch.Generator().manual_seed(0))
    objective = MultiTaskObjective(model, [3, 2], torch.Generator().manual_seed(1))
    assert [h.out_features for h in objective.heads] == [3, 2]
    params = {id(p) for p in objective.parameters()}
    assert id(model.head.weight) not in params and id(model.neck[0].weight) in params
    ts = tasksets(num=2, classes=3)
    ts[1] = BatchTaskset(torch.randn(30, 6), torch.arange(30) % 2, num_support=5, num_classes=3, seed=0)
    tasks = RealTasks(ts).sample_iteration()
    expected = (
        F.cross_entropy(objective.heads[0](model.neck(tasks[0].x)), tasks[0].y[:, :3])
        + F.cross_entropy(objective.heads[1](model.neck(tasks[1].x)), tasks[1].y[:, :2])
    ) / 2
    assert torch.allclose(objective.loss(tasks), expected)
    with pytest.raises(ValueError, match="3 tasks for 2 heads"):
        objective.loss(tasks + tasks[:1])


def test_maml_objective_engines_agree():
    tasks = (
        get_method("maml+taskmix")
        .sampler(tasksets(), mix=MixSettings(2.0, None), meta_batch_size=None, num_classes=3, generator=torch.Generator().manual_seed(0))
        .sample_iteration()
    )
    losses, grads = [], []
    for engine in ("l2l", "fast"):
        model = make_model(6, 3, hidden=(8,), generator=torch.Generator().manual_seed(0))
        objective = MAMLObjective(model, inner_lr=0.1, inner_steps=2, first_order=False, engine=engine)
        loss = objective.loss(tasks)
        loss.backward()
        losses.append(loss.item())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert abs(losses[0] - losses[1]) < 1e-5
    assert torch.allclose(grads[0], grads[1], atol=1e-5)
    with pytest.raises(ValueError, match="engine"):
        MAMLObjective(make_model(6, 3, hidden=(8,)), 0.1, 1, False, engine="jax")


def test_fast_engine_falls_back_to_learn2learn_for_a_model_it_cannot_adapt():
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    with pytest.warns(UserWarning, match="fast MAML engine cannot adapt"):
        objective = MAMLObjective(model, inner_lr=0.1, inner_steps=1, first_order=False, engine="fast")
    assert objective.engine == "l2l" and objective.maml is not None
    tasks = RealTasks(tasksets()).sample_iteration()
    objective.loss(tasks).backward()
    assert model[0].weight.grad is not None
    assert MAMLObjective(make_model(6, 3, hidden=(8,)), 0.1, 1, False, "fast").engine == "fast"


def test_maml_objective_handles_frozen_parameters():
    model = make_model(6, 3, hidden=(8,), generator=torch.Generator().manual_seed(0))
    model.neck[0].weight.requires_grad_(False)
    objective = MAMLObjective(model, inner_lr=0.1, inner_steps=1, first_order=False, engine="l2l")
    assert all(p.requires_grad for p in objective.parameters())
    tasks = RealTasks(tasksets()).sample_iteration()
    objective.loss(tasks).backward()
    assert model.neck[0].weight.grad is None and model.head.weight.grad is not None


def test_method_flags():
    assert not get_method("transfer").trains
    assert not get_method("mtl").keeps_head and get_method("maml").keeps_head
    assert isinstance(get_method(METHODS["maml"]), Method)
    cfg = BenchmarkConfig()
    model = make_model(6, 3, hidden=(8,))
    kwargs = dict(generator=None, maml=cfg.maml)
    objective = get_method("maml").objective(model, [3], **kwargs)
    assert isinstance(objective, MAMLObjective)
    assert (objective.inner_lr, objective.inner_steps, objective.first_order, objective.engine) == (
        cfg.inner_lr,
        cfg.inner_steps,
        cfg.first_order,
        cfg.engine,
    )
    assert isinstance(get_method("mtl").objective(model, [3, 2], **kwargs), MultiTaskObjective)


class FrozenBagOfChars(torch.nn.Module):
    """A tiny encoder with parameters of its own (as a Hugging Face encoder has)."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(26, 6)

    def encode(self, texts):
        counts = torch.zeros(len(texts), 26)
        for r, text in enumerate(texts):
            for ch in text.lower():
                if "a" <= ch <= "z":
                    counts[r, ord(ch) - 97] += 1
        return self.proj(counts)


def test_intent_classifier_takes_text_and_works_inside_learn2learn_maml():
    import learn2learn as l2l

    from l2l_taskmix.models import IntentClassifier

    torch.manual_seed(0)
    encoder = FrozenBagOfChars()
    model = IntentClassifier(6, 3, hidden=(8,), encoder=encoder)
    assert not any(p.requires_grad for p in model.encoder.parameters())
    texts, y = ["wake me up at six", "play some jazz", "will it rain"], torch.tensor([0, 1, 2])
    features = encoder.encode(texts)
    assert torch.allclose(model(texts), model(features))  # text in = features in
    maml = l2l.algorithms.MAML(model, lr=0.5, allow_nograd=True)
    learner = maml.clone()
    before = F.cross_entropy(learner(texts), y).item()
    for _ in range(5):
        learner.adapt(F.cross_entropy(learner(texts), y))
    assert F.cross_entropy(learner(texts), y).item() < before
    F.cross_entropy(learner(texts), y).backward()
    assert model.head.weight.grad is not None and encoder.proj.weight.grad is None
    with pytest.raises(ValueError, match="no encoder"):
        IntentClassifier(6, 3)(["text"])
    with pytest.raises(TypeError, match="encode"):
        IntentClassifier(6, 3, encoder=object())
