"""N-best call-centre data: a task-table format, its loader, and a simulated N-best generator.

**Format** (JSONL, one object per line, or CSV with a header), one row per utterance:

============  =================================================================================
column        meaning
============  =================================================================================
``task``      task name (a call-centre application, a month, ...); required
``intent``    intent label; required
``text``      the utterance, **or**
``hypotheses``  a list of up to N ASR hypotheses, best first (in CSV: a JSON list, e.g.
              ``["book a table", "book a cable"]``)
``order``     optional; a number or a timestamp (ISO 8601). A task's time is the earliest
              ``order`` of its rows; tasks are sorted oldest first. Without the column, tasks
              keep the order in which they first appear in the file. Given on one row, it
              must be on every row, and of one kind (all numbers or all dates/timestamps);
              NaN, infinite or unreadable values are errors.
``split``     optional; ``train`` or ``test``, the same on every row of a task: fixes which
              tasks meta-train and which meta-test (instead of the ``num_train`` oldest).
``id``        optional; a row's identifier (``predict`` copies it to its output)
``reference`` optional; the clean text of simulated hypotheses (:func:`make_nbest`), not used
============  =================================================================================

Task and intent names are one line of text: a line break, tab or other control character in
one is an error naming the file and line. In a CSV file a quoted field may span lines; messages
name the line on which its record starts. Any other column is an error naming it (a misspelt
``split`` must not meta-train on the test tasks). Hypotheses are joined the N-Best-ASR-Transformer way, concatenated
with the encoder tokenizer's separator (XLM-R: ``</s></s>``, its ``sep_token`` twice): pass the
encoder (or its ``sep`` string) as ``encoder_sep``. A table with only ``text`` is the generic
format for a user's own intent tasks.

Meta-train / meta-test follow chronology: the ``num_train`` oldest tasks train (the paper: 7 of
11), the newest test. Classes with fewer than ``min_class_count`` (6) examples in their task are
dropped (recorded in ``MetaSplit.info``).

:func:`make_nbest` turns any intent dataset (by default the bundled MTOP sample, English, one
task per domain) into such a file with simulated ASR confusions (word drops, substitutions,
near-homophone spellings), deterministic by seed; ``python -m l2l_taskmix.data.nbest --nbest 5
--out nbest.jsonl`` does the same from the shell.

Example::

    >>> import numpy as np
    >>> from l2l_taskmix.data import join_hypotheses, simulate_nbest
    >>> join_hypotheses(["set an alarm", "set an alarm for"], sep="</s></s>")
    'set an alarm </s></s> set an alarm for'
    >>> hyps = simulate_nbest("wake me up at seven", 3, np.random.default_rng(0))
    >>> len(hyps), hyps[0] != hyps[1]
    (3, True)
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..files import atomic_write
from ..validation import check_scalar, short_repr
from .tasks import (
    IntentTask,
    MetaSplit,
    assign_tasks,
    check_name,
    filter_classes,
    left_out_note,
)

__all__ = [
    "XLMR_SEP",
    "join_hypotheses",
    "read_task_table",
    "read_utterances",
    "TABLE_COLUMNS",
    "check_columns",
    "load_nbest",
    "simulate_nbest",
    "make_nbest",
    "main",
]

XLMR_SEP = "</s></s>"


def _resolve_sep(encoder_sep: Any) -> str:
    if encoder_sep is None:
        return XLMR_SEP
    if isinstance(encoder_sep, str):
        return encoder_sep
    sep = getattr(encoder_sep, "sep", None)
    if not isinstance(sep, str):
        raise TypeError("encoder_sep must be a string or an encoder with a .sep string")
    return sep


def join_hypotheses(hypotheses: Sequence[str], sep: Any = None, nbest: int | None = None) -> str:
    """Join ASR hypotheses (best first) with the separator: ``"h1 </s></s> h2"``.

    ``sep`` is a string or an encoder (its ``.sep``); ``None`` means XLM-R's ``</s></s>``.
    Only the first ``nbest`` hypotheses are used when given; blank hypotheses are skipped.
    """
    if isinstance(hypotheses, str) or not isinstance(hypotheses, (list, tuple)) or not all(isinstance(h, str) for h in hypotheses):
        raise ValueError(f"hypotheses must be a list of strings, got {short_repr(hypotheses)}")
    if nbest is not None:
        nbest = check_scalar(nbest, "nbest", int, min_val=1)
        hypotheses = hypotheses[:nbest]
    hyps = [h.strip() for h in hypotheses if h.strip()]
    if not hyps:
        raise ValueError("hypotheses is empty (no non-blank hypothesis)")
    return f" {_resolve_sep(sep)} ".join(hyps)


def _read_text(path: Path) -> str:
    """The file as text, read and decoded once; ``ValueError`` naming the line and column of
    the first byte that is not UTF-8."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        lineno = data.count(b"\n", 0, e.start) + 1
        column = e.start - data.rfind(b"\n", 0, e.start)
        raise ValueError(f"{path}:{lineno}: not UTF-8 (byte 0x{data[e.start]:02x} at column {column}); save the table as UTF-8") from None


