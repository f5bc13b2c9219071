"""Vectorized, exact MAML over all tasks of a meta-iteration.

learn2learn's :class:`~learn2learn.algorithms.MAML` adapts the tasks of a meta-iteration one
after another, cloning the module for each. For the paper's classifier (frozen features ->
``Linear + PReLU`` neck -> linear head) this module adapts all tasks at once and gives the same
meta-loss and the same meta-gradients (up to floating-point rounding), second-order or
first-order, for any number of inner steps:

* tasks of equal shapes are stacked; the shared weights are applied to all of them in one large
  matrix product;
* each task's adaptation is carried as corrections instead of per-task weight copies. An inner
  SGD step changes a linear layer ``W`` by ``-lr * D^T H`` (``H``: the layer's inputs on the
  support batch, ``D``: the loss gradient at its outputs), so ``A W'^T = A W^T - lr (A H^T) D``
  for any input ``A``: a product with a small Gram matrix replaces the per-task weight. For the
  first layer the inputs are the frozen features, the same at every step, so its Gram matrices
  are computed once and its corrections collapse to one running sum. Narrow layers (the head)
  are cheaper with per-task weights (``bmm``); ``strategy="auto"`` picks per layer by a flop
  count;
* the inner-loop gradients are written out by hand as differentiable tensor operations, so
  autograd differentiates through them exactly as through learn2learn's
  ``grad(..., create_graph=True)`` (second order), or they are computed without a graph
  (``first_order=True``, learn2learn's first-order semantics).

Parameters with ``requires_grad=False`` are not adapted, as learn2learn's ``MAML`` does with
``allow_nograd=True``.

Example::

    >>> import torch, learn2learn as l2l
    >>> from l2l_taskmix.models import IntentClassifier
    >>> from l2l_taskmix.engine import fast_outer_loss, l2l_outer_loss
    >>> _ = torch.manual_seed(0)
    >>> model = IntentClassifier(16, 3, hidden=(8,)).double()
    >>> Y = torch.eye(3, dtype=torch.float64)[torch.arange(6) % 3]
    >>> tasks = [(torch.randn(6, 16, dtype=torch.float64), Y, torch.randn(6, 16, dtype=torch.float64), Y)
    ...          for _ in range(4)]
    >>> fast = fast_outer_loss(model, tasks, inner_lr=0.1, inner_steps=2)
    >>> ref = l2l_outer_loss(l2l.algorithms.MAML(model, lr=0.1, allow_nograd=True), tasks, inner_steps=2)
    >>> bool(torch.allclose(fast, ref, rtol=1e-12))
    True
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import mixing
from .losses import check_soft_labels, soft_cross_entropy
from .models import IntentClassifier
from .validation import check_choice, check_scalar

__all__ = [
    "UnsupportedModelError",
    "check_supported",
    "fast_outer_loss",
    "l2l_outer_loss",
    "BatchedMAML",
    "STRATEGIES",
    "import_learn2learn",
]

#: How per-task adaptations of linear layers after the first are carried: ``"auto"`` (per
#: layer, whichever needs fewer flops), ``"lowrank"`` (Gram-matrix corrections everywhere) or
#: ``"dense"`` (stacked per-task weights and ``bmm`` everywhere, the first layer included).
STRATEGIES = ("auto", "lowrank", "dense")


class UnsupportedModelError(ValueError):
    """The module is not one the vectorized engine can adapt (use learn2learn's ``MAML``)."""


# --------------------------------------------------------------------------------------------
# Model inspection
# --------------------------------------------------------------------------------------------


@dataclass
class _Block:
    """One ``Linear`` and the ``PReLU`` that follows it (if any)."""

    linear: nn.Linear
    act: nn.PReLU | None


def _flatten(module: nn.Module, where: str) -> list[nn.Module]:
    if type(module) is nn.Sequential:
        out: list[nn.Module] = []
        for name, child in module.named_children():
            out += _flatten(child, f"{where}.{name}")
        return out
    if type(module) in (nn.Linear, nn.PReLU):
        return [module]
    raise UnsupportedModelError(
        f"fast MAML engine: unsupported module {where} ({type(module).__name__}); it handles "
        "Linear and PReLU layers (an IntentClassifier or an nn.Sequential of them)"
    )


def _blocks(model: nn.Module) -> list[_Block]:
    """The model as a chain of ``Linear (+ PReLU)`` blocks, or :class:`UnsupportedModelError`."""
    if isinstance(model, IntentClassifier):
        if type(model).forward is not IntentClassifier.forward:
            raise UnsupportedModelError(f"fast MAML engine: {type(model).__name__} overrides forward(); cannot vectorize it")
        layers = _flatten(model.neck, "neck") + _flatten(model.head, "head")
    elif type(model) is nn.Sequential or type(model) is nn.Linear:
        layers = _flatten(model, "model")
    else:
        raise UnsupportedModelError(
            f"fast MAML engine: unsupported model type {type(model).__name__}; it handles "
            "IntentClassifier and nn.Sequential of Linear/PReLU layers"
        )
    for mod in [model, *model.modules()]:
        if mod._forward_hooks or mod._forward_pre_hooks or mod._backward_hooks:
            raise UnsupportedModelError("fast MAML engine: modules with hooks are not supported")
    if not layers or not isinstance(layers[0], nn.Linear):
        raise UnsupportedModelError("fast MAML engine: the model must start with a Linear layer")
    blocks: list[_Block] = []
    for layer in layers:
        if isinstance(layer, nn.Linear):
            blocks.append(_Block(layer, None))
            continue
        prev = blocks[-1]
        if prev.act is not None:
            raise UnsupportedModelError("fast MAML engine: two PReLU layers in a row are not supported")
        n = layer.weight.numel()
        if n not in (1, prev.linear.out_features):
            raise UnsupportedModelError(f"fast MAML engine: PReLU with {n} parameters after a layer of width {prev.linear.out_features}")
        prev.act = layer
    for a, b in zip(blocks, blocks[1:]):
        if a.linear.out_features != b.linear.in_features:
            raise UnsupportedModelError(f"fast MAML engine: layer widths do not chain ({a.linear.out_features} -> {b.linear.in_features})")
    params = [p for p in model.parameters()]
    if len({(p.dtype, p.device) for p in params}) > 1:
        raise UnsupportedModelError("fast MAML engine: parameters of mixed dtypes or devices")
    if not params[0].is_floating_point():
        raise UnsupportedModelError("fast MAML engine: parameters must be floating point")
    return blocks


def import_learn2learn():
    """``import learn2learn``, or a ``ModuleNotFoundError`` that says how to install it.

    learn2learn is not a declared dependency: its 0.2.0 release does not install with pip on
    Python 3.11; ``python -m l2l_taskmix.install_learn2learn`` builds it.
    """
    try:
        import learn2learn
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] != "learn2learn":
            raise
        raise ModuleNotFoundError(
            "learn2learn is not installed (needed for engine='l2l' and the learn2learn examples); "
            "install it with: python -m l2l_taskmix.install_learn2learn",
            name="learn2learn",
        ) from None
    return learn2learn


