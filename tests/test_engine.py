"""The vectorized MAML engine gives learn2learn's meta-losses and meta-gradients."""

import learn2learn as l2l
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from l2l_taskmix import BatchTaskset, MetaMix, TaskMix
from l2l_taskmix.engine import (
    STRATEGIES,
    BatchedMAML,
    UnsupportedModelError,
    check_supported,
    fast_outer_loss,
    l2l_outer_loss,
)
from l2l_taskmix.losses import soft_cross_entropy
from l2l_taskmix.models import IntentClassifier

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
# relative tolerance on the whole meta-gradient (and per parameter, loosened for float32)
TOL = {torch.float32: 1e-5, torch.float64: 1e-11}


def make_model(hidden=(6, 5), dim=12, classes=4, seed=0, dtype=torch.float64, device="cpu"):
    torch.manual_seed(seed)
    model = IntentClassifier(dim, classes, hidden=hidden).to(device=device, dtype=dtype)
    g = torch.Generator().manual_seed(seed + 1)
    for mod in model.modules():  # PReLU weights away from their default, distinct per layer
        if isinstance(mod, torch.nn.PReLU):
            mod.weight.data.copy_(0.05 + 0.4 * torch.rand(mod.weight.shape, generator=g, dtype=dtype))
    return model


def soft_labels(n, classes, g, dtype, kind):
    """One-hot labels (``plain``) or TaskMix-style mixtures of two one-hot rows (``taskmix``)."""
    a = torch.nn.functional.one_hot(torch.arange(n) % classes, classes).to(dtype)
    if kind == "plain":
        return a
    b = torch.nn.functional.one_hot(torch.randint(classes, (n,), generator=g), classes).to(dtype)
    lam = torch.distributions.Beta(2.0, 2.0).sample((1,)).to(dtype)  # one lam per task, like TaskMix
    return lam * a + (1 - lam) * b