#: The columns a task table or a table of utterances may have (:func:`read_task_table`,
#: :func:`read_utterances`); any other is refused (:func:`check_columns`).
TABLE_COLUMNS = ("task", "intent", "text", "hypotheses", "id", "order", "split", "reference")


def check_columns(where: str, columns: Sequence[Any], kind: str, *, header: bool = False) -> None:
    """Refuse ``columns`` not in :data:`TABLE_COLUMNS`, naming them, the known ones and the
    closest known name (``where``: the file and line; ``kind``: what the table is; ``header``:
    the columns are a CSV header's).

    Example::

        >>> check_columns("calls.csv:1", ["task", "intent", "text", "splt"], "task table", header=True)
        Traceback (most recent call last):
        ...
        ValueError: calls.csv:1: unknown column(s) 'splt' in the header (did you mean 'split'?); a task table has ...
    """
    import difflib

    unknown = [c for c in columns if c not in TABLE_COLUMNS]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), TABLE_COLUMNS, n=1)
        raise ValueError(
            f"{where}: unknown column(s) {', '.join(repr(c) for c in unknown)}{' in the header' if header else ''}"
            f"{f' (did you mean {close[0]!r}?)' if close else ''}; a {kind} has the columns {', '.join(TABLE_COLUMNS)}: "
            "rename or remove the others"
        )


def check_label(rec: dict, key: str, where: str) -> None:
    """Refuse a row whose ``key`` (``task`` or ``intent``) is missing, empty, or not a name (a
    text or a whole number: ``1.0``, ``true`` or a list is not one), naming the file and line."""
    value = rec.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"{where}: missing or empty {key!r}")
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ValueError(
            f"{where}: {key!r} must be a name, a text or a whole number, got {short_repr(value)} ({type(value).__name__}); "
            "write it as text, in quotes"
        )


def _records(path: Path, required: Sequence[str] = ("task", "intent"), kind: str = "task table") -> list[tuple[int, dict]]:
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".ndjson", ".json", ".csv", ".tsv"):
        what = "task-table format" if kind == "task table" else f"format for a {kind}"
        raise ValueError(f"{path}: unknown {what} {suffix!r} (use .jsonl or .csv)")
    text = _read_text(path)
    if suffix in (".jsonl", ".ndjson", ".json"):
        out = []
        for lineno, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object per line")
            check_columns(f"{path}:{lineno}", list(obj), kind)
            out.append((lineno, obj))
        return out
    delimiter = "\t" if suffix == ".tsv" else ","
    records = _csv_records(text.removeprefix("\ufeff"), delimiter, path)
    if not records:
        example = ",".join(list(required) + ["text"])
        raise ValueError(f"{path}: the file is empty; a CSV {kind} starts with a header row such as {example}")
    header_line, header = records[0]
    columns = list(header)
    missing = [c for c in required if c not in columns]
    if "text" not in columns and "hypotheses" not in columns:
        missing.append("text or hypotheses")
    if missing:
        hint = ""
        if len(columns) == 1:
            other = next((d for d in (";", "\t", ",", "|") if d != delimiter and d in columns[0]), None)
            if other:
                hint = f"; the header looks {other!r}-delimited, but {path.suffix} tables are {delimiter!r}-delimited"
        raise ValueError(f"{path}:{header_line}: the header has no {', '.join(repr(m) for m in missing)} column (it has {columns}){hint}")
    check_columns(f"{path}:{header_line}", [c for c in columns if c], kind, header=True)
    twice = sorted({c for c in columns if c and columns.count(c) > 1})
    if twice:
        raise ValueError(f"{path}:{header_line}: the header names the column(s) {twice} more than once; keep one of each")
    out = []
    for lineno, fields in records[1:]:
        if len(fields) > len(columns):
            raise ValueError(
                f"{path}:{lineno}: {len(fields)} fields but the header has {len(columns)} ({', '.join(columns)}); "
                f'quote a field that holds a {"tab" if delimiter == chr(9) else "comma"} ("like, this")'
            )
        rec = {k: v for k, v in zip(columns, fields) if k and v != ""}
        if "hypotheses" in rec:
            try:
                rec["hypotheses"] = json.loads(rec["hypotheses"])
            except json.JSONDecodeError:
                raise ValueError(
                    f"{path}:{lineno}: hypotheses must be a JSON list of strings, got {short_repr(rec['hypotheses'])}"
                ) from None
        out.append((lineno, rec))
    return out


