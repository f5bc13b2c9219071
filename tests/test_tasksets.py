"""TaskMix / MetaMix wrappers: behaviour, provenance, determinism and bad input."""

import math

import pytest
import torch

from l2l_taskmix import BatchTaskset, MetaMix, Task, TaskMix, mixing, num_classes_of


def make_tasksets(num_tasks=4, n=40, dim=6, support=5, classes=(3, 4, 2, 5), seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for k in range(num_tasks):
        c = classes[k % len(classes)]
        x = torch.randn(n, dim, generator=g) + k
        y = torch.arange(n) % c
        out.append(BatchTaskset(x, y, num_support=support, num_classes=max(classes), generator=g, name=f"t{k}"))
    return out


def test_iteration_is_real_tasks_then_synthetic_ones():
    tm = TaskMix(make_tasksets(), seed=0)
    tasks = tm.sample_iteration()
    assert len(tasks) == 8 == len(tm)
    assert all(t.source is None for t in tasks[:4])
    assert all(t.source is not None for t in tasks[4:])
    for t in tasks:
        assert t.y.dtype == torch.float32 and t.y.shape == (10, 5)
        assert torch.allclose(t.y.sum(1), torch.ones(10))


def test_synthetic_task_is_the_mix_of_its_sources_with_one_lambda():
    tasks = TaskMix(make_tasksets(), num_synthetic=6, seed=3).sample_iteration()
    assert len(tasks) == 10
    for t in tasks[4:]:
        i, j, lam = t.source
        assert i != j and 0 <= lam <= 1
        a, b = tasks[i], tasks[j]
        assert torch.allclose(t.x, lam * a.x + (1 - lam) * b.x, atol=1e-6)
        assert torch.allclose(t.y, lam * a.y + (1 - lam) * b.y, atol=1e-6)
        # support and query parts share the same lambda
        (xs, _), (xq, _) = t.support, t.query
        assert torch.allclose(xs, lam * a.support[0] + (1 - lam) * b.support[0], atol=1e-6)
        assert torch.allclose(xq, lam * a.query[0] + (1 - lam) * b.query[0], atol=1e-6)


def test_num_synthetic_zero_reproduces_the_wrapped_tasksets_exactly():
    direct = make_tasksets(seed=7)
    wrapped = TaskMix(make_tasksets(seed=7), num_synthetic=0, seed=123)
    for _ in range(3):
        expected = [ts.sample() for ts in direct]
        got = wrapped.sample_iteration()
        assert len(got) == len(expected)
        for e, t in zip(expected, got):
            assert torch.equal(e.x, t.x) and torch.equal(e.y, t.y) and t.source is None


def test_fixed_seed_gives_identical_iterations_and_other_seed_differs():
    a = TaskMix(make_tasksets(seed=1), seed=5).sample_iteration()
    b = TaskMix(make_tasksets(seed=1), seed=5).sample_iteration()
    c = TaskMix(make_tasksets(seed=1), seed=6).sample_iteration()
    assert all(torch.equal(x.x, y.x) and x.source == y.source for x, y in zip(a, b))
    assert any(x.source != y.source for x, y in zip(a[4:], c[4:]))


def test_sample_streams_iterations_like_a_taskset():
    tm = TaskMix(make_tasksets(seed=2), seed=0)
    reference = TaskMix(make_tasksets(seed=2), seed=0).sample_iteration()
    streamed = [tm.sample() for _ in range(8)]  # one task at a time, no warning: a taskset's interface
    assert all(torch.equal(s.x, r.x) for s, r in zip(streamed, reference))
    assert [s.is_synthetic for s in streamed] == [False] * 4 + [True] * 4
    X, Y = tm.sample()  # the next iteration's first task, unpacked learn2learn-style
    assert X.shape == (10, 6) and Y.shape == (10, 5)


def test_single_taskset_uses_num_real():
    (ts,) = make_tasksets(num_tasks=1)
    tm = TaskMix(ts, num_real=3, seed=0)
    assert len(tm) == 6 and len(tm.sample_iteration()) == 6


def test_wraps_plain_xy_samplers_and_infers_classes():
    class Sampler:  # a learn2learn-like taskset: sample() -> (X, y), support first half
        def __init__(self, seed):
            self.g = torch.Generator().manual_seed(seed)

        def sample(self):
            return torch.randn(8, 3, generator=self.g), torch.randint(0, 4, (8,), generator=self.g)

    tm = TaskMix([Sampler(0), Sampler(1)], num_classes=4, seed=0)
    tasks = tm.sample_iteration()
    assert all(isinstance(t, tuple) for t in tasks[:2])  # real tasks: the samples themselves
    assert [t.num_support for t in tasks[2:]] == [None] * 2  # synthetic: split per class
    assert tasks[2].y.shape == (8, 4)
    # soft labels without num_classes: the class count of this iteration's sampled tasks
    (_, y0), (_, y1), mixed, _ = TaskMix([Sampler(0), Sampler(1)], labels="soft", seed=0).sample_iteration()
    assert mixed.y.shape[1] == max(int(y0.max()), int(y1.max())) + 1


def test_metamix_appends_mixed_query_points():
    base = MetaMix(make_tasksets(seed=4), eta=0.5, seed=0)
    tasks = base.sample_iteration()
    assert len(tasks) == 4 == len(base)
    for t in tasks:
        assert t.num_support == 5 and t.num_mixed == 5 and t.x.shape[0] == 15
        xq, yq = t.x[5:10], t.y[5:10]
        mixed_x, mixed_y = t.x[10:], t.y[10:]
        # each mixed point is on a segment between two query points of the same task
        for m, my in zip(mixed_x, mixed_y):
            found = False
            for p in range(5):
                for q in range(5):
                    d = xq[p] - xq[q]
                    lam = ((m - xq[q]) @ d) / (d @ d) if d.norm() > 0 else torch.tensor(1.0)
                    if (
                        0 <= lam <= 1
                        and torch.allclose(m, xq[q] + lam * d, atol=1e-5)
                        and torch.allclose(my, yq[q] + lam * (yq[p] - yq[q]), atol=1e-5)
                    ):
                        found = True
            assert found
        assert torch.allclose(t.y.sum(1), torch.ones(15))


def test_combined_orders_both_work():
    combined = MetaMix(TaskMix(make_tasksets(), seed=0), seed=1)
    tasks = combined.sample_iteration()
    assert len(tasks) == 8 == len(combined)
    assert all(t.num_mixed == 5 for t in tasks) and sum(t.source is not None for t in tasks) == 4
    other = TaskMix(MetaMix(make_tasksets(), seed=1), seed=0)
    tasks = other.sample_iteration()
    assert len(tasks) == 8 == len(other)
    assert all(t.x.shape == (15, 6) for t in tasks)


def test_learn2learn_taskset_is_wrapped():
    import learn2learn as l2l

    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(60, 4, generator=g), torch.arange(60) % 6)
    meta = l2l.data.MetaDataset(data)
    transforms = [l2l.data.transforms.NWays(meta, 3), l2l.data.transforms.KShots(meta, 4), l2l.data.transforms.LoadData(meta)]
    taskset = l2l.data.Taskset(meta, task_transforms=transforms, num_tasks=-1)
    with pytest.raises(ValueError, match="without RemapLabels"):  # dataset labels: which mode is not guessed
        TaskMix(taskset, num_real=4, seed=0).sample_iteration()
    tm = TaskMix(taskset, num_real=4, labels="soft", seed=0)
    tasks = tm.sample_iteration()
    assert len(tasks) == 8
    assert all(x.shape == (12, 4) for x, _ in tasks)
    # soft labels, not remapped: the width is the largest label of the sampled tasks + 1
    width = max(int(y.max()) for _, y in tasks[:4]) + 1
    assert all(t.y.shape == (12, width) for t in tasks[4:])


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize("eta", [0, -0.5, math.nan, math.inf])
def test_bad_eta(eta):
    with pytest.raises(ValueError, match="eta"):
        TaskMix(make_tasksets(), eta=eta)
    with pytest.raises(ValueError, match="eta"):
        MetaMix(make_tasksets(), eta=eta)