def make_tasks(kind="plain", num_tasks=5, ns=8, nq=None, dim=12, classes=4, seed=0, dtype=torch.float64, device="cpu"):
    """``(Xs, Ys, Xq, Yq)`` tasks; ``metamix`` doubles the query part with mixed query points."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    nq = ns if nq is None else nq
    tasks = []
    for _ in range(num_tasks):
        xs = torch.randn(ns, dim, generator=g, dtype=dtype)
        xq = torch.randn(nq, dim, generator=g, dtype=dtype)
        ys = soft_labels(ns, classes, g, dtype, "taskmix" if kind == "taskmix" else "plain")
        yq = soft_labels(nq, classes, g, dtype, "taskmix" if kind == "taskmix" else "plain")
        if kind == "metamix":  # query longer than support: mixed query points appended
            perm = torch.randperm(nq, generator=g)
            lam = torch.rand(nq, 1, generator=g, dtype=dtype)
            xq = torch.cat([xq, lam * xq + (1 - lam) * xq[perm]])
            yq = torch.cat([yq, lam * yq + (1 - lam) * yq[perm]])
        tasks.append(tuple(t.to(device) for t in (xs, ys, xq, yq)))
    return tasks


def meta_grads(model, loss):
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.autograd.grad(loss, params)


def assert_same(model, fast, ref, dtype):
    tol = TOL[dtype]
    assert torch.allclose(fast, ref, rtol=tol, atol=0), (float(fast), float(ref))
    gf, gr = meta_grads(model, fast), meta_grads(model, ref)
    flat_f, flat_r = torch.cat([g.flatten() for g in gf]), torch.cat([g.flatten() for g in gr])
    rel = float((flat_f - flat_r).norm() / flat_r.norm())
    assert rel < tol, rel
    for a, b in zip(gf, gr):  # per parameter, relative to the whole gradient's scale
        assert float((a - b).abs().max()) <= 10 * tol * float(flat_r.abs().max())


def compare(model, tasks, lr=0.3, steps=3, first_order=False, strategy="auto", dtype=torch.float64):
    maml = l2l.algorithms.MAML(model, lr=lr, first_order=first_order, allow_nograd=True)
    ref = l2l_outer_loss(maml, tasks, inner_steps=steps)
    fast = fast_outer_loss(model, tasks, inner_lr=lr, inner_steps=steps, first_order=first_order, strategy=strategy)
    assert_same(model, fast, ref, dtype)
    return fast, ref


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("hidden", [(6,), (6, 5)])
@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("kind", ["plain", "taskmix", "metamix"])
@pytest.mark.parametrize("strategy", ["auto", "lowrank"])
def test_meta_gradients_equal_learn2learn(device, dtype, hidden, steps, first_order, kind, strategy):
    model = make_model(hidden, dtype=dtype, device=device)
    tasks = make_tasks(kind, dtype=dtype, device=device)
    compare(model, tasks, steps=steps, first_order=first_order, strategy=strategy, dtype=dtype)


@pytest.mark.parametrize("strategy", ["auto", "lowrank", "dense"])
@pytest.mark.parametrize("steps", [0, 5])
def test_every_strategy_and_step_count_equals_learn2learn(strategy, steps):
    model = make_model((7, 6, 5))
    compare(model, make_tasks("taskmix", ns=6, nq=9), steps=steps, strategy=strategy)


def test_second_order_differs_from_first_order():
    """The second-order comparison is not vacuous: the two meta-gradients differ."""
    model = make_model()
    tasks = make_tasks("taskmix")
    so = meta_grads(model, fast_outer_loss(model, tasks, 0.3, 3, first_order=False))
    fo = meta_grads(model, fast_outer_loss(model, tasks, 0.3, 3, first_order=True))
    assert max(float((a - b).abs().max()) for a, b in zip(so, fo)) > 1e-3


def test_zero_steps_is_the_plain_query_loss():
    model = make_model()
    tasks = make_tasks("taskmix")
    fast = fast_outer_loss(model, tasks, 0.3, 0)
    plain = sum(soft_cross_entropy(model(xq), yq) for _, _, xq, yq in tasks) / len(tasks)
    assert torch.allclose(fast, plain, rtol=1e-13)
    # and adaptation changes it (an inner step helps on the support data it was taken on)
    adapted = fast_outer_loss(model, [(xs, ys, xs, ys) for xs, ys, _, _ in tasks], 0.3, 1)
    before = fast_outer_loss(model, [(xs, ys, xs, ys) for xs, ys, _, _ in tasks], 0.3, 0)
    assert adapted.item() < before.item()


def test_tasks_of_different_shapes_are_grouped():
    model = make_model()
    tasks = make_tasks("plain", num_tasks=3, ns=5, nq=7, seed=1) + make_tasks("metamix", num_tasks=2, ns=8, seed=2)
    tasks = [tasks[0], tasks[3], tasks[1], tasks[4], tasks[2]]  # interleaved shapes
    compare(model, tasks, steps=2)


def test_frozen_parameters_are_not_adapted_as_with_allow_nograd():
    model = make_model((6, 5))
    model.neck[0].weight.requires_grad_(False)  # first layer's weight
    model.neck[3].weight.requires_grad_(False)  # second PReLU
    model.head.bias.requires_grad_(False)
    compare(model, make_tasks("taskmix"), steps=3)
    only_biases = make_model((6,), seed=3)
    for name, p in only_biases.named_parameters():
        p.requires_grad_(name.endswith("bias"))
    compare(only_biases, make_tasks("plain", seed=3), steps=2)


@pytest.mark.parametrize(
    "build",
    [
        lambda: torch.nn.Sequential(torch.nn.Linear(12, 6), torch.nn.PReLU(6), torch.nn.Linear(6, 4)),
        lambda: torch.nn.Sequential(torch.nn.Linear(12, 6), torch.nn.Linear(6, 5), torch.nn.PReLU(), torch.nn.Linear(5, 4)),
        lambda: torch.nn.Linear(12, 4),
        lambda: IntentClassifier(12, 4, hidden=()),
        lambda: torch.nn.Sequential(torch.nn.Linear(12, 6, bias=False), torch.nn.PReLU(), torch.nn.Linear(6, 4, bias=False)),
    ],
    ids=["per-channel-prelu", "linear-linear", "bare-linear", "no-neck", "no-bias"],
)
def test_other_linear_prelu_chains(build):
    torch.manual_seed(0)
    model = build().double()
    for mod in model.modules():
        if isinstance(mod, torch.nn.PReLU):
            mod.weight.data.uniform_(0.05, 0.45)
    compare(model, make_tasks("taskmix", seed=4), steps=3)
    compare(model, make_tasks("taskmix", seed=4), steps=2, first_order=True)


def test_taskmix_and_metamix_wrappers_feed_the_engine():
    """Tasks straight from the package's TaskMix(MetaMix(...)) wrappers, as the training loop sees them."""
    g = torch.Generator().manual_seed(0)
    tasksets = [
        BatchTaskset(torch.randn(40, 12, dtype=torch.float64), torch.arange(40) % 4, num_support=6, num_classes=4, generator=g)
        for _ in range(3)
    ]
    tasks = TaskMix(MetaMix(tasksets, seed=1), seed=2).sample_iteration()
    assert any(t.is_synthetic for t in tasks) and all(t.query[0].shape[0] > t.support[0].shape[0] for t in tasks)
    tasks = [t.to(torch.float64) for t in tasks]
    compare(make_model((6,)), tasks, steps=3)