def _csv_records(text: str, delimiter: str, path: Path) -> list[tuple[int, list[str]]]:
    """``(line, fields)`` of every record of a CSV/TSV text, ``line`` being the physical line on
    which the record starts (a quoted field may hold line breaks). Blank lines, and lines of
    only spaces (or tabs, in a CSV file), are skipped. ``ValueError`` naming the line of a record whose quoted
    field is never closed."""
    lines = io.StringIO(text, newline="").readlines()
    if csv.field_size_limit() < len(text) + 1:  # one long utterance is not a reason to fail
        csv.field_size_limit(len(text) + 1)
    reader = csv.reader(lines, delimiter=delimiter, quotechar='"', doublequote=True, strict=False)
    blank = " \r\n" if delimiter == "\t" else " \t\r\n"  # what a skipped line may hold
    out, end = [], 0
    try:
        for fields in reader:
            start, end = end + 1, reader.line_num
            if not fields or (start == end and not lines[start - 1].strip(blank)):
                continue
            out.append((start, fields))
    except csv.Error as e:
        raise ValueError(f"{path}:{end + 1}: not a valid {'TSV' if delimiter == chr(9) else 'CSV'} file ({e})") from None
    if out:  # only a quote left open reads on to the end of the file: check the last record
        start = out[-1][0]
        try:
            list(csv.reader(lines[start - 1 :], delimiter=delimiter, quotechar='"', doublequote=True, strict=True))
        except csv.Error as e:
            if "unexpected end of data" in str(e):
                raise ValueError(f"{path}:{start}: a quoted field in this record is never closed (a '\"' is missing)") from None
    return out


def _parse_order(value: Any, where: str) -> tuple[float, str]:
    """One ``order`` value as ``(number, kind)``: a finite number (kind ``"number"``), or an ISO
    8601 date/timestamp in seconds since 1970 (kind ``"timestamp"``)."""
    if isinstance(value, bool):
        raise ValueError(f"{where}: order must be a number or an ISO 8601 timestamp, got {short_repr(value)}")
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value).strip()
        try:
            number = float(text)
        except ValueError:
            try:
                stamp = pd.Timestamp(text)
            except (ValueError, TypeError, OverflowError):
                stamp = None
            if stamp is None or pd.isna(stamp):
                raise ValueError(f"{where}: order must be a number or an ISO 8601 timestamp, got {short_repr(value)}") from None
            if stamp.tzinfo is None:
                stamp = stamp.tz_localize("UTC")
            return stamp.value / 1e9, "timestamp"
    if not math.isfinite(number):
        raise ValueError(f"{where}: order must be a finite number or an ISO 8601 timestamp, got {short_repr(value)}")
    return number, "number"


