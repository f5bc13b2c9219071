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

__all__ = ["accuracy"]


def accuracy(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The share of rows whose ``argmax`` prediction is right, as a float tensor.

    ``predictions``: logits or probabilities, shape ``(n, C)``. ``targets``: integer labels of
    shape ``(n,)``, or soft labels of shape ``(n, C)`` (then each row counts the probability its
    label gives to the predicted class).
    """
    if predictions.dim() != 2:
        raise ValueError(f"accuracy: predictions must have shape (n, C), got {tuple(predictions.shape)}")
    if targets.shape[0] != predictions.shape[0]:
        raise ValueError(f"accuracy: {predictions.shape[0]} predictions but {targets.shape[0]} targets")
    predicted = predictions.argmax(dim=1)
    if targets.dim() == 2 and targets.dtype.is_floating_point:
        if targets.shape[1] != predictions.shape[1]:
            raise ValueError(f"accuracy: soft targets have {targets.shape[1]} classes, predictions {predictions.shape[1]}")
        return targets.gather(1, predicted[:, None]).sum().float() / targets.shape[0]
    targets = targets.reshape(-1)
    if targets.dtype.is_floating_point and not torch.equal(targets, targets.round()):
        raise ValueError("accuracy: 1-D targets must be class indices; give soft labels as an (n, C) tensor")
    return (predicted.long() == targets.long()).sum().float() / targets.shape[0]
