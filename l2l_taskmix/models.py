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

import math
from typing import Sequence

import torch
from torch import nn

from .validation import check_scalar

__all__ = ["IntentClassifier", "DEFAULT_HIDDEN", "make_neck", "make_model", "reset_parameters"]

#: The paper's neck: two 256-wide ``Linear + PReLU`` layers.
DEFAULT_HIDDEN = (256, 256)


def make_neck(in_features: int, hidden: Sequence[int]) -> nn.Sequential:
    """A stack of ``Linear + PReLU`` layers of the given widths (empty ``hidden``: identity)."""
    layers: list[nn.Module] = []
    width = in_features
    for k, size in enumerate(hidden):
        size = check_scalar(size, f"hidden[{k}]", int, min_val=1)
        layers += [nn.Linear(width, size), nn.PReLU()]
        width = size
    return nn.Sequential(*layers)


class IntentClassifier(nn.Module):
    """Neck of ``Linear + PReLU`` layers and a linear head with ``num_classes`` outputs.

    ``num_classes`` is the largest task's class count (the paper's MAML head); a task with fewer
    classes uses the first outputs. The model works on encoder features; given an ``encoder``
    (an object with ``encode(texts) -> FloatTensor[n, in_features]``, such as
    :func:`l2l_taskmix.features.get_encoder`'s) it also accepts a list of utterances. The
    encoder is frozen: an ``nn.Module`` encoder is registered with ``requires_grad=False``, so
    wrap the model as ``learn2learn.algorithms.MAML(model, lr, allow_nograd=True)``.

    Attributes:
        neck: ``nn.Sequential`` of ``Linear``/``PReLU`` layers.
        head: the final ``nn.Linear``.
        encoder: the frozen encoder or ``None``.
    """

    def __init__(self, in_features: int, num_classes: int, hidden: Sequence[int] = DEFAULT_HIDDEN, encoder=None):
        super().__init__()
        if encoder is not None and not callable(getattr(encoder, "encode", None)):
            raise TypeError(f"encoder must have an encode(texts) method, got {type(encoder).__name__}")
        if isinstance(encoder, nn.Module):
            encoder.requires_grad_(False)
            encoder.eval()
        self.encoder = encoder
        self.in_features = check_scalar(in_features, "in_features", int, min_val=1)
        self.num_classes = check_scalar(num_classes, "num_classes", int, min_val=2)
        self.neck = make_neck(self.in_features, hidden)
        self.hidden = tuple(layer.out_features for layer in self.neck if isinstance(layer, nn.Linear))
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


def reset_parameters(module: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Re-initialize every ``nn.Linear`` (PyTorch's default scheme) and ``nn.PReLU`` (0.25) of
    ``module`` in place, drawing from ``generator`` instead of the global RNG."""
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            with torch.no_grad():
                nn.init.kaiming_uniform_(sub.weight, a=math.sqrt(5), generator=generator)
                if sub.bias is not None:
                    bound = 1.0 / math.sqrt(sub.in_features) if sub.in_features > 0 else 0.0
                    nn.init.uniform_(sub.bias, -bound, bound, generator=generator)
        elif isinstance(sub, nn.PReLU):
            with torch.no_grad():
                sub.weight.fill_(0.25)
    return module


def make_model(
    in_features: int, num_classes: int, hidden: Sequence[int] = DEFAULT_HIDDEN, generator: torch.Generator | None = None
) -> IntentClassifier:
    """An :class:`IntentClassifier` initialized from ``generator`` (the global RNG is not drawn
    from: the layers are built on the meta device, then initialized).

    Example::

        >>> g = torch.Generator().manual_seed(0)
        >>> a, b = make_model(8, 3, (4,), g), make_model(8, 3, (4,), torch.Generator().manual_seed(0))
        >>> bool(torch.equal(a.head.weight, b.head.weight))
        True
    """
    with torch.device("meta"):
        model = IntentClassifier(in_features, num_classes, hidden=hidden)
    model = model.to_empty(device="cpu")
    return reset_parameters(model, generator)
