"""The contract with learn2learn: TaskMix and MetaMix dropped into learn2learn's own example loop.

``examples/learn2learn_maml.py`` is learn2learn's MAML example loop (``fast_adapt`` with its
even/odd ``adaptation_indices``, ``accuracy``, ``MAML``, ``clone``, ``adapt``) on a small
synthetic ``MetaDataset`` with ``NWays``/``KShots``/``LoadData``/``RemapLabels``/
``ConsecutiveLabels``; ``examples/learn2learn_maml_taskmix.py`` is the same script with TaskMix.
These tests run both, as they are and instrumented, and check what a learn2learn user relies on.
"""
import difflib
import functools
import importlib.util
from pathlib import Path

import learn2learn as l2l
import numpy as np
import pytest
import torch

from l2l_taskmix import MetaMix, Task, TaskMix, accuracy, partition_task, split_per_class

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
WAYS, SHOTS, T = 5, 1, 4


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def plain():
    return load("learn2learn_maml")


@pytest.fixture
def mixed():
    return load("learn2learn_maml_taskmix")


class Recorder:
    """A taskset that remembers every task it returned (learn2learn's TaskDataset is a C type)."""

    def __init__(self, taskset):
        self.taskset, self.samples = taskset, []

    def sample(self):
        self.samples.append(self.taskset.sample())
        return self.samples[-1]


def run_instrumented(module, monkeypatch, iterations=3, **kwargs):
    """Run ``module.main`` and return (taskset recorder, the tasks fast_adapt got, step by step)."""
    recorders = []
    make_taskset = module.make_taskset

    def recording_taskset(*args, **kw):
        recorders.append(Recorder(make_taskset(*args, **kw)))
        return recorders[-1]

    steps = [[]]
    fast_adapt = module.fast_adapt

    def recording_fast_adapt(batch, *args):
        steps[-1].append(batch)
        return fast_adapt(batch, *args)

    adam_step = torch.optim.Adam.step

    def marking_step(self, *args, **kw):
        steps.append([])
        return adam_step(self, *args, **kw)

    monkeypatch.setattr(module, "make_taskset", recording_taskset)
    monkeypatch.setattr(module, "fast_adapt", recording_fast_adapt)
    monkeypatch.setattr(torch.optim.Adam, "step", marking_step)
    result = module.main(ways=WAYS, shots=SHOTS, meta_batch_size=T, num_iterations=iterations, **kwargs)
    return recorders[0], steps[:iterations], result


def even_odd(n):
    """learn2learn's example split: support rows at even positions among the first 2 * shots * ways."""
    support = np.zeros(n, dtype=bool)
    support[np.arange(SHOTS * WAYS) * 2] = True
    return torch.from_numpy(support)


def test_the_two_scripts_differ_in_three_lines_import_wrap_and_loop():
    a = (EXAMPLES / "learn2learn_maml.py").read_text().splitlines()
    b = (EXAMPLES / "learn2learn_maml_taskmix.py").read_text().splitlines()
    diff = [line for line in difflib.ndiff(a, b) if line[:2] in ("- ", "+ ")]
    added = [line[2:].strip() for line in diff if line.startswith("+ ")]
    removed = [line[2:].strip() for line in diff if line.startswith("- ")]
    assert len(added) == 3 and len(removed) == 2, diff
    assert added[0] == "from l2l_taskmix import TaskMix, accuracy"
    assert added[1].startswith("taskmix = TaskMix(taskset")
    assert added[2].startswith("batches = taskmix.sample_iteration()")


def test_the_readme_shows_that_diff():
    readme = (EXAMPLES.parent / "README.md").read_text()
    section = readme[readme.index("## Use it in your learn2learn script") :]
    block = section[section.index("```diff\n") + 8 : section.index("```", section.index("```diff\n") + 8)]
    a = (EXAMPLES / "learn2learn_maml.py").read_text().splitlines()
    b = (EXAMPLES / "learn2learn_maml_taskmix.py").read_text().splitlines()
    diff = [line for line in difflib.ndiff(a, b) if line[:2] in ("- ", "+ ")]
    shown = [line for line in block.splitlines() if line[:1] in "+-"]
    assert [line[0] + line[1:].strip() for line in shown] == [line[0] + line[2:].strip() for line in diff]
    for line in block.splitlines():  # the context lines are the script's own
        if line.startswith(" ") and line.strip() != "...":
            assert line[1:] in b


def test_the_plain_learn2learn_script_learns(plain):
    _, history, meta_test_accuracy = plain.main(ways=WAYS, shots=SHOTS, meta_batch_size=T, num_iterations=30)
    assert history[-1] < history[0] and meta_test_accuracy > 0.6  # chance is 0.2


def test_a_taskmix_step_is_T_real_tasks_untouched_then_N_synthetic(mixed, monkeypatch):
    recorder, steps, (_, history, meta_test_accuracy) = run_instrumented(mixed, monkeypatch)
    assert len(recorder.samples) == 3 * T
    for step, tasks in enumerate(steps):
        assert len(tasks) == 2 * T  # T real + N = T synthetic, in one step
        real, synthetic = tasks[:T], tasks[T:]
        # real tasks: the very objects the taskset returned, integer labels, rows in order
        assert all(task is sample for task, sample in zip(real, recorder.samples[step * T : (step + 1) * T]))
        assert all(y.dtype == torch.int64 and y.dim() == 1 for _, y in real)
        for task in synthetic:
            assert isinstance(task, Task) and task.is_synthetic
            x, y = task  # unpacks like a learn2learn task
            i, j, lam = task.source
            # row r mixes row r of real task i with row r of real task j
            assert torch.allclose(x, lam * real[i][0] + (1 - lam) * real[j][0], atol=1e-6)
            assert y.dtype == torch.float32 and y.shape == (2 * SHOTS * WAYS, WAYS)  # soft, over the ways
            eye = torch.eye(WAYS)
            assert torch.allclose(y, lam * eye[real[i][1]] + (1 - lam) * eye[real[j][1]], atol=1e-6)
            # rows come class by class: row r is in the same class block (local class slot) of both
            for task_labels in (real[i][1], real[j][1]):
                blocks = task_labels.reshape(WAYS, 2 * SHOTS)
                assert (blocks == blocks[:, :1]).all()
            # the user's even/odd split: the support part holds every class of the task
            support = even_odd(x.shape[0])
            assert (y[support].sum(0) > 0).tolist() == (y.sum(0) > 0).tolist() == [True] * WAYS
    assert all(np.isfinite(history)) and meta_test_accuracy > 0.2


