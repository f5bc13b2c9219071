"""The contract with learn2learn's data layer: what TaskMix and MetaMix do to ``Taskset`` samples.

learn2learn's own example scripts are run in ``test_learn2learn_examples.py``; these tests pin
the pieces on a small ``Taskset`` made by ``NWays``/``KShots``/``LoadData``/``RemapLabels``:
real tasks untouched, slot-labelled synthetic tasks, the stream of ``sample()`` calls, task
caching, MetaMix's points in the query part, ``DataLoader``, and the refusals that name a fix.
"""

import collections
import copy as copy_module
import functools
import pickle

import learn2learn as l2l
import numpy as np
import pytest
import torch

from l2l_taskmix import BatchTaskset, MetaMix, Task, TaskMix, accuracy, mixing, partition_task, split_per_class

WAYS, SHOTS = 5, 1


def make_taskset(ways=WAYS, shots=SHOTS, num_tasks=-1, num_classes=20, per_class=20, dim=16, seed=0, remap=True):
    g = torch.Generator().manual_seed(seed)
    centres = 2 * torch.randn(num_classes, dim, generator=g)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    data = centres[labels] + torch.randn(len(labels), dim, generator=g)
    dataset = l2l.data.MetaDataset(torch.utils.data.TensorDataset(data, labels))
    transforms = [
        l2l.data.transforms.NWays(dataset, ways),
        l2l.data.transforms.KShots(dataset, 2 * shots),
        l2l.data.transforms.LoadData(dataset),
    ]
    if remap:
        transforms += [l2l.data.transforms.RemapLabels(dataset), l2l.data.transforms.ConsecutiveLabels(dataset)]
    return l2l.data.Taskset(dataset, task_transforms=transforms, num_tasks=num_tasks)


class Recorder:
    """A taskset that remembers every task it returned (learn2learn's Taskset is a C type)."""

    def __init__(self, taskset):
        self.taskset, self.samples = taskset, []

    def sample(self):
        self.samples.append(self.taskset.sample())
        return self.samples[-1]


def even_odd(n):
    """learn2learn's example split: support rows at even positions among the first 2 * shots * ways."""
    support = np.zeros(n, dtype=bool)
    support[np.arange(SHOTS * WAYS) * 2] = True
    return torch.from_numpy(support)


def test_a_step_of_sample_calls_is_T_real_tasks_untouched_then_N_slot_labelled_ones():
    recorder = Recorder(make_taskset())
    taskmix = TaskMix(recorder, tasks_per_step=8, seed=0)
    assert (len(taskmix), taskmix.num_real, taskmix.num_synthetic) == (8, 4, 4)
    for step in range(3):
        tasks = [taskmix.sample() for _ in range(8)]
        real, synthetic = tasks[:4], tasks[4:]
        assert all(t is s for t, s in zip(real, recorder.samples[4 * step :]))  # the very objects
        assert len(recorder.samples) == 4 * (step + 1)
        for task in synthetic:
            x, y = task
            i, j, lam = task.source
            assert torch.allclose(x, lam * real[i][0] + (1 - lam) * real[j][0], atol=1e-6)
            assert y.dtype == torch.int64 and torch.equal(y, real[i][1])
            assert torch.equal(mixing.class_layout(real[i][1]), mixing.class_layout(real[j][1]))
            # learn2learn's even/odd split gives every class to the support part
            assert set(y[even_odd(x.shape[0])].tolist()) == set(y.tolist()) == set(range(WAYS))
            assert l2l.utils.accuracy(torch.eye(WAYS)[y], y) == 1  # learn2learn's accuracy takes them


def test_real_tasks_are_sampled_when_served_so_num_synthetic_zero_is_the_plain_stream():
    torch.manual_seed(0)
    plain = make_taskset(seed=3)
    mixed = TaskMix(make_taskset(seed=3), tasks_per_step=4, num_synthetic=0)
    import random

    random.seed(1)
    a = [plain.sample() for _ in range(6)]
    random.seed(1)
    b = [mixed.sample() for _ in range(6)]
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))
    assert len(TaskMix(make_taskset(), num_real=2, num_synthetic=0).sample_iteration()) == 2
    served = TaskMix(make_taskset(), num_real=2, num_synthetic=0)
    served.sample(), served.sample()
    assert served.at_boundary and len(served.sample_iteration()) == 2
    # the wrapper drew nothing from torch's global stream
    state = torch.get_rng_state()
    TaskMix(make_taskset(), num_synthetic=0, num_real=3).sample()
    assert torch.equal(state, torch.get_rng_state())


