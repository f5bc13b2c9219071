"""Dataset statistics: the paper's Table 1 (#tasks, mean #classes, mean #examples per task).

Works on a :class:`MetaSplit`, a list of :class:`IntentTask` or a list of
``l2l_taskmix.features.FeatureTask`` (anything with ``name`` and ``classes`` plus ``intents``
or ``y``).

Example::

    >>> from l2l_taskmix.data import IntentTask, MetaSplit, task_stats, per_task_stats
    >>> a = IntentTask("a", ["x", "y", "z"], ["P", "Q", "Q"])
    >>> b = IntentTask("b", ["u", "v"], ["R", "S"])
    >>> table = task_stats(MetaSplit([a], [b]))
    >>> int(table.loc["all", "#tasks"]), float(table.loc["all", "mean #examples"])
    (2, 2.5)
    >>> per_task_stats([a, b])["#examples"].tolist()
    [3, 2]
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import pandas as pd

from .tasks import MetaSplit

__all__ = ["task_stats", "per_task_stats", "dropped_stats", "format_stats"]


def _labels(task: Any) -> list:
    if hasattr(task, "intents"):
        return list(task.intents)
    if hasattr(task, "y"):
        return [int(v) for v in task.y]
    raise TypeError(f"cannot read labels of {type(task).__name__}")


def _sides(split_or_tasks: Any) -> list[tuple[str, Any]]:
    if isinstance(split_or_tasks, MetaSplit):
        return [("meta-train", t) for t in split_or_tasks.train] + [("meta-test", t) for t in split_or_tasks.test]
    tasks = list(split_or_tasks)
    if not tasks:
        raise ValueError("no tasks to describe")
    return [("all", t) for t in tasks]


def per_task_stats(split_or_tasks: MetaSplit | Sequence) -> pd.DataFrame:
    """One row per task: ``task, side, #classes, #examples, min/max class size``."""
    rows = []
    for side, task in _sides(split_or_tasks):
        counts = Counter(_labels(task))
        rows.append(
            {
                "task": task.name,
                "side": side,
                "#classes": len(counts),
                "#examples": sum(counts.values()),
                "min class size": min(counts.values()) if counts else 0,
                "max class size": max(counts.values()) if counts else 0,
            }
        )
    return pd.DataFrame(rows)


def task_stats(split_or_tasks: MetaSplit | Sequence) -> pd.DataFrame:
    """Table 1: ``#tasks``, ``mean #classes`` and ``mean #examples`` per task.

    Rows ``meta-train``, ``meta-test`` and ``all`` for a :class:`MetaSplit`; only ``all``
    for a plain list of tasks.
    """
    per = per_task_stats(split_or_tasks)
    groups = (
        [("meta-train", per[per.side == "meta-train"]), ("meta-test", per[per.side == "meta-test"])]
        if isinstance(split_or_tasks, MetaSplit)
        else []
    )
    groups.append(("all", per))
    table = pd.DataFrame(
        {
            "#tasks": [len(g) for _, g in groups],
            "mean #classes": [round(float(g["#classes"].mean()), 2) for _, g in groups],
            "mean #examples": [round(float(g["#examples"].mean()), 2) for _, g in groups],
        },
        index=[name for name, _ in groups],
    )
    return table


def dropped_stats(split: MetaSplit) -> pd.DataFrame:
    """What a builder removed and why: one row per dropped class (``task, intent, count``)
    and per dropped task (``intent`` empty), from ``split.info``.

    Example::

        >>> from l2l_taskmix.data import build_mtop_long
        >>> table = dropped_stats(build_mtop_long())
        >>> list(table.columns), len(table)
        (['task', 'intent', 'count', 'reason'], 31)
    """
    info = split.info if isinstance(split, MetaSplit) else dict(split)
    threshold = info.get("min_class_count")
    rows = []
    for task, classes in (info.get("dropped_classes") or {}).items():
        for intent, count in classes.items():
            rows.append({"task": task, "intent": intent, "count": int(count), "reason": f"fewer than {threshold} examples"})
    for task, reason in (info.get("dropped_tasks") or {}).items():
        rows.append({"task": task, "intent": "", "count": None, "reason": f"task dropped: {reason}"})
    return pd.DataFrame(rows, columns=["task", "intent", "count", "reason"])


def format_stats(split_or_tasks: MetaSplit | Sequence, title: str | None = None, per_task: bool = False) -> str:
    """Table 1 (and optionally the per-task table) as printable text."""
    parts = [title] if title else []
    parts.append(task_stats(split_or_tasks).to_string())
    if per_task:
        parts.append(per_task_stats(split_or_tasks).to_string(index=False))
    return "\n\n".join(parts)
