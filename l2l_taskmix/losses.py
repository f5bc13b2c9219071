"""Soft labels: the one cross-entropy that takes class probabilities.

TaskMix and MetaMix make soft labels (rows of probabilities over C classes), so every loss of
the package, the MAML inner and outer losses and multi-task learning's, is
:func:`soft_cross_entropy`. For one task's ``(n, C)`` logits it is PyTorch's own
``torch.nn.functional.cross_entropy`` with probability targets; for stacked tasks
``(tasks, n, C)`` (the vectorized MAML engine) it returns one mean per task.

Example::

    >>> import torch
    >>> from l2l_taskmix.losses import soft_cross_entropy
    >>> logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    >>> Y = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    >>> bool(soft_cross_entropy(logits, Y) == torch.nn.functional.cross_entropy(logits, Y))
    True
    >>> soft_cross_entropy(torch.zeros(3, 4, 2), torch.full((3, 4, 2), 0.5)).shape  # one per task
    torch.Size([3])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["soft_cross_entropy", "check_soft_labels"]


def check_soft_labels(y: torch.Tensor, what: str = "soft labels") -> torch.Tensor:
    """Return ``y`` if every row (last dimension) is a probability vector, else ``ValueError``.

    Finite, non-negative, summing to one up to rounding in ``y``'s dtype: soft labels that sum
    to 1.8 or hold a NaN would otherwise train and score silently wrong. ``what`` names them in
    the message.

    Example::

        >>> check_soft_labels(torch.tensor([[0.5, 0.5]])).shape
        torch.Size([1, 2])
        >>> check_soft_labels(torch.tensor([[0.9, 0.9]]), "task 0")
        Traceback (most recent call last):
        ...
        ValueError: task 0: soft label rows must sum to 1, row 0 sums to 1.8
    """
    if not y.dtype.is_floating_point:
        raise ValueError(f"{what}: soft labels must be floating point, got {y.dtype}")
    tolerance = max(1e-4, 4 * torch.finfo(y.dtype).eps * max(y.shape[-1], 1))
    sums = y.sum(-1).reshape(-1)
    if bool(((sums - 1).abs() <= tolerance).all()) and (not y.numel() or bool(y.min() >= 0)):
        return y  # the common case in one pass: a NaN fails the sums' test, an inf the sums' or the minimum's
    if not bool(torch.isfinite(y).all()):
        raise ValueError(f"{what}: soft labels contain NaN or infinite values")
    if y.numel() and bool((y < 0).any()):
        raise ValueError(f"{what}: soft labels must be non-negative, found {float(y.min()):.4g}")
    bad = torch.nonzero((sums - 1).abs() > tolerance).flatten()
    if bad.numel():
        row = int(bad[0])
        raise ValueError(f"{what}: soft label rows must sum to 1, row {row} sums to {float(sums[row]):.4g}")
    return y


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``-(targets * log_softmax(logits)).sum(-1)``.

    ``logits`` and ``targets`` have shape ``(n, C)`` (a scalar comes back) or ``(tasks, n, C)``
    (one value per task). ``targets`` are probabilities; one-hot rows give the usual loss.
    """
    if logits.dim() <= 2:
        return F.cross_entropy(logits, targets)
    return -(targets * F.log_softmax(logits, dim=-1)).sum(-1).mean(-1)