def test_with_learn2learn_task_caching():
    recorder = Recorder(make_taskset(num_tasks=20000))
    taskmix = TaskMix(recorder, num_real=3, seed=0)
    tasks = taskmix.sample_iteration()
    assert len(tasks) == 6 and all(t is s for t, s in zip(tasks[:3], recorder.samples))


def test_with_metamix_the_mixed_points_land_in_the_query_part():
    recorder = Recorder(make_taskset())
    combined = MetaMix(TaskMix(recorder, num_real=2, seed=0), seed=1)
    n = 2 * SHOTS * WAYS
    tasks = [combined.sample() for _ in range(len(combined))]
    assert len(tasks) == 4
    for k, task in enumerate(tasks):
        x, y = task
        assert task.num_mixed == SHOTS * WAYS and x.shape[0] == n + SHOTS * WAYS and y.shape == (x.shape[0], WAYS)
        if k < 2:
            assert torch.equal(x[:n], recorder.samples[k][0])
        support = even_odd(x.shape[0])
        assert not support[n:].any()  # the MixUp points are evaluation rows for fast_adapt
        package_support, package_query = task.split()
        assert torch.equal(package_support, torch.nonzero(support).flatten())
        assert torch.equal(package_query, torch.nonzero(~support).flatten())


def test_the_callable_form_on_tasks_sampled_by_the_loop():
    taskset = make_taskset()
    batches = [taskset.sample() for _ in range(4)]
    tasks = TaskMix(num_synthetic=2, seed=0)(batches)
    assert len(tasks) == 6 and all(a is b for a, b in zip(tasks, batches))
    assert all(t.y.dtype == torch.int64 and t.y.shape == (2 * SHOTS * WAYS,) for t in tasks[4:])
    soft = TaskMix(num_synthetic=2, labels="soft", seed=0)(batches)
    assert all(t.y.shape == (2 * SHOTS * WAYS, WAYS) for t in soft[4:])
    tasks = MetaMix(seed=0)(batches)
    assert len(tasks) == 4 and all(t.num_mixed == SHOTS * WAYS for t in tasks)


def test_a_dataloader_over_taskmix_collates_real_and_synthetic_tasks_alike():
    loader = torch.utils.data.DataLoader(TaskMix(make_taskset(), num_real=2, seed=0), shuffle=True)
    batches = [next(iter(loader)) for _ in range(4)]
    for x, y in batches:
        assert x.shape == (1, 2 * SHOTS * WAYS, 16) and y.shape == (1, 2 * SHOTS * WAYS) and y.dtype == torch.int64


def test_dataloader_workers_are_refused_they_would_repeat_synthetic_tasks():
    loader = torch.utils.data.DataLoader(TaskMix(make_taskset(), num_real=2, seed=0), num_workers=1)
    with pytest.raises(RuntimeError, match="num_workers=0"):
        next(iter(loader))


# -- refusals that name the fix -------------------------------------------------------------------


def test_a_benchmark_tasksets_namedtuple_is_refused():
    BenchmarkTasksets = collections.namedtuple("BenchmarkTasksets", ("train", "validation", "test"))
    tasksets = BenchmarkTasksets(make_taskset(), make_taskset(seed=1), make_taskset(seed=2))
    for wrapper in (TaskMix, MetaMix, functools.partial(TaskMix, tasks_per_step=4)):
        with pytest.raises(TypeError, match=r"validation, test tasks into training.*tasksets._replace\(train="):
            wrapper(tasksets)
    with pytest.raises(TypeError, match="BenchmarkTasksets"):
        TaskMix([tasksets.train, tasksets])
    assert len(TaskMix(tasksets.train, num_real=2)) == 4  # what the message says works


