#!/usr/bin/env python
"""Regenerate every table and figure the README shows, timing each command.

Each step is the command a user would type (run here as a subprocess of this Python); its
outputs land under ``--root`` (default ``runs/``) and the README quotes them. Runs are reused
from the run stores, so a rerun after a change of defaults redoes exactly what changed (the run
key includes the package version). The timings, the date and the load average before and after
each step go to ``benchmarks/results/readme_figures.md`` (and ``.json``), which the README quotes;
the figures it embeds are then copied into ``docs/figures/`` and the reports its tables quote
into ``benchmarks/results/readme/``.

    python benchmarks/readme_figures.py                    # everything (70 minutes on 2 cores at 0.5.0)
    python benchmarks/readme_figures.py --steps main,sweep-n
    python benchmarks/readme_figures.py --steps ''  # only copy the figures and reports

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
        "tables": [sys.executable, str(ROOT / "benchmarks" / "reproduce_tables.py"), "--out", root, "--no-progress"],
        "sweep-n": [*sweep, "num_synthetic"],
        "sweep-tasks": [*sweep, "train_subset"],
        "sweep-eta": [*sweep, "eta"],
        "sweep-horizon": [*sweep, "iterations"],
        "sweep-tasks-wide": [*CLI, "sweep", "--dataset", "mtop-wide", "--out", f"{root}/mtop-wide", "--no-progress",
                             "--over", "train_subset"],
        "seeds": [*CLI, "benchmark", "--dataset", "mtop-long", "--protocols", "paper", "--seeds", "10",
                  "--out", f"{root}/mtop-long-10seeds", "--no-progress"],
        "seeds-select": [*CLI, "benchmark", "--dataset", "mtop-long", "--protocols", "select", "--seeds", "10",
                         "--out", f"{root}/mtop-long-10seeds-select", "--no-progress"],
    }


#: The figures the README embeds: (produced file under --root, copy under docs/figures/).
FIGURES = [
    ("mtop-long/results.png", "mtop-long-results.png"),
    ("mtop-long/curves.png", "mtop-long-curves.png"),
    ("mtop-long/sweep_num_synthetic.png", "mtop-long-sweep-num_synthetic.png"),
    ("mtop-long/sweep_train_subset.png", "mtop-long-sweep-train_subset.png"),
    ("mtop-long/sweep_eta.png", "mtop-long-sweep-eta.png"),
    ("mtop-long/sweep_iterations.png", "mtop-long-sweep-iterations.png"),
    ("mtop-wide/sweep_train_subset.png", "mtop-wide-sweep-train_subset.png"),
    ("mtop-wide/results.png", "mtop-wide-results.png"),
    ("nbest/results.png", "nbest-results.png"),
]


#: The reports the README's tables quote: (produced file under --root, copy under benchmarks/results/readme/).
REPORTS = [
    ("mtop-long/results.md", "mtop-long.md"),
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
    """Copy the reports the README quotes from ``root`` into ``benchmarks/results/readme/``
    (those that exist), so every table in the README has a committed source."""
    return _copy(root, REPORTS, ROOT / "benchmarks" / "results" / "readme")


def collect(root: str) -> list[str]:
    """Copy the README's figures from ``root`` into ``docs/figures/`` (those that exist)."""
    return _copy(root, FIGURES, ROOT / "docs" / "figures")


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
    args = parser.parse_args(argv)
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
        done[name] = {"command": " ".join(shown), "seconds": round(seconds, 1), "version": _version(),
                      "started": started, "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
                      "cpus": os.cpu_count()}
        record_path.parent.mkdir(parents=True, exist_ok=True)
        current = json.loads(record_path.read_text()) if record_path.exists() else {}  # another run may have added steps
        done = {**current, name: done[name]}
        record_path.write_text(json.dumps(done, indent=1))
        print(f"== {name}: {seconds:.0f} s", file=sys.stderr, flush=True)
    lines = ["| Step | Command | Wall time | Started | Load (1 min) before / after | Version |", "|---|---|---:|---|---|---|"]
    for name, row in done.items():
        lines.append(f"| {name} | `{row['command']}` | {row['seconds'] / 60:.1f} min | {row['started']} | "
                     f"{row['load_before']} / {row['load_after']} | {row.get('version', '0.4.0')} |")
    record_path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if not args.no_collect:
        print(f"copied into docs/figures/: {', '.join(collect(args.root)) or 'nothing'}")
        print(f"copied into benchmarks/results/readme/: {', '.join(collect_reports(args.root)) or 'nothing'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
