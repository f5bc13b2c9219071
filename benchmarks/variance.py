"""Where the main table's spread comes from: the meta-training seed, the support/test draw, rounding.

Each (method, seed) is meta-trained once (paper protocol, default settings) and its model scored
on ``--draws`` support/test draws of the same tasks (``evaluation.evaluate_over_draws``: draw 0
is the benchmark's one draw of that seed, the others :func:`~l2l_taskmix.benchmark.evaluation.draw_seeds`).
For each method's Average Macro F1 and each paired difference (method - maml, method - mtl; the
draws of a seed are shared by its methods, so a difference is taken draw by draw) the
``(seeds, draws)`` table is split by the one-way random-effects decomposition
(:func:`~l2l_taskmix.benchmark.statistics.variance_components`) into the seed's variance and the
draw's.

Two grids, the same runs otherwise:

* ``dev`` (what the default is chosen on): ``--holdout`` meta-training tasks, fixed for every
  seed, are held out of meta-training and scored like meta-test tasks. The default number of
  draws (``BenchmarkConfig.test_draws``) is chosen here, on meta-training tasks only: the fewest
  draws at which the main command, within 1.5x its time at one draw, resolves a 0.02 paired
  difference at 95% with its 3 seeds, else the fewest within 0.001 of the best it can resolve
  within that time. The time is the main command's own, timed at one draw and at more
  (``--report-only --time-main SEEDS``), else estimated from the runs' training and draw times.
* ``test`` (for information): the real meta-test tasks, the main table's.

Rounding is not rerun: ``benchmarks/results/sensitivity.json`` holds the main grid rerun under
another thread count, features one ulp off, the other MAML engine and another CPU. Its per-run
shifts give rounding's variance (half the mean squared shift of a run); its means are checked
against the reference's 95% seed intervals (coverage) and its shifts against what another draw
of the seeds would give (the seed interval holds a perturbation that behaves like a seed draw).

Results go to ``--out`` (JSON, with every run's per-draw scores) and a Markdown report beside
it; ``--report-only`` reworks both from the JSON.

Usage::

    python benchmarks/variance.py                    # about half an hour on a 2-core CPU
    python benchmarks/variance.py --seeds 2 --draws 2 --methods mtl,maml --iterations 20 --out /tmp/v.json   # a smoke run
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))
if str(ROOT / "benchmarks") not in sys.path:  # the sibling scripts, also when loaded from a file path
    sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import cpu_model  # noqa: E402

from l2l_taskmix.benchmark.statistics import GOAL_DIFFERENCE  # noqa: E402

#: The held-out meta-training tasks of the dev grid are drawn with this seed (the same for every run).
HOLDOUT_SEED = 31337
#: The goal: a paired difference of statistics.GOAL_DIFFERENCE resolved at 95% by the main command
#: in at most this many times its run time at one draw.
TIME_BUDGET = 1.5
REFERENCES = ("maml", "mtl")


def say(text: str) -> None:
    print(f"[variance] {text}", flush=True)


def holdout_data(data, holdout: int):
    """``data`` with ``holdout`` of its meta-training tasks (seeded, :data:`HOLDOUT_SEED`) as its
    meta-test tasks and the rest as its meta-training tasks."""
    from l2l_taskmix.benchmark import BenchmarkData

    if not 1 <= holdout < len(data.train):
        raise ValueError(f"--holdout {holdout}: give 1 .. {len(data.train) - 1} (there are {len(data.train)} meta-training tasks)")
    rng = np.random.default_rng(HOLDOUT_SEED)
    held = sorted(int(i) for i in rng.choice(len(data.train), size=holdout, replace=False))
    train = [t for i, t in enumerate(data.train) if i not in held]
    test = [data.train[i] for i in held]
    return BenchmarkData(train, test, {**data.info, "held_out": [t.name for t in test]})


def job(data, grid: str, method: str, seed: int, config_values: dict, draws: int, progress: bool = False) -> dict:
    """One (grid, method, seed): meta-train (paper protocol), then score on ``draws`` draws."""
    from l2l_taskmix.benchmark import BenchmarkConfig
    from l2l_taskmix.benchmark.evaluation import draw_seeds, evaluate_draws, make_splits
    from l2l_taskmix.benchmark.run import fit_run

    config = BenchmarkConfig.from_sources(config_values)
    part = data[grid]
    start = time.perf_counter()
    run = fit_run(method, seed, part.train, part.test, config, protocol="paper", progress=False)
    trained = time.perf_counter() - start
    begin = time.perf_counter()  # evaluation.evaluate_over_draws's draws, each task's score kept
    draw_list = [(make_splits(run.test_side, config.shots, config.fraction, seed=s), s) for s in draw_seeds(seed, draws)]
    scores = evaluate_draws(run.trained.model, method, run.test_side, draw_list, finetune=config.finetune)
    evaluation = time.perf_counter() - begin
    return {
        "grid": grid,
        "method": method,
        "seed": int(seed),
        "draws": [float(np.mean(list(d.values()))) for d in scores],
        "per_task_draws": {name: [d[name] for d in scores] for name in scores[0]},
        "training_seconds": round(trained, 3),
        "evaluation_seconds": round(evaluation, 3),
    }


def tables(runs: list[dict], grid: str, methods: list[str]) -> dict[str, np.ndarray]:
    """``{name: (seeds, draws) table}`` of each method's score and each paired difference."""
    by = {(r["method"], r["seed"]): r["draws"] for r in runs if r["grid"] == grid}
    seeds = sorted({s for (_, s) in by})
    out = {}
    for m in methods:
        if all((m, s) in by for s in seeds):
            out[m] = np.array([by[(m, s)] for s in seeds], dtype=float)
    for ref in REFERENCES:
        for m in methods:
            if m != ref and m in out and ref in out and f"{ref} - {m}" not in out:  # each pair once (the main table has both signs)
                out[f"{m} - {ref}"] = out[m] - out[ref]
    return out