def test_tasksets_of_another_class_layout_are_refused_even_with_equal_row_counts():
    three_by_ten = make_taskset(ways=3, shots=5)  # 30 rows
    five_by_six = make_taskset(ways=5, shots=3)  # 30 rows
    with pytest.raises(ValueError, match=r"same class slot.*3 classes x 10 rows.*5 classes x 6 rows.*same ways and shots.*labels='soft'"):
        TaskMix([three_by_ten, five_by_six], seed=0).sample_iteration()
    x, y = make_taskset().sample()
    shuffled = torch.randperm(x.shape[0])
    with pytest.raises(ValueError, match="rows not grouped by class"):
        TaskMix(seed=0)([(x, y), (x[shuffled], y[shuffled])])


def test_labels_that_are_not_remapped_ask_for_a_mode():
    taskset = make_taskset(remap=False)
    with pytest.raises(ValueError, match=r"not 0..4: without RemapLabels.*labels='soft'.*labels='slot'"):
        TaskMix(taskset, num_real=2, seed=0).sample_iteration()
    tasks = TaskMix(taskset, num_real=2, labels="slot", seed=0).sample_iteration()
    assert torch.equal(tasks[2].y, tasks[tasks[2].source[0]][1])
    tasks = TaskMix(taskset, num_real=2, num_classes=20, seed=0).sample_iteration()  # a shared space
    assert tasks[2].y.shape == (10, 20)


def test_raw_text_tasks_are_refused_with_the_featurize_hint():
    texts = [(("set an alarm", "play jazz", "call mum", "weather"), torch.tensor([0, 1, 2, 0]))] * 2
    for wrapper in (TaskMix(seed=0), MetaMix(seed=0)):
        with pytest.raises(
            TypeError, match=r"task 0: its data are a tuple of str, not a tensor.*featurize first.*l2l_taskmix.features.*after your encoder"
        ):
            wrapper(texts)
    tokens = [(torch.randint(0, 100, (4, 7)), torch.tensor([0, 1, 2, 0]))] * 2
    with pytest.raises(TypeError, match=r"token ids.*featurize first"):
        TaskMix(seed=0)(tokens)


@pytest.mark.parametrize("kwargs", [dict(tasks_per_step=1), dict(tasks_per_step=2), dict(num_real=1)])
def test_one_task_per_step_is_refused_with_the_option_that_works(kwargs):
    with pytest.raises(ValueError, match="num_real=2|num_real >= 2"):
        TaskMix(make_taskset(), **kwargs)
    assert len(TaskMix(make_taskset(), num_real=2)) == 4
    assert len(TaskMix(make_taskset(), tasks_per_step=1, num_synthetic=0)) == 1  # nothing to mix, nothing refused


def test_tasks_per_step_and_num_real_are_exclusive_and_checked():
    with pytest.raises(TypeError, match="not both"):
        TaskMix(make_taskset(), num_real=2, tasks_per_step=4)
    with pytest.raises(TypeError, match="single taskset"):
        TaskMix([make_taskset(), make_taskset(seed=1)], tasks_per_step=4)
    with pytest.raises(ValueError, match="leaves no real task"):
        TaskMix(make_taskset(), tasks_per_step=4, num_synthetic=4)
    assert (TaskMix(make_taskset(), tasks_per_step=5).num_real, TaskMix(make_taskset(), tasks_per_step=5).num_synthetic) == (3, 2)


def test_sample_iteration_part_way_through_a_served_iteration_is_refused():
    taskmix = TaskMix(make_taskset(), num_real=2, seed=0)
    taskmix.sample()
    with pytest.raises(RuntimeError, match="part-way through a meta-iteration"):
        taskmix.sample_iteration()
    for _ in range(3):
        taskmix.sample()
    assert len(taskmix.sample_iteration()) == 4


# -- learn2learn's helpers, and ours beside them ----------------------------------------------------