@pytest.mark.parametrize("n, error", [(-1, ValueError), (1.5, TypeError), (True, TypeError)])
def test_bad_num_synthetic(n, error):
    with pytest.raises(error, match="num_synthetic"):
        TaskMix(make_tasksets(), num_synthetic=n)


def test_the_removed_num_tasks_alias_is_an_error():
    """``num_tasks`` was TaskMix's old name of N (deprecated in 0.3, removed): learn2learn's
    ``num_tasks`` is the number of cached task descriptions, another thing."""
    with pytest.raises(TypeError, match="num_tasks"):
        TaskMix(make_tasksets(), num_tasks=3, seed=0)
    tm = TaskMix(make_tasksets(), num_synthetic=3, seed=0)
    assert tm.num_synthetic == 3 and len(tm.sample_iteration()) == 7
    assert not hasattr(tm, "num_tasks")


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(num_real=0), ValueError, "num_real == 0, must be >= 1"),
        (dict(num_real=2.0), TypeError, "num_real must be an instance of int"),
        (dict(tasks_per_step=0), ValueError, "tasks_per_step == 0, must be >= 1"),
        (dict(num_classes=0), ValueError, "num_classes == 0, must be >= 1"),
        (dict(num_classes="5"), TypeError, "num_classes"),
    ],
)
def test_bad_num_real_tasks_per_step_and_num_classes(kwargs, error, match):
    (ts,) = make_tasksets(num_tasks=1)
    for wrapper in (TaskMix, MetaMix):
        with pytest.raises(error, match=match):
            wrapper(ts, **kwargs)