def decompose(runs: list[dict], grid: str, methods: list[str]) -> list[dict]:
    from l2l_taskmix.benchmark.statistics import variance_components

    rows = []
    for name, table in tables(runs, grid, methods).items():
        c = variance_components(table)
        c["name"] = name
        c["kind"] = "difference" if " - " in name else "method"
        c["draw_share_at_1"] = c["draw_var"] / (c["seed_var"] + c["draw_var"]) if c["seed_var"] + c["draw_var"] > 0 else 0.0
        rows.append(c)
    return rows


def rounding(sensitivity: dict) -> dict:
    """Rounding against the seeds, from ``sensitivity.json``: per perturbation, rounding's
    per-run variance (half the mean squared shift of a run: a shift is the difference of two
    runs' rounding), its ratio to the seed-to-seed variance of one run, the coverage of the
    reference's 95% seed intervals over the perturbed means (methods and paired differences),
    and ``z2``: the mean of (shift of a mean / its std were the perturbed run another draw of
    the seeds)^2, about 1 for a perturbation that behaves like another draw of the seeds."""
    from scipy import stats

    ref = {(r["protocol"], r["method"]): r for r in sensitivity["reference"]["summary"]}
    paired = {(r["protocol"], f"{r['method']} - {r['reference']}"): r for r in sensitivity["reference"]["paired"]}
    out = {}
    for name, v in sensitivity["perturbations"].items():
        shifts = [r["shift"] for r in v.get("runs", [])]
        seed_vars = []
        for r in v.get("runs", []):
            seed_vars.append(ref[(r["protocol"], r["method"])]["macro_f1_std"] ** 2)
        z2, covered, total = [], 0, 0
        for m in v["means"]:
            s = ref[(m["protocol"], m["method"])]
            n = s["seeds"]
            half = stats.t.ppf(0.975, n - 1) * s["macro_f1_std"] / math.sqrt(n)
            total += 1
            covered += abs(m["perturbed"] - m["reference"]) <= half
            if s["macro_f1_std"] > 0:
                z2.append(m["shift"] ** 2 / (2 * s["macro_f1_std"] ** 2 / n))
        d_cov, d_total, dz2 = 0, 0, []
        for d in v["differences"]:
            low, high = d["reference_ci"]
            if math.isnan(low):
                continue
            d_total += 1
            d_cov += low <= d["perturbed"] <= high
            n = paired[(d["protocol"], d["difference"])]["seeds"]
            if d["diff_std"] > 0:
                dz2.append(d["shift"] ** 2 / (2 * d["diff_std"] ** 2 / n))
        run_var = float(np.mean(np.square(shifts)) / 2) if shifts else None
        out[name] = {
            "how": v["how"],
            "runs": len(shifts),
            "run_var": run_var,
            "run_var_over_seed_var": (run_var / float(np.mean(seed_vars))) if shifts and np.mean(seed_vars) > 0 else None,
            "mean_coverage": [int(covered), int(total)],
            "difference_coverage": [int(d_cov), int(d_total)],
            "mean_z2": float(np.mean(z2)) if z2 else None,
            "difference_z2": float(np.mean(dz2)) if dz2 else None,
        }
    return out