def test_num_synthetic_zero_gives_the_plain_script_bitwise(plain, mixed, monkeypatch):
    monkeypatch.setattr(mixed, "TaskMix", functools.partial(TaskMix, num_synthetic=0))
    model_a, history_a, acc_a = plain.main(ways=WAYS, shots=SHOTS, meta_batch_size=T, num_iterations=5)
    model_b, history_b, acc_b = mixed.main(ways=WAYS, shots=SHOTS, meta_batch_size=T, num_iterations=5)
    assert history_a == history_b and acc_a == acc_b
    assert all(torch.equal(p, q) for p, q in zip(model_a.parameters(), model_b.parameters()))


def test_with_learn2learn_task_caching(mixed, monkeypatch):
    recorder, steps, (_, history, _) = run_instrumented(mixed, monkeypatch, num_tasks=20000)
    assert [len(tasks) for tasks in steps] == [2 * T] * 3
    assert all(task is sample for tasks, k in zip(steps, range(3)) for task, sample in zip(tasks[:T], recorder.samples[k * T :]))
    assert all(np.isfinite(history))


def test_with_metamix_the_mixed_points_land_in_the_query_part(mixed, monkeypatch):
    def taskmix_then_metamix(taskset, **kwargs):
        return MetaMix(TaskMix(taskset, **kwargs), seed=1)

    monkeypatch.setattr(mixed, "TaskMix", taskmix_then_metamix)
    recorder, steps, (_, history, _) = run_instrumented(mixed, monkeypatch)
    n = 2 * SHOTS * WAYS
    for step, tasks in enumerate(steps):
        assert len(tasks) == 2 * T
        for k, task in enumerate(tasks):
            x, y = task
            assert task.num_mixed == SHOTS * WAYS and x.shape[0] == n + SHOTS * WAYS and y.shape[1] == WAYS
            assert torch.equal(x[:n], recorder.samples[step * T + k][0]) if k < T else True
            support = even_odd(x.shape[0])
            assert not support[n:].any()  # the MixUp points are evaluation rows for fast_adapt
            # MetaMix mixed the query rows the user evaluates on: for a learn2learn sample the
            # package's per-class split is learn2learn's even/odd split
            package_support, package_query = task.split()
            assert torch.equal(package_support, torch.nonzero(support).flatten())
            assert torch.equal(package_query, torch.nonzero(~support).flatten())
    assert all(np.isfinite(history))


def test_the_callable_form_on_tasks_sampled_by_the_loop(mixed):
    taskset = mixed.make_taskset(WAYS, SHOTS, seed=0)
    batches = [taskset.sample() for _ in range(T)]
    tasks = TaskMix(num_synthetic=2, seed=0)(batches)
    assert len(tasks) == T + 2 and all(a is b for a, b in zip(tasks, batches))
    assert all(t.y.shape == (2 * SHOTS * WAYS, WAYS) for t in tasks[T:])
    tasks = MetaMix(seed=0)(batches)
    assert len(tasks) == T and all(t.num_mixed == SHOTS * WAYS for t in tasks)


def test_partition_task_equals_learn2learns_and_takes_soft_labels(mixed):
    taskset = mixed.make_taskset(WAYS, 3, seed=0)
    for _ in range(5):
        x, y = taskset.sample()
        perm = torch.randperm(x.shape[0])  # any row order
        ours = partition_task(x[perm], y[perm], shots=2)
        theirs = l2l.data.partition_task(x[perm], y[perm], shots=2)
        for a, b in zip(ours, theirs):
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    synthetic = TaskMix(seed=0)([taskset.sample() for _ in range(2)])[2]
    (xs, ys), (xq, yq) = partition_task(*synthetic, shots=3)
    assert ys.shape == (3 * WAYS, WAYS) and set(ys.argmax(1).tolist()) == set(range(WAYS))
    assert torch.allclose(ys.sum(1), torch.ones(3 * WAYS)) and xq.shape[0] == 3 * WAYS


def test_accuracy_equals_learn2learns_on_integer_labels_and_takes_soft_ones():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        logits = torch.randn(12, 5, generator=g)
        labels = torch.randint(0, 5, (12,), generator=g)
        assert torch.equal(accuracy(logits, labels), l2l.utils.accuracy(logits, labels))
        assert torch.allclose(accuracy(logits, torch.eye(5)[labels]), l2l.utils.accuracy(logits, labels))
    soft = torch.tensor([[0.25, 0.75], [1.0, 0.0]])
    assert float(accuracy(torch.tensor([[0.0, 1.0], [0.0, 1.0]]), soft)) == pytest.approx(0.375)


def test_split_per_class_is_learn2learns_even_odd_split_on_class_ordered_rows(mixed):
    taskset = mixed.make_taskset(WAYS, 2, seed=0)
    _, y = taskset.sample()
    support, query = split_per_class(y)
    evens = torch.arange(0, y.shape[0], 2)
    assert torch.equal(support, evens) and torch.equal(query, evens + 1)