def test_defaults_and_helpers():
    assert TaskMix(make_tasksets(), seed=0).eta == mixing.DEFAULT_ETA == MetaMix(make_tasksets(), seed=0).eta
    bt = BatchTaskset(torch.randn(30, 3), torch.arange(30) % 3, num_support=4, num_query=7, seed=0)
    assert (bt.num_support, bt.num_query, bt.num_classes) == (4, 7, 3)
    task = bt.sample()
    assert task.x.shape == (11, 3) and task.num_support == 4
    assert BatchTaskset(torch.randn(30, 3), torch.arange(30) % 3, num_support=4, seed=0).num_query == 4
    with pytest.raises(ValueError, match="num_support == 0"):
        BatchTaskset(torch.randn(30, 3), torch.arange(30) % 3, num_support=0)
    with pytest.raises(TypeError, match="num_query"):
        BatchTaskset(torch.randn(30, 3), torch.arange(30) % 3, num_query=2.5)
    assert num_classes_of(bt) == 3 and num_classes_of(task) == 3
    assert num_classes_of((torch.zeros(3, 2), torch.tensor([0, 4, 1]))) == 5
    assert num_classes_of(object()) is None


def test_fewer_than_two_tasks_to_mix():
    (ts,) = make_tasksets(num_tasks=1)
    with pytest.raises(ValueError, match="at least two tasks"):
        TaskMix([ts], seed=0).sample_iteration()
    assert len(TaskMix([ts], num_synthetic=0, seed=0).sample_iteration()) == 1


def test_feature_shapes_that_differ():
    ts = make_tasksets(num_tasks=2)
    ts.append(BatchTaskset(torch.randn(40, 7), torch.arange(40) % 3, num_support=5, num_classes=5, seed=0))
    with pytest.raises(ValueError, match="task 0 has features of width 6 and task 2 7: give every task features of one width"):
        TaskMix(ts, seed=0).sample_iteration()


def test_label_outside_num_classes():
    with pytest.raises(ValueError, match="label 4 is outside num_classes=3"):
        BatchTaskset(torch.randn(10, 2), torch.arange(10) % 5, num_classes=3)

    class Sampler:
        def sample(self):
            return torch.randn(4, 2), torch.tensor([0, 1, 2, 9])

    with pytest.raises(ValueError, match="label 9 is outside num_classes=5"):
        TaskMix([Sampler(), Sampler()], num_classes=5, seed=0).sample_iteration()


