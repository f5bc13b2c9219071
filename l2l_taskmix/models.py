"""The paper's classifier: frozen encoder -> neck (Linear + PReLU layers) -> linear head.

It takes cached features (the fast path: the encoder ran once, see :mod:`l2l_taskmix.features`)
or, when built with an ``encoder``, raw utterances (the encoder runs, frozen, under
``torch.no_grad``).

Example::

    >>> import torch
    >>> from l2l_taskmix.models import IntentClassifier
    >>> model = IntentClassifier(in_features=768, num_classes=14, hidden=(256, 256))
    >>> model(torch.randn(4, 768)).shape
    torch.Size([4, 14])
    >>> class Toy:                                       # anything with encode(texts) -> (n, d)
    ...     def encode(self, texts):
    ...         return torch.tensor([[float(len(t)), 1.0] for t in texts])
    >>> IntentClassifier(2, 3, hidden=(4,), encoder=Toy())(["set an alarm", "hi"]).shape
    torch.Size([2, 3])
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
    classes uses the first outputs. The model works on encoder features; given an ``encoder``
    (an object with ``encode(texts) -> FloatTensor[n, in_features]``, such as
    :func:`l2l_taskmix.encoders.get_encoder`'s) it also accepts a list of utterances. The
    encoder is frozen: an ``nn.Module`` encoder is registered with ``requires_grad=False``, so
    wrap the model as ``learn2learn.algorithms.MAML(model, lr, allow_nograd=True)``.

    Attributes:
        neck: ``nn.Sequential`` of ``Linear``/``PReLU`` layers.
        head: the final ``nn.Linear``.
        encoder: the frozen encoder or ``None``.
    """

    def __init__(self, in_features: int, num_classes: int, hidden: Sequence[int] = (256, 256), encoder=None):
        super().__init__()
        if encoder is not None and not callable(getattr(encoder, "encode", None)):
            raise TypeError(f"encoder must have an encode(texts) method, got {type(encoder).__name__}")
        if isinstance(encoder, nn.Module):
            encoder.requires_grad_(False)
            encoder.eval()
        self.encoder = encoder
        if int(in_features) <= 0:
            raise ValueError(f"in_features must be positive, got {in_features}")
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.in_features = int(in_features)
        self.num_classes = int(num_classes)
        self.hidden = tuple(int(h) for h in hidden)
        self.neck = make_neck(self.in_features, self.hidden)
        self.head = nn.Linear(self.hidden[-1] if self.hidden else self.in_features, self.num_classes)

    def features(self, texts: Sequence[str]) -> torch.Tensor:
        """The frozen encoder's features of ``texts``."""
        if self.encoder is None:
            raise ValueError("this IntentClassifier has no encoder: pass features, or build it with encoder=...")
        with torch.no_grad():
            x = torch.as_tensor(self.encoder.encode(list(texts)), dtype=torch.float32)
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"the encoder gave features of shape {tuple(x.shape)}, expected (n, {self.in_features})")
        return x.to(self.head.weight.device)

    def forward(self, x: torch.Tensor | Sequence[str]) -> torch.Tensor:
        if isinstance(x, str):
            x = [x]
        if not isinstance(x, torch.Tensor):
            x = self.features(x)
        return self.head(self.neck(x))
