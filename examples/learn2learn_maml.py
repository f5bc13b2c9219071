#!/usr/bin/env python
"""learn2learn's MAML example loop: as is (learn2learn_maml.py) and with TaskMix (learn2learn_maml_taskmix.py).

The structure of learn2learn's examples/vision/maml_miniimagenet.py (``fast_adapt`` with its
even/odd ``adaptation_indices``, ``accuracy``, ``MAML``, ``clone``, ``adapt``; the step's tasks
are sampled into a list and averages divide by its length), on a small
synthetic dataset so that it runs in seconds anywhere: 20 Gaussian classes in 16 dimensions,
tasks made by ``NWays``, ``KShots``, ``LoadData``, ``RemapLabels``, ``ConsecutiveLabels``.

    python examples/learn2learn_maml.py
    python examples/learn2learn_maml_taskmix.py
    diff examples/learn2learn_maml.py examples/learn2learn_maml_taskmix.py   # three lines
"""
import argparse
import random

import learn2learn as l2l
import numpy as np
import torch
from learn2learn.utils import accuracy
from torch import nn


def make_taskset(ways, shots, num_tasks=-1, num_classes=20, per_class=20, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = 2 * torch.randn(num_classes, dim, generator=g)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    data = centres[labels] + torch.randn(len(labels), dim, generator=g)
    dataset = l2l.data.MetaDataset(torch.utils.data.TensorDataset(data, labels))
    transforms = [
        l2l.data.transforms.NWays(dataset, ways),
        l2l.data.transforms.KShots(dataset, 2 * shots),
        l2l.data.transforms.LoadData(dataset),
        l2l.data.transforms.RemapLabels(dataset),
        l2l.data.transforms.ConsecutiveLabels(dataset),
    ]
    return l2l.data.Taskset(dataset, task_transforms=transforms, num_tasks=num_tasks)


def fast_adapt(batch, learner, loss, adaptation_steps, shots, ways, device):
    data, labels = batch
    data, labels = data.to(device), labels.to(device)

    # Separate data into adaptation/evalutation sets
    adaptation_indices = np.zeros(data.size(0), dtype=bool)
    adaptation_indices[np.arange(shots * ways) * 2] = True
    evaluation_indices = torch.from_numpy(~adaptation_indices)
    adaptation_indices = torch.from_numpy(adaptation_indices)
    adaptation_data, adaptation_labels = data[adaptation_indices], labels[adaptation_indices]
    evaluation_data, evaluation_labels = data[evaluation_indices], labels[evaluation_indices]

    # Adapt the model
    for step in range(adaptation_steps):
        train_error = loss(learner(adaptation_data), adaptation_labels)
        learner.adapt(train_error)

    # Evaluate the adapted model
    predictions = learner(evaluation_data)
    evaluation_error = loss(predictions, evaluation_labels)
    evaluation_accuracy = accuracy(predictions, evaluation_labels)
    return evaluation_error, evaluation_accuracy


def main(ways=5, shots=1, meta_lr=0.003, fast_lr=0.5, meta_batch_size=8, adaptation_steps=1,
         num_iterations=60, num_tasks=-1, seed=42, verbose=False):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    device = torch.device("cpu")

    taskset = make_taskset(ways, shots, num_tasks=num_tasks, seed=0)
    test_taskset = make_taskset(ways, shots, seed=1)  # other classes: the meta-test tasks

    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, ways))
    maml = l2l.algorithms.MAML(model, lr=fast_lr, first_order=False)
    opt = torch.optim.Adam(maml.parameters(), meta_lr)
    loss = nn.CrossEntropyLoss(reduction="mean")

    history = []
    for iteration in range(num_iterations):
        opt.zero_grad()
        meta_train_error = 0.0
        meta_train_accuracy = 0.0
        batches = [taskset.sample() for task in range(meta_batch_size)]
        for batch in batches:
            learner = maml.clone()
            evaluation_error, evaluation_accuracy = fast_adapt(batch, learner, loss, adaptation_steps, shots, ways, device)
            evaluation_error.backward()
            meta_train_error += evaluation_error.item()
            meta_train_accuracy += evaluation_accuracy.item()
        history.append(meta_train_error / len(batches))
        if verbose and iteration % 10 == 0:
            print(f"iteration {iteration}: meta-train error {meta_train_error / len(batches):.3f}, "
                  f"accuracy {meta_train_accuracy / len(batches):.3f}")

        # Average the accumulated gradients over the step's tasks and optimize
        for p in maml.parameters():
            p.grad.data.mul_(1.0 / len(batches))
        opt.step()

    meta_test_accuracy = 0.0
    for task in range(32):
        learner = maml.clone()
        _, evaluation_accuracy = fast_adapt(test_taskset.sample(), learner, loss, adaptation_steps, shots, ways, device)
        meta_test_accuracy += evaluation_accuracy.item() / 32
    if verbose:
        print(f"meta-test accuracy {meta_test_accuracy:.3f}")
    return maml, history, meta_test_accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--num-tasks", type=int, default=-1, help="learn2learn's task-description cache (-1: none)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    main(num_iterations=args.iterations, num_tasks=args.num_tasks, seed=args.seed, verbose=True)
