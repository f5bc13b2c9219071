"""Accuracy that takes the soft labels of TaskMix and MetaMix as well as integer labels.

learn2learn's ``accuracy`` compares ``argmax`` predictions with integer targets, so it fails on
the soft labels of a synthetic task. :func:`accuracy` is a drop-in: on integer targets it gives
the same value; on soft targets ``(n, C)`` it gives the expected accuracy, the mean over rows of
the probability the label puts on the predicted class (one-hot rows give the usual accuracy).

Example::

    >>> import torch
    >>> from l2l_taskmix import accuracy
    >>> logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 1.0]])
    >>> float(accuracy(logits, torch.tensor([0, 1, 1, 1])))
    0.75
    >>> float(accuracy(logits, torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.5, 0.5]])))
    0.5
"""

from __future__ import annotations

import torch

from .losses import check_soft_labels

__all__ = ["accuracy"]


def accuracy(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The share of rows whose ``argmax`` prediction is right, as a float tensor.

    ``predictions``: logits or probabilities, shape ``(n, C)`` with ``n >= 1``, no NaN.
    ``targets``: integer labels in ``[0, C)`` of shape ``(n,)``, or soft labels of shape
    ``(n, C)`` whose rows are probabilities (then each row counts the probability its label
    gives to the predicted class). Anything else is a ``ValueError``: a number computed from
    out-of-range or unnormalized targets would look like an accuracy and not be one.
    """
    if predictions.dim() != 2:
        raise ValueError(f"accuracy: predictions must have shape (n, C), got {tuple(predictions.shape)}")
    if targets.shape[0] != predictions.shape[0]:
        raise ValueError(f"accuracy: {predictions.shape[0]} predictions but {targets.shape[0]} targets")
    if predictions.shape[0] == 0:
        raise ValueError("accuracy: no predictions (0 rows); the accuracy of nothing is undefined")
    if bool(torch.isnan(predictions).any()):
        raise ValueError("accuracy: predictions contain NaN (did the model's training diverge?)")
    num_classes = predictions.shape[1]
    predicted = predictions.argmax(dim=1)
    if targets.dim() == 2 and targets.dtype.is_floating_point:
        if targets.shape[1] != num_classes:
            raise ValueError(f"accuracy: soft targets have {targets.shape[1]} classes, predictions {num_classes}")
        check_soft_labels(targets, "accuracy: targets")
        return targets.gather(1, predicted[:, None]).sum().float() / targets.shape[0]
    targets = targets.reshape(-1)
    if targets.dtype == torch.bool or targets.is_complex():
        raise ValueError(f"accuracy: targets must be class indices or soft labels, got dtype {targets.dtype}")
    if targets.dtype.is_floating_point and not bool(torch.equal(targets, targets.round())):
        raise ValueError("accuracy: 1-D targets must be class indices; give soft labels as an (n, C) tensor")
    low, high = targets.min().item(), targets.max().item()
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise ValueError(
            f"accuracy: target {bad:g} is outside the {num_classes} classes of the predictions (targets must be in [0, {num_classes}))"
        )
    return (predicted.long() == targets.long()).sum().float() / targets.shape[0]
