"""Raw-text tasks and meta-train / meta-test splits.

An :class:`IntentTask` is one task of raw utterances (a domain, a domain x language subset, or a
call-centre task); a :class:`MetaSplit` holds the meta-training and meta-testing tasks plus what
the builder did (thresholds, seed, dropped classes and tasks), JSON-serializable so a run can
write it next to its results.

Example::

    >>> from l2l_taskmix.data import IntentTask, MetaSplit
    >>> a = IntentTask("alarm", ["wake me at 7", "stop the alarm"], ["SET", "STOP"])
    >>> b = IntentTask("timer", ["timer for 5 min", "pause timer"], ["SET", "PAUSE"])
    >>> split = MetaSplit([a], [b], {"seed": 0})
    >>> a.classes, len(b)
    (['SET', 'STOP'], 2)
    >>> split.to_dict()["test_tasks"]
    ['timer']
"""

from __future__ import annotations

import json
import os
import unicodedata
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..files import atomic_write, to_jsonable
from ..validation import check_scalar, short_repr

__all__ = ["IntentTask", "MetaSplit", "filter_classes", "assign_tasks", "check_name"]

#: Characters a task or intent name may not hold: controls (tab, line breaks, NUL, ...) and the
#: Unicode line and paragraph separators. A name is one line: it goes into table cells.
_NOT_IN_NAMES = ("Cc", "Zl", "Zp")


def check_name(name: str, what: str = "name", where: str | None = None) -> str:
    """``name`` if it is one line of text without control characters, else a ValueError naming
    ``what`` (``"task name"``, ``"intent"``), the character, and ``where`` (``"file:line"``).

    Example::

        >>> check_name("billing|fr", "task name")
        'billing|fr'
        >>> check_name("bill\\ning", "task name", "t.csv:3")
        Traceback (most recent call last):
        ...
        ValueError: t.csv:3: task name 'bill\\ning' holds a line break (U+000A); a name is one line of text without control characters
    """
    bad = next((ch for ch in name if unicodedata.category(ch) in _NOT_IN_NAMES), None)
    if bad is None:
        return name
    kind = "a tab" if bad == "\t" else "a line break" if bad in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029" else "a control character"
    prefix = f"{where}: " if where else ""
    raise ValueError(
        f"{prefix}{what} {short_repr(name)} holds {kind} (U+{ord(bad):04X}); a name is one line of text without control characters"
    )


@dataclass
class IntentTask:
    """One task of raw utterances.

    Attributes:
        name: unique task name (``"alarm"``, ``"alarm/de"``, ``"2023-05"``).
        texts: utterances (N-best hypotheses already joined), one per example.
        intents: intent label of each utterance.
        meta: free-form, JSON-serializable facts (domain, language, order, ...).
    """

    name: str
    texts: list[str]
    intents: list[str]
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"task name must be a non-empty string, got {short_repr(self.name)}")
        check_name(self.name, "task name")
        self.texts = list(self.texts)
        self.intents = list(self.intents)
        if len(self.texts) != len(self.intents):
            raise ValueError(f"task {self.name!r}: {len(self.texts)} texts but {len(self.intents)} intents")
        for i, (t, y) in enumerate(zip(self.texts, self.intents)):
            if not isinstance(t, str) or not t.strip():
                raise ValueError(f"task {self.name!r}: example {i} has an empty utterance")
            if not isinstance(y, str) or not y:
                raise ValueError(f"task {self.name!r}: example {i} has an empty intent")
        for y in dict.fromkeys(self.intents):  # each distinct intent once, in order
            check_name(y, "intent", f"task {self.name!r}")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def classes(self) -> list[str]:
        """Sorted distinct intents; ``FeatureTask.y`` indexes this list."""
        return sorted(set(self.intents))

    def class_counts(self) -> dict[str, int]:
        """``{intent: number of examples}``, sorted by intent."""
        return dict(sorted(Counter(self.intents).items()))

    def groups(self) -> list[int]:
        """Each row's group, the first row with the same text: a support/test split keeps a
        group on one side (``support_test_split(groups=)``).

        Example::

            >>> IntentTask("t", ["a", "b", "a"], ["X", "Y", "X"]).groups()
            [0, 1, 0]
        """
        first: dict[str, int] = {}
        return [first.setdefault(text, row) for row, text in enumerate(self.texts)]

    def duplicates(self) -> dict[str, Any]:
        """Exact repeats of a text within this task (common in call-centre logs).

        Returns ``repeated_rows`` (rows whose text occurs more than once), ``repeated_texts``
        (how many such texts) and ``conflicting`` (``{text: sorted intents}`` for repeated texts
        with more than one intent). Support/test splits keep a repeated text on one side.
        """
        seen: dict[str, set] = {}
        counts = Counter(self.texts)
        for text, intent in zip(self.texts, self.intents):
            seen.setdefault(text, set()).add(intent)
        repeated = {t: n for t, n in counts.items() if n > 1}
        return {
            "repeated_rows": int(sum(repeated.values())),
            "repeated_texts": len(repeated),
            "conflicting": {t: sorted(v) for t, v in seen.items() if len(v) > 1},
        }

    def subset(self, index: Iterable[int], name: str | None = None) -> "IntentTask":
        """A new task with the examples at ``index`` (e.g. from ``support_test_split``)."""
        idx = [int(i) for i in index]
        return IntentTask(
            name or self.name,
            [self.texts[i] for i in idx],
            [self.intents[i] for i in idx],
            dict(self.meta),
        )