def test_nan_or_infinite_features():
    x = torch.randn(10, 2)
    x[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        BatchTaskset(x, torch.arange(10) % 2)

    class Sampler:
        def sample(self):
            return torch.tensor([[1.0], [float("inf")]]), torch.tensor([0, 1])

    with pytest.raises(ValueError, match="NaN or infinite"):
        TaskMix([Sampler(), Sampler()], num_classes=2, seed=0).sample_iteration()


def test_empty_and_one_class_tasks():
    with pytest.raises(ValueError, match="empty"):
        BatchTaskset(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="fewer than two classes"):
        BatchTaskset(torch.randn(5, 3), torch.zeros(5, dtype=torch.long))

    class Empty:
        def sample(self):
            return torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)

    with pytest.raises(ValueError, match="empty"):
        TaskMix([Empty(), Empty()], num_classes=2, seed=0).sample_iteration()


def test_not_a_taskset():
    with pytest.raises(TypeError, match="sample"):
        TaskMix([object(), object()])
    with pytest.raises(ValueError, match="no tasksets"):
        TaskMix([])


def test_generator_and_seed_are_exclusive():
    with pytest.raises(ValueError, match="either generator or seed"):
        TaskMix(make_tasksets(), generator=torch.Generator(), seed=1)


def test_global_seed_makes_default_generator_repeat():
    torch.manual_seed(11)
    a = TaskMix(make_tasksets()).sample_iteration()
    torch.manual_seed(11)
    b = TaskMix(make_tasksets()).sample_iteration()
    assert [t.source for t in a] == [t.source for t in b]


def test_task_helpers():
    t = Task(x=torch.arange(6.0).reshape(6, 1), y=mixing.one_hot(torch.tensor([0, 1] * 3), 2), num_support=2)
    assert t.support[0].shape[0] == 2 and t.query[0].shape[0] == 4
    assert not t.is_synthetic
    assert t.to(torch.float64).x.dtype == torch.float64


def test_an_unknown_class_count_asks_for_num_classes():
    class FloatLabels:  # sample() -> (x, y) with 1-D float labels: no class count can be read
        def sample(self):
            return torch.randn(8, 3), torch.zeros(8)

    with pytest.raises(ValueError, match="task 0: cannot tell its class count.*pass num_classes="):
        TaskMix([FloatLabels(), FloatLabels()], labels="soft", seed=0).sample_iteration()
    with pytest.raises(ValueError, match=r"task 0: labels='slot' needs one integer label per row.*got torch.float32"):
        TaskMix([FloatLabels(), FloatLabels()], seed=0).sample_iteration()


def test_integer_features_are_refused_not_mixed_as_integers():
    class IntFeatures:
        def sample(self):
            return torch.arange(8).reshape(4, 2), torch.tensor([0, 1, 0, 1])

    for wrapper in (TaskMix, MetaMix):
        with pytest.raises(TypeError, match="task 0: features must be floating point, got torch.int64"):
            wrapper([IntFeatures(), IntFeatures()], seed=0).sample_iteration()
    with pytest.raises(TypeError, match="floating point"):
        BatchTaskset(torch.arange(10).reshape(5, 2), torch.tensor([0, 1, 0, 1, 0]))


# -- the callable form, per-class splits -------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from l2l_taskmix import as_task, partition_task, split_per_class  # noqa: E402


def test_callable_form_mixes_a_list_of_sampled_tasks():
    tasks = [ts.sample() for ts in make_tasksets()]
    out = TaskMix(num_synthetic=3, seed=0)(tasks)
    assert out[:4] == tasks and len(out) == 7 and all(t.is_synthetic for t in out[4:])
    # the same draws as the wrapper's own iteration
    via_wrapper = TaskMix(make_tasksets(), num_synthetic=3, seed=0).sample_iteration()
    assert all(torch.equal(a.x, b.x) and a.source == b.source for a, b in zip(out, via_wrapper))
    assert [t.num_mixed for t in MetaMix(seed=0)(tasks)] == [5] * 4
    # composed: the inner wrapper first, with the same draws as the composed wrappers' iteration
    g = torch.Generator().manual_seed(1)
    combined = MetaMix(TaskMix(generator=g), generator=g)(tasks)
    g = torch.Generator().manual_seed(1)
    reference = MetaMix(TaskMix(make_tasksets(), generator=g), generator=g).sample_iteration()
    assert len(combined) == 8 and all(torch.equal(a.x, b.x) for a, b in zip(combined, reference))
    with pytest.raises(TypeError, match=r"wraps no taskset: call it on a list of sampled tasks, taskmix\(tasks\)"):
        TaskMix().sample_iteration()
    with pytest.raises(TypeError, match="no fixed length"):
        len(MetaMix())
    assert len(TaskMix(num_real=3)) == 6
    with pytest.raises(TypeError, match="non-empty list of tasks"):
        TaskMix()(tasks[0])
    with pytest.raises(TypeError, match="non-empty list of tasks"):
        MetaMix()([])


