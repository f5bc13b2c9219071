"""learn2learn 0.2.0's own example scripts, as they are and with the README's TaskMix diff.

The scripts are taken at test time from learn2learn's sdist, which ``scripts/setup.sh`` keeps in
``.cache/`` (``python -m l2l_taskmix.install_learn2learn --keep-sdist``); none of learn2learn's
code is in this repository. Their datasets (Omniglot, mini-ImageNet, FC100) are replaced by
generated images of the same shapes and class counts (except for the prototypical network, whose
backbone pools any image size to its embedding: its mini-ImageNet images are 21x21, not 84x84,
so the script's 2,300 tasks a run cost 16 times less), and everything else runs as learn2learn
ships it: ``get_tasksets`` and its transforms (``FusedNWaysKShots``, ``NWays``, ``KShots``,
``LoadData``, ``RemapLabels``, ``ConsecutiveLabels``, ``RandomClassRotation``), the models, the
scripts' own ``accuracy``, ``fast_adapt``, loops and averages. The patches under
``examples/learn2learn/`` are applied with ``git apply`` exactly as a user would.
"""

import contextlib
import functools
import io
import os
import random
import re
import runpy
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import learn2learn as l2l
import numpy as np
import pytest
import torch
from PIL import Image

from l2l_taskmix import mixing, tasksets
from l2l_taskmix.install_learn2learn import VERSION, sdist_name

ROOT = Path(__file__).resolve().parent.parent
PATCHES = ROOT / "examples" / "learn2learn"
SCRIPTS = ("maml_omniglot", "anil_fc100", "maml_miniimagenet", "protonet_miniimagenet")
pytestmark = pytest.mark.slow


def sdist_path() -> Path:
    return Path(os.environ.get("L2L_TASKMIX_SDIST_DIR", ROOT / ".cache")) / sdist_name()


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """``{"plain": dir, "taskmix": dir}``: learn2learn's examples/vision, as shipped and patched."""
    sdist = sdist_path()
    if not sdist.is_file():
        pytest.fail(f"learn2learn's sdist is not at {sdist}: run scripts/setup.sh (it keeps it there)")
    out = tmp_path_factory.mktemp("learn2learn-examples")
    prefix = f"learn2learn-{VERSION}/examples/vision/"
    with tarfile.open(sdist) as archive:
        members = [archive.getmember(f"{prefix}{name}.py") for name in SCRIPTS]
        archive.extractall(out / "plain", members=members, filter="data")
    shutil.copytree(out / "plain", out / "taskmix")
    source = out / "taskmix" / f"learn2learn-{VERSION}"
    for name in SCRIPTS:
        subprocess.run(["git", "apply", str(PATCHES / f"{name}.patch")], cwd=source, check=True)
    return {kind: out / kind / prefix for kind in ("plain", "taskmix")}


def load(path: Path, name: str, replace: tuple[str, str] | None = None):
    """Import a script as a module (``replace``: one line changed first, as a user would)."""
    text = path.read_text()
    if replace is not None:
        assert text.count(replace[0]) == 1
        text = text.replace(*replace)
    module = type(sys)(name)
    module.__file__ = str(path)
    exec(compile(text, str(path), "exec"), module.__dict__)
    return module


# -- stand-ins for the datasets: generated images, learn2learn's classes and shapes ---------------


