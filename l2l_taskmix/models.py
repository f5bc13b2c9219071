"""The paper's classifier: frozen features -> neck (Linear + PReLU layers) -> linear head.

Example::

    >>> import torch
    >>> from l2l_taskmix.models import IntentClassifier
    >>> model = IntentClassifier(in_features=768, num_classes=14, hidden=(256, 256))
    >>> model(torch.randn(4, 768)).shape
    torch.Size([4, 14])
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["IntentClassifier", "make_neck"]


def make_neck(in_features: int, hidden: Sequence[int]) -> nn.Sequential:
    """A stack of ``Linear + PReLU`` layers of the given widths (empty ``hidden``: identity)."""
    layers: list[nn.Module] = []
    width = in_features
    for size in hidden:
        if int(size) <= 0:
            raise ValueError(f"neck layer sizes must be positive integers, got {list(hidden)}")
        layers += [nn.Linear(width, int(size)), nn.PReLU()]
        width = int(size)
    return nn.Sequential(*layers)


class IntentClassifier(nn.Module):
    """Neck of ``Linear + PReLU`` layers and a linear head with ``num_classes`` outputs.

    ``num_classes`` is the largest task's class count (the paper's MAML head); a task with fewer
    classes uses the first outputs. The model works on encoder features; the encoder itself is
    frozen and lives outside (see :mod:`l2l_taskmix.features`).

    Attributes:
        neck: ``nn.Sequential`` of ``Linear``/``PReLU`` layers.
        head: the final ``nn.Linear``.
    """

    def __init__(self, in_features: int, num_classes: int, hidden: Sequence[int] = (256, 256)):
        super().__init__()
        if int(in_features) <= 0:
            raise ValueError(f"in_features must be positive, got {in_features}")
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.in_features = int(in_features)
        self.num_classes = int(num_classes)
        self.hidden = tuple(int(h) for h in hidden)
        self.neck = make_neck(self.in_features, self.hidden)
        self.head = nn.Linear(self.hidden[-1] if self.hidden else self.in_features, self.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.neck(x))
