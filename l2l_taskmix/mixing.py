"""The pure maths of MixUp across and within tasks: no state, no I/O.

Every random draw goes through a ``torch.Generator`` that the caller passes.

Example::

    >>> import torch
    >>> from l2l_taskmix import mixing
    >>> g = torch.Generator().manual_seed(0)
    >>> lam = mixing.sample_lambda(0.5, generator=g)            # lam ~ Beta(0.5, 0.5)
    >>> y = mixing.mix(mixing.one_hot(torch.tensor([0]), 3),
    ...                mixing.one_hot(torch.tensor([2]), 3), lam)
    >>> float(y.sum())
    1.0
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .validation import check_scalar

__all__ = ["DEFAULT_ETA", "check_eta", "sample_lambda", "mix", "one_hot", "sample_pairs", "class_layout"]

#: The Beta(eta, eta) parameter of TaskMix and MetaMix unless one is given: 1.0, uniform lambda.
#: Chosen on the meta-validation tasks of the bundled sample (see "How the defaults were chosen"
#: in the benchmark page of the documentation, docs/benchmark.md).
DEFAULT_ETA = 1.0


def check_eta(eta: float) -> float:
    """Return ``eta`` as a float: a finite number > 0 (``TypeError``/``ValueError`` otherwise)."""
    return check_scalar(eta, "eta", float, min_val=0, include_boundaries="neither")


def sample_lambda(
    eta: float,
    size: int | Sequence[int] = (),
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Draw mixing coefficients ``lam ~ Beta(eta, eta)`` of the given ``size``.

    The draw is exact (NumPy's Beta sampler) and is seeded from ``generator``: the same
    generator state gives the same coefficients, and the generator advances by one draw.
    """
    eta = check_eta(eta)
    shape = (int(size),) if isinstance(size, int) else tuple(int(s) for s in size)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    values = np.random.default_rng(seed).beta(eta, eta, size=shape)
    return torch.as_tensor(values, dtype=dtype)


def mix(a: torch.Tensor, b: torch.Tensor, lam: torch.Tensor | float) -> torch.Tensor:
    """MixUp: ``lam * a + (1 - lam) * b``.

    ``lam`` is a scalar or a tensor that broadcasts against ``a`` (for one coefficient per row,
    give it shape ``(n, 1)``), within ``[0, 1]`` (NaN is an error, not a NaN result).
    ``lam = 1`` returns ``a`` and ``lam = 0`` returns ``b`` exactly.
    """
    if a.shape != b.shape:
        raise ValueError(f"cannot mix tensors of different shapes {tuple(a.shape)} and {tuple(b.shape)}")
    inside = (lam >= 0) & (lam <= 1)  # NaN fails both comparisons
    if not (bool(inside.all()) if isinstance(lam, torch.Tensor) else inside):
        bad = lam[~inside].flatten()[0] if isinstance(lam, torch.Tensor) else lam
        raise ValueError(f"lam == {float(bad)}, must be in [0, 1] (MixUp's coefficient)")
    lam = torch.as_tensor(lam, dtype=a.dtype, device=a.device)
    return lam * a + (1 - lam) * b


def _check_labels(labels: torch.Tensor) -> torch.Tensor:
    """``labels`` as a tensor of integer class labels of shape ``(n,)`` (``ValueError`` otherwise)."""
    labels = torch.as_tensor(labels)
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.is_complex():
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    if labels.dim() != 1:
        raise ValueError(f"labels must have shape (n,), got {tuple(labels.shape)}")
    return labels


def one_hot(labels: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Integer labels of shape ``(n,)`` to one-hot rows of shape ``(n, num_classes)``.

    ``num_classes`` is the common label space C (the largest task's class count), so tasks with
    fewer classes still mix with the others. A label outside ``[0, num_classes)`` is an error.
    """
    labels = _check_labels(labels)
    num_classes = check_scalar(num_classes, "num_classes", int, min_val=1)
    if labels.numel():
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= num_classes:
            bad = low if low < 0 else high
            raise ValueError(f"label {bad} is outside num_classes={num_classes} (labels must be in [0, {num_classes}))")
    return torch.nn.functional.one_hot(labels.long(), int(num_classes)).to(dtype)


def sample_pairs(num_available: int, num_pairs: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw ``num_pairs`` task pairs ``(i, j)``, uniformly over ordered pairs with ``i != j``.

    Returns a long tensor of shape ``(num_pairs, 2)``. Mixing a task with itself would give the
    task back, so the two indices differ; this needs ``num_available >= 2``.
    """
    num_pairs = check_scalar(num_pairs, "num_pairs", int, min_val=0)
    if num_pairs and int(num_available) < 2:
        raise ValueError(f"need at least two tasks to mix, got {num_available}")
    if not num_pairs:
        return torch.empty((0, 2), dtype=torch.long)
    i = torch.randint(0, num_available, (num_pairs,), generator=generator)
    # j uniform over the other num_available - 1 tasks
    j = torch.randint(0, num_available - 1, (num_pairs,), generator=generator)
    j = j + (j >= i).long()
    return torch.stack([i, j], dim=1)


def class_layout(labels: torch.Tensor) -> torch.Tensor:
    """Each row's class slot: the task's classes numbered ``0, 1, ...`` in order of first appearance.

    Two tasks have the same layout when their rows fall into classes the same way, whatever the
    label numbers: ``KShots`` output of equal ways and shots always does, so row ``r`` of either
    task is in the same class slot. Labels are integers of shape ``(n,)``.

    Example::

        >>> import torch
        >>> class_layout(torch.tensor([3, 3, 0, 0, 4, 4])).tolist()
        [0, 0, 1, 1, 2, 2]
    """
    labels = _check_labels(labels).cpu()
    _, codes = torch.unique(labels, return_inverse=True)
    n = labels.shape[0]
    first = torch.full((int(codes.max()) + 1 if n else 0,), n, dtype=torch.long)
    first = first.scatter_reduce(0, codes, torch.arange(n), reduce="amin")
    rank = torch.empty_like(first)
    rank[torch.argsort(first)] = torch.arange(first.shape[0])
    return rank[codes]
