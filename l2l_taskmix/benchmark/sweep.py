"""Sweeps: one setting varied, every other one as the benchmark's, to test the paper's claims.

The paper states that TaskMix is insensitive to N once N > T, falls back towards MAML when
N < T (N = 0 is MAML), and helps most when meta-training tasks are few. :func:`run_sweep` runs
one method (``maml+taskmix`` by default) at each value of one setting (:data:`SWEEPS`), and the
reference methods (MAML and MTL) once, or at each value where the setting changes them (the
number of meta-training tasks does; N and eta do not). Every run goes through the benchmark's
resumable run store (:func:`~l2l_taskmix.benchmark.grid.run_grid`) in the same output folder,
so a sweep reuses the benchmark's finished runs, a killed sweep resumes where it stopped, and
each point's differences to the references are paired by seed. What a sweep says goes through
its reporter (:class:`~l2l_taskmix.benchmark.progress.CommandProgress`).

Example, with precomputed features of four tiny tasks::

    >>> import tempfile, torch
    >>> from l2l_taskmix.benchmark import BenchmarkConfig, BenchmarkData
    >>> from l2l_taskmix.benchmark.sweep import run_sweep
    >>> from l2l_taskmix.features import FeatureTask
    >>> g = torch.Generator().manual_seed(0)
    >>> def task(name):
    ...     return FeatureTask(name, torch.randn(30, 8, generator=g), torch.arange(30) % 3, ["a", "b", "c"])
    >>> data = BenchmarkData([task("a"), task("b"), task("c")], [task("z")])
    >>> cfg = BenchmarkConfig(seeds=2, iterations=4, batch_size=4, hidden=(16,), finetune_steps=5, protocols=("paper",))
    >>> table = run_sweep(cfg, "num_synthetic", tempfile.mkdtemp(), values="0,T,2T", data=data, progress=False, echo=False)
    >>> table.query("method == 'maml+taskmix'")[["value", "seeds"]].values.tolist()
    [[0, 2], [3, 2], [6, 2]]
    >>> float(table.query("value == 0 and method == 'maml+taskmix'").diff_maml.iloc[0])  # N = 0 is MAML
    0.0
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..cluster import ray_session
from ..files import atomic_write, check_writable, to_jsonable
from ..validation import check_choice, short_repr
from .config import MAX_COUNT, BenchmarkConfig
from .datasets import BenchmarkData
from .grid import run_grid
from .methods import get_method
from .progress import CommandProgress
from .report import PROTOCOL_TITLES, markdown_grid, png_figure
from .runner import OUT_BYTES, load_data
from .statistics import ROUNDING_MARGIN, paired_differences, protocol_of, summarize
from .workers import check_executor, make_executor

__all__ = ["SWEEPS", "SWEEP_DEFAULTS", "run_sweep", "sweep_values", "num_real_tasks", "sweep_table", "plot_sweep"]

#: The settings a sweep varies: default values (``T``: the real tasks per iteration) and
#: whether the setting changes the reference methods (then they run at every value too).
SWEEPS: dict[str, dict[str, Any]] = {
    "num_synthetic": {"values": "0,T/2,T,2T,4T", "references_vary": False, "label": "N, synthetic tasks per meta-iteration"},
    "eta": {"values": "0.25,0.5,1,2,4", "references_vary": False, "label": "eta (lambda ~ Beta(eta, eta))"},
    "train_subset": {"values": "3,5,7,14,28,all", "references_vary": True, "label": "meta-training tasks used"},
    "iterations": {"values": "100,200,400,800,1600", "references_vary": True, "label": "meta-iterations trained (horizon)"},
}

#: A sweep's own defaults, below a config file and flags: the paper's protocol (every
#: meta-training task, final weights: what the paper's claims are about) and 5 seeds (paired
#: intervals of about +-0.02 on the sample; see the sweeps page of the documentation, docs/results/sweeps.md).
SWEEP_DEFAULTS = {"protocols": ("paper",), "seeds": 5}

#: Columns of :func:`sweep_table`.
SWEEP_COLUMNS = [
    "value",
    "method",
    "macro_f1_mean",
    "macro_f1_std",
    "seeds",
    "diff_maml",
    "low_maml",
    "high_maml",
    "resolved_maml",
    "diff_mtl",
    "low_mtl",
    "high_mtl",
    "resolved_mtl",
]


def num_real_tasks(config: BenchmarkConfig, num_train: int) -> int:
    """T: the real tasks per meta-iteration of ``config`` with ``num_train`` meta-training tasks
    (after the select protocol's validation tasks and any ``train_subset``)."""
    protocol = config.protocols[0]
    fit = num_train - (config.val_tasks if protocol == "select" else 0)
    if config.train_subset is not None:
        fit = min(fit, config.train_subset)
    return max(1, min(fit, config.meta_batch_size or fit))


def sweep_values(
    over: str, values: str | Sequence[Any] | None, *, real_tasks: int, num_train: int, config: BenchmarkConfig | None = None
) -> list[Any]:
    """The values of setting ``over`` to run, parsed from text such as ``"0,T/2,T,2T,4T"`` (``T``
    multiples for ``num_synthetic``, rounded down) or ``"3,5,all"`` (``all``, and values above
    it dropped, for ``train_subset``), in the given order without repeats. Each value is checked
    as a setting of ``config`` (default: the defaults), naming the setting.

    Example::

        >>> sweep_values("num_synthetic", "0,T/2,T,2T,4T", real_tasks=7, num_train=7)
        [0, 3, 7, 14, 28]
        >>> sweep_values("train_subset", "3,5,7,14,all", real_tasks=7, num_train=7)
        [3, 5, 7]
    """
    over = check_choice(over, "over", tuple(SWEEPS))
    if values is None:
        values = SWEEPS[over]["values"]
    tokens = [str(v).strip() for v in (values.split(",") if isinstance(values, str) else values) if str(v).strip()]
    if not tokens:
        raise ValueError(f"--values: give at least one value of {over}")
    out: list[Any] = []
    for token in tokens:
        value = _parse_value(over, token, real_tasks, num_train)
        if value is not None and value not in out:
            out.append(value)
    if not out:
        raise ValueError(f"--values {short_repr(values)}: no value of {over} applies to {num_train} meta-training tasks")
    for value in out:  # the config checks each value (type, range and size), naming the setting
        try:
            (config or BenchmarkConfig()).replace(**{over: value})
        except (TypeError, ValueError) as err:
            raise type(err)(f"--values: {err}") from None
    return out


def _parse_value(over: str, token: str, real_tasks: int, num_train: int) -> Any:
    text = token.replace(" ", "").lower()
    multiple = re.fullmatch(r"([0-9.]*)t(?:/([0-9.]+))?", text) if over == "num_synthetic" else None
    try:
        if multiple:
            factor, divisor = float(multiple.group(1) or 1), float(multiple.group(2) or 1)
            if divisor == 0:
                raise ZeroDivisionError
            return int(math.floor(factor / divisor * real_tasks))
        if over in ("num_synthetic", "iterations"):
            return int(text)
        if over == "train_subset":
            if text == "all":
                return num_train
            value = int(text)
            return value if value <= num_train else None
        return float(text)
    except ValueError:
        raise ValueError(f"--values: cannot read {short_repr(token)} as a value of {over}") from None
    except ZeroDivisionError:
        raise ValueError(
            f"--values: {short_repr(token)} divides by zero; {over} takes whole numbers and multiples of T such as 0,T/2,T,2T,4T"
        ) from None
    except OverflowError:  # 1e999T
        raise ValueError(f"--values: {short_repr(token)} is too large a value of {over}") from None


def _tag(runs: list[dict[str, Any]], value: Any) -> list[dict[str, Any]]:
    return [{**r, "value": value} for r in runs]


def run_sweep(
    config: BenchmarkConfig,
    over: str,
    out: str | os.PathLike,
    *,
    values: str | Sequence[Any] | None = None,
    method: str = "maml+taskmix",
    references: Sequence[str] = ("maml", "mtl"),
    data: BenchmarkData | None = None,
    progress: bool = True,
    max_runs: int | None = None,
    echo: bool = True,
    workers: int | None = 1,
    threads: int | None = None,
    ray_address: str | None = None,
) -> pd.DataFrame | None:
    """Run ``method`` at each value of setting ``over`` and the ``references``, then write
    ``sweep_<over>.md``, ``.csv``, ``.json`` and ``.png`` to ``out``.

    ``config`` gives every other setting and exactly one protocol (``config.protocols``);
    ``values``: as :func:`sweep_values` reads them (default: :data:`SWEEPS`'). Runs are stored
    in ``out``'s run store and reused. ``max_runs`` stops after that many new runs (returns
    ``None``, writing nothing but the runs). ``workers``, ``threads``, ``ray_address``: as
    :func:`~l2l_taskmix.benchmark.runner.run_benchmark`'s.

    Returns:
        :func:`sweep_table`'s frame, or ``None`` when stopped early.
    """
    over = check_choice(over, "over", tuple(SWEEPS))
    method = get_method(method).name
    references = [get_method(r).name for r in references]
    if method in references:
        raise ValueError(f"--method {method} is also a reference method ({', '.join(references)})")
    for name in (method, *references):  # a per-method value would win over the swept one: the sweep would vary nothing
        if over in dict(dict(config.per_method).get(name, ())):
            raise ValueError(
                f"per_method.{name} sets {over}, which the sweep varies; remove {over} from that method's section of the config file"
            )
    if len(config.protocols) != 1:
        raise ValueError(f"a sweep runs under one protocol; give --protocols paper or --protocols select, not {','.join(config.protocols)}")
    # the values as far as they can be read before the data are: any T >= 1, as many tasks as a setting may name;
    # T and the values' checks are those of the swept method's own settings (its per_method section)
    own = config.for_method(method)
    sweep_values(over, values, real_tasks=1, num_train=MAX_COUNT, config=own)
    check_executor(workers, threads)  # before the data are loaded
    out = check_writable(out, "--out", need_bytes=OUT_BYTES)
    reporter = CommandProgress(config, progress=False)  # the sweep's own lines; each grid shows its own bar
    with ray_session(ray_address) as on_ray:
        if data is None:
            data = load_data(config, on_ray=on_ray, progress=progress)
        real = num_real_tasks(own, len(data.train))
        num_fit = len(data.train) - (config.val_tasks if config.protocols[0] == "select" else 0)  # tasks a run can train on
        points = sweep_values(over, values, real_tasks=real, num_train=num_fit, config=own)
        if echo:
            reporter.log(
                f"sweep of {over} over {points} ({method}; references {', '.join(references)}; T = {real}; "
                f"{PROTOCOL_TITLES[config.protocols[0]]}; {config.seeds} seeds)"
            )
        # one pool for every grid of the sweep
        with make_executor(data, workers, threads, progress=progress, ray_address=ray_address, device=config.device) as executor:
            return _sweep_grids(
                config, over, out, data, points, method, references, real, num_fit, max_runs, echo, progress, executor, reporter
            )


def _sweep_grids(config, over, out, data, points, method, references, real, num_fit, max_runs, echo, progress, executor, reporter):
    """:func:`run_sweep`'s grids, one per value (and the references'), through ``executor``."""
    budget = [max_runs]  # new runs left, over every grid of the sweep

    def grid(cfg: BenchmarkConfig, horizons: Sequence[int] = ()) -> list[dict[str, Any]] | None:
        runs, new, _ = run_grid(cfg, out, data, horizons=horizons, progress=progress, echo=echo, max_runs=budget[0], executor=executor)
        if budget[0] is not None:
            budget[0] -= new
        return runs if len(runs) == len(cfg.methods) * cfg.seeds * len(set(horizons) | {cfg.iterations}) else None

    if over == "iterations":  # one run per method and seed to the longest horizon, scored at each
        found = grid(config.replace(iterations=max(points), methods=(method, *references)), horizons=points)
        if found is None:
            return _stopped(echo, reporter)
        runs = [{**r, "value": r["horizon"]} for h in points for r in found if r["horizon"] == h]
        return _finish(config, over, out, runs, method, references, echo, reporter)
    runs: list[dict[str, Any]] = []
    vary = SWEEPS[over]["references_vary"]
    if not vary:
        base = grid(config.replace(methods=tuple(references)))
        if base is None:
            return _stopped(echo, reporter)
    for value in points:
        # the value that equals the default is run as the default, so the benchmark's runs are reused
        same = (over == "num_synthetic" and config.num_synthetic is None and value == real) or (
            over == "train_subset" and config.train_subset is None and value == num_fit
        )
        point = config.replace(**{over: None if same else value})
        found = grid(point.replace(methods=(method,) + (tuple(references) if vary else ())))
        if found is None:
            return _stopped(echo, reporter)
        runs += _tag(found, value) + ([] if vary else _tag(base, value))
    return _finish(config, over, out, runs, method, references, echo, reporter)


def _finish(
    config: BenchmarkConfig,
    over: str,
    out: Path,
    runs: list[dict[str, Any]],
    method: str,
    references: Sequence[str],
    echo: bool,
    reporter: CommandProgress,
) -> pd.DataFrame:
    """The table of a completed sweep, written to ``out`` (and reported with ``echo``)."""
    table = sweep_table(runs, method, references)
    write_sweep(out, over, table, runs, config, method, references)
    if echo:
        reporter.results(
            f"\nSweep of {over} on {config.dataset} ({PROTOCOL_TITLES[config.protocols[0]]}, {config.regime}):\n\n"
            f"{sweep_markdown(table, over)}\n"
            f"\nWrote {Path(out) / f'sweep_{over}.md'}, .csv, .json, .png"
        )
    return table


def _stopped(echo: bool, reporter: CommandProgress) -> None:
    if echo:
        reporter.log("stopped (--max-runs); run the same command again to continue")
    return None


def sweep_table(runs: Sequence[dict[str, Any]], method: str, references: Sequence[str] = ("maml", "mtl")) -> pd.DataFrame:
    """Per value: every method's mean ± std over seeds and the swept method's paired difference
    to each reference (95% t-interval over seeds, as
    :func:`~l2l_taskmix.benchmark.statistics.paired_differences`). Columns: :data:`SWEEP_COLUMNS`
    (the difference columns are empty on the references' rows)."""
    rows = []
    for value in list(dict.fromkeys(r["value"] for r in runs)):
        part = [r for r in runs if r["value"] == value]
        summary = summarize(part, [method, *references])
        paired = paired_differences(part, [method, *references], references=references)
        for row in summary.itertuples(index=False):
            out = {
                "value": value,
                "method": row.method,
                "macro_f1_mean": row.macro_f1_mean,
                "macro_f1_std": row.macro_f1_std,
                "seeds": row.seeds,
            }
            for ref in ("maml", "mtl"):
                hit = paired[(paired["method"] == row.method) & (paired["reference"] == ref)] if row.method == method else paired.iloc[0:0]
                first = hit.iloc[0] if len(hit) else None
                out.update(
                    {
                        f"diff_{ref}": None if first is None else float(first.mean_diff),
                        f"low_{ref}": None if first is None else float(first.ci_low),
                        f"high_{ref}": None if first is None else float(first.ci_high),
                        f"resolved_{ref}": None if first is None else bool(first.resolved),
                    }
                )
            rows.append(out)
    return pd.DataFrame(rows, columns=SWEEP_COLUMNS)


def sweep_markdown(table: pd.DataFrame, over: str, digits: int = 3) -> str:
    """:func:`sweep_table` as Markdown: the swept method's rows with their paired differences,
    then the references (once when they do not vary), and a sentence on what is resolved."""

    def signed(v):
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:+.{digits}f}"

    def diff(r, ref):
        d = getattr(r, f"diff_{ref}")
        if d is None or (isinstance(d, float) and math.isnan(d)):
            return ""
        mark = " *" if getattr(r, f"resolved_{ref}") else ""
        return f"{signed(d)} [{signed(getattr(r, f'low_{ref}'))}, {signed(getattr(r, f'high_{ref}'))}]{mark}"

    methods = list(dict.fromkeys(table["method"]))
    swept = methods[0] if methods else ""
    refs = table[table["method"] != swept]
    varying = bool(len(refs)) and bool((refs.groupby("method")["macro_f1_mean"].nunique() > 1).any())
    rows, seen = [], set()
    for r in table.itertuples(index=False):
        if r.method != swept and not varying:
            key = (r.method, r.macro_f1_mean, r.macro_f1_std)
            if key in seen:
                continue
            seen.add(key)
        value = r.value if r.method == swept or varying else "(any)"
        rows.append(
            [
                str(_show(value)),
                r.method,
                f"{r.macro_f1_mean:.{digits}f} ± {r.macro_f1_std:.{digits}f}",
                str(r.seeds),
                diff(r, "maml"),
                diff(r, "mtl"),
            ]
        )
    text = markdown_grid(
        [over, "Method", "Average Macro F1", "Seeds", "− MAML, 95% interval", "− MTL, 95% interval"], rows, ["r", "l", "r", "r", "r", "r"]
    )
    words = [
        f"* the 95% interval of the paired difference, widened by {ROUNDING_MARGIN:.3f} on both sides for rounding "
        "(benchmarks/sensitivity.py), excludes 0."
        if ROUNDING_MARGIN
        else "* the 95% interval of the paired difference excludes 0."
    ]
    for ref, name in (("maml", "MAML"), ("mtl", "MTL")):
        resolved = [
            f"{_show(r.value)} ({'above' if getattr(r, f'diff_{ref}') > 0 else 'below'})"
            for r in table.itertuples(index=False)
            if r.method == swept and getattr(r, f"resolved_{ref}")
        ]
        words.append(
            f"Resolved against {name} at {over} = " + ", ".join(resolved) + "."
            if resolved
            else f"No difference to {name} is resolved at any value."
        )
    return text + "\n\n" + " ".join(words)


