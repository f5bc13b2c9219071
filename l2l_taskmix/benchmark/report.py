"""What a benchmark writes for a reader: Markdown tables, the data notes, the figures, the files.

:func:`write_outputs` writes ``results.md`` (the paper-style table, :func:`markdown_table`; the
paired differences, :func:`paired_table`; the per-task tables; the data and configuration,
:func:`data_section`), ``results.csv``, ``results.json`` and the figures (:func:`plot_results`,
:func:`plot_curves`). The numbers come from :mod:`~l2l_taskmix.benchmark.statistics`;
:func:`markdown_grid` and :func:`png_figure` are the one way to lay out a Markdown table and to
write a figure, which the sweeps use too. matplotlib is imported only when a figure is drawn.

Example::

    >>> from l2l_taskmix.benchmark.report import markdown_table
    >>> from l2l_taskmix.benchmark.statistics import summarize
    >>> runs = [{"method": "maml", "seed": s, "macro_f1": f} for s, f in enumerate([0.5, 0.7])]
    >>> print(markdown_table(summarize(runs)))
    | Method | Average Macro F1 (model selection) | Seeds |
    | ------ | ---------------------------------: | ----: |
    | maml   |                      0.600 ± 0.141 |     2 |
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..files import atomic_write, to_jsonable
from ..markdown import markdown_cell, markdown_code
from .config import is_feature_file
from .statistics import (
    GOAL_DIFFERENCE,
    ROUNDING_MARGIN,
    ROUNDING_MEAN_SHIFT,
    method_order,
    paired_differences,
    protocol_of,
    protocol_order,
    resolvable_difference,
    seeds_to_resolve,
    summarize,
)
from .store import package_versions

__all__ = [
    "PROTOCOL_TITLES",
    "protocol_words",
    "rounding_words",
    "markdown_grid",
    "markdown_table",
    "paired_table",
    "per_task_table",
    "png_figure",
    "plot_results",
    "curve_frame",
    "plot_curves",
    "CURVE_COLUMNS",
    "data_notes",
    "data_section",
    "write_outputs",
]

#: How tables and figures name each protocol.
PROTOCOL_TITLES = {"paper": "paper protocol (final weights)", "select": "model selection"}


def protocol_words(iterations: int, val_tasks: int, per_method: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """One sentence per protocol on what produced its numbers; ``per_method`` (the config's
    section): the methods that train for their own number of iterations are named with it.

    Example::

        >>> protocol_words(400, 2, {"maml": {"iterations": 100}, "mtl": {"outer_lr": 0.01}})[:92]
        'Paper protocol: meta-trained on every meta-training task for 400 iterations (maml: 100, its '
    """
    own = {m: s["iterations"] for m, s in (per_method or {}).items() if "iterations" in s and s["iterations"] != iterations}
    length = f"{iterations} iterations"
    if own:
        length += f" ({', '.join(f'{m}: {n}' for m, n in own.items())}, {'its' if len(own) == 1 else 'their'} per_method setting)"
    return (
        f"Paper protocol: meta-trained on every meta-training task for {length}, final weights evaluated. "
        f"Model selection: {val_tasks} meta-training task(s) held out per seed, the checked iteration (up to "
        f"{'that count' if own else iterations}) with the best few-shot macro-F1 on them kept."
    )


def rounding_words() -> str:
    """What rounding on another machine does to the table (for the outputs)."""
    if ROUNDING_MARGIN:
        return (
            f"Rounding: rerun under another thread count, features one ulp off, the other MAML engine or on another x86 "
            f"CPU, a 3-seed mean above moved by up to {ROUNDING_MEAN_SHIFT:.3f} (benchmarks/sensitivity.py); a difference is "
            f"called resolved only if its interval, widened by {ROUNDING_MARGIN:.3f} on both sides for rounding's variance "
            "beyond the seeds' (benchmarks/variance.py), excludes 0."
        )
    return (
        f"Rounding: rerun under another thread count, features one ulp off, the other MAML engine or on another x86 CPU, "
        f"a 3-seed mean above moved by up to {ROUNDING_MEAN_SHIFT:.3f} (benchmarks/sensitivity.py, the bundled sample at "
        "the default settings), less than another draw of the seeds moves it, and every moved mean and paired difference "
        "stayed inside the reference's 95% seed interval (benchmarks/variance.py): the seed intervals hold rounding, so no "
        "margin is added to them."
    )


def markdown_grid(header: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str]) -> str:
    """A Markdown table of ``header`` and ``rows`` (texts; each escaped with
    :func:`~l2l_taskmix.markdown.markdown_cell`), its columns padded to one width and aligned by
    ``align`` (``"l"`` or ``"r"`` per column; ``"r"`` also right-aligns the column when rendered).

    Example::

        >>> print(markdown_grid(["Task", "F1"], [["a|b", "0.5"]], ["l", "r"]))
        | Task | F1 |
        | ---- | --: |
        | a\\|b | 0.5 |
    """
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
    protocols = protocol_order(summary["protocol"]) if "protocol" in summary and len(summary) else []
    methods = list(dict.fromkeys(summary["method"]))
    cell = {
        (r.protocol if protocols else "", r.method): f"{r.macro_f1_mean:.{digits}f} ± {r.macro_f1_std:.{digits}f}"
        for r in summary.itertuples(index=False)
    }
    seeds = {m: "/".join(sorted({str(r.seeds) for r in summary.itertuples(index=False) if r.method == m}, key=int)) for m in methods}
    columns = protocols or [""]
    if len(protocols) > 1:
        titles = [f"Average Macro F1, {PROTOCOL_TITLES.get(p, p)}" for p in protocols]
    else:
        titles = [f"Average Macro F1 ({PROTOCOL_TITLES.get(p, p)})" if p else "Average Macro F1" for p in columns]
    head = ["Method"] + (["Paper"] if paper else []) + titles + ["Seeds"]
    rows = [[m] + ([paper.get(m, "")] if paper else []) + [cell.get((p, m), "") for p in columns] + [seeds[m]] for m in methods]
    return markdown_grid(head, rows, ["l"] + (["r"] if paper else []) + ["r"] * len(columns) + ["r"])


def paired_table(paired: pd.DataFrame, digits: int = 3, level: float = 0.95) -> str:
    """:func:`paired_differences` as Markdown, followed by a sentence on what is resolved."""
    if paired.empty:
        return "Paired differences: fewer than two methods of a reference (maml, mtl) ran."
    pct = f"{level:.0%}"
    margin = float(paired.attrs.get("margin", 0.0))
    rule = (
        (f"the {pct} interval, widened by {margin:.3f} on both sides for rounding, excludes 0")
        if margin
        else f"the {pct} interval excludes 0"
    )

    def signed(v):
        return "n/a" if math.isnan(v) else f"{v:+.{digits}f}"

    several = paired["protocol"].nunique() > 1 if "protocol" in paired else False
    if several:  # one column per protocol: mean [interval], * where resolved
        protocols = protocol_order(paired["protocol"])
        cells: dict[tuple[str, str], dict[str, str]] = {}
        for r in paired.itertuples(index=False):
            cells.setdefault((r.method, r.reference), {})[r.protocol] = (
                f"{signed(r.mean_diff)} [{signed(r.ci_low)}, {signed(r.ci_high)}]{' *' if r.resolved else ''}"
            )
        rows = [[f"{m} − {ref}", *(c.get(p, "") for p in protocols)] for (m, ref), c in cells.items()]
        header = ["Difference", *(f"{PROTOCOL_TITLES.get(p, p).capitalize()}: mean [{pct} interval]" for p in protocols)]
        table = (
            markdown_grid(header, rows, ["l"] + ["r"] * len(protocols))
            + f"\n\n\\* resolved: {rule}. Seeds per difference: {int(paired['seeds'].max())}."
        )
    else:
        rows = [
            [
                f"{r.method} − {r.reference}",
                signed(r.mean_diff),
                f"[{signed(r.ci_low)}, {signed(r.ci_high)}]",
                str(r.seeds),
                "yes" if r.resolved else "no",
            ]
            for r in paired.itertuples(index=False)
        ]
        table = markdown_grid(["Difference", "Mean", f"{pct} interval", "Seeds", "Resolved"], rows, ["l", "r", "r", "r", "l"])
        table += f"\n\nResolved: {rule}."
    resolved = [
        (f"{r.protocol}: " if several else "") + f"{r.method} {'above' if r.mean_diff > 0 else 'below'} {r.reference} "
        f"({signed(r.mean_diff)})"
        for r in paired.itertuples(index=False)
        if r.resolved
    ]
    seeds = int(paired["seeds"].max())
    at = f"{pct} with the rounding margin" if margin else pct
    words = (
        "Resolved at " + at + ": " + "; ".join(resolved) + ". The other differences are not."
        if resolved
        else f"No difference is resolved at {at} with {seeds} seed(s): every interval"
        + (f", widened by {margin:.3f}," if margin else "")
        + " contains 0."
    )
    if "diff_std" in paired:
        for protocol in protocol_order(paired["protocol"]):
            part = paired.loc[(paired["reference"] == "maml") & (paired["protocol"] == protocol)]
            stds = part["diff_std"].dropna()
            if not len(stds):
                continue
            median = float(stds.median())
            n = int(part["seeds"].max())
            can = resolvable_difference(median, n, level)
            need = seeds_to_resolve(median, GOAL_DIFFERENCE + margin, level, margin=margin)
            where = (" under " + {"paper": "the paper protocol", "select": "model selection"}.get(protocol, protocol)) if several else ""
            words += (
                f" The median per-seed std of the differences to MAML{where} is {median:.3f}: at that spread {n} seeds resolve "
                f"a difference of {can + margin:.3f} at {at} (on average), and a {GOAL_DIFFERENCE:g} difference"
                + (f" beyond the margin ({GOAL_DIFFERENCE + margin:.3f})" if margin else "")
                + f" needs {need if need is not None else 'more than 10,000'} seeds."
            )
    return table + "\n\n" + words


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
    return markdown_grid(["Task", *order], body, ["l"] + ["r"] * len(order))


@contextlib.contextmanager
def png_figure(path: str | os.PathLike, dpi: int, *args: Any, **kwargs: Any):
    """``plt.subplots(*args, **kwargs)`` on matplotlib's Agg backend (imported here), as
    ``(plt, fig, axes)``; on leaving the block the figure is laid out, written to ``path`` as
    PNG atomically, and closed (closed without writing when the block raises).

    Example::

        >>> import tempfile
        >>> from pathlib import Path
        >>> path = Path(tempfile.mkdtemp()) / "line.png"
        >>> with png_figure(path, 50, figsize=(2, 2)) as (plt, fig, ax):
        ...     _ = ax.plot([0, 1], [0, 1])
        >>> path.read_bytes()[:4]
        b'\\x89PNG'
    """
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
    protocols = protocol_order(summary["protocol"]) if "protocol" in summary and len(summary) else [None]
    with png_figure(path, 120, figsize=(1.3 * max(len(methods), 2) + 1.5, 3.6)) as (_, fig, ax):
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
                ax.annotate(
                    f"{m:.3f}",
                    (xi, m),
                    textcoords="offset points",
                    xytext=(-5 if left else 5, -3),
                    ha="right" if left else "left",
                    fontsize=6,
                )
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
        for r in runs
        for point in (r.get("curve") or [])
        for metric in ("val", "loss")
        if metric in point
    ]
    if not rows:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    frame = pd.DataFrame(rows)
    stats = frame.groupby(["method", "iteration", "metric"])["value"].agg(["mean", "std", "count"]).reset_index()
    stats = stats.rename(columns={"count": "seeds"}).fillna({"std": 0.0})
    order = method_order(frame["method"], methods)
    stats["rank"] = stats["method"].map({m: k for k, m in enumerate(order)})
    stats = stats.dropna(subset=["rank"]).sort_values(["rank", "metric", "iteration"]).drop(columns="rank")
    return stats[CURVE_COLUMNS].reset_index(drop=True)


def plot_curves(curves: pd.DataFrame, path: str | os.PathLike, title: str = "") -> Path:
    """Meta-validation macro-F1 (left) and training loss (right, log scale) against the
    meta-iteration, one line per method with a band of one sample std over seeds: the picture of
    MAML overfitting its few meta-training tasks, and of what TaskMix and MetaMix do to it."""
    with png_figure(path, 130, 1, 2, figsize=(10, 3.8)) as (plt, fig, axes):
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
        fig.suptitle(
            f"{title}: lines are means over {seeds} seeds, bands ± 1 sample std over seeds\n"
            "training loss: MAML variants' query loss after adaptation, MTL's multi-task loss",
            fontsize=9,
        )
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
        notes.append(
            f"{rows} rows in {len(duplicates)} tasks repeat a text (kept on one side of each split); "
            f"{conflicting} text(s) with conflicting intents"
        )
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
        lines += [
            f"  - {markdown_code(name)}: " + ", ".join(f"{markdown_code(c)} ({n})" for c, n in classes.items())
            for name, classes in dropped_classes.items()
        ]
    else:
        lines.append("- Classes left out: none")
    duplicates = dict(data.get("duplicates") or {})
    if duplicates:
        rows, conflicting = _repeat_totals(duplicates)
        lines.append(
            f"- Repeated texts: {rows} rows in {len(duplicates)} tasks repeat a text of their task; each "
            f"repeated text is kept on one side of every support/test split. {conflicting} text(s) carry "
            "more than one intent:"
        )
        lines += [
            f"  - {markdown_code(name)}: {d['repeated_rows']} rows, {d['repeated_texts']} texts"
            + (
                "; conflicting: "
                + "; ".join(f"{t!r} ({', '.join(v)})" for t, v in list(d["conflicting"].items())[:3])
                + (" ..." if len(d["conflicting"]) > 3 else "")
                if d["conflicting"]
                else ""
            )
            for name, d in duplicates.items()
        ]
    else:
        lines.append("- Repeated texts: none")
    lines += [
        "",
        "Configuration (everything that decides these numbers; `results.json` has the rest):",
        "",
        "| Setting | Value |",
        "| --- | --- |",
    ]
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
    protocols = protocol_order(protocol_of(r) for r in runs)
    sections = [
        f"# Average Macro F1 on {dataset} ({'precomputed' if str(dataset).endswith('.pt') else config.get('encoder', '')} features)",
        f"Regime: {regime}. Mean ± sample std over seeds.",
        markdown_table(summary),
    ]
    if "iterations" in config:
        sections.append(protocol_words(config["iterations"], config.get("val_tasks", 0), config.get("per_method")))
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
        "rounding": {
            "margin": ROUNDING_MARGIN,
            "mean_shift": ROUNDING_MEAN_SHIFT,
            "measured_by": "benchmarks/sensitivity.py (the reruns), benchmarks/variance.py (against the seeds: the margin)",
        },
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