class Images(torch.utils.data.Dataset):
    """``classes`` x ``per_class`` images of one pattern per class plus noise, made on demand
    (deterministic, from their own generator: the scripts' global seeds are left alone)."""

    def __init__(self, classes, per_class, shape, kind, seed, transform=None, mode=None):
        self.classes, self.per_class, self.shape, self.kind, self.seed = classes, per_class, shape, kind, seed
        self.transform = transform
        if mode is not None:  # as MiniImagenet and FC100 record their split
            self.mode = mode

    def __len__(self):
        return self.classes * self.per_class

    def pattern(self, label):
        g = torch.Generator().manual_seed(self.seed * 100_003 + label)
        return torch.rand(self.shape, generator=g)

    def __getitem__(self, i):
        label = i // self.per_class
        g = torch.Generator().manual_seed(self.seed * 7_919 + i)
        image = (0.8 * self.pattern(label) + 0.2 * torch.rand(self.shape, generator=g)).clamp(0, 1)
        if self.kind == "tensor255":  # MiniImagenet: float CHW in [0, 255]
            image = image * 255.0
        else:  # Omniglot ("L") and FC100 ("RGB"): PIL images
            array = (image * 255).to(torch.uint8).numpy()
            image = Image.fromarray(array[0] if self.kind == "L" else array.transpose(1, 2, 0), mode=self.kind)
        if self.transform is not None:
            image = self.transform(image)
        return image, label


MODES = {"train": 0, "validation": 1, "test": 2}


def full_omniglot(root, transform=None, target_transform=None, download=False):
    return Images(1623, 4, (1, 28, 28), "L", seed=11, transform=transform)


def mini_imagenet(root, mode="train", transform=None, target_transform=None, download=False, side=84):
    return Images(
        {"train": 64, "validation": 16, "test": 20}[mode],
        4,
        (3, side, side),
        "tensor255",
        seed=20 + MODES[mode],
        transform=transform,
        mode=mode,
    )


def fc100(root, mode="train", transform=None, target_transform=None, download=False):
    return Images(
        {"train": 60, "validation": 20, "test": 20}[mode], 4, (3, 32, 32), "RGB", seed=30 + MODES[mode], transform=transform, mode=mode
    )


@pytest.fixture
def datasets(monkeypatch):
    monkeypatch.setattr(l2l.vision.datasets, "FullOmniglot", full_omniglot)
    monkeypatch.setattr(l2l.vision.datasets, "MiniImagenet", mini_imagenet)
    monkeypatch.setattr(l2l.vision.datasets, "FC100", fc100)


@pytest.fixture
def small_images(datasets, monkeypatch):
    """mini-ImageNet's stand-in with 21x21 images (CNN4Backbone pools them to a 64-d embedding)."""
    monkeypatch.setattr(l2l.vision.datasets, "MiniImagenet", functools.partial(mini_imagenet, side=21))


# -- what TaskMix served -------------------------------------------------------------------------


@pytest.fixture
def served(monkeypatch):
    """Every task TaskMix served, in order, and every (real tasks, synthetic tasks) it made."""
    record = {"tasks": [], "mixed": []}
    serve, synthesize = tasksets.TaskMix._serve, tasksets.TaskMix._synthesize

    def recording_serve(self, index):  # what sample() and taskmix[i] (a DataLoader) serve
        record["tasks"].append(serve(self, index))
        return record["tasks"][-1]

    def recording_synthesize(self, real):
        synthetic = synthesize(self, real)
        record["mixed"].append((list(real), synthetic))
        return synthetic

    monkeypatch.setattr(tasksets.TaskMix, "_serve", recording_serve)
    monkeypatch.setattr(tasksets.TaskMix, "_synthesize", recording_synthesize)
    return record


def check_slots(record, per_step, real_per_step):
    """Each step's tasks are T real tasks, untouched, then N synthetic ones that mix them slot
    by slot and keep integer labels."""
    tasks = record["tasks"]
    assert len(tasks) % per_step == 0 and record["mixed"]
    for k, (real, synthetic) in enumerate(record["mixed"]):
        step = tasks[k * per_step : (k + 1) * per_step]
        assert all(a is b for a, b in zip(step[:real_per_step], real)) and len(real) == real_per_step
        assert all(a is b for a, b in zip(step[real_per_step:], synthetic)) and len(synthetic) == per_step - real_per_step
        for task in synthetic:
            x, y = task  # unpacks, and indexes, like a learn2learn task
            assert task[0] is x and task[1] is y and len(task) == 2
            i, j, lam = task.source
            (xi, yi), (xj, yj) = real[i], real[j]
            assert i != j and 0 <= lam <= 1
            assert torch.allclose(x, lam * xi + (1 - lam) * xj, atol=1e-5)
            assert y.dtype == torch.int64 and y.shape == yi.shape and torch.equal(y, yi)  # task i's label per slot
            layout = mixing.class_layout(yi)
            assert torch.equal(layout, mixing.class_layout(yj))  # row r is the same class slot of both
            assert torch.equal(layout, mixing.class_layout(y))


