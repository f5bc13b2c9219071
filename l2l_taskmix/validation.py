"""One validator for every value that crosses the package's boundary, and one generator helper.

:func:`check_scalar` follows scikit-learn's ``sklearn.utils.validation.check_scalar``: it takes
the value's name, the accepted type(s) and bounds, and raises ``TypeError`` for a value of the
wrong type and ``ValueError`` for one out of range, each message naming the value. Booleans are
not numbers here (``True`` is no iteration count), and NaN or infinite floats are out of range.

Example::

    >>> from l2l_taskmix.validation import check_scalar
    >>> check_scalar(0.5, "eta", float, min_val=0, include_boundaries="neither")
    0.5
    >>> check_scalar(0, "iterations", int, min_val=1)
    Traceback (most recent call last):
    ...
    ValueError: iterations == 0, must be >= 1.
    >>> check_scalar("3", "seeds", int)
    Traceback (most recent call last):
    ...
    TypeError: seeds must be an instance of int, not str.
"""

from __future__ import annotations

import math
import numbers
import reprlib
from typing import Any, Sequence

import torch

__all__ = [
    "check_scalar",
    "check_bool",
    "check_choice",
    "check_device",
    "DEVICES",
    "make_generator",
    "short_repr",
    "TRUE_TEXT",
    "FALSE_TEXT",
]

#: The only texts read as booleans (any letter case), e.g. from a config file.
TRUE_TEXT = ("true", "yes", "1")
FALSE_TEXT = ("false", "no", "0")

_BOUNDARIES = ("left", "right", "both", "neither")


class _ShortRepr(reprlib.Repr):
    def repr_int(self, x: int, level: int) -> str:
        try:
            return super().repr_int(x, level)
        except ValueError:  # more digits than Python converts to text (sys.get_int_max_str_digits)
            return f"<an int of {x.bit_length()} bits>"


_SHORT = _ShortRepr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 3, 60, 60, 40
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 4


def short_repr(x: Any) -> str:
    """``repr(x)`` cut short for an error message: long texts, numbers and containers are
    abbreviated with ``...`` and nested ones are not descended into, so quoting a hostile value
    (a deeply nested config entry, a megabyte of text) costs no time or memory.

    Example::

        >>> short_repr("abc")
        "'abc'"
        >>> short_repr([[[[1]]]] * 100)
        '[[[[...]]], [[[...]]], [[[...]]], [[[...]]], ...]'
        >>> len(short_repr("x" * 10**6)) < 80
        True
    """
    return _SHORT.repr(x)


def _type_names(target_type: type | tuple[type, ...]) -> str:
    types = target_type if isinstance(target_type, tuple) else (target_type,)
    names = ["float" if t is numbers.Real else "int" if t is numbers.Integral else t.__name__ for t in types]
    return names[0] if len(names) == 1 else "{" + ", ".join(names) + "}"


def check_scalar(
    x: Any,
    name: str,
    target_type: type | tuple[type, ...],
    *,
    min_val: float | None = None,
    max_val: float | None = None,
    include_boundaries: str = "both",
    allow_none: bool = False,
) -> Any:
    """Return ``x`` if it has ``target_type`` and lies within the bounds, else raise.

    Args:
        x: the value.
        name: what it is called where the user gave it (argument, flag or config key).
        target_type: a type or tuple of types. ``float`` accepts any real number (an ``int``
            too) and returns it as a ``float``; ``int`` accepts integers (NumPy's too) and returns
            an ``int``. ``bool`` is accepted only where ``target_type`` is ``bool``.
        min_val, max_val: the bounds, ``None`` for none.
        include_boundaries: ``"both"``, ``"left"``, ``"right"`` or ``"neither"``: which bounds
            the value may equal.
        allow_none: ``None`` is a valid value (and is returned as is).

    Raises:
        TypeError: ``x`` has another type.
        ValueError: ``x`` is out of bounds, NaN or infinite.
    """
    if include_boundaries not in _BOUNDARIES:
        raise ValueError(f"include_boundaries must be one of {_BOUNDARIES}, got {include_boundaries!r}")
    if x is None and allow_none:
        return None
    types = target_type if isinstance(target_type, tuple) else (target_type,)
    wants_bool = bool in types
    numeric = {float: numbers.Real, int: numbers.Integral}
    accepted = tuple(numeric.get(t, t) for t in types)
    if (isinstance(x, bool) and not wants_bool) or not isinstance(x, accepted):
        raise TypeError(f"{name} must be an instance of {_type_names(target_type)}, not {type(x).__name__}.")
    if isinstance(x, bool):
        return x
    if isinstance(x, numbers.Integral) and (int in types or float not in types):
        x = int(x)
    elif isinstance(x, numbers.Real):
        x = float(x)
        if not math.isfinite(x):
            raise ValueError(f"{name} == {short_repr(x)}, must be a finite number.")
    if isinstance(x, (int, float)):
        low_ok = include_boundaries in ("left", "both")
        high_ok = include_boundaries in ("right", "both")
        if min_val is not None and (x < min_val or (x == min_val and not low_ok)):
            raise ValueError(f"{name} == {short_repr(x)}, must be {'>=' if low_ok else '>'} {min_val}.")
        if max_val is not None and (x > max_val or (x == max_val and not high_ok)):
            raise ValueError(f"{name} == {short_repr(x)}, must be {'<=' if high_ok else '<'} {max_val}.")
    return x