def test_a_learn2learn_style_sample_is_split_per_class_never_by_halves():
    x = torch.arange(8.0)[:, None]
    y = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])  # class by class, as KShots orders rows
    task = as_task((x, y), num_classes=3)
    assert task.num_support is None and task.y.shape == (8, 3)
    assert task.support[0].flatten().tolist() == [0.0, 2.0, 4.0, 6.0]  # halves would give 0..3: one class
    assert task.query[0].flatten().tolist() == [1.0, 3.0, 5.0, 7.0]
    mixed = MetaMix(seed=0)([(x, y)])[0]
    assert mixed.num_mixed == 4 and mixed.query[0].shape[0] == 8 and mixed.support[0].shape[0] == 4


@settings(max_examples=60, deadline=None)
@given(labels=st.lists(st.integers(0, 4), min_size=1, max_size=30), shots=st.none() | st.integers(1, 3))
def test_split_per_class_properties(labels, shots):
    classes = torch.tensor(labels)
    support, query = split_per_class(classes, shots=shots)
    assert sorted(support.tolist() + query.tolist()) == list(range(len(labels)))
    assert support.tolist() == sorted(support.tolist()) and query.tolist() == sorted(query.tolist())
    for c in set(labels):
        count = labels.count(c)
        expected = (count + 1) // 2 if shots is None else min(shots, count)
        assert int((classes[support] == c).sum()) == expected  # every class in the support part


def test_partition_task_bad_input():
    with pytest.raises(ValueError, match="shots=2 leaves none for the query part"):
        partition_task(torch.zeros(4, 1), torch.tensor([0, 0, 1, 1]), shots=2)
    with pytest.raises(ValueError, match="4 points but 3 labels"):
        partition_task(torch.zeros(4, 1), torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="shots == 0"):
        partition_task(torch.zeros(4, 1), torch.tensor([0, 0, 1, 1]), shots=0)


# -- slot labels, indexing, devices ----------------------------------------------------------------


def test_labels_mode_is_checked_and_slot_takes_no_num_classes():
    with pytest.raises(ValueError, match="labels"):
        TaskMix(labels="hard")
    with pytest.raises(ValueError, match="labels='slot' keeps integer labels"):
        TaskMix(labels="slot", num_classes=5)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_a_synthetic_task_indexes_like_a_learn2learn_task_on_the_real_tasks_device(device):
    g = torch.Generator().manual_seed(0)
    tasks = [(torch.randn(6, 3, generator=g).to(device), torch.tensor([2, 2, 0, 0, 1, 1], device=device)) for _ in range(3)]
    for labels in ("slot", "soft"):
        synthetic = TaskMix(labels=labels, seed=0)(tasks)[3:]
        for task in synthetic:
            x, y = task
            assert task[0] is x and task[1] is y and task[-1] is y and len(task) == 2 and list(task) == [x, y]
            assert x.device.type == y.device.type == device
            (xs, _), (xq, _) = task.support, task.query
            assert xs.device.type == device and xs.shape[0] == 3 == xq.shape[0]


def test_the_wrappers_modules_import_no_private_names_from_each_other():
    import ast
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "l2l_taskmix"
    for name in ("task", "samplers", "tasksets"):
        tree = ast.parse((folder / f"{name}.py").read_text())
        imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level for alias in node.names]
        assert imported and not [n for n in imported if n.startswith("_")], name