def read_utterances(path: str | Path, encoder_sep: Any = None, *, labelled: bool) -> pd.DataFrame:
    """Read a table of utterances (JSONL/CSV), for adapting a model or predicting with it.

    Every row has ``text`` or ``hypotheses`` (joined with ``encoder_sep``, as a task table's)
    and, with ``labelled``, ``intent``. Optional: ``id`` (kept), ``task``, ``order`` and
    ``split``, ``reference`` (the task-table columns, so a task table can be read too). Any other column is an
    error, so a misspelt column is not silently ignored.

    Returns:
        columns ``text, intent, task, id, line`` (``None`` where a row has no such value), in
        file order.

    Example::

        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "client.csv")
        >>> _ = open(p, "w").write('intent,text\\nalarm,wake me up\\nweather,"rain, today?"\\n')
        >>> read_utterances(p, labelled=True)[["intent", "text"]].values.tolist()
        [['alarm', 'wake me up'], ['weather', 'rain, today?']]
    """
    path = Path(path)
    kind = "labelled table" if labelled else "table of utterances"
    if not path.is_file():
        raise FileNotFoundError(
            f"{kind} {path} does not exist" if not path.is_dir() else f"{path} is a folder, not a {kind} (.csv or .jsonl)"
        )
    sep = _resolve_sep(encoder_sep)
    rows = []
    for lineno, rec in _records(path, ("intent",) if labelled else (), kind):
        where = f"{path}:{lineno}"
        intent = rec.get("intent")
        if labelled:
            check_label(rec, "intent", where)
        has_text, has_hyps = "text" in rec, "hypotheses" in rec
        if has_text == has_hyps:
            raise ValueError(f"{where}: give exactly one of 'text' or 'hypotheses'")
        if has_hyps:
            try:
                text = join_hypotheses(rec["hypotheses"], sep)
            except ValueError as e:
                raise ValueError(f"{where}: {e}") from None
        else:
            text = rec["text"]
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{where}: empty utterance")
        task = rec.get("task")
        rows.append(
            {
                "text": text,
                "intent": check_name(str(intent).strip(), "intent", where) if labelled or intent not in (None, "") else None,
                "task": None if task in (None, "") else check_name(str(task).strip(), "task name", where),
                "id": rec.get("id"),
                "line": lineno,
            }
        )
    if not rows:
        raise ValueError(f"{path}: no rows: the {kind} is empty")
    frame = pd.DataFrame(rows, columns=["text", "intent", "task", "id", "line"])
    for column in ("intent", "task", "id"):  # None stays None (not NaN); an id keeps its type
        frame[column] = pd.Series([r[column] for r in rows], dtype=object)
    return frame