def test_partition_task_equals_learn2learns_and_takes_soft_labels():
    taskset = make_taskset(WAYS, 3)
    for _ in range(5):
        x, y = taskset.sample()
        perm = torch.randperm(x.shape[0])  # any row order
        ours = partition_task(x[perm], y[perm], shots=2)
        theirs = l2l.data.partition_task(x[perm], y[perm], shots=2)
        for a, b in zip(ours, theirs):
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    synthetic = TaskMix(labels="soft", seed=0)([taskset.sample() for _ in range(2)])[2]
    (xs, ys), (xq, yq) = partition_task(*synthetic, shots=3)
    assert ys.shape == (3 * WAYS, WAYS) and set(ys.argmax(1).tolist()) == set(range(WAYS))
    assert torch.allclose(ys.sum(1), torch.ones(3 * WAYS)) and xq.shape[0] == 3 * WAYS
    slot = TaskMix(seed=0)([taskset.sample() for _ in range(2)])[2]  # integer labels: learn2learn's own works
    for a, b in zip(partition_task(*slot, shots=3), l2l.data.partition_task(*slot, shots=3)):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_accuracy_equals_learn2learns_on_integer_labels_and_takes_soft_ones():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        logits = torch.randn(12, 5, generator=g)
        labels = torch.randint(0, 5, (12,), generator=g)
        assert torch.equal(accuracy(logits, labels), l2l.utils.accuracy(logits, labels))
        assert torch.allclose(accuracy(logits, torch.eye(5)[labels]), l2l.utils.accuracy(logits, labels))
    soft = torch.tensor([[0.25, 0.75], [1.0, 0.0]])
    assert float(accuracy(torch.tensor([[0.0, 1.0], [0.0, 1.0]]), soft)) == pytest.approx(0.375)


def test_split_per_class_is_learn2learns_even_odd_split_on_class_ordered_rows():
    _, y = make_taskset(WAYS, 2).sample()
    support, query = split_per_class(y)
    evens = torch.arange(0, y.shape[0], 2)
    assert torch.equal(support, evens) and torch.equal(query, evens + 1)
    slot = TaskMix(seed=0)([make_taskset(WAYS, 2).sample() for _ in range(2)])[2]
    assert isinstance(slot, Task) and torch.equal(slot.split()[0], evens)  # Task.split on integer labels


# -- the README's diff is the shipped patch ---------------------------------------------------------

from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_shows_the_maml_omniglot_patch_and_every_patch_only_adds_import_and_wrap():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Use it in your learn2learn script") :]
    block = section[section.index("```diff\n") + 8 : section.index("```", section.index("```diff\n") + 8)]
    patch = (ROOT / "examples" / "learn2learn" / "maml_omniglot.patch").read_text().splitlines()
    body = [line for line in patch if not line.startswith(("---", "+++", "@@"))]
    shown = [line for line in block.splitlines() if line != " ..."]
    assert [line for line in shown if line[:1] in "+-"] == [line for line in body if line[:1] in "+-"]
    assert all(line in body for line in shown)  # the context lines are the patch's own
    for name in ("maml_omniglot", "maml_miniimagenet", "anil_fc100", "protonet_miniimagenet"):
        lines = (ROOT / "examples" / "learn2learn" / f"{name}.patch").read_text().splitlines()
        added = [line for line in lines if line.startswith("+") and not line.startswith("+++")]
        removed = [line for line in lines if line.startswith("-") and not line.startswith("---")]
        assert not removed and len(added) == 2 and added[0] == "+from l2l_taskmix import TaskMix", name
        assert "TaskMix(" in added[1], name


# -- a user's mistakes on the way, caught -------------------------------------------------------------

import inspect  # noqa: E402
import random  # noqa: E402
import warnings  # noqa: E402


@pytest.mark.parametrize("wrapper", [TaskMix, MetaMix])
def test_the_scripts_meta_batch_size_is_refused_with_the_line_that_fits(wrapper):
    name = wrapper.__name__
    with pytest.raises(TypeError, match=rf"{name} takes no meta_batch_size.*{name}\(taskset, tasks_per_step=meta_batch_size\).*num_real=4"):
        wrapper(make_taskset(), meta_batch_size=4)
    with pytest.raises(TypeError, match="positional"):
        wrapper(make_taskset(), 1.0, 5)  # every parameter after the tasksets is keyword-only