def choose_draws(
    dev: list[dict], time_per_run: dict, seeds: int = 3, most: int = 64, task_ratio: float = 1.0, main: dict | None = None
) -> dict:
    """The default number of draws from the dev grid: the per-seed std of a paired difference
    at ``k`` draws is ``sqrt(seed_var + task_ratio * draw_var / k)`` (the median over the
    differences of their variance at ``k``). ``task_ratio``: the dev grid's tasks over the
    main table's meta-test tasks (a draw splits each task on its own seed and fine-tunes each
    task's copy on its own, so the draw part of a mean over ``K`` tasks is the tasks' mean draw
    variance over ``K``; the seed part, one model for every task, is not scaled). The main
    command's time at ``k`` draws, relative to one, is, where ``main`` (:func:`time_main`) timed the
    main command itself at 1 and ``D`` draws, ``1 + (k - 1) * (ratio - 1) / (D - 1)``; else
    ``(train + k * eval) / (train + eval)`` (seconds per run, measured). The fewest ``k``
    within :data:`TIME_BUDGET` whose resolvable difference is at most :data:`GOAL_DIFFERENCE`,
    else the fewest within 0.001 of the best within the budget."""
    from l2l_taskmix.benchmark.statistics import resolvable_difference

    diffs = [r for r in dev if r["kind"] == "difference"]
    train, per_draw = time_per_run["training"], time_per_run["evaluation_per_draw"]

    def std_at(k: int) -> float:
        return float(math.sqrt(np.median([r["seed_var"] + task_ratio * r["draw_var"] / k for r in diffs])))

    rows = []
    for k in range(1, most + 1):
        if main:
            timed = main["runs"][1]["test_draws"]
            ratio = 1 + (k - 1) * (main["ratio"] - 1) / (timed - 1)
        else:
            ratio = (train + k * per_draw) / (train + per_draw)
        if ratio > TIME_BUDGET and k > 1:
            break
        rows.append({"draws": k, "time_ratio": ratio, "diff_std": std_at(k), "resolvable": resolvable_difference(std_at(k), seeds)})
    hit = [r for r in rows if r["resolvable"] <= GOAL_DIFFERENCE]
    if hit:
        chosen, why = hit[0], f"the fewest draws at which {seeds} seeds resolve {GOAL_DIFFERENCE}"
    else:
        best = min(r["resolvable"] for r in rows)
        chosen = next(r for r in rows if r["resolvable"] <= best + 0.001)
        why = f"no draw count within {TIME_BUDGET}x the time resolves {GOAL_DIFFERENCE}: the fewest within 0.001 of the best ({best:.4f})"
    seeds_needed = {}
    from l2l_taskmix.benchmark.statistics import seeds_to_resolve

    for k in sorted({1, chosen["draws"]}):
        seeds_needed[k] = seeds_to_resolve(std_at(k), delta=GOAL_DIFFERENCE)
    return {"options": rows, "chosen": chosen, "why": why, "seeds_for_goal": seeds_needed, "task_ratio": task_ratio}


