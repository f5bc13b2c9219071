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

__all__ = ["soft_cross_entropy"]


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``-(targets * log_softmax(logits)).sum(-1)``.

    ``logits`` and ``targets`` have shape ``(n, C)`` (a scalar comes back) or ``(tasks, n, C)``
    (one value per task). ``targets`` are probabilities; one-hot rows give the usual loss.
    """
    if logits.dim() <= 2:
        return F.cross_entropy(logits, targets)
    return -(targets * F.log_softmax(logits, dim=-1)).sum(-1).mean(-1)
