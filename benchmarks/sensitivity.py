"""How far the main table moves under rounding-level perturbations a user's machine brings,
against the seed-to-seed spread.

The main command's grid (``l2l-taskmix benchmark``, the bundled sample, default settings, or
what ``--methods``/``--seeds``/``--protocols`` keep of it) is run as a reference (2 workers of
1 thread, the fast engine) and again under each perturbation:

* ``threads``: 2 torch threads per run instead of 1 (another reduction order in the kernels,
  as another thread count or another CPU's kernels give);
* ``ulp``: every feature moved by one unit in the last place, up or down at random (seeded):
  what another encoder build or BLAS gives the same texts;
* ``engine``: learn2learn's clone/adapt MAML loop instead of the vectorized engine (the same
  maths, another order of operations); MAML methods only, paper protocol only, as the other
  methods do not use the engine (``--engine-protocols`` to change).

For each perturbation: per (protocol, method), the mean macro-F1's shift from the reference
against the seed-to-seed std; per run, the shift of its macro-F1; per paired difference
(:func:`~l2l_taskmix.benchmark.statistics.paired_differences`), the shift of its mean and whether
it is resolved there. The flip-free margin (:func:`stable_margin`) is the smallest margin, in
steps of 0.001, that is at least the largest shift of a paired difference's mean and at which
no difference is resolved under one perturbation and not under the reference, or the other way
round. The margin the outputs use (:data:`~l2l_taskmix.benchmark.statistics.ROUNDING_MARGIN`)
is ``benchmarks/variance.py``'s, which sets these reruns against the seed-to-seed spread. Results go to ``--out``
(JSON) and a Markdown report beside it; ``--report-only`` rewrites both from the JSON.

Usage::

    python benchmarks/sensitivity.py                 # over half an hour on a 2-core CPU
    python benchmarks/sensitivity.py --seeds 1 --methods mtl,maml --iterations 20   # a smoke run
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))
if str(ROOT / "benchmarks") not in sys.path:  # the sibling scripts, also when loaded from a file path
    sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import cpu_model  # noqa: E402

PERTURBATIONS = ("threads", "ulp", "engine")


def say(text: str) -> None:
    print(f"[sensitivity] {text}", flush=True)


def nudge(data, seed: int = 0):
    """``data`` with every feature one ulp up or down (a seeded coin per value)."""
    from l2l_taskmix.benchmark import BenchmarkData

    g = torch.Generator().manual_seed(seed)

    def move(task):
        up = torch.rand(task.x.shape, generator=g) < 0.5
        x = task.x.float()
        return task.with_x(
            torch.where(up, torch.nextafter(x, torch.full_like(x, math.inf)), torch.nextafter(x, torch.full_like(x, -math.inf)))
        )

    return BenchmarkData([move(t) for t in data.train], [move(t) for t in data.test], dict(data.info))


def resolved(low: float, high: float, margin: float) -> bool:
    """Whether the interval ``[low, high]``, widened by ``margin`` on both sides, excludes 0."""
    return bool(low - margin > 0 or high + margin < 0)


def stable_margin(perturbations: dict, most: float = 1.0) -> float:
    """The smallest margin (a multiple of 0.001) no smaller than the largest shift of a paired
    difference's mean at which no difference's verdict differs between the reference and a
    perturbation.

    Example::

        >>> one = {"differences": [{"shift": 0.002, "reference_ci": [0.004, 0.05], "ci_low": -0.001, "ci_high": 0.045}]}
        >>> stable_margin({"ulp": one})
        0.004
    """
    diffs = [d for v in perturbations.values() for d in v["differences"] if not math.isnan(d["shift"])]
    margin = math.ceil(round(max((abs(d["shift"]) for d in diffs), default=0.0) * 1000, 6)) / 1000
    while margin < most and any(resolved(*d["reference_ci"], margin) != resolved(d["ci_low"], d["ci_high"], margin) for d in diffs):
        margin = round(margin + 0.001, 3)
    return margin


def finish(result: dict) -> dict:
    """``result`` with its spread, margin and verdicts at the margin worked out from its runs' figures."""
    seed_stds = [r["macro_f1_std"] for r in result["reference"]["summary"]]
    diff_stds = [r["diff_std"] for r in result["reference"]["paired"] if not math.isnan(r["diff_std"])]
    perturbations = result["perturbations"].values()
    result["spread"] = {
        "max_run_shift": max((v["max_run_shift"] for v in perturbations if v["max_run_shift"] is not None), default=0.0),
        "max_mean_shift": max((v["max_mean_shift"] for v in perturbations), default=0.0),
        "max_difference_shift": max((v["max_difference_shift"] for v in perturbations), default=0.0),
        "median_seed_std": float(sorted(seed_stds)[len(seed_stds) // 2]) if seed_stds else None,
        "median_diff_std": float(sorted(diff_stds)[len(diff_stds) // 2]) if diff_stds else None,
        "recommended_mean_shift": math.ceil(round(max((v["max_mean_shift"] for v in perturbations), default=0.0) * 1000, 6)) / 1000,
        "recommended_margin": stable_margin(result["perturbations"]),
    }
    margin = result["spread"]["recommended_margin"]
    for shifts in result["perturbations"].values():  # the verdicts at that margin, reference and perturbed
        for d in shifts["differences"]:
            d["resolved_with_margin"] = resolved(d["ci_low"], d["ci_high"], margin)
            d["reference_resolved_with_margin"] = resolved(*d["reference_ci"], margin)
        shifts["flips_with_margin"] = sum(d["resolved_with_margin"] != d["reference_resolved_with_margin"] for d in shifts["differences"])
    result["reference"]["resolved_with_margin"] = [
        f"{r['protocol']}: {r['method']} - {r['reference']}"
        for r in result["reference"]["paired"]
        if resolved(r["ci_low"], r["ci_high"], margin)
    ]
    return result


def grid(config, out: Path, data, workers: int, threads: int) -> tuple[list[dict], float]:
    from l2l_taskmix.benchmark.grid import run_grid
    from l2l_taskmix.benchmark.workers import make_executor

    start = time.perf_counter()
    with make_executor(data, workers=workers, threads=threads, progress=False) as executor:
        runs, _, _ = run_grid(config, out, data, progress=False, echo=False, executor=executor)
    return runs, time.perf_counter() - start


def compare(reference: list[dict], perturbed: list[dict], methods) -> dict:
    """Shifts of ``perturbed`` from ``reference`` (the runs both have)."""
    from l2l_taskmix.benchmark.statistics import paired_differences, summarize

    key = {(r["protocol"], r["method"], r["seed"]): r["macro_f1"] for r in reference}
    common = [r for r in perturbed if (r["protocol"], r["method"], r["seed"]) in key]
    mine = {(r["protocol"], r["method"], r["seed"]) for r in common}
    base = [r for r in reference if (r["protocol"], r["method"], r["seed"]) in mine]
    runs = [
        {
            "protocol": r["protocol"],
            "method": r["method"],
            "seed": r["seed"],
            "shift": r["macro_f1"] - key[(r["protocol"], r["method"], r["seed"])],
        }
        for r in common
    ]
    a, b = summarize(base, methods), summarize(common, methods)
    means = []
    for ra, rb in zip(a.itertuples(index=False), b.itertuples(index=False)):
        means.append(
            {
                "protocol": ra.protocol,
                "method": ra.method,
                "reference": ra.macro_f1_mean,
                "perturbed": rb.macro_f1_mean,
                "shift": rb.macro_f1_mean - ra.macro_f1_mean,
                "seed_std": ra.macro_f1_std,
            }
        )
    pa, pb = paired_differences(base, methods, margin=0.0), paired_differences(common, methods, margin=0.0)
    diffs = []
    for ra, rb in zip(pa.itertuples(index=False), pb.itertuples(index=False)):
        diffs.append(
            {
                "protocol": ra.protocol,
                "difference": f"{ra.method} - {ra.reference}",
                "reference": ra.mean_diff,
                "perturbed": rb.mean_diff,
                "shift": rb.mean_diff - ra.mean_diff,
                "diff_std": ra.diff_std,
                "resolved_reference": bool(ra.resolved),
                "resolved_perturbed": bool(rb.resolved),
                "ci_low": rb.ci_low,
                "ci_high": rb.ci_high,
                "reference_ci": [ra.ci_low, ra.ci_high],
            }
        )
    return {
        "runs": runs,
        "means": means,
        "differences": diffs,
        "max_run_shift": max((abs(r["shift"]) for r in runs), default=0.0),
        "max_mean_shift": max((abs(m["shift"]) for m in means), default=0.0),
        "max_difference_shift": max((abs(d["shift"]) for d in diffs if not math.isnan(d["shift"])), default=0.0),
        "flips": [d for d in diffs if d["resolved_reference"] != d["resolved_perturbed"]],
    }


def compare_machine(result: dict, other: dict) -> dict:
    """Shifts of another machine's benchmark (its ``results.json``: the same grid) from the
    reference's means and paired differences; its runs' scores are compared by mean only, as the
    reference keeps no per-run scores."""
    theirs = {(r["protocol"], r["method"]): r for r in other["summary"]}
    means = [
        {
            "protocol": r["protocol"],
            "method": r["method"],
            "reference": r["macro_f1_mean"],
            "perturbed": theirs[(r["protocol"], r["method"])]["macro_f1_mean"],
            "shift": theirs[(r["protocol"], r["method"])]["macro_f1_mean"] - r["macro_f1_mean"],
            "seed_std": r["macro_f1_std"],
        }
        for r in result["reference"]["summary"]
        if (r["protocol"], r["method"]) in theirs
    ]
    paired = {(r["protocol"], r["method"], r["reference"]): r for r in other["paired"]}
    diffs = []
    for ra in result["reference"]["paired"]:
        rb = paired.get((ra["protocol"], ra["method"], ra["reference"]))
        if rb is None:
            continue
        rb_resolved = resolved(rb["ci_low"], rb["ci_high"], 0.0) if rb["seeds"] > 1 else False
        diffs.append(
            {
                "protocol": ra["protocol"],
                "difference": f"{ra['method']} - {ra['reference']}",
                "reference": ra["mean_diff"],
                "perturbed": rb["mean_diff"],
                "shift": rb["mean_diff"] - ra["mean_diff"],
                "diff_std": ra["diff_std"],
                "resolved_reference": bool(ra["resolved"]),
                "resolved_perturbed": rb_resolved,
                "ci_low": rb["ci_low"],
                "ci_high": rb["ci_high"],
                "reference_ci": [ra["ci_low"], ra["ci_high"]],
            }
        )
    if not means or len(diffs) != len(result["reference"]["paired"]):
        raise SystemExit(
            f"--machine: its results.json does not hold the reference's grid ({len(means)} means and {len(diffs)} of "
            f"{len(result['reference']['paired'])} paired differences in common)"
        )
    return {
        "runs": [],
        "runs_compared": len(other.get("runs", [])),
        "means": means,
        "differences": diffs,
        "max_run_shift": None,
        "max_mean_shift": max(abs(m["shift"]) for m in means),
        "max_difference_shift": max((abs(d["shift"]) for d in diffs if not math.isnan(d["shift"])), default=0.0),
        "flips": [d for d in diffs if d["resolved_reference"] != d["resolved_perturbed"]],
    }


def main(argv=None) -> int:
    from l2l_taskmix import __version__
    from l2l_taskmix.benchmark import BenchmarkConfig
    from l2l_taskmix.benchmark.config import parse_list
    from l2l_taskmix.benchmark.methods import get_method
    from l2l_taskmix.benchmark.runner import load_data
    from l2l_taskmix.benchmark.statistics import ROUNDING_MARGIN, paired_differences, summarize

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mtop-long")
    p.add_argument("--methods", default=None, help="comma-separated [default: the six]")
    p.add_argument("--seeds", type=int, default=None, help="[default: the benchmark's]")
    p.add_argument("--protocols", default=None, help="[default: paper,select]")
    p.add_argument("--iterations", type=int, default=None, help="a smoke run's shorter training [default: the benchmark's]")
    p.add_argument("--finetune-steps", type=int, default=None, help="a smoke run's shorter fine-tuning [default: the benchmark's]")
    p.add_argument("--perturbations", default=",".join(PERTURBATIONS), help=f"comma-separated, of {', '.join(PERTURBATIONS)}")
    p.add_argument("--engine-protocols", default="paper", help="protocols of the engine perturbation [default: paper]")
    p.add_argument("--workers", type=int, default=2, help="runs at once (1 thread each) for the reference and the 1-thread perturbations")
    p.add_argument("--runs", default="runs/sensitivity", help="run stores, one folder per perturbation (reused on a rerun)")
    p.add_argument("--out", default="benchmarks/results/sensitivity.json")
    p.add_argument("--report-only", action="store_true", help="rework the margin and rewrite the report from --out's figures")
    p.add_argument(
        "--machine",
        default=None,
        metavar="RESULTS_JSON",
        help="with --report-only: add another machine's `l2l-taskmix benchmark` results.json (the same grid) as a perturbation",
    )
    p.add_argument("--machine-how", default="another machine", help="how --machine's machine differs, for the report")
    args = p.parse_args(argv)
    out = Path(args.out) if Path(args.out).is_absolute() else ROOT / args.out
    if args.machine and not args.report_only:
        p.error("--machine goes with --report-only")
    if args.report_only:
        result = json.loads(out.read_text())
        if args.machine:
            other = json.loads(Path(args.machine).read_text())
            shifts = compare_machine(result, other)
            shifts.update(how=args.machine_how, seconds=0.0, version=other.get("versions", {}).get("l2l-taskmix"))
            result["perturbations"]["machine"] = shifts
        result = finish(result)
        out.write_text(json.dumps(result, indent=2) + "\n")
        out.with_suffix(".md").write_text(report(result))
        say(f"margin {result['spread']['recommended_margin']} (in use {ROUNDING_MARGIN}); rewrote {out} and its report")
        return 0

    values = {"dataset": args.dataset}
    if args.methods:
        values["methods"] = tuple(parse_list(args.methods, "methods", str))
    if args.seeds:
        values["seeds"] = args.seeds
    if args.protocols:
        values["protocols"] = tuple(parse_list(args.protocols, "protocols", str))
    if args.iterations:
        values.update(iterations=args.iterations, eval_every=max(1, args.iterations // 4))
    if args.finetune_steps is not None:
        values["finetune_steps"] = args.finetune_steps
    config = BenchmarkConfig.from_sources(values)
    perturbations = [x.strip() for x in args.perturbations.split(",") if x.strip()]
    unknown = set(perturbations) - set(PERTURBATIONS)
    if unknown:
        p.error(f"--perturbations: unknown {', '.join(sorted(unknown))} (known: {', '.join(PERTURBATIONS)})")
    runs_root = Path(args.runs)
    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_start = os.getloadavg()[0]
    data = load_data(config, progress=False)
    say(
        f"{config.dataset}: {len(data.train)} meta-training and {len(data.test)} meta-test tasks; grid of "
        f"{len(config.protocols) * len(config.methods) * config.seeds} runs (load {load_start:.2f})"
    )

    reference, seconds = grid(config, runs_root / "reference", data, args.workers, 1)
    say(f"reference: {len(reference)} runs in {seconds:.0f} s")
    result = {
        "version": __version__,
        "date": started,
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "load_before": round(load_start, 2),
        "config": {
            "dataset": config.dataset,
            "methods": list(config.methods),
            "seeds": config.seeds,
            "protocols": list(config.protocols),
            "iterations": config.iterations,
            "finetune_steps": config.finetune_steps,
        },
        "reference": {
            "seconds": round(seconds, 1),
            "how": f"{args.workers} workers x 1 thread, engine {config.engine}",
            "summary": summarize(reference, config.methods).to_dict("records"),
            "paired": paired_differences(reference, config.methods, margin=0.0).to_dict("records"),
        },
        "perturbations": {},
    }
    for name in perturbations:
        if name == "threads":
            runs, seconds = grid(config, runs_root / "threads", data, 1, 2)
            how = "1 worker x 2 torch threads per run"
        elif name == "ulp":
            runs, seconds = grid(config, runs_root / "ulp", nudge(data), args.workers, 1)
            how = "every feature one ulp up or down (seeded), standardized as usual"
        else:
            maml = tuple(m for m in config.methods if get_method(m).keeps_head and get_method(m).trains)
            protocols = tuple(x for x in parse_list(args.engine_protocols, "engine_protocols", str) if x in config.protocols)
            if not maml or not protocols:
                continue
            runs, seconds = grid(
                config.replace(engine="l2l", methods=maml, protocols=protocols), runs_root / "engine", data, args.workers, 1
            )
            how = (
                f"learn2learn's MAML loop (engine l2l) instead of the vectorized engine; {', '.join(maml)}; {', '.join(protocols)} protocol"
            )
        shifts = compare(reference, runs, config.methods)
        shifts.update(how=how, seconds=round(seconds, 1))
        result["perturbations"][name] = shifts
        say(
            f"{name} ({how}): {len(runs)} runs in {seconds:.0f} s; largest shift of a run {shifts['max_run_shift']:.4f}, "
            f"of a mean {shifts['max_mean_shift']:.4f}, of a paired difference {shifts['max_difference_shift']:.4f}; "
            f"{len(shifts['flips'])} resolved/not-resolved flip(s) at margin 0"
        )
    finish(result)
    result["seconds"] = round(sum(v["seconds"] for v in result["perturbations"].values()) + result["reference"]["seconds"], 1)
    result["load_after"] = round(os.getloadavg()[0], 2)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(report(result))
    s = result["spread"]
    say(
        f"largest shift of a paired difference {s['max_difference_shift']:.4f} (recommended margin {s['recommended_margin']}, "
        f"in use {ROUNDING_MARGIN}); "
        f"of a mean {s['max_mean_shift']:.4f}; median seed std {s['median_seed_std']}; wrote {out}"
    )
    return 0


def report(result: dict) -> str:
    """The Markdown report (what the results pages quote)."""
    s = result["spread"]
    lines = [
        f"# Rounding sensitivity of the main table ({result['config']['dataset']})",
        "",
        f"`python benchmarks/sensitivity.py`, {result['date']}, l2l-taskmix {result['version']}, {result['cpus']} CPUs "
        f"({result['machine']}), torch {result['torch']}; load {result['load_before']} before, {result['load_after']} after; "
        f"{result['seconds'] / 60:.0f} min of runs. Grid: {', '.join(result['config']['methods'])} x "
        f"{result['config']['seeds']} seeds x {', '.join(result['config']['protocols'])}.",
        "",
        "| Perturbation | Runs | Largest shift of a run's macro-F1 | of a mean | of a paired difference "
        "| flips at margin 0 | at the margin |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, v in result["perturbations"].items():
        runs, run_shift = (len(v["runs"]), f"{v['max_run_shift']:.4f}") if v["max_run_shift"] is not None else (v["runs_compared"], "n/a")
        lines.append(
            f"| {name}: {v['how']} | {runs} | {run_shift} | {v['max_mean_shift']:.4f} | "
            f"{v['max_difference_shift']:.4f} | {len(v['flips'])} | {v['flips_with_margin']} |"
        )
    lines += [
        "",
        f"Against the seed-to-seed spread: median std over seeds of a mean {s['median_seed_std']:.4f}, median per-seed std "
        f"of a paired difference {s['median_diff_std']:.4f}. Largest shift of a paired difference's mean under a "
        f"perturbation: {s['max_difference_shift']:.4f}. The flip-free margin is {s['recommended_margin']}: the smallest "
        "(in steps of 0.001, no smaller than that shift) at which no difference is resolved under a perturbation and "
        "not under the reference or the other way round (a difference resolved only if its 95% interval, widened by "
        "the margin on both sides, excludes 0). At that margin the reference resolves "
        f"{len(result['reference']['resolved_with_margin'])} of {len(result['reference']['paired'])} differences"
        + (f" ({', '.join(result['reference']['resolved_with_margin'])})." if result["reference"]["resolved_with_margin"] else ".")
        + " The margin the outputs use is not this one: benchmarks/variance.py sets these reruns against the seed-to-seed "
        "spread and keeps only what rounding adds beyond it (statistics.ROUNDING_MARGIN).",
        "",
    ]
    for name, v in result["perturbations"].items():
        lines += [
            f"## {name}",
            "",
            "| Protocol | Difference | reference | perturbed | shift | resolved at 95%: reference / perturbed; "
            "with the margin: reference / perturbed |",
            "| --- | --- | ---: | ---: | ---: | --- |",
        ]
        for d in v["differences"]:
            yn = lambda b: "yes" if b else "no"  # noqa: E731
            lines.append(
                f"| {d['protocol']} | {d['difference']} | {d['reference']:+.4f} | {d['perturbed']:+.4f} | {d['shift']:+.4f} | "
                f"{yn(d['resolved_reference'])} / {yn(d['resolved_perturbed'])}; {yn(d['reference_resolved_with_margin'])} / "
                f"{yn(d['resolved_with_margin'])} |"
            )
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