def read_task_table(path: str | Path, encoder_sep: Any = None, nbest: int | None = None) -> pd.DataFrame:
    """Read a task table (JSONL/CSV, see the module doc) into a frame.

    Returns columns ``task, intent, text, num_hypotheses, order, split, line``: ``text`` holds
    the utterance or the joined hypotheses, ``order`` is a float (NaN without the column),
    ``split`` is ``"train"``/``"test"`` (``None`` without the column).

    Raises:
        FileNotFoundError: missing file. ValueError: a bad file or row (names the file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"task table {path} does not exist")
    sep = _resolve_sep(encoder_sep)
    rows = []
    first_of_kind: dict[str, tuple[int, Any]] = {}  # "number"/"timestamp" -> (line, value) of its first row
    for lineno, rec in _records(path):
        where = f"{path}:{lineno}"
        for key in ("task", "intent"):
            check_label(rec, key, where)
        has_text, has_hyps = "text" in rec, "hypotheses" in rec
        if has_text == has_hyps:
            raise ValueError(f"{where}: give exactly one of 'text' or 'hypotheses'")
        if has_hyps:
            hyps = rec["hypotheses"]
            if not isinstance(hyps, list) or not all(isinstance(h, str) for h in hyps):
                raise ValueError(f"{where}: hypotheses must be a list of strings, got {short_repr(hyps)}")
            try:
                text = join_hypotheses(hyps, sep, nbest)
            except ValueError as e:
                raise ValueError(f"{where}: {e}") from None
            n = min(len([h for h in hyps if h.strip()]), nbest or len(hyps))
        else:
            text = rec["text"]
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{where}: empty utterance")
            n = 1
        split = rec.get("split")
        if split is not None and str(split).strip().lower() not in ("train", "test"):
            raise ValueError(f"{where}: split must be 'train' or 'test', got {short_repr(split)}")
        order = None
        if rec.get("order") is not None:
            order, kind = _parse_order(rec["order"], where)
            first_of_kind.setdefault(kind, (lineno, rec["order"]))
        rows.append(
            {
                "task": check_name(str(rec["task"]).strip(), "task name", where),
                "intent": check_name(str(rec["intent"]).strip(), "intent", where),
                "text": text,
                "num_hypotheses": n,
                "order": order,
                "split": None if split is None else str(split).strip().lower(),
                "line": lineno,
            }
        )
    if not rows:
        raise ValueError(f"{path}: no rows")
    if len(first_of_kind) > 1:  # numbers would sort as seconds after 1970, before every date
        (n_line, n_value), (t_line, t_value) = first_of_kind["number"], first_of_kind["timestamp"]
        raise ValueError(
            f"{path}: the 'order' column mixes numbers (line {n_line}: {short_repr(n_value)}) and dates/timestamps "
            f"(line {t_line}: {short_repr(t_value)}); give every row a number, or every row an ISO 8601 date or timestamp"
        )
    df = pd.DataFrame(rows)
    for column in ("order", "split"):
        present = df[column].notna()
        if present.any() and not present.all():
            bad = df.loc[~present, "line"].tolist()[:5]
            raise ValueError(f"{path}: {column!r} missing on lines {bad} (give it on every row or on none)")
    df["order"] = df["order"].astype(float)
    if df["split"].notna().all():
        sides = df.groupby("task", sort=False)["split"].nunique()
        mixed = sides[sides > 1].index.tolist()
        if mixed:
            lines = df.loc[df["task"] == mixed[0], "line"].tolist()[:5]
            raise ValueError(
                f"{path}: task {short_repr(mixed[0])} has rows with both split values (lines {lines}); a task is all train or all test"
            )
    return df


def load_nbest(
    path: str | Path,
    encoder_sep: Any = None,
    num_train: int | str = 7,
    *,
    nbest: int | None = None,
    min_class_count: int = 6,
    train_tasks: Sequence[str] | None = None,
    test_tasks: Sequence[str] | None = None,
) -> MetaSplit:
    """Load a task table as a chronological :class:`MetaSplit`.

    Args:
        path: ``.jsonl`` or ``.csv`` task table.
        encoder_sep: separator for N-best hypotheses: a string or an encoder (``.sep``);
            ``None`` means XLM-R's ``</s></s>``.
        num_train: the oldest ``num_train`` tasks meta-train, the rest meta-test (paper: 7);
            ``"all"``: every task meta-trains (a model for later use; no meta-test task),
            unless the ``split`` column assigns them.
        nbest: use at most this many hypotheses per utterance.
        min_class_count: drop classes with fewer examples in their task; the default 6 is
            the paper's 5-shot support plus one test example (1 keeps every class). Tasks
            left with fewer than two classes are dropped with a warning.
        train_tasks, test_tasks: task names to fix the split by hand instead.

    Example::

        >>> import tempfile, os, json
        >>> d = tempfile.mkdtemp(); p = os.path.join(d, "calls.jsonl")
        >>> rows = [{"task": t, "intent": y, "hypotheses": [f"{y} {i}", f"{y} {i}x"], "order": o}
        ...         for o, t in enumerate(["jan", "feb", "mar"]) for y in "AB" for i in range(2)]
        >>> _ = open(p, "w").write("\\n".join(json.dumps(r) for r in rows))
        >>> split = load_nbest(p, encoder_sep="</s></s>", num_train=2, min_class_count=1)
        >>> [t.name for t in split.train], [t.name for t in split.test]
        (['jan', 'feb'], ['mar'])
        >>> split.train[0].texts[0]
        'A 0 </s></s> A 0x'
    """
    df = read_task_table(path, encoder_sep, nbest)
    chronological = df["order"].notna().all()
    first_seen = df.groupby("task", sort=False)["line"].min()
    if chronological:
        when = df.groupby("task", sort=False)["order"].min()
        keys = sorted(first_seen.index, key=lambda t: (when[t], first_seen[t]))
    else:
        keys = list(first_seen.sort_values().index)
    tasks = []
    for rank, name in enumerate(keys):
        g = df[df["task"] == name]
        meta = {
            "rank": rank,
            "order": float(g["order"].min()) if chronological else None,
            "mean_hypotheses": float(g["num_hypotheses"].mean()),
        }
        tasks.append(IntentTask(name, g["text"].tolist(), g["intent"].tolist(), meta))
    kept, dropped_classes, dropped_tasks = filter_classes(tasks, min_class_count)
    left_out = [t for t in tasks if t.name in dropped_tasks]
    order = [t.name for t in kept]
    by_column = df["split"].notna().all()
    every = isinstance(num_train, str) and num_train == "all"
    if isinstance(num_train, str) and not every:
        raise ValueError(f"num_train must be a number of tasks or 'all', got {short_repr(num_train)}")
    if by_column:
        if train_tasks is not None or test_tasks is not None:
            raise ValueError(f"{path}: the table's split column already assigns the tasks; do not also pass train_tasks/test_tasks")
        side = df.groupby("task", sort=False)["split"].first()
        train_tasks = [n for n in order if side[n] == "train"]
        test_tasks = [n for n in order if side[n] == "test"]
        if not train_tasks or (not test_tasks and not every):
            note = left_out_note(left_out, min_class_count)
            raise ValueError(
                f"{path}: the split column leaves no {'train' if not train_tasks else 'test'} task "
                f"(after dropping small classes){'; ' + note if note else ''}"
            )
    try:
        if every and not by_column:
            if not kept:
                raise ValueError(
                    "no task is left to meta-train on" + (f"; {note}" if (note := left_out_note(left_out, min_class_count)) else "")
                )
            train, test = list(kept), []
        elif every and not test_tasks:
            train, test = [t for t in kept if t.name in set(train_tasks)], []
        else:
            train, test = assign_tasks(kept, num_train, train_tasks, test_tasks, order, dropped=left_out, min_class_count=min_class_count)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    info = {
        "dataset": "nbest",
        "path": str(path),
        "separator": _resolve_sep(encoder_sep),
        "nbest": nbest,
        "chronology": "order column" if chronological else "first appearance in file",
        "task_order": order,
        "min_class_count": int(min_class_count),
        "num_train": len(train),
        "num_test": len(test),
        "train_tasks": [t.name for t in train],
        "test_tasks": [t.name for t in test],
        "assignment": "split column"
        if by_column
        else "given"
        if (train_tasks or test_tasks)
        else "every task trains"
        if every
        else "oldest tasks train",
        "dropped_classes": dropped_classes,
        "dropped_tasks": dropped_tasks,
    }
    return MetaSplit(train, test, info)


# --------------------------------------------------------------------------- simulation

# Near-homophone spellings (Latin script), applied in either direction.
_SOUNDALIKE = [
    ("ph", "f"),
    ("ck", "k"),
    ("c", "k"),
    ("s", "z"),
    ("ee", "ea"),
    ("ou", "ow"),
    ("y", "i"),
    ("w", "v"),
    ("th", "t"),
    ("tion", "shun"),
    ("er", "a"),
    ("ei", "ie"),
    ("mm", "m"),
    ("ll", "l"),
    ("tt", "t"),
    ("ss", "s"),
    ("qu", "kw"),
]


def _soundalike(word: str, rng: np.random.Generator, vocab: Sequence[str]) -> str:
    lower = word.lower()
    options = [(a, b) for a, b in _SOUNDALIKE if a in lower] + [(b, a) for a, b in _SOUNDALIKE if b in lower and len(b) > 1]
    if options:
        a, b = options[int(rng.integers(len(options)))]
        i = lower.index(a)
        return word[:i] + b + word[i + len(a) :]
    # Any script: a vocabulary word that starts alike and has about the same length.
    alike = [v for v in vocab if v != word and v[:2] == word[:2] and abs(len(v) - len(word)) <= 2]
    if alike:
        return alike[int(rng.integers(len(alike)))]
    if len(word) > 1:  # drop one character (a clipped sound)
        i = int(rng.integers(len(word)))
        return word[:i] + word[i + 1 :]
    return word + word


def _corrupt(words: list[str], rate: float, rng: np.random.Generator, vocab: Sequence[str]) -> list[str]:
    out = []
    for w in words:
        u = rng.random()
        if u < rate * 0.3:  # word drop
            continue
        if u < rate * 0.6 and vocab:  # substitution by another word of the task
            out.append(vocab[int(rng.integers(len(vocab)))])
        elif u < rate:  # near-homophone spelling
            out.append(_soundalike(w, rng, vocab))
        else:
            out.append(w)
    if not out:
        out = [words[int(rng.integers(len(words)))]]
    return out


def simulate_nbest(text: str, nbest: int, rng: np.random.Generator, vocab: Sequence[str] = (), word_error_rate: float = 0.15) -> list[str]:
    """``nbest`` distinct-where-possible ASR-like hypotheses of ``text``, best first.

    Hypothesis ``r`` (0-based) corrupts each word with probability
    ``word_error_rate * (1 + r / 2)``: 30% drops, 30% substitutions by a ``vocab`` word,
    40% near-homophone spellings.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty utterance")
    nbest = check_scalar(nbest, "nbest", int, min_val=1)
    word_error_rate = check_scalar(word_error_rate, "word_error_rate", float, min_val=0, max_val=1)
    words = text.split()
    hyps: list[str] = []
    for r in range(nbest):
        rate = min(1.0, word_error_rate * (1 + r / 2))
        for attempt in range(20):
            # rate 0 reproduces the text; later attempts raise it to find a new hypothesis
            h = " ".join(_corrupt(words, min(1.0, rate + 0.05 * attempt), rng, vocab))
            if h not in hyps:
                break
        hyps.append(h)
    return hyps