def check_supported(model: nn.Module) -> None:
    """Raise :class:`UnsupportedModelError` unless :func:`fast_outer_loss` can adapt ``model``.

    Example::

        >>> from l2l_taskmix.models import IntentClassifier
        >>> check_supported(IntentClassifier(8, 3, hidden=(4, 4)))   # fine: returns None
        >>> try:
        ...     check_supported(torch.nn.Conv1d(1, 1, 3))
        ... except UnsupportedModelError as err:
        ...     print("fall back to learn2learn")
        fall back to learn2learn
    """
    if isinstance(model, nn.Module) and hasattr(model, "module") and hasattr(model, "adapt"):
        model = model.module  # a learn2learn MAML wrapper
    _blocks(model)


# --------------------------------------------------------------------------------------------
# Task handling
# --------------------------------------------------------------------------------------------


def _unpack(task: Any, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    if hasattr(task, "support") and hasattr(task, "query"):
        (xs, ys), (xq, yq) = task.support, task.query
        return xs, ys, xq, yq
    try:
        xs, ys, xq, yq = task
    except (TypeError, ValueError):
        raise ValueError(f"task {k}: expected (xs, ys, xq, yq) tensors or a Task, got {type(task).__name__}") from None
    return xs, ys, xq, yq


def _check_task(k: int, xs, ys, xq, yq, in_features: int, num_classes: int) -> None:
    for name, t in (("xs", xs), ("ys", ys), ("xq", xq), ("yq", yq)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"task {k}: {name} must be a tensor, got {type(t).__name__}")
        if t.dim() != 2:
            raise ValueError(f"task {k}: {name} must be 2-D, got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise ValueError(f"task {k}: {name} must be floating point (soft labels for ys, yq), got {t.dtype}")
    for name, x, y in (("support", xs, ys), ("query", xq, yq)):
        if x.shape[0] == 0:
            raise ValueError(f"task {k}: empty {name} part")
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"task {k}: {name} has {x.shape[0]} rows in x but {y.shape[0]} in y")
        if x.shape[1] != in_features:
            raise ValueError(f"task {k}: {name} features have width {x.shape[1]}, the model expects {in_features}")
        if y.shape[1] != num_classes:
            raise ValueError(f"task {k}: {name} labels have {y.shape[1]} columns, the model has {num_classes} outputs")


def _soft(y: Any, num_classes: int, x: Any, what: str) -> Any:
    """Integer labels ``(n,)`` as one-hot rows over the model's ``num_classes`` outputs; soft
    labels (anything else) as they are, for :func:`_check_task` to check."""
    if isinstance(y, torch.Tensor) and y.dim() == 1 and not y.dtype.is_floating_point and y.dtype != torch.bool:
        try:
            return mixing.one_hot(y, num_classes, dtype=x.dtype if isinstance(x, torch.Tensor) and x.is_floating_point() else torch.float32)
        except ValueError as err:
            raise ValueError(f"{what}: {err}") from None
    return y


def _check_labels(stacked: list[torch.Tensor], members: list[tuple[torch.Tensor, ...]], numbers: list[int]) -> None:
    """Soft labels of a stack of tasks must be probability rows: one check for the stack, and
    the task that fails named (:func:`~l2l_taskmix.losses.check_soft_labels`)."""
    for i, name in ((1, "support"), (3, "query")):
        try:
            check_soft_labels(stacked[i])
        except ValueError:
            for k, member in zip(numbers, members):
                check_soft_labels(member[i], f"task {k}: {name}")
            raise


def _as_list(tasks: Iterable[Any]) -> list[Any]:
    tasks = list(tasks)
    if not tasks:
        raise ValueError("no tasks given")
    return tasks


# --------------------------------------------------------------------------------------------
# The reference: learn2learn's clone/adapt loop
# --------------------------------------------------------------------------------------------


def l2l_outer_loss(maml: nn.Module, tasks: Sequence[Any], inner_steps: int) -> torch.Tensor:
    """Mean query loss over ``tasks`` after ``inner_steps`` adaptation steps each, learn2learn's way.

    ``maml`` is a ``learn2learn.algorithms.MAML`` (its ``lr``, ``first_order`` and
    ``allow_nograd`` apply); every task is adapted on a ``maml.clone()``, one after another.
    ``tasks``: ``(xs, ys, xq, yq)`` tuples with soft labels ``ys``/``yq`` of shape ``(n, C)``, or
    :class:`~l2l_taskmix.task.Task` objects. The loss is :func:`soft_cross_entropy`.

    Example::

        >>> import learn2learn as l2l
        >>> maml = l2l.algorithms.MAML(torch.nn.Linear(4, 2), lr=0.5)
        >>> Y = torch.eye(2)[[0, 1, 0]]
        >>> l2l_outer_loss(maml, [(torch.randn(3, 4), Y, torch.randn(3, 4), Y)], inner_steps=1).shape
        torch.Size([])
    """
    inner_steps = check_scalar(inner_steps, "inner_steps", int, min_val=0)
    tasks = _as_list(tasks)
    total = None
    for k, task in enumerate(tasks):
        xs, ys, xq, yq = _unpack(task, k)
        learner = maml.clone()
        for _ in range(int(inner_steps)):
            learner.adapt(soft_cross_entropy(learner(xs), ys))
        loss = soft_cross_entropy(learner(xq), yq)
        total = loss if total is None else total + loss
    return total / len(tasks)


# --------------------------------------------------------------------------------------------
# The vectorized engine
# --------------------------------------------------------------------------------------------


def _adapts(p: torch.Tensor | None) -> bool:
    return p is not None and p.requires_grad


class _FirstLinear:
    """The first linear layer: its inputs are the frozen features, the same at every step.

    ``Z = X W^T + b - lr * (X Xs^T + 1) S`` with ``S`` the running sum of the gradients at its
    outputs on the support batch (the ``+ 1`` carries the bias updates): the Gram matrices are
    computed once.
    """

    def __init__(self, lin: nn.Linear, xs: torch.Tensor, xq: torch.Tensor, lr: float, steps: int):
        self.lr, self.ns = lr, xs.shape[1]
        self.adapt_w, self.adapt_b = _adapts(lin.weight), _adapts(lin.bias)
        x = torch.cat([xs, xq], 1)
        base = F.linear(x, lin.weight, lin.bias)  # one GEMM over all tasks, support and query
        self.base_s, self.base_q = base[:, : self.ns], base[:, self.ns :]
        self.gram_s = self.gram_q = None
        if (self.adapt_w or self.adapt_b) and steps > 0:
            if self.adapt_w:
                gram = torch.bmm(x, xs.transpose(1, 2))  # (T, ns + nq, ns)
                if self.adapt_b:
                    gram = gram + 1
            else:
                gram = x.new_ones(x.shape[0], x.shape[1], self.ns)
            self.gram_s, self.gram_q = gram[:, : self.ns], gram[:, self.ns :]
        self.S: torch.Tensor | None = None  # sum over steps of D, (T, ns, out)

    def forward(self, query: bool) -> torch.Tensor:
        z = self.base_q if query else self.base_s
        if self.S is None:
            return z
        return torch.baddbmm(z, self.gram_q if query else self.gram_s, self.S, alpha=-self.lr)

    def update(self, a_in: torch.Tensor | None, d: torch.Tensor) -> None:
        if self.gram_s is not None:
            self.S = d if self.S is None else self.S + d


class _LowRankLinear:
    """A later linear layer with Gram-matrix corrections: ``A W'^T = A W^T - lr (A H^T) D``."""

    def __init__(self, lin: nn.Linear, lr: float):
        self.W, self.b, self.lr = lin.weight, lin.bias, lr
        self.adapt_w, self.adapt_b = _adapts(lin.weight), _adapts(lin.bias)
        self.H: torch.Tensor | None = None  # support inputs of all past steps, (T, k*ns, in)
        self.D: torch.Tensor | None = None  # gradients at the outputs, (T, k*ns, out)
        self.B: torch.Tensor | None = None  # bias updates when W is frozen, (T, 1, out)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        z = F.linear(a, self.W, self.b)
        if self.H is not None:
            gram = torch.bmm(a, self.H.transpose(1, 2))
            if self.adapt_b:
                gram = gram + 1  # the bias updates: sum over rows of D
            z = torch.baddbmm(z, gram, self.D, alpha=-self.lr)
        elif self.B is not None:
            z = z - self.lr * self.B
        return z

    def backward(self, d: torch.Tensor) -> torch.Tensor:
        da = torch.matmul(d, self.W)
        if self.H is not None:
            da = torch.baddbmm(da, torch.bmm(d, self.D.transpose(1, 2)), self.H, alpha=-self.lr)
        return da

    def update(self, a_in: torch.Tensor, d: torch.Tensor) -> None:
        if self.adapt_w:
            self.H = a_in if self.H is None else torch.cat([self.H, a_in], 1)
            self.D = d if self.D is None else torch.cat([self.D, d], 1)
        elif self.adapt_b:
            rows = d.sum(1, keepdim=True)
            self.B = rows if self.B is None else self.B + rows


class _DenseLinear:
    """A linear layer with stacked per-task weights ``W + dW_t`` (``bmm``)."""

    def __init__(self, lin: nn.Linear, lr: float):
        self.W, self.b, self.lr = lin.weight, lin.bias, lr
        self.adapt_w, self.adapt_b = _adapts(lin.weight), _adapts(lin.bias)
        self.dW: torch.Tensor | None = None  # (T, out, in)
        self.dB: torch.Tensor | None = None  # (T, 1, out)

    def _weight(self) -> torch.Tensor:
        return self.W + self.dW  # (T, out, in)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        if self.dW is None:
            z = torch.matmul(a, self.W.t())
        else:
            z = torch.bmm(a, self._weight().transpose(1, 2))
        if self.b is not None:
            z = z + self.b
        if self.dB is not None:
            z = z + self.dB
        return z

    def backward(self, d: torch.Tensor) -> torch.Tensor:
        return torch.matmul(d, self.W) if self.dW is None else torch.bmm(d, self._weight())

    def update(self, a_in: torch.Tensor, d: torch.Tensor) -> None:
        if self.adapt_w:
            step = -self.lr * torch.bmm(d.transpose(1, 2), a_in)
            self.dW = step if self.dW is None else self.dW + step
        if self.adapt_b:
            step = -self.lr * d.sum(1, keepdim=True)
            self.dB = step if self.dB is None else self.dB + step


class _DenseFirstLinear(_DenseLinear):
    """The first layer with stacked per-task weights (the plain batched scheme)."""

    def __init__(self, lin: nn.Linear, xs: torch.Tensor, xq: torch.Tensor, lr: float, steps: int):
        super().__init__(lin, lr)
        self.xs, self.xq = xs, xq

    def forward(self, query: bool) -> torch.Tensor:  # type: ignore[override]
        return _DenseLinear.forward(self, self.xq if query else self.xs)

    def update(self, a_in: torch.Tensor | None, d: torch.Tensor) -> None:
        _DenseLinear.update(self, self.xs, d)


class _PReLU:
    """A PReLU whose weight ``a + da_t`` is adapted per task."""

    def __init__(self, act: nn.PReLU, lr: float):
        self.a, self.lr, self.adapt = act.weight, lr, _adapts(act.weight)
        self.scalar = act.weight.numel() == 1
        self.da: torch.Tensor | None = None  # (T, 1, 1) or (T, 1, width)

    def _weight(self) -> torch.Tensor:
        a = self.a.reshape(1, 1, -1)
        return a if self.da is None else a + self.da

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, Any]:
        # exactly z or a * z, with masks and products: faster on CPU than torch.where or ATen's
        # fused PReLU kernels once differentiated twice (measured)
        pos = (z > 0).to(z.dtype)
        neg = 1 - pos
        slope = pos + neg * self._weight()
        return z * slope, (slope, neg)

    def backward(self, z: torch.Tensor, dh: torch.Tensor, cache: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        slope, neg = cache
        dz = dh * slope
        if not self.adapt:
            return dz, None
        g = (dh * (z * neg)).sum(1, keepdim=True)  # d/da: z where z <= 0, else 0
        if self.scalar:
            g = g.sum(2, keepdim=True)
        return dz, g

    def update(self, g: torch.Tensor | None) -> None:
        if g is not None:
            step = -self.lr * g
            self.da = step if self.da is None else self.da + step


def _layer_modes(blocks: list[_Block], strategy: str, ns: int, nq: int, steps: int) -> list[str]:
    """Per block: ``"lowrank"`` or ``"dense"``; ``"auto"`` compares flop counts per task."""
    if strategy == "dense":
        return ["dense"] * len(blocks)
    modes = ["lowrank"]  # the first layer: Gram matrices once, always cheaper
    for blk in blocks[1:]:
        if strategy == "lowrank":
            modes.append("lowrank")
            continue
        i, o = blk.linear.in_features, blk.linear.out_features
        # beyond the shared products both schemes do: weight gradients and updates (dense; x3:
        # per-task weights are materialized and differentiated, measured on CPU) ...
        dense = 3 * steps * (ns * i * o + i * o)
        # ... against Gram corrections on the support (forward + backward) and the query
        lowrank = sum(2 * ns * (k * ns) * (i + o) for k in range(steps)) + nq * steps * ns * (i + o)
        modes.append("lowrank" if lowrank < dense else "dense")
    return modes


def _group_loss(
    blocks: list[_Block],
    xs: torch.Tensor,
    ys: torch.Tensor,
    xq: torch.Tensor,
    yq: torch.Tensor,
    lr: float,
    steps: int,
    first_order: bool,
    strategy: str,
) -> torch.Tensor:
    """Sum over a stack of equal-shaped tasks of the adapted query loss."""
    ns, nq = xs.shape[1], xq.shape[1]
    modes = _layer_modes(blocks, strategy, ns, nq, steps)
    first_cls = _FirstLinear if modes[0] == "lowrank" else _DenseFirstLinear
    layers: list[Any] = [first_cls(blocks[0].linear, xs, xq, lr, steps)]
    for blk, mode in zip(blocks[1:], modes[1:]):
        layers.append((_LowRankLinear if mode == "lowrank" else _DenseLinear)(blk.linear, lr))
    acts = [None if blk.act is None else _PReLU(blk.act, lr) for blk in blocks]
    adapts = [_adapts(b.linear.weight) or _adapts(b.linear.bias) or (b.act is not None and _adapts(b.act.weight)) for b in blocks]
    # the gradient must flow below layer l only if some earlier block adapts
    need_below = [any(adapts[:l]) for l in range(len(blocks))]

    def forward(query: bool) -> tuple[torch.Tensor, list[torch.Tensor], list[Any]]:
        inputs, zs, caches = [], [], []
        h = None
        for l, (layer, act) in enumerate(zip(layers, acts)):
            if l == 0:
                z = layer.forward(query)
            else:
                inputs.append(h)
                z = layer.forward(h)
            zs.append(z)
            if act is None:
                h, cache = z, None
            else:
                h, cache = act.forward(z)
            caches.append(cache)
        return h, inputs, list(zip(zs, caches))

    y_mass = ys.sum(-1, keepdim=True)
    for _ in range(steps if any(adapts) else 0):
        with torch.set_grad_enabled(torch.is_grad_enabled() and not first_order):
            logits, inputs, zs = forward(False)
            # d/dlogits of mean_rows -(Y * log_softmax): (softmax * sum(Y) - Y) / ns
            dout = (torch.softmax(logits, -1) * y_mass - ys) / ns
            pending = []
            for l in range(len(blocks) - 1, -1, -1):
                act, g_act = acts[l], None
                if act is not None:
                    dout, g_act = act.backward(zs[l][0], dout, zs[l][1])
                pending.append((l, dout, g_act))
                if l > 0 and need_below[l]:
                    dout = layers[l].backward(dout)
                elif l > 0:
                    break
            for l, d, g_act in pending:  # update after the whole backward pass (it uses step k's weights)
                layers[l].update(None if l == 0 else inputs[l - 1], d)
                if acts[l] is not None:
                    acts[l].update(g_act)
    logits, _, _ = forward(True)
    return soft_cross_entropy(logits, yq).sum()


def fast_outer_loss(
    model: nn.Module,
    tasks: Sequence[Any],
    inner_lr: float,
    inner_steps: int,
    first_order: bool = False,
    strategy: str = "auto",
    check_inputs: bool = True,
) -> torch.Tensor:
    """Mean query loss over ``tasks`` after ``inner_steps`` SGD steps each, all tasks at once.

    Gives what :func:`l2l_outer_loss` gives with ``MAML(model, lr=inner_lr,
    first_order=first_order, allow_nograd=True)`` (same value, same gradients w.r.t. the model's
    parameters, up to rounding), but adapts all tasks together (see the module docstring).

    Args:
        model: an :class:`~l2l_taskmix.models.IntentClassifier` or an ``nn.Sequential`` of
            ``Linear``/``PReLU`` layers (a learn2learn ``MAML`` wrapper is unwrapped); anything
            else raises :class:`UnsupportedModelError` (fall back to :func:`l2l_outer_loss`).
        tasks: ``(xs, ys, xq, yq)`` tuples, ``ys``/``yq`` soft labels of shape ``(n, C)`` (rows
            summing to one) or integer labels ``(n,)`` (taken as one-hot over the model's
            outputs), or :class:`~l2l_taskmix.task.Task` objects. Tasks of equal support/query sizes are
            stacked; different sizes are processed group by group.
        inner_lr, inner_steps: the inner SGD step size and the number of steps.
        first_order: learn2learn's first-order MAML (inner gradients treated as constants).
        strategy: one of :data:`STRATEGIES`.
        check_inputs: check shapes and that all inputs are finite (one pass over the data).

    Example::

        >>> from l2l_taskmix.models import IntentClassifier
        >>> model = IntentClassifier(8, 3, hidden=(4,))
        >>> Y = torch.eye(3)[[0, 1, 2, 0]]
        >>> tasks = [(torch.randn(4, 8), Y, torch.randn(6, 8), torch.eye(3)[[0, 1, 2, 0, 1, 2]])] * 3
        >>> fast_outer_loss(model, tasks, inner_lr=0.1, inner_steps=3).backward()
    """
    check_choice(strategy, "strategy", STRATEGIES)
    inner_lr = check_scalar(inner_lr, "inner_lr", float)
    inner_steps = check_scalar(inner_steps, "inner_steps", int, min_val=0)
    if hasattr(model, "module") and hasattr(model, "adapt"):
        model = model.module  # a learn2learn MAML wrapper
    blocks = _blocks(model)
    tasks = _as_list(tasks)
    ref = blocks[0].linear.weight
    in_features, num_classes = blocks[0].linear.in_features, blocks[-1].linear.out_features
    groups: "OrderedDict[tuple[int, int], list[tuple[torch.Tensor, ...]]]" = OrderedDict()
    numbers: "dict[tuple[int, int], list[int]]" = {}
    for k, task in enumerate(tasks):
        xs, ys, xq, yq = _unpack(task, k)
        ys, yq = (_soft(y, num_classes, xs, f"task {k}: {name}") for y, name in ((ys, "ys"), (yq, "yq")))
        if check_inputs:
            _check_task(k, xs, ys, xq, yq, in_features, num_classes)
        groups.setdefault((xs.shape[0], xq.shape[0]), []).append((xs, ys, xq, yq))
        numbers.setdefault((xs.shape[0], xq.shape[0]), []).append(k)
    total = None
    for shape, members in groups.items():
        stacked = [torch.stack([m[i] for m in members]).to(device=ref.device, dtype=ref.dtype) for i in range(4)]
        if check_inputs:
            for name, t in zip(("xs", "xq"), stacked[::2]):
                if not bool(torch.isfinite(t).all()):
                    raise ValueError(f"fast_outer_loss: {name} of some task contains NaN or infinite values")
            _check_labels(stacked, members, numbers[shape])
        loss = _group_loss(blocks, *stacked, float(inner_lr), int(inner_steps), bool(first_order), strategy)
        total = loss if total is None else total + loss
    return total / len(tasks)


class BatchedMAML(nn.Module):
    """A drop-in for ``learn2learn.algorithms.MAML`` in a loop that needs only the meta-loss.

    Wraps ``model`` with the inner ``lr`` and ``first_order`` flag; :meth:`outer_loss` is
    :func:`fast_outer_loss`. ``forward`` calls the model.

    Example::

        >>> from l2l_taskmix.models import IntentClassifier
        >>> maml = BatchedMAML(IntentClassifier(8, 3, hidden=(4,)), lr=0.1)
        >>> Y = torch.eye(3)[[0, 1, 2]]
        >>> maml.outer_loss([(torch.randn(3, 8), Y, torch.randn(3, 8), Y)], inner_steps=2).shape
        torch.Size([])
    """

    def __init__(self, model: nn.Module, lr: float, first_order: bool = False, strategy: str = "auto"):
        super().__init__()
        check_supported(model)
        lr = check_scalar(lr, "lr", float)
        check_choice(strategy, "strategy", STRATEGIES)
        self.module, self.lr, self.first_order, self.strategy = model, lr, bool(first_order), strategy

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.module(*args, **kwargs)

    def outer_loss(self, tasks: Sequence[Any], inner_steps: int) -> torch.Tensor:
        return fast_outer_loss(self.module, tasks, self.lr, inner_steps, self.first_order, self.strategy)