def test_taskmix_and_metamix_share_their_keyword_only_names():
    def keywords(cls):
        parameters = list(inspect.signature(cls).parameters.values())
        assert parameters[0].name == "tasksets" and parameters[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        return {p.name for p in parameters[1:] if p.kind is inspect.Parameter.KEYWORD_ONLY}

    shared = {"tasks_per_step", "num_real", "eta", "num_classes", "generator", "seed"}
    assert keywords(TaskMix) == shared | {"num_synthetic", "labels"} and keywords(MetaMix) == shared
    assert len(MetaMix(make_taskset(), tasks_per_step=4)) == 4 == len(TaskMix(make_taskset(), tasks_per_step=4))
    assert MetaMix(make_taskset(), tasks_per_step=4).num_real == 4 and TaskMix(make_taskset(), tasks_per_step=4).num_real == 2


def train(taskset, steps, per_step, draw="sample"):
    """learn2learn's MAML loop: ``per_step`` tasks, then one optimizer step; the kinds it saw."""
    model = torch.nn.Linear(16, WAYS)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []
    for _ in range(steps):
        opt.zero_grad()
        tasks = taskset.sample_iteration() if draw == "iteration" else [taskset.sample() for _ in range(per_step)]
        for x, y in tasks:
            torch.nn.functional.cross_entropy(model(x), y).backward()
        seen += ["S" if getattr(t, "is_synthetic", False) else "R" for t in tasks]
        opt.step()
    return "".join(seen)


def test_a_loop_whose_step_is_one_iteration_trains_on_real_then_synthetic_tasks_each_step():
    assert train(TaskMix(make_taskset(), tasks_per_step=4, seed=0), steps=3, per_step=4) == "RRSS" * 3
    assert train(MetaMix(make_taskset(), tasks_per_step=4, seed=0), steps=2, per_step=4) == "RRRR" * 2
    assert train(TaskMix(make_taskset(), num_real=2, seed=0), steps=6, per_step=1) == "RRSSRR"  # one task a step
    assert train(TaskMix(make_taskset(), num_real=3, seed=0), steps=2, per_step=0, draw="iteration") == "RRRSSS" * 2


@pytest.mark.parametrize(
    "kwargs, per_step, where",
    [
        (dict(num_real=4), 4, "ended part-way through a meta-iteration of 8 tasks"),  # [R,R,R,R], then [S,S,S,S]
        (dict(tasks_per_step=6), 4, "ended part-way"),  # [R,R,R,S], [S,S,R,R]
        (dict(tasks_per_step=3), 4, "ended part-way"),
    ],
)
def test_a_step_that_is_not_one_iteration_is_refused_at_the_first_step(kwargs, per_step, where):
    taskmix = TaskMix(make_taskset(), seed=0, **kwargs)
    with pytest.raises(
        RuntimeError, match=rf"this optimizer step took {per_step} tasks from TaskMix and {where}.*tasks_per_step={per_step}\)"
    ):
        train(taskmix, steps=1, per_step=per_step)


def test_a_step_refusal_for_metamix_and_steps_of_other_optimizers_pass():
    with pytest.raises(RuntimeError, match=r"took 4 tasks from MetaMix.*MetaMix\(taskset, tasks_per_step=4\)"):
        train(MetaMix(TaskMix(make_taskset(), tasks_per_step=6, seed=0), seed=1), steps=1, per_step=4)
    # nothing mixed across tasks: any step is the plain loop's, nothing refused
    assert train(MetaMix(make_taskset(), tasks_per_step=3, seed=0), steps=2, per_step=4) == "RRRR" * 2
    assert train(TaskMix(make_taskset(), tasks_per_step=3, num_synthetic=0), steps=2, per_step=4) == "RRRR" * 2
    taskmix = TaskMix(make_taskset(), tasks_per_step=4, seed=0)
    other = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1)
    other.step()  # no task since the last step: another optimizer, not refused
    taskmix.sample()
    other.step()  # one task since the last step: a loop of one task a step, not refused
    with pytest.raises(RuntimeError, match=r"took 3 tasks from TaskMix and began part-way through a meta-iteration of 4 tasks"):
        train(taskmix, steps=1, per_step=3)
    assert train(taskmix, steps=2, per_step=4) == "RRSS" * 2  # back on the iteration boundary