def analyse(result: dict, sensitivity: dict | None) -> dict:
    c = result["config"]
    methods = c["methods"]
    runs = result["runs"]
    result["components"] = {g: decompose(runs, g, methods) for g in result["config"]["grids"]}
    test_runs = [r for r in runs if r["grid"] == "test"] or runs
    draws = result["config"]["draws"]
    result["time_per_run"] = {
        "training": float(np.mean([r["training_seconds"] for r in test_runs])),
        "evaluation_per_draw": float(np.mean([r["evaluation_seconds"] for r in test_runs]) / draws),
    }
    if "dev" in result["components"]:
        ratio = c["holdout"] / c["test_tasks"] if "test_tasks" in c else 1.0
        result["default"] = choose_draws(
            result["components"]["dev"], result["time_per_run"], task_ratio=ratio, main=result.get("main_command")
        )
        if "test" in result["components"]:  # the same rule on the meta-test tasks, for information only
            result["test_would_choose"] = choose_draws(
                result["components"]["test"], result["time_per_run"], main=result.get("main_command")
            )
    if sensitivity is not None:
        result["rounding"] = rounding(sensitivity)
        result["margin"] = margin_from(result["rounding"])
    return result


def margin_from(measured: dict) -> dict:
    """The rounding margin the measurement supports. Where every perturbation's means lie in the
    reference's 95% seed intervals and moved less than another draw of the seeds would move them
    (``mean_z2 < 1``), a perturbed run is no more than another draw of what the seeds already
    vary, so the seed interval holds it: no margin. Else the extra variance: the 95% half-width
    of the largest rounding variance of one run, on the difference of two 3-seed means, rounded
    up to 0.001."""
    like_seeds = all(r["mean_coverage"][0] == r["mean_coverage"][1] and (r["mean_z2"] or 0.0) < 1 for r in measured.values())
    if like_seeds:
        return {
            "value": 0.0,
            "why": "every perturbation moved the means less than another draw of the seeds and inside the 95% seed intervals",
        }
    extra = max((r["run_var"] or 0.0) for r in measured.values())
    value = math.ceil(round(1.96 * math.sqrt(2 * extra / 3) * 1000, 6)) / 1000
    return {
        "value": value,
        "why": "a perturbation moved the means beyond what the seeds explain: the 95% half-width of rounding's extra variance",
    }


def time_main(dataset: str, seeds: int, draws: int) -> dict:
    """The main command's wall time at ``test_draws`` 1 and ``draws``, one after the other, each
    into a fresh run store (the feature cache is shared: featurized already)."""
    import tempfile

    rows = []
    for k in (1, draws):
        with tempfile.TemporaryDirectory(prefix="l2l-variance-time-") as tmp:
            command = ["l2l-taskmix", "benchmark", "--dataset", dataset, "--seeds", str(seeds), "--test-draws", str(k)]
            before = os.getloadavg()
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "l2l_taskmix.cli", *command[1:], "--out", tmp, "--no-progress"],
                check=True,
                capture_output=True,
            )
            rows.append(
                {
                    "command": " ".join(command),
                    "test_draws": k,
                    "seconds": round(time.perf_counter() - start, 1),
                    "load_before": [round(x, 2) for x in before],
                    "load_after": [round(x, 2) for x in os.getloadavg()],
                }
            )
    return {"runs": rows, "ratio": round(rows[1]["seconds"] / rows[0]["seconds"], 3), "cpu_model": cpu_model()}