@pytest.mark.parametrize("device", DEVICES)
def test_meta_training_trajectories_match(device):
    """A few outer Adam steps with either engine end at the same parameters (on every device here)."""
    finals = []
    for engine in ("l2l", "fast"):
        model = make_model((6, 5), seed=7, device=device)
        maml = l2l.algorithms.MAML(model, lr=0.3, allow_nograd=True)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for it in range(5):
            tasks = make_tasks("taskmix", seed=100 + it, device=device)
            opt.zero_grad()
            if engine == "l2l":
                loss = l2l_outer_loss(maml, tasks, 3)
            else:
                loss = fast_outer_loss(model, tasks, 0.3, 3)
            loss.backward()
            opt.step()
        finals.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    start = torch.cat([p.detach().flatten() for p in make_model((6, 5), seed=7, device=device).parameters()])
    assert torch.allclose(finals[0], finals[1], rtol=0, atol=1e-10)
    assert not torch.allclose(finals[0], start, atol=1e-4)  # it did train


def test_maml_wrapper_and_batched_maml():
    model = make_model()
    tasks = make_tasks("taskmix")
    maml = l2l.algorithms.MAML(model, lr=0.3, allow_nograd=True)
    direct = fast_outer_loss(model, tasks, 0.3, 2)
    assert torch.equal(fast_outer_loss(maml, tasks, 0.3, 2), direct)
    batched = BatchedMAML(model, lr=0.3)
    assert torch.equal(batched.outer_loss(tasks, 2), direct)
    assert torch.equal(batched(tasks[0][0]), model(tasks[0][0]))


def test_accepts_task_objects_and_casts_to_the_model_dtype():
    model = make_model()
    tasks = make_tasks("plain", dtype=torch.float32)  # float32 data, float64 model
    as64 = [tuple(t.double() for t in task) for task in tasks]
    assert torch.equal(fast_outer_loss(model, tasks, 0.3, 2), fast_outer_loss(model, as64, 0.3, 2))


@settings(max_examples=30, deadline=None, derandomize=True)
@given(
    hidden=st.lists(st.integers(1, 6), min_size=0, max_size=3),
    ns=st.integers(1, 6),
    nq=st.integers(1, 6),
    num_tasks=st.integers(1, 4),
    steps=st.integers(0, 4),
    lr=st.floats(-0.5, 1.0),
    first_order=st.booleans(),
    strategy=st.sampled_from(STRATEGIES),
    seed=st.integers(0, 1000),
)
def test_property_equal_to_learn2learn(hidden, ns, nq, num_tasks, steps, lr, first_order, strategy, seed):
    model = make_model(tuple(hidden), dim=5, classes=3, seed=seed)
    tasks = make_tasks("taskmix", num_tasks=num_tasks, ns=ns, nq=nq, dim=5, classes=3, seed=seed)
    compare(model, tasks, lr=lr, steps=steps, first_order=first_order, strategy=strategy)


# ---- what the engine cannot handle, and bad input ------------------------------------------


class Overridden(IntentClassifier):
    def forward(self, x):
        return super().forward(x) * 2