def test_a_taskset_of_one_task_is_refused_naming_num_tasks():
    with pytest.raises(
        ValueError, match=r"holds num_tasks=1 task: every synthetic task would be that task mixed with itself.*num_tasks=-1"
    ):
        TaskMix(make_taskset(num_tasks=1), tasks_per_step=4)
    one = make_taskset(num_tasks=1)
    with pytest.raises(ValueError, match="num_tasks=1"):
        TaskMix([one, one])  # the same taskset twice: still one task
    assert len(TaskMix([make_taskset(num_tasks=1), make_taskset(num_tasks=1, seed=1)], seed=0).sample_iteration()) == 4
    assert len(TaskMix(make_taskset(num_tasks=1), num_real=2, num_synthetic=0)) == 2  # nothing mixed
    with pytest.warns(UserWarning, match="holds num_tasks=2 tasks, fewer than the 3 real tasks"):
        TaskMix(make_taskset(num_tasks=2), num_real=3)


def dataloader_draws(taskset, steps=6):
    random.seed(5)
    torch.manual_seed(5)
    loader = torch.utils.data.DataLoader(taskset, shuffle=True)
    batches = [next(iter(loader)) for _ in range(steps)]  # the prototypical-network script's loop
    return batches, random.getstate(), torch.get_rng_state()


@pytest.mark.parametrize(
    "wrap", [lambda ts: TaskMix(ts, num_real=2, num_synthetic=0), lambda ts: TaskMix(ts, tasks_per_step=3, num_synthetic=0)]
)
def test_num_synthetic_zero_through_a_dataloader_is_the_plain_loaders_stream(wrap):
    plain, plain_random, plain_torch = dataloader_draws(make_taskset(seed=4))
    mixed, mixed_random, mixed_torch = dataloader_draws(wrap(make_taskset(seed=4)))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(plain, mixed))
    assert plain_random == mixed_random and torch.equal(plain_torch, mixed_torch)
    # through sample(), as the plain taskset's sample()
    random.seed(2)
    taskset = make_taskset(seed=4)
    plain = [taskset.sample() for _ in range(4)]
    random.seed(2)
    wrapped = wrap(make_taskset(seed=4))
    served = [wrapped.sample() for _ in range(4)]
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(plain, served))


def split_dataset(modes=False):
    """A dataset's classes split into train, validation and test as ``get_tasksets`` does."""
    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(300, 16, generator=g), torch.arange(300) % 30)
    if modes:  # learn2learn's vision datasets record their split as .mode
        out = []
        for mode in ("train", "validation", "test"):
            dataset = torch.utils.data.TensorDataset(torch.randn(100, 16, generator=g), torch.arange(100) % 10)
            dataset.mode = mode
            out.append(l2l.data.MetaDataset(dataset))
        return out
    meta = l2l.data.MetaDataset(data)
    return [l2l.data.FilteredMetaDataset(meta, labels=list(range(a, b))) for a, b in ((0, 20), (20, 25), (25, 30))]


def tasksets_of(datasets):
    def transforms(d):
        return [l2l.data.transforms.NWays(d, WAYS), l2l.data.transforms.KShots(d, 2), l2l.data.transforms.LoadData(d),
                l2l.data.transforms.RemapLabels(d)]  # fmt: skip

    return [l2l.data.Taskset(d, task_transforms=transforms(d)) for d in datasets]


@pytest.mark.parametrize("modes", [False, True])
def test_a_list_of_a_benchmarks_fields_is_refused_like_the_namedtuple(modes):
    train_, validation, test = tasksets_of(split_dataset(modes))
    match = "mode='validation' data" if modes else "tasksets 0 and 1 over disjoint classes of one dataset"
    for wrapper in (TaskMix, MetaMix):
        with pytest.raises(ValueError, match=rf"{match}.*_replace\(train={wrapper.__name__}\(tasksets.train"):
            wrapper([train_, validation, test])
    if modes:
        with pytest.raises(ValueError, match="mode='test' data: it would train on test tasks"):
            TaskMix(test, tasks_per_step=4)
    assert len(TaskMix(train_, tasks_per_step=4, seed=0).sample_iteration()) == 4  # the training taskset is fine