def commit_of() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mtop-long")
    p.add_argument("--methods", default=None, help="comma-separated [default: the six]")
    p.add_argument("--seeds", type=int, default=10, help="meta-training seeds per method and grid [default: 10]")
    p.add_argument("--draws", type=int, default=10, help="support/test draws per trained model [default: 10]")
    p.add_argument(
        "--holdout",
        type=int,
        default=2,
        help="meta-training tasks held out as the dev grid's tasks [default: 2, as the select protocol's val_tasks]",
    )
    p.add_argument("--grids", default="dev,test", help="dev (held-out meta-training tasks), test (meta-test tasks) [default: both]")
    p.add_argument("--iterations", type=int, default=None, help="a smoke run's shorter training [default: the benchmark's]")
    p.add_argument("--workers", type=int, default=2, help="runs at once, 1 thread each [default: 2]")
    p.add_argument("--sensitivity", default="benchmarks/results/sensitivity.json", help="the rounding reruns to read")
    p.add_argument("--out", default="benchmarks/results/variance.json")
    p.add_argument("--report-only", action="store_true", help="rework the analysis and the report from --out's runs")
    p.add_argument(
        "--time-main",
        type=int,
        default=None,
        metavar="SEEDS",
        help="with --report-only: time the main command (SEEDS seeds, fresh run stores) at test_draws 1 and at the chosen "
        "default, back to back, and add both times to --out",
    )
    args = p.parse_args(argv)
    if not args.report_only:  # what the decomposition needs, before hours of runs
        for flag, value, what in (("--seeds", args.seeds, "a between-seed variance"), ("--draws", args.draws, "a within-seed variance")):
            if value < 2:
                p.error(f"{flag} {value}: the decomposition needs {what}, so at least 2")
        if args.iterations is not None and args.iterations < 1:
            p.error(f"--iterations {args.iterations}: give at least 1, or leave it out for the benchmark's")
    out = Path(args.out)
    sens_path = Path(args.sensitivity)
    sensitivity = json.loads(sens_path.read_text()) if sens_path.is_file() else None
    if args.time_main is not None:
        if not args.report_only:
            p.error("--time-main goes with --report-only")
        result = json.loads(out.read_text())
        result["main_command"] = time_main(args.dataset, args.time_main, analyse(result, sensitivity)["default"]["chosen"]["draws"])
        write(out, analyse(result, sensitivity))
        say(f"main command: {result['main_command']}")
        return 0
    if args.report_only:
        result = analyse(json.loads(out.read_text()), sensitivity)
        write(out, result)
        say(f"rewrote {out} and its report")
        return 0

    from l2l_taskmix import __version__
    from l2l_taskmix.benchmark import BenchmarkConfig
    from l2l_taskmix.benchmark.config import parse_list
    from l2l_taskmix.benchmark.runner import load_data
    from l2l_taskmix.benchmark.workers import make_executor

    values = {"dataset": args.dataset}
    if args.methods:
        values["methods"] = tuple(parse_list(args.methods, "methods", str))
    if args.iterations is not None:
        values.update(iterations=args.iterations, eval_every=max(1, args.iterations // 4))
    config = BenchmarkConfig.from_sources(values)
    grids = [g.strip() for g in args.grids.split(",") if g.strip()]
    if not grids or set(grids) - {"dev", "test"}:
        p.error("--grids: dev and/or test")
    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    uptime_before = os.getloadavg()
    data = load_data(config, progress=False)
    parts = {"test": data, "dev": holdout_data(data, args.holdout)}
    say(
        f"{config.dataset}: {len(data.train)} meta-training tasks ({args.holdout} held out for dev: "
        f"{', '.join(parts['dev'].info['held_out'])}), {len(data.test)} meta-test tasks; load {uptime_before[0]:.2f}"
    )
    config_values = {k: v for k, v in values.items()}
    jobs = [(g, m, s) for s in range(args.seeds) for g in grids for m in config.methods]
    start = time.perf_counter()
    runs = []
    with make_executor(parts, workers=args.workers, threads=1, progress=False) as executor:
        futures = [executor.submit(job, g, m, s, config_values, args.draws) for (g, m, s) in jobs]
        for k, future in enumerate(futures):
            runs.append(future.result())
            r = runs[-1]
            if (k + 1) % (len(grids) * len(config.methods)) == 0:  # a seed done: keep what is finished
                from l2l_taskmix.files import atomic_write

                atomic_write(out.with_suffix(".partial.json"), json.dumps({"runs": runs}) + "\n")
            say(
                f"{k + 1}/{len(jobs)} {r['grid']} {r['method']} seed {r['seed']}: mean over draws {np.mean(r['draws']):.4f} "
                f"({r['training_seconds']:.0f} s training, {r['evaluation_seconds']:.1f} s for {args.draws} draws)"
            )
    seconds = time.perf_counter() - start
    result = {
        "version": __version__,
        "commit": commit_of(),
        "date": started,
        "command": "python benchmarks/variance.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "load_before": [round(x, 2) for x in uptime_before],
        "config": {
            "dataset": config.dataset,
            "methods": list(config.methods),
            "seeds": args.seeds,
            "draws": args.draws,
            "grids": grids,
            "protocol": "paper",
            "iterations": config.iterations,
            "holdout": args.holdout,
            "held_out": parts["dev"].info["held_out"],
            "test_tasks": len(data.test),
            "workers": args.workers,
        },
        "seconds": round(seconds, 1),
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "runs": runs,
    }
    result = analyse(result, sensitivity)
    write(out, result)
    say(f"{len(runs)} runs in {seconds:.0f} s; wrote {out}")
    return 0


def write(out: Path, result: dict) -> None:
    from l2l_taskmix.files import atomic_write, to_jsonable

    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, json.dumps(to_jsonable(result), indent=2) + "\n")
    atomic_write(out.with_suffix(".md"), report(result))


def report(result: dict) -> str:
    """The Markdown report (what the results page quotes)."""
    c = result["config"]
    lines = [
        f"# Where the spread comes from ({c['dataset']})",
        "",
        f"`{result['command']}`, {result['date']}, l2l-taskmix {result['version']} (commit {result.get('commit') or 'n/a'}), "
        f"{result['cpu_model']}, {result['cpus']} CPUs, torch {result['torch']}; load (1, 5, 15 min) "
        f"{', '.join(map(str, result['load_before']))} before, {', '.join(map(str, result['load_after']))} after; "
        f"{result['seconds'] / 60:.0f} min of runs ({c['workers']} workers of 1 thread). Each of "
        f"{', '.join(c['methods'])} meta-trained once per seed ({c['seeds']} seeds, {c['protocol']} protocol, "
        f"{c['iterations']} iterations) and scored on {c['draws']} support/test draws.",
        "",
        f"Grids: **dev**, {c['holdout']} meta-training tasks ({', '.join(c['held_out'])}) held out of meta-training and "
        "scored like meta-test tasks (the default is chosen here, on meta-training tasks only); **test**, the meta-test "
        "tasks (for information: never used to choose a default).",
        "",
        "Per score: its mean, the variance of the meta-training seed's effect (`seed`), of the support/test draw's "
        "(`draw`, within a seed), and the draw's share of one run's variance at one draw. A run scored on k draws has "
        "variance seed + draw / k.",
        "",
    ]
    for grid in c["grids"]:
        lines += [
            f"## {grid}",
            "",
            "| Score | mean | seed std | draw std | draw's share at 1 draw |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for r in result["components"][grid]:
            lines.append(
                f"| {r['name']} | {r['mean']:+.4f} | {math.sqrt(r['seed_var']):.4f} | {math.sqrt(r['draw_var']):.4f} | "
                f"{r['draw_share_at_1']:.0%} |"
            )
        lines.append("")
    t = result["time_per_run"]
    d = result.get("default")
    if d:
        ch = d["chosen"]
        lines += [
            "## The default number of draws (dev grid)",
            "",
            f"Seconds per run: {t['training']:.1f} training, {t['evaluation_per_draw']:.2f} a draw (means over the test "
            "grid's runs). Time against one draw: "
            + (
                "from the main command timed at 1 and "
                f"{result['main_command']['runs'][1]['test_draws']} draws (below), linear in the draws between. "
                if result.get("main_command")
                else "(training + k draws) / (training + 1 draw). "
            )
            + "Per-seed std of a paired difference: the median over the differences of "
            f"sqrt(seed + {d['task_ratio']:g} x draw / k) ({c['holdout']} dev tasks against the main table's "
            f"{c.get('test_tasks', c['holdout'])} meta-test tasks: a draw moves each task on its own); resolvable: "
            "the half-width of the 95% interval with 3 seeds (the main command's).",
            "",
            "| draws | time vs 1 draw | per-seed std of a difference | resolvable with 3 seeds |",
            "| ---: | ---: | ---: | ---: |",
        ]
        for o in d["options"]:
            mark = " (chosen)" if o["draws"] == ch["draws"] else ""
            lines.append(f"| {o['draws']}{mark} | {o['time_ratio']:.2f}x | {o['diff_std']:.4f} | {o['resolvable']:.4f} |")
        seeds_for = " and ".join(
            f"{n if n is not None else 'more than 10,000'} seeds at {k} draw(s)" for k, n in d["seeds_for_goal"].items()
        )
        lines += [
            "",
            f"Chosen: {ch['draws']} draws ({d['why']}): {ch['time_ratio']:.2f}x the time, a per-seed std of "
            f"{ch['diff_std']:.4f}, so 3 seeds resolve a {ch['resolvable']:.3f} difference at 95%. A {GOAL_DIFFERENCE} "
            f"difference needs {seeds_for}.",
        ]
        mc = result.get("main_command")
        if mc:
            a, b = mc["runs"]
            lines += [
                "",
                f"The main command, timed on {mc['cpu_model']} back to back: `{a['command']}` {a['seconds']:.0f} s (load "
                f"{a['load_before'][0]} before), `{b['command']}` {b['seconds']:.0f} s (load {b['load_before'][0]} before): "
                f"{mc['ratio']:.2f}x.",
            ]
        w = result.get("test_would_choose")
        if w:
            lines += [
                "",
                f"The same rule on the meta-test tasks (information only) would choose {w['chosen']['draws']} draws "
                f"(per-seed std {w['chosen']['diff_std']:.4f}, resolvable with 3 seeds {w['chosen']['resolvable']:.3f}).",
            ]
        lines.append("")
    if "rounding" in result:
        lines += [
            "## Rounding against the seeds (benchmarks/results/sensitivity.json)",
            "",
            "Per perturbation: rounding's variance of one run (half the mean squared shift of a run) over the seed-to-seed "
            "variance; the reference's 95% seed intervals that hold the perturbed means (methods; paired differences); "
            "mean z² of the shift of a mean against what another draw of the seeds gives (1: like another draw).",
            "",
            "| Perturbation | runs | rounding / seed variance | means covered | differences covered | z² means | z² differences |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        na = "n/a"
        for name, r in result["rounding"].items():
            ratio = na if r["run_var_over_seed_var"] is None else f"{r['run_var_over_seed_var']:.3f}"
            z = lambda v: na if v is None else f"{v:.3f}"  # noqa: E731
            lines.append(
                f"| {name}: {r['how']} | {r['runs']} | {ratio} | {r['mean_coverage'][0]}/{r['mean_coverage'][1]} | "
                f"{r['difference_coverage'][0]}/{r['difference_coverage'][1]} | {z(r['mean_z2'])} | {z(r['difference_z2'])} |"
            )
        m = result["margin"]
        lines += ["", f"Rounding margin: {m['value']:g} ({m['why']}).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