@dataclass
class MetaSplit:
    """Meta-training and meta-testing tasks plus what the builder did.

    Attributes:
        train: meta-training tasks.
        test: meta-testing tasks.
        info: builder parameters, seed, dropped classes/tasks and why (JSON-serializable).
    """

    train: list[IntentTask]
    test: list[IntentTask]
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [t.name for t in self.tasks]
        dup = sorted(n for n, c in Counter(names).items() if c > 1)
        if dup:
            raise ValueError(f"duplicate task names in split: {dup}")

    @property
    def tasks(self) -> list[IntentTask]:
        """All tasks, meta-training first."""
        return list(self.train) + list(self.test)

    def task(self, name: str) -> IntentTask:
        """The task called ``name`` (KeyError naming the known tasks otherwise)."""
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"no task {name!r}; tasks are {[t.name for t in self.tasks]}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable record: task names per side, their sizes, and ``info``."""
        return {
            "train_tasks": [t.name for t in self.train],
            "test_tasks": [t.name for t in self.test],
            "num_examples": {t.name: len(t) for t in self.tasks},
            "num_classes": {t.name: len(t.classes) for t in self.tasks},
            "info": to_jsonable(self.info),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_dict` as JSON, atomically. Returns the path."""
        return atomic_write(path, json.dumps(self.to_dict(), indent=2, ensure_ascii=False))


def filter_classes(tasks: Sequence[IntentTask], min_class_count: int) -> tuple[list[IntentTask], dict[str, dict[str, int]], dict[str, str]]:
    """Keep classes with at least ``min_class_count`` examples in their task.

    Tasks left with fewer than two classes are dropped with a warning that names them.

    Returns:
        ``(kept_tasks, dropped_classes, dropped_tasks)`` where ``dropped_classes`` maps a task
        name to ``{intent: count}`` of its removed classes and ``dropped_tasks`` maps a task
        name to the reason it was removed.
    """
    min_class_count = check_scalar(min_class_count, "min_class_count", int, min_val=1)
    kept, dropped_classes, dropped_tasks = [], {}, {}
    for task in tasks:
        counts = task.class_counts()
        small = {c: n for c, n in counts.items() if n < min_class_count}
        if small:
            dropped_classes[task.name] = small
        keep = [i for i, y in enumerate(task.intents) if y not in small]
        left = len(counts) - len(small)
        if left < 2:
            dropped_tasks[task.name] = f"{left} class(es) left with >= {min_class_count} examples (need 2)"
            continue
        kept.append(task.subset(keep) if small else task)
    if dropped_tasks:
        warnings.warn(
            "dropped tasks with fewer than two classes: " + "; ".join(f"{k}: {v}" for k, v in dropped_tasks.items()),
            stacklevel=3,
        )
    return kept, dropped_classes, dropped_tasks


def _second_largest(task: IntentTask) -> int:
    """The examples of the task's second-largest intent: the task keeps two classes exactly when
    ``min_class_count`` is at most this (0 for a task of a single intent)."""
    counts = sorted(task.class_counts().values(), reverse=True)
    return counts[1] if len(counts) > 1 else 0


def _why_left_out(task: IntentTask, min_class_count: int) -> str:
    """Why ``filter_classes`` left ``task`` out, in its numbers."""
    counts = task.class_counts()
    if len(counts) == 1:
        return f"{short_repr(task.name)} has a single intent ({short_repr(next(iter(counts)))})"
    lo, hi = min(counts.values()), max(counts.values())
    if hi < min_class_count:
        sizes = f"{hi} examples each" if lo == hi else f"{lo} to {hi} examples"
        return f"{short_repr(task.name)}: its {len(counts)} intents have {sizes}"
    top = max(counts, key=counts.get)
    return (
        f"{short_repr(task.name)}: only {short_repr(top)} has {min_class_count}+ examples, the next largest intent {_second_largest(task)}"
    )


def left_out_note(dropped: Sequence[IntentTask], min_class_count: int | None, most: int = 3) -> str:
    """One sentence on the tasks ``filter_classes`` left out and why ("" when none), for an
    error that a split could not be made."""
    if not dropped or min_class_count is None:
        return ""
    reasons = "; ".join(_why_left_out(t, min_class_count) for t in dropped[:most])
    more = f"; and {len(dropped) - most} more" if len(dropped) > most else ""
    return (
        f"{len(dropped)} task(s) were left out for lack of two intents with at least "
        f"min_class_count={min_class_count} examples each (in the benchmark: --shots + 1): {reasons}{more}"
    )


def _too_few_tasks(num_train: int, tasks: Sequence[IntentTask], dropped: Sequence[IntentTask], min_class_count: int | None) -> str:
    """The message for ``num_train`` that leaves no task on one side: what is there, what was
    left out and why, and what would make the split."""
    if num_train < 1:
        return (
            f"num_train={num_train} but there are {len(tasks)} tasks: at least one must meta-train "
            "(pass num_train >= 1, or train_tasks/test_tasks)"
        )
    need = num_train + 1
    words = [
        (
            f"num_train={num_train} but there are {len(tasks)} tasks: the split needs {need} "
            f"({num_train} to meta-train, at least one to meta-test)"
        )
    ]
    note = left_out_note(dropped, min_class_count)
    if note:
        words.append(note)
    fixes = []
    if len(tasks) >= 2:
        fixes.append(f"a smaller num_train (at most {len(tasks) - 1})")
    if dropped and min_class_count is not None:
        keep = sorted((k for k in map(_second_largest, [*tasks, *dropped]) if k >= 2), reverse=True)
        most = min(need, len(keep))  # tasks a lower threshold can keep, up to what the split needs
        if most >= 2 and most > len(tasks):
            best = keep[most - 1]
            fixes.append(
                f"a min_class_count of at most {best} (--shots {best - 1} or fewer)"
                + ("" if most == need else f" with num_train at most {most - 1}")
            )
        fixes.append("more intents and examples in the tasks left out")
    if not fixes:
        fixes.append("train_tasks/test_tasks")
    return "; ".join(words) + ". Fix: " + ", or ".join(fixes)


def assign_tasks(
    tasks: Sequence[IntentTask],
    num_train: int,
    train_tasks: Sequence[str] | None = None,
    test_tasks: Sequence[str] | None = None,
    order: Sequence[str] | None = None,
    *,
    dropped: Sequence[IntentTask] = (),
    min_class_count: int | None = None,
) -> tuple[list[IntentTask], list[IntentTask]]:
    """Split ``tasks`` into meta-train and meta-test.

    With ``train_tasks``/``test_tasks`` (names) the caller decides: a name not among ``tasks``
    is a ValueError; a side left ``None`` gets the remaining tasks. Otherwise the first
    ``num_train`` names of ``order`` (a seeded permutation, or chronology) train and the rest test.
    ``dropped`` (the tasks ``filter_classes`` left out, as they were) and its
    ``min_class_count`` only make the errors say why a task is missing.
    """
    by_name = {t.name: t for t in tasks}
    why = {t.name: _why_left_out(t, min_class_count) for t in dropped} if min_class_count is not None else {}
    if train_tasks is not None or test_tasks is not None:
        for side, names in (("train_tasks", train_tasks), ("test_tasks", test_tasks)):
            if names is None:
                continue
            if isinstance(names, str):
                raise ValueError(f"{side} must be a list of task names, not a string")
            missing = [n for n in names if n not in by_name]
            if missing:
                gone = [why[n] for n in missing if n in why]
                raise ValueError(
                    f"{side} names tasks that do not exist (or were dropped): {missing}; "
                    f"available: {sorted(by_name)}"
                    + (
                        f"; left out for lack of two intents with at least {min_class_count} examples each: " + "; ".join(gone)
                        if gone
                        else ""
                    )
                )
        if train_tasks is not None and test_tasks is not None:
            both = sorted(set(train_tasks) & set(test_tasks))
            if both:
                raise ValueError(f"tasks on both sides of the split: {both}")
        if train_tasks is None:
            train_tasks = [n for n in by_name if n not in set(test_tasks)]
        if test_tasks is None:
            test_tasks = [n for n in by_name if n not in set(train_tasks)]
        train = [by_name[n] for n in train_tasks]
        test = [by_name[n] for n in test_tasks]
    else:
        num_train = check_scalar(num_train, "num_train", int)
        if not 1 <= num_train < len(tasks):
            raise ValueError(_too_few_tasks(num_train, tasks, dropped, min_class_count))
        order = list(order) if order is not None else list(by_name)
        train = [by_name[n] for n in order[:num_train]]
        test = [by_name[n] for n in order[num_train:]]
    if not train or not test:
        note = left_out_note(dropped, min_class_count)
        raise ValueError("a meta-split needs at least one meta-training and one meta-test task" + (f"; {note}" if note else ""))
    return train, test