def check_bool(x: Any, name: str) -> bool:
    """``x`` as a bool: a bool, or exactly one of the texts true/false/yes/no/1/0 (any case), or
    the integers 1/0. Anything else is an error naming ``name`` and what is accepted; ``"no"``
    never silently counts as true.

    Example::

        >>> check_bool("No", "first_order"), check_bool(True, "standardize")
        (False, True)
        >>> check_bool("off", "first_order")
        Traceback (most recent call last):
        ...
        ValueError: first_order == 'off', must be one of true/false/yes/no/1/0.
    """
    if isinstance(x, bool):
        return x
    if isinstance(x, numbers.Integral) and int(x) in (0, 1):
        return bool(int(x))
    if isinstance(x, str):
        text = x.strip().lower()
        if text in TRUE_TEXT:
            return True
        if text in FALSE_TEXT:
            return False
        raise ValueError(f"{name} == {short_repr(x)}, must be one of true/false/yes/no/1/0.")
    raise TypeError(f"{name} must be a bool or one of the texts true/false/yes/no/1/0, not {type(x).__name__} {short_repr(x)}.")


def check_choice(x: Any, name: str, choices: Sequence[Any]) -> Any:
    """Return ``x`` if it is one of ``choices``, else ``ValueError`` listing them.

    Example::

        >>> check_choice("fast", "engine", ("fast", "l2l"))
        'fast'
    """
    if x not in tuple(choices):
        raise ValueError(f"{name} == {short_repr(x)}, must be one of {', '.join(map(repr, choices))}.")
    return x


#: What ``--device`` takes: ``auto`` (CUDA when present, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``.
DEVICES = ("auto", "cpu", "cuda")


def check_device(x: Any, name: str = "device", cuda_available: bool | None = None) -> torch.device:
    """The ``torch.device`` that ``x`` (one of :data:`DEVICES`, ``cuda:N`` or a
    ``torch.device``) names on this machine: ``auto`` is CUDA when a GPU is present
    (``cuda_available``, default ``torch.cuda.is_available()``), else the CPU. Asking for CUDA
    where there is none is a ``ValueError`` naming ``name``, not a failure deep in a run.

    Example::

        >>> check_device("cpu")
        device(type='cpu')
        >>> check_device("auto", cuda_available=False)
        device(type='cpu')
        >>> check_device("cuda", "--device", cuda_available=False)
        Traceback (most recent call last):
        ...
        ValueError: --device == 'cuda', but no CUDA GPU is available here (torch.cuda.is_available() is False); use --device cpu or auto.
    """
    text = str(x).strip().lower() if isinstance(x, (str, torch.device)) else None
    kind = None if text is None else text.split(":")[0]
    if kind not in DEVICES or (":" in text and (kind != "cuda" or not text.split(":", 1)[1].isdigit())):
        raise ValueError(f"{name} == {short_repr(x)}, must be one of {', '.join(map(repr, DEVICES))} or 'cuda:N'.")
    if cuda_available is None:
        cuda_available = kind != "cpu" and torch.cuda.is_available()
    if kind == "auto":
        return torch.device("cuda" if cuda_available else "cpu")
    if kind == "cuda" and not cuda_available:
        raise ValueError(
            f"{name} == {short_repr(x)}, but no CUDA GPU is available here (torch.cuda.is_available() is False); use {name} cpu or auto."
        )
    return torch.device(text)


def make_generator(generator: torch.Generator | None = None, seed: int | None = None) -> torch.Generator:
    """The ``torch.Generator`` every random draw goes through: ``generator`` as given, or a new
    one seeded with ``seed``, or, with neither, seeded from torch's global RNG (so
    ``torch.manual_seed`` makes runs repeat).

    Example::

        >>> g = make_generator(seed=3)
        >>> bool(torch.equal(torch.rand(2, generator=g), torch.rand(2, generator=make_generator(seed=3))))
        True
    """
    if generator is not None and seed is not None:
        raise ValueError("give either generator or seed, not both")
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be an instance of torch.Generator, not {type(generator).__name__}.")
        return generator
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    return torch.Generator().manual_seed(check_scalar(seed, "seed", int))