def _source_tasks(source: Any, languages: Sequence[str] | None, seed) -> list[IntentTask]:
    if source is None or isinstance(source, (str, Path)):
        from .mtop import load_mtop, mtop_tasks

        df = load_mtop(source, languages=languages if languages is not None else ["en"])
        tasks = mtop_tasks(df, ("domain",))
        rng = np.random.default_rng(seed)
        return [tasks[i] for i in rng.permutation(len(tasks))]  # a seeded "chronology"
    if isinstance(source, MetaSplit):
        return source.tasks
    if isinstance(source, pd.DataFrame):
        missing = {"task", "intent", "text"} - set(source.columns)
        if missing:
            raise ValueError(f"source frame lacks columns {sorted(missing)}")
        return [IntentTask(str(k), g["text"].tolist(), g["intent"].tolist()) for k, g in source.groupby("task", sort=False)]
    tasks = list(source)
    if not tasks or not all(isinstance(t, IntentTask) for t in tasks):
        raise ValueError("source must be None, an MTOP folder, a MetaSplit, a list of IntentTask or a frame with task/intent/text")
    return tasks


def make_nbest(
    out_path: str | Path,
    source: Any = None,
    nbest: int = 5,
    seed: int = 0,
    *,
    word_error_rate: float = 0.15,
    languages: Sequence[str] | None = None,
) -> Path:
    """Write a simulated N-best task table (JSONL or CSV by ``out_path``'s suffix).

    Args:
        out_path: ``.jsonl`` or ``.csv`` file, written atomically.
        source: ``None`` (bundled MTOP sample) or an MTOP folder: one task per domain of
            ``languages`` (default ``["en"]``), in a seeded order; or a :class:`MetaSplit`
            (meta-train tasks first), a list of :class:`IntentTask`, or a frame with
            ``task, intent, text``. ``order`` is the task's position, so chronology keeps it.
        nbest: hypotheses per utterance.
        seed: int or ``numpy.random.Generator``; same seed, same file.
        word_error_rate: per-word corruption rate of the best hypothesis (grows with rank).

    Rows: ``task, intent, hypotheses, order, reference`` (``reference`` is the clean text).
    """
    out_path = Path(out_path)
    if out_path.suffix.lower() not in (".jsonl", ".csv"):
        raise ValueError(f"out_path must end in .jsonl or .csv, got {out_path.name!r}")
    nbest = check_scalar(nbest, "nbest", int, min_val=1)
    rng = np.random.default_rng(seed)
    tasks = _source_tasks(source, languages, rng)
    rows = []
    for rank, task in enumerate(tasks):
        vocab = sorted({w for t in task.texts for w in t.split()})
        for text, intent in zip(task.texts, task.intents):
            hyps = simulate_nbest(text, nbest, rng, vocab, word_error_rate)
            rows.append({"task": task.name, "intent": intent, "hypotheses": hyps, "order": rank, "reference": text})
    if out_path.suffix.lower() == ".jsonl":
        body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    else:
        frame = pd.DataFrame(rows)
        frame["hypotheses"] = [json.dumps(h, ensure_ascii=False) for h in frame["hypotheses"]]
        body = frame.to_csv(index=False)
    return atomic_write(out_path, body)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m l2l_taskmix.data.nbest --out nbest.jsonl --nbest 5 --seed 0``."""
    p = argparse.ArgumentParser(prog="python -m l2l_taskmix.data.nbest", description="Write a simulated N-best task table.")
    p.add_argument("--out", required=True, help=".jsonl or .csv file to write")
    p.add_argument("--nbest", type=int, default=5, help="hypotheses per utterance (5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", default=None, help="MTOP folder (default: bundled sample)")
    p.add_argument("--languages", default="en", help="comma-separated (default: en)")
    p.add_argument("--word-error-rate", type=float, default=0.15)
    a = p.parse_args(argv)
    path = make_nbest(a.out, a.root, a.nbest, a.seed, word_error_rate=a.word_error_rate, languages=a.languages.split(","))
    print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