class Texts:
    """A taskset of raw utterances, remembering what it gave."""

    def __init__(self):
        self.given = 0

    def sample(self):
        self.given += 1
        return ("set an alarm", "play jazz", "call mum", "weather"), torch.tensor([0, 1, 0, 1])


@pytest.mark.parametrize("wrapper", [TaskMix, MetaMix])
def test_raw_text_is_refused_before_any_task_is_served(wrapper):
    texts = Texts()
    with pytest.raises(TypeError, match="task 0: its data are a tuple of str, not a tensor.*featurize first"):
        wrapper(texts, tasks_per_step=4, seed=0).sample()
    assert texts.given == 1


def test_metamix_on_integer_labels_says_once_at_the_first_task_that_its_labels_are_soft():
    metamix = MetaMix(make_taskset(), tasks_per_step=2, seed=0)
    with pytest.warns(UserWarning, match=r"soft labels.*F.cross_entropy.*l2l_taskmix.accuracy") as caught:
        x, y = metamix.sample()
    assert len(caught) == 1 and y.dtype.is_floating_point and y.shape[1] == WAYS
    assert caught[0].filename == __file__  # it points at the line that sampled
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metamix.sample()  # once
        soft = BatchTaskset(torch.randn(20, 3), torch.arange(20) % 2, num_support=4, seed=0)
        MetaMix(soft, num_real=2, seed=1).sample()  # soft labels already: nothing to say


def test_one_taskset_per_task_over_some_classes_each_is_not_taken_for_a_benchmarks_fields():
    """The paper's setting (one taskset per meta-training task, each over its own classes of one
    dataset) is fine; only three tasksets that split all of a dataset's classes are refused."""
    g = torch.Generator().manual_seed(0)
    meta = l2l.data.MetaDataset(torch.utils.data.TensorDataset(torch.randn(300, 16, generator=g), torch.arange(300) % 30))
    spans = ((0, 6), (6, 12), (12, 18), (18, 24))
    per_task = tasksets_of([l2l.data.FilteredMetaDataset(meta, labels=list(range(a, b))) for a, b in spans])
    assert len(TaskMix(per_task, seed=0).sample_iteration()) == 8  # 4 real + 4 synthetic
    assert len(TaskMix(per_task[:3], seed=0).sample_iteration()) == 6  # three tasks that leave classes out
    whole = tasksets_of([l2l.data.FilteredMetaDataset(meta, labels=list(range(a, b))) for a, b in ((0, 10), (10, 20), (20, 30))])
    with pytest.raises(ValueError, match="over disjoint classes of one dataset"):
        TaskMix(whole)


def test_steps_of_several_whole_iterations_pass_and_a_wrapper_pickles_with_its_own_watch():
    """Gradient accumulation over whole iterations, and a step that GradScaler skipped (the next
    step then holds two iterations), are not the straddling mistake; copies keep checking."""
    assert train(TaskMix(make_taskset(), tasks_per_step=3, num_synthetic=1, seed=0), steps=2, per_step=6) == "RRSRRS" * 2
    taskmix = TaskMix(make_taskset(), tasks_per_step=4, seed=0)
    model = torch.nn.Linear(16, WAYS)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(2):  # the first step is skipped, as GradScaler skips a step whose gradients overflowed
        for x, y in [taskmix.sample() for _ in range(4)]:
            torch.nn.functional.cross_entropy(model(x), y).backward()
        if step == 1:
            opt.step()  # eight tasks: two whole iterations
    copy = pickle.loads(pickle.dumps(taskmix))
    assert len(copy.sample_iteration()) == 4
    with pytest.raises(RuntimeError, match="took 3 tasks from TaskMix and ended part-way"):
        train(copy, steps=1, per_step=3)  # the copy is checked too
    deep = copy_module.deepcopy(TaskMix(make_taskset(), tasks_per_step=4, seed=0))
    with pytest.raises(RuntimeError, match="took 3 tasks from TaskMix and ended part-way"):
        train(deep, steps=1, per_step=3)