@pytest.mark.parametrize(
    "build",
    [
        lambda: torch.nn.Sequential(torch.nn.Linear(12, 6), torch.nn.Dropout(0.1), torch.nn.Linear(6, 4)),
        lambda: torch.nn.Sequential(torch.nn.Linear(12, 6), torch.nn.ReLU(), torch.nn.Linear(6, 4)),
        lambda: torch.nn.Sequential(torch.nn.PReLU(), torch.nn.Linear(12, 4)),
        lambda: torch.nn.Sequential(torch.nn.Linear(12, 6), torch.nn.PReLU(3), torch.nn.Linear(6, 4)),
        lambda: torch.nn.Conv1d(1, 1, 3),
        lambda: Overridden(12, 4, hidden=(6,)),
    ],
    ids=["dropout", "relu", "starts-with-prelu", "prelu-width", "conv", "overridden-forward"],
)
def test_unsupported_models_raise(build):
    model = build()
    with pytest.raises(UnsupportedModelError):
        check_supported(model)
    with pytest.raises(UnsupportedModelError):
        fast_outer_loss(model, make_tasks(dtype=torch.float32), 0.1, 1)
    assert issubclass(UnsupportedModelError, ValueError)


def test_hooks_are_unsupported():
    model = make_model()
    model.neck[0].register_forward_hook(lambda *args: None)
    with pytest.raises(UnsupportedModelError, match="hooks"):
        check_supported(model)


def _bad(i, fn):
    tasks = make_tasks()
    task = list(tasks[i])
    task = fn(task)
    tasks[i] = tuple(task) if isinstance(task, list) else task
    return tasks


@pytest.mark.parametrize(
    "tasks, match",
    [
        ([], "no tasks"),
        (_bad(1, lambda t: [t[0][:, :5]] + t[1:]), "width 5"),
        (_bad(1, lambda t: t[:3] + [t[3][:, :3]]), "3 columns"),
        (_bad(2, lambda t: [t[0][:0], t[1][:0]] + t[2:]), "empty support"),
        (_bad(2, lambda t: t[:2] + [t[2][:3]] + t[3:]), "rows in x"),
        (_bad(0, lambda t: [t[0].unsqueeze(0)] + t[1:]), "2-D"),
        (_bad(0, lambda t: [t[0]] + [t[1].argmax(-1)[:, None].expand(-1, 4).contiguous()] + t[2:]), "floating"),
        (_bad(3, lambda t: [t[0].clone().fill_(float("nan"))] + t[1:]), "NaN"),
        (_bad(3, lambda t: (t[0], t[1])), "expected"),
    ],
    ids=["empty", "width", "classes", "empty-support", "rows", "dims", "int-labels", "nan", "pair"],
)
def test_bad_tasks_raise(tasks, match):
    with pytest.raises(ValueError, match=match):
        fast_outer_loss(make_model(), tasks, 0.1, 1)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(inner_steps=-1), ValueError, "inner_steps == -1, must be >= 0"),
        (dict(inner_steps=1.5), TypeError, "inner_steps must be an instance of int"),
        (dict(inner_steps=True), TypeError, "inner_steps"),
        (dict(inner_lr=float("nan")), ValueError, "inner_lr == nan, must be a finite number"),
        (dict(inner_lr="0.1"), TypeError, "inner_lr"),
        (dict(strategy="fastest"), ValueError, "strategy"),
    ],
)
def test_bad_hyperparameters_raise(kwargs, error, match):
    args = dict(inner_lr=0.1, inner_steps=1) | kwargs
    with pytest.raises(error, match=match):
        fast_outer_loss(make_model(), make_tasks(), **args)


def test_check_inputs_can_be_turned_off():
    tasks = _bad(3, lambda t: [t[0].clone().fill_(float("nan"))] + t[1:])
    with pytest.raises(ValueError, match="NaN"):
        fast_outer_loss(make_model(), tasks, 0.1, 1, check_inputs=True)
    assert torch.isnan(fast_outer_loss(make_model(), tasks, 0.1, 1, check_inputs=False))  # no check, no error


def test_soft_cross_entropy_is_torchs_for_one_task_and_per_task_for_a_stack():
    import l2l_taskmix

    assert l2l_taskmix.soft_cross_entropy is soft_cross_entropy
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 4, generator=g, dtype=torch.float64)
    probs = torch.softmax(torch.randn(3, 5, 4, generator=g, dtype=torch.float64), -1)
    assert torch.equal(soft_cross_entropy(logits[0], probs[0]), torch.nn.functional.cross_entropy(logits[0], probs[0]))
    per_task = soft_cross_entropy(logits, probs)
    assert per_task.shape == (3,)
    expected = torch.stack([torch.nn.functional.cross_entropy(logits[k], probs[k]) for k in range(3)])
    assert torch.allclose(per_task, expected, rtol=1e-13)
