"""Reading files and building task splits: MTOP-Long, MTOP-Wide, N-best call-centre data.

Data flows files -> :class:`IntentTask` lists -> :class:`MetaSplit`; ``l2l_taskmix.features``
turns the tasks into feature tensors.

Example::

    >>> from l2l_taskmix.data import build_mtop_long, task_stats
    >>> split = build_mtop_long()                 # the bundled MTOP sample
    >>> int(task_stats(split).loc["all", "#tasks"])
    11
"""

from .mtop import (
    build_mtop_long,
    build_mtop_wide,
    bundled_mtop_root,
    intent_domains,
    load_mtop,
    mtop_tasks,
)
from .nbest import (
    TABLE_COLUMNS,
    XLMR_SEP,
    check_columns,
    join_hypotheses,
    load_nbest,
    make_nbest,
    read_task_table,
    read_utterances,
    simulate_nbest,
)
from .splits import check_shots, split_task, support_test_split
from .stats import dropped_stats, format_stats, per_task_stats, task_stats
from .tasks import IntentTask, MetaSplit, assign_tasks, filter_classes

__all__ = [
    "IntentTask",
    "MetaSplit",
    "assign_tasks",
    "filter_classes",
    "bundled_mtop_root",
    "intent_domains",
    "load_mtop",
    "mtop_tasks",
    "build_mtop_long",
    "build_mtop_wide",
    "XLMR_SEP",
    "join_hypotheses",
    "read_task_table",
    "read_utterances",
    "check_columns",
    "TABLE_COLUMNS",
    "load_nbest",
    "simulate_nbest",
    "make_nbest",
    "support_test_split",
    "split_task",
    "check_shots",
    "task_stats",
    "per_task_stats",
    "dropped_stats",
    "format_stats",
]
