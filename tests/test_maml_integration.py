"""TaskMix and MetaMix feeding learn2learn's MAML, as in a user's script."""

import learn2learn as l2l
import pytest
import torch
import torch.nn.functional as F

from l2l_taskmix import BatchTaskset, MetaMix, TaskMix


def make_tasksets(seed, num_tasks=4, dim=8, classes=3):
    """Tasks that share structure: class c lives around a task-specific shift of centre c."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g) * 2
    out = []
    for _ in range(num_tasks):
        y = torch.arange(60) % classes
        x = centres[y] + 0.3 * torch.randn(60, dim, generator=g) + 0.5 * torch.randn(dim, generator=g)
        out.append(BatchTaskset(x, y, num_support=6, num_classes=classes, generator=g))
    return out


def make_model(seed, dim=8, classes=3):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(dim, 16), torch.nn.PReLU(), torch.nn.Linear(16, classes))


def meta_train(taskset, iterations, seed=0, first_order=False):
    model = make_model(seed)
    maml = l2l.algorithms.MAML(model, lr=0.2, first_order=first_order)
    opt = torch.optim.Adam(maml.parameters(), lr=1e-2)
    losses = []
    for _ in range(iterations):
        opt.zero_grad()
        tasks = taskset.sample_iteration() if hasattr(taskset, "sample_iteration") else [t.sample() for t in taskset]
        total = 0.0
        for task in tasks:
            learner = maml.clone()
            (xs, ys), (xq, yq) = task.support, task.query
            learner.adapt(F.cross_entropy(learner(xs), ys))
            total = total + F.cross_entropy(learner(xq), yq)
        (total / len(tasks)).backward()
        opt.step()
        losses.append(total.item() / len(tasks))
    return model, losses


@pytest.mark.parametrize("wrapper", ["taskmix", "metamix", "both"])
def test_meta_loss_goes_down(wrapper):
    tasksets = make_tasksets(0)
    wrapped = {
        "taskmix": lambda: TaskMix(tasksets, seed=0),
        "metamix": lambda: MetaMix(tasksets, seed=0),
        "both": lambda: MetaMix(TaskMix(tasksets, seed=0), seed=1),
    }[wrapper]()
    _, losses = meta_train(wrapped, 60)
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.6 * first, (first, last)


@pytest.mark.parametrize("first_order", [False, True])
def test_num_synthetic_zero_gives_bitwise_the_same_parameters_as_plain_maml(first_order):
    plain, _ = meta_train(make_tasksets(5), 15, first_order=first_order)
    wrapped, _ = meta_train(TaskMix(make_tasksets(5), num_synthetic=0, seed=99), 15, first_order=first_order)
    for p, q in zip(plain.parameters(), wrapped.parameters()):
        assert torch.equal(p, q)
    # and the comparison is not vacuous: TaskMix with synthetic tasks trains differently
    mixed, _ = meta_train(TaskMix(make_tasksets(5), seed=99), 15, first_order=first_order)
    assert any(not torch.equal(p, q) for p, q in zip(plain.parameters(), mixed.parameters()))
