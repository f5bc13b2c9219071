"""The numbers a table reports: means over seeds, paired differences and what they resolve.

Pure pandas and NumPy (SciPy for the t-distribution) on run records, the dicts a run returns
and :class:`~l2l_taskmix.benchmark.store.RunStore` keeps (``method``, ``seed``, ``macro_f1``
and ``protocol``, read by :func:`protocol_of`); no Markdown and no plots (those are
:mod:`~l2l_taskmix.benchmark.report`'s). Protocols come in :data:`~l2l_taskmix.benchmark.config.PROTOCOLS`
order (paper first), methods in the order given (default: first appearance).

Example::

    >>> from l2l_taskmix.benchmark.statistics import paired_differences, summarize
    >>> runs = [{"method": m, "seed": s, "macro_f1": f} for m, fs in
    ...         {"maml": [0.5, 0.7], "maml+taskmix": [0.6, 0.9]}.items() for s, f in enumerate(fs)]
    >>> summarize(runs)[["method", "macro_f1_mean", "seeds"]].values.tolist()
    [['maml', 0.6, 2], ['maml+taskmix', 0.75, 2]]
    >>> round(float(paired_differences(runs, references=("maml",)).mean_diff.iloc[0]), 3)
    0.15
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ..validation import check_scalar
from .config import PROTOCOLS

__all__ = [
    "summarize",
    "paired_differences",
    "seeds_to_resolve",
    "resolvable_difference",
    "variance_components",
    "protocol_of",
    "protocol_order",
    "method_order",
    "ROUNDING_MARGIN",
    "ROUNDING_MEAN_SHIFT",
    "GOAL_DIFFERENCE",
    "SUMMARY_COLUMNS",
    "PAIRED_COLUMNS",
]

#: The columns of :func:`summarize`'s frame.
SUMMARY_COLUMNS = ["protocol", "method", "macro_f1_mean", "macro_f1_std", "seeds"]


def protocol_of(record: dict[str, Any]) -> str:
    """A run record's protocol (records of versions before 0.4, which had only model
    selection, carry none: ``"select"``)."""
    return str(record.get("protocol") or "select")


def _scores(runs: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """``protocol, method, seed, macro_f1`` of each run."""
    return pd.DataFrame(
        [{"protocol": protocol_of(r), "method": r["method"], "seed": r["seed"], "macro_f1": r["macro_f1"]} for r in runs],
        columns=["protocol", "method", "seed", "macro_f1"],
    )


def protocol_order(found: Iterable[str]) -> list[str]:
    """The protocols in ``found``, each once: paper first, then select (the order of
    :data:`~l2l_taskmix.benchmark.config.PROTOCOLS`), then any other in order of appearance.

    Example::

        >>> protocol_order(["select", "other", "paper", "select"])
        ['paper', 'select', 'other']
    """
    found = list(dict.fromkeys(found))
    return [p for p in PROTOCOLS if p in found] + [p for p in found if p not in PROTOCOLS]


def method_order(found: Iterable[str], methods: Sequence[str] | None) -> list[str]:
    """``methods`` if given, else the methods in ``found`` in order of first appearance.

    Example::

        >>> method_order(["mtl", "maml", "mtl"], None), method_order(["mtl"], ["maml", "mtl"])
        (['mtl', 'maml'], ['maml', 'mtl'])
    """
    return list(methods) if methods is not None else list(dict.fromkeys(found))


def summarize(runs: Iterable[dict[str, Any]], methods: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per protocol and method: ``protocol, method, macro_f1_mean, macro_f1_std, seeds``.

    The std is the sample standard deviation over seeds (0 for a single seed). Protocols come
    paper first; methods are in the order of ``methods`` (default: first appearance).
    """
    frame = _scores(runs)
    if frame.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    order = method_order(frame["method"], methods)
    rows = []
    for protocol in protocol_order(frame["protocol"]):
        for method in order:
            part = frame.loc[(frame["method"] == method) & (frame["protocol"] == protocol)]
            scores = part.sort_values("seed")["macro_f1"].to_numpy(dtype=float)
            if len(scores) == 0:
                continue
            std = float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0
            rows.append(
                {
                    "protocol": protocol,
                    "method": method,
                    "macro_f1_mean": round(float(np.mean(scores)), 6),
                    "macro_f1_std": round(std, 6),
                    "seeds": int(len(scores)),
                }
            )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


#: The columns of :func:`paired_differences`'s frame.
PAIRED_COLUMNS = ["protocol", "method", "reference", "seeds", "mean_diff", "diff_std", "ci_low", "ci_high", "resolved"]

#: The rounding margin: a difference is called resolved only if its interval, widened by this
#: much on both sides, excludes 0. It is 0: ``benchmarks/sensitivity.py`` reran the main table on
#: the bundled sample under rounding-level perturbations a user's machine brings (another thread
#: count, features one ulp off, the other MAML engine, another CPU), and ``benchmarks/variance.py``
#: measured those reruns against the seeds: every perturbation moved the means and the paired
#: differences less than another draw of the seeds moves them, and inside the reference's 95%
#: seed intervals. A rerun with other rounding is a partial redraw of what the seeds already vary,
#: so the seed interval holds it (``benchmarks/results/variance.json``, ``margin``).
ROUNDING_MARGIN = 0.0
#: The largest shift of a method's mean macro-F1 (over 3 seeds) in the same reruns (the
#: perturbations and the main command on another 2-core x86 CPU), rounded up.
ROUNDING_MEAN_SHIFT = 0.016