def _show(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def write_sweep(
    out: str | os.PathLike,
    over: str,
    table: pd.DataFrame,
    runs: Sequence[dict[str, Any]],
    config: BenchmarkConfig,
    method: str,
    references: Sequence[str],
) -> dict[str, Path]:
    """``sweep_<over>.md``/``.csv``/``.json``/``.png`` in ``out`` (atomically)."""
    import json

    out = Path(out)
    protocol = protocol_of(runs[0]) if runs else config.protocols[0]
    md = (
        "\n\n".join(
            [
                f"# Sweep of {over} on {config.dataset}: {method} against {', '.join(references)}",
                f"{PROTOCOL_TITLES[protocol].capitalize()}; {config.regime}; "
                f"{'' if over == 'iterations' else f'{config.iterations} iterations; '}mean ± sample std over "
                f"seeds; differences paired by seed (same splits, initial weights and draws).",
                sweep_markdown(table, over),
            ]
        )
        + "\n"
    )
    record = {
        "over": over,
        "method": method,
        "references": list(references),
        "protocol": protocol,
        "config": config.to_dict(),
        "table": table.to_dict(orient="records"),
        "runs": [{k: r[k] for k in ("value", "method", "seed", "protocol", "macro_f1", "per_task", "seconds") if k in r} for r in runs],
    }
    paths = {
        "markdown": atomic_write(out / f"sweep_{over}.md", md),
        "csv": atomic_write(out / f"sweep_{over}.csv", table.to_csv(index=False)),
        "json": atomic_write(out / f"sweep_{over}.json", json.dumps(to_jsonable(record), indent=1)),
    }
    paths["png"] = plot_sweep(table, out / f"sweep_{over}.png", over, title=f"{config.dataset}, {PROTOCOL_TITLES[protocol]}")
    return paths


def plot_sweep(table: pd.DataFrame, path: str | os.PathLike, over: str, title: str = "") -> Path:
    """Left: the swept method's Average Macro F1 at each value (mean ± 1 sample std over seeds)
    with MAML and MTL as reference lines (bands ± 1 std). Right: its paired difference to MAML
    and to MTL with 95% intervals, and the zero line. Values sit at equal spacing, labelled."""
    methods = list(dict.fromkeys(table["method"]))
    swept = methods[0]
    values = list(dict.fromkeys(table["value"]))
    x = np.arange(len(values))
    with png_figure(path, 130, 1, 2, figsize=(10, 3.8)) as (plt, fig, axes):
        ax = axes[0]
        colors = {"maml": "#C44E52", "mtl": "#8172B3"}
        for ref in methods[1:]:
            part = table[table["method"] == ref].set_index("value").reindex(values)
            mean, std = part["macro_f1_mean"].to_numpy(float), part["macro_f1_std"].to_numpy(float)
            color = colors.get(ref, "gray")
            ax.plot(x, mean, linestyle="--", color=color, linewidth=1.2, label=f"{ref} (reference)")
            ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.12, linewidth=0)
        part = table[table["method"] == swept].set_index("value").reindex(values)
        mean, std = part["macro_f1_mean"].to_numpy(float), part["macro_f1_std"].to_numpy(float)
        ax.errorbar(x, mean, yerr=std, fmt="o-", capsize=4, color="#4C72B0", linewidth=1.4, markersize=5, label=swept)
        seeds = int(table["seeds"].max()) if len(table) else 0
        ax.set_ylabel(f"Average Macro F1 (mean ± 1 std, {seeds} seeds)", fontsize=8)
        ax.legend(fontsize=7, loc="best")
        ax2 = axes[1]
        for k, ref in enumerate(("maml", "mtl")):
            d = part[f"diff_{ref}"].to_numpy(float)
            if np.isnan(d).all():
                continue
            low, high = part[f"low_{ref}"].to_numpy(float), part[f"high_{ref}"].to_numpy(float)
            ax2.errorbar(
                x + (k - 0.5) * 0.12,
                d,
                yerr=[d - low, high - d],
                fmt="o",
                capsize=4,
                color=colors[ref],
                markersize=5,
                label=f"{swept} − {ref}",
            )
        ax2.axhline(0, color="black", linewidth=0.8)
        ax2.set_ylabel("paired difference (mean, 95% t-interval over seeds)", fontsize=8)
        ax2.legend(fontsize=7, loc="best")
        for a in axes:
            a.set_xticks(x, [str(_show(v)) for v in values])
            a.set_xlabel(SWEEPS.get(over, {}).get("label", over))
            a.grid(alpha=0.3)
        fig.suptitle(title, fontsize=9)
    return Path(path)