def printed(out: str, what: str) -> list[float]:
    return [float(v) for v in re.findall(rf"^{what} ([-0-9.e]+)$", out, flags=re.M)]


# -- MAML, MetaSGD, ANIL -----------------------------------------------------------------------------


MAML_ARGS = dict(ways=5, shots=1, meta_batch_size=4, num_iterations=2, cuda=False, seed=3)
METASGD = ("l2l.algorithms.MAML(model, lr=fast_lr, first_order=False)", "l2l.algorithms.MetaSGD(model, lr=fast_lr, first_order=False)")
RUNS = {
    "maml_omniglot": (None, MAML_ARGS),
    "maml_miniimagenet": (None, MAML_ARGS),
    "metasgd_miniimagenet": (METASGD, MAML_ARGS),
    "anil_fc100": (None, dict(ways=5, shots=1, meta_bsz=4, iters=2, adapt_steps=1, cuda=0, seed=3)),
}


def script_of(name):
    return "maml_miniimagenet" if name == "metasgd_miniimagenet" else name


def run_main(folder, name, **overrides):
    replace, args = RUNS[name]
    module = load(folder / f"{script_of(name)}.py", name, replace)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        module.main(**{**args, **overrides})
    return out.getvalue()


@pytest.mark.parametrize("name", list(RUNS))
def test_the_patched_script_trains_on_real_and_slot_labelled_synthetic_tasks(name, examples, datasets, served):
    per_step = RUNS[name][1].get("meta_batch_size", RUNS[name][1].get("meta_bsz"))
    out = run_main(examples["taskmix"], name)
    check_slots(served, per_step=per_step, real_per_step=per_step // 2)
    assert len(served["tasks"]) == 2 * per_step  # two iterations, one a step
    # the script's own accuracy, on every task, averaged over the step's meta_batch_size tasks
    accuracies = printed(out, "Meta Train Accuracy")
    assert len(accuracies) == 2 and all(0 <= a <= 1 for a in accuracies)
    assert all(np.isfinite(printed(out, "Meta Train Error")))


@pytest.mark.parametrize("name", ["maml_omniglot", "anil_fc100"])
def test_num_synthetic_zero_prints_what_the_plain_script_prints(name, examples, datasets, monkeypatch):
    plain = run_main(examples["plain"], name)
    monkeypatch.setattr(tasksets.TaskMix, "__init__", functools.partialmethod(tasksets.TaskMix.__init__, num_synthetic=0))
    patched = run_main(examples["taskmix"], name)
    assert printed(plain, "Meta Train Error") and patched == plain


PATCHED_LINE = "tasksets = tasksets._replace(train=TaskMix(tasksets.train, tasks_per_step=meta_batch_size))"


def run_changed(examples, name, line, **overrides):
    """The patched script with its TaskMix line changed, as a user might write it."""
    module = load(examples["taskmix"] / f"{name}.py", name, (PATCHED_LINE, line))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        module.main(**{**RUNS[name][1], **overrides})
    return out.getvalue()


def test_the_scripts_own_meta_batch_size_name_is_refused_with_the_line_that_fits(examples, datasets):
    line = "tasksets = tasksets._replace(train=TaskMix(tasksets.train, meta_batch_size=meta_batch_size))"
    with pytest.raises(TypeError, match=r"TaskMix takes no meta_batch_size.*TaskMix\(taskset, tasks_per_step=meta_batch_size\)"):
        run_changed(examples, "maml_omniglot", line)


@pytest.mark.parametrize("knob", ["num_real=meta_batch_size", "tasks_per_step=meta_batch_size + 2", "tasks_per_step=3"])
def test_a_step_that_is_not_one_iteration_is_refused_at_the_scripts_first_step(examples, datasets, served, knob):
    line = f"tasksets = tasksets._replace(train=TaskMix(tasksets.train, {knob}))"
    with pytest.raises(RuntimeError, match=r"this optimizer step took 4 tasks from TaskMix.*TaskMix\(taskset, tasks_per_step=4\)"):
        run_changed(examples, "maml_omniglot", line)
    assert len(served["tasks"]) == 4  # the first step's tasks, no more


def test_metamix_in_a_script_says_at_the_first_task_that_its_labels_are_soft(examples, datasets):
    line = "tasksets = tasksets._replace(train=MetaMix(tasksets.train, tasks_per_step=meta_batch_size))"
    module = load(examples["taskmix"] / "maml_omniglot.py", "maml_omniglot", (PATCHED_LINE, line))
    module.MetaMix = tasksets.MetaMix
    with pytest.warns(UserWarning, match=r"MetaMix gives each task soft labels.*l2l_taskmix.accuracy") as caught:
        with pytest.raises(RuntimeError, match="shape"):  # the script's own accuracy() takes integer labels
            module.main(**RUNS["maml_omniglot"][1])
    assert len([w for w in caught if "MetaMix" in str(w.message)]) == 1


def test_the_plain_scripts_run_on_the_stand_ins(examples, datasets):
    """The stand-ins are what the scripts expect: each runs unpatched."""
    for name in RUNS:
        out = run_main(examples["plain"], name, **({"num_iterations": 1} if "meta_batch_size" in RUNS[name][1] else {"iters": 1}))
        assert len(printed(out, "Meta Train Accuracy")) == 1


# -- prototypical networks ---------------------------------------------------------------------------


PROTONET_ARGV = [
    "--max-epoch",
    "1",
    "--shot",
    "1",
    "--train-way",
    "5",
    "--train-query",
    "1",
    "--test-way",
    "5",
    "--test-shot",
    "1",
    "--test-query",
    "1",
    "--gpu",
    "0",
]


@pytest.mark.usefixtures("one_thread")  # a small network: a second thread only pays overhead
def test_prototypical_networks_train_on_right_targets(examples, small_images, few_eval_tasks, served, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["protonet_miniimagenet.py", *PROTONET_ARGV])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        script = runpy.run_path(str(examples["taskmix"] / "protonet_miniimagenet.py"), run_name="__main__")
    assert re.search(r"epoch 1, train, loss=\d", out.getvalue())
    # its loop takes one task per step: each meta-iteration, 2 real then 2 synthetic tasks
    check_slots(served, per_step=4, real_per_step=2)
    assert len(served["tasks"]) == 100
    # on every synthetic task, prototypes of the support rows classify the query rows under the
    # labels TaskMix gave (the script's own fast_adapt, on the raw pixels): the labels are the
    # synthetic classes' own, not another class's
    flatten = torch.nn.Flatten()
    for _, synthetic in served["mixed"]:
        for task in synthetic:
            x, y = task
            loss, acc = script["fast_adapt"](flatten, (x[None], y[None]), 5, 1, 1, device="cpu")
            assert float(acc) == 1.0 and torch.isfinite(loss)


#: Validation and test tasks the prototypical-network script scores, cut from its 200 and 2,000.
EVAL_TASKS = 20


@pytest.fixture
def few_eval_tasks(monkeypatch):
    """The prototypical-network script's validation and test Tasksets (200 and 2,000 tasks) cut to
    ``EVAL_TASKS`` each: those loops only score and print, and these tests check the training
    loop and what is printed. Its training Taskset (``num_tasks=-1``) is left as it is."""

    class FewTasks(l2l.data.Taskset):
        def __init__(self, dataset, task_transforms=None, num_tasks=-1, task_collate=None):
            num_tasks = min(num_tasks, EVAL_TASKS) if num_tasks > 0 else num_tasks
            super().__init__(dataset, task_transforms=task_transforms, num_tasks=num_tasks, task_collate=task_collate)

    monkeypatch.setattr(l2l.data, "Taskset", FewTasks)
    return FewTasks


def run_protonet(folder, argv, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["protonet_miniimagenet.py", *argv])
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(str(folder / "protonet_miniimagenet.py"), run_name="__main__")
    return out.getvalue(), random.getstate(), torch.get_rng_state()


@pytest.mark.usefixtures("one_thread")  # a small network: a second thread only pays overhead
def test_prototypical_networks_with_num_synthetic_zero_print_what_the_plain_script_prints(
    examples, small_images, few_eval_tasks, monkeypatch
):
    """The script takes its tasks through a DataLoader, which indexes TaskMix (``taskmix[i]``)."""
    plain = run_protonet(examples["plain"], PROTONET_ARGV, monkeypatch)
    monkeypatch.setattr(tasksets.TaskMix, "__init__", functools.partialmethod(tasksets.TaskMix.__init__, num_synthetic=0))
    patched = run_protonet(examples["taskmix"], PROTONET_ARGV, monkeypatch)
    assert re.search(r"epoch 1, train, loss=\d", plain[0]) and patched[0] == plain[0]
    assert re.findall(r"^batch (\d+):", plain[0], re.M)[-1] == str(EVAL_TASKS)  # the test loop's last task
    assert patched[1] == plain[1] and torch.equal(patched[2], plain[2])  # Python's and torch's streams too


@pytest.mark.parametrize("name", ["omniglot", "mini-imagenet"])
def test_a_list_of_the_benchmark_tasksets_is_refused_like_the_namedtuple(datasets, name):
    benchmark = l2l.vision.benchmarks.get_tasksets(name, train_ways=5, train_samples=2, test_ways=5, test_samples=2)
    match = "disjoint classes of one dataset" if name == "omniglot" else "mode='validation' data"
    for wrapper in (tasksets.TaskMix, tasksets.MetaMix):
        with pytest.raises(ValueError, match=rf"{match}.*_replace\(train={wrapper.__name__}\(tasksets.train"):
            wrapper(list(benchmark))
    if name == "mini-imagenet":
        with pytest.raises(ValueError, match="mode='test' data: it would train on test tasks"):
            tasksets.TaskMix(benchmark.test, tasks_per_step=4)
    assert len(tasksets.TaskMix(benchmark.train, tasks_per_step=4)) == 4


def test_the_benchmark_namedtuple_from_get_tasksets_is_refused_and_its_train_taskset_taken(datasets):
    benchmark = l2l.vision.benchmarks.get_tasksets("omniglot", train_ways=5, train_samples=2, test_ways=5, test_samples=2)
    with pytest.raises(TypeError, match=r"BenchmarkTasksets of train, validation, test tasksets.*_replace\(train=TaskMix"):
        tasksets.TaskMix(benchmark, tasks_per_step=4)
    wrapped = benchmark._replace(train=tasksets.TaskMix(benchmark.train, tasks_per_step=4, seed=0))
    tasks = [wrapped.train.sample() for _ in range(4)]
    assert [getattr(t, "is_synthetic", False) for t in tasks] == [False, False, True, True]
    assert all(x.shape == (10, 1, 28, 28) and y.dtype == torch.int64 for x, y in tasks)
    # omniglot's other layout (test_ways=3) cannot be mixed with its training tasks
    other = l2l.vision.benchmarks.get_tasksets("omniglot", train_ways=3, train_samples=2, test_ways=3, test_samples=2)
    with pytest.raises(ValueError, match="5 classes x 2 rows.*3 classes x 2 rows"):
        tasksets.TaskMix([benchmark.train, other.train], seed=0).sample_iteration()