#: The paired difference the main table is meant to resolve at 95%: the size of the effects the
#: paper reports. The outputs say how many seeds it needs; ``benchmarks/variance.py`` chooses
#: the default ``test_draws`` for it.
GOAL_DIFFERENCE = 0.02


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


def resolvable_difference(diff_std: float, seeds: int, level: float = 0.95) -> float | None:
    """The smallest true paired difference that ``seeds`` seeds resolve at ``level`` on average:
    the half-width of the Student-t interval at that per-seed std (``None`` for an unknown std
    or a single seed). :func:`seeds_to_resolve` is its inverse.

    Example::

        >>> round(resolvable_difference(0.008, 3), 4)
        0.0199
        >>> seeds_to_resolve(0.008, delta=0.02), seeds_to_resolve(0.008, delta=0.019)
        (3, 4)
    """
    from scipy import stats

    seeds = check_scalar(seeds, "seeds", int, min_val=1)
    if diff_std is None or not math.isfinite(diff_std) or seeds < 2:
        return None
    return float(stats.t.ppf(0.5 + level / 2, seeds - 1) * diff_std / math.sqrt(seeds))


def variance_components(scores: Any) -> dict[str, float]:
    """The one-way random-effects (nested) decomposition of a ``(seeds, draws)`` table of
    scores: row ``s`` holds one meta-trained model's (seed ``s``) score on each of its
    support/test draws.

    ``draw_var`` is the within-seed variance (the mean over seeds of each row's sample
    variance); ``seed_var`` the variance of the seed effect, the between-seed variance of the
    row means less ``draw_var / draws`` (the method of moments; below 0, as sampling can give,
    it is 0). A run scored on ``k`` draws then has variance ``seed_var + draw_var / k``
    (``run_var(k)``). Balanced tables only: every seed with the same number of draws, at least
    two of each.

    Example::

        >>> c = variance_components([[0.50, 0.52], [0.60, 0.62], [0.55, 0.53]])
        >>> round(c["draw_var"], 6), round(c["seed_var"], 6), round(c["mean"], 4)
        (0.0002, 0.002533, 0.5533)
    """
    table = np.asarray(scores, dtype=float)
    if table.ndim != 2 or table.shape[0] < 2 or table.shape[1] < 2:
        raise ValueError(f"variance_components: need a (seeds, draws) table with at least 2 of each, got shape {table.shape}")
    if not np.isfinite(table).all():
        raise ValueError("variance_components: the table holds NaN or infinite scores")
    seeds, draws = table.shape
    draw_var = float(table.var(axis=1, ddof=1).mean())
    between = float(table.mean(axis=1).var(ddof=1))  # variance of the row means
    return {
        "mean": float(table.mean()),
        "seeds": int(seeds),
        "draws": int(draws),
        "seed_var": max(0.0, between - draw_var / draws),
        "draw_var": draw_var,
        "between_var": between,
    }


def paired_differences(
    runs: Iterable[dict[str, Any]],
    methods: Sequence[str] | None = None,
    references: Sequence[str] = ("maml", "mtl"),
    level: float = 0.95,
    margin: float | None = None,
) -> pd.DataFrame:
    """Each method's per-seed difference to each reference method, with a ``level`` t-interval,
    within each protocol.

    Methods of one seed share the data split, the validation tasks and the evaluation draws, so
    the difference of their scores on the same seed removes the split's effect, which moves all
    methods together. For the seeds both have: ``mean_diff`` is the mean of
    ``macro_f1(method) - macro_f1(reference)``, ``[ci_low, ci_high]`` its Student-t interval
    (``n - 1`` degrees of freedom; NaN with one seed) and ``resolved`` whether the interval,
    widened by ``margin`` on both sides, excludes 0 (``None``: :data:`ROUNDING_MARGIN`, 0: the
    seed interval holds rounding; ``0``: the interval alone).

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
    order = method_order(frame["method"], methods)
    rows = []
    for protocol in protocol_order(frame["protocol"]):
        table = frame[frame["protocol"] == protocol].pivot_table(index="seed", columns="method", values="macro_f1", aggfunc="first")
        rows += _paired_rows(table, order, references, level, protocol, float(margin))
    frame = pd.DataFrame(rows, columns=PAIRED_COLUMNS)
    frame.attrs["margin"] = float(margin)
    return frame


def _paired_rows(
    table: pd.DataFrame, order: Sequence[str], references: Sequence[str], level: float, protocol: str, margin: float
) -> list[dict]:
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
            rows.append(
                {
                    "protocol": protocol,
                    "method": method,
                    "reference": reference,
                    "seeds": n,
                    "mean_diff": mean,
                    "diff_std": std,
                    "ci_low": low,
                    "ci_high": high,
                    "resolved": resolved,
                }
            )
    return rows
