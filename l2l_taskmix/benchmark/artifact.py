"""The model folder: what ``l2l-taskmix train`` and ``save_pretrained`` write, and reading it back.

A model folder is Hugging Face's ``save_pretrained`` layout, and holds nothing that runs when
it is read (JSON and safetensors; never a pickle):

=====================  ==========================================================================
file                   holds
=====================  ==========================================================================
``config.json``        ``model_type`` (``"l2l-taskmix"``) and ``format_version``; the architecture
                       and head width; the method and its hyperparameters; the encoder (name,
                       revision, pooling, max length, separator, and its features of two probe
                       sentences); the standardization statistics; the training tasks and a
                       fingerprint of their features; the benchmark score where there was one;
                       the task it was adapted to, if it was; the package version
``model.safetensors``  the weights: the ``IntentClassifier`` state dict; an adapted model also
                       keeps its meta-trained weights, under ``meta.``
``README.md``          the model card (Hugging Face metadata, then what, how and how well)
=====================  ==========================================================================

:func:`write_model_folder` writes the folder whole or not at all (:func:`~l2l_taskmix.files.atomic_folder`);
:func:`read_model_folder` checks it (a folder that is not a model, a newer format, damaged
weights) and names what is wrong.

Example::

    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp()) / "model"
    >>> config = {"architecture": {"in_features": 2, "hidden": [], "head_width": 2}}
    >>> _ = write_model_folder(folder, {"head.weight": torch.zeros(2, 2)}, config, "# A model")
    >>> tensors, read = read_model_folder(folder)
    >>> sorted(p.name for p in folder.iterdir()), read["model_type"], list(tensors)
    (['README.md', 'config.json', 'model.safetensors'], 'l2l-taskmix', ['head.weight'])
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..files import atomic_folder, check_writable, to_jsonable

__all__ = [
    "MODEL_TYPE",
    "FORMAT_VERSION",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "CARD_NAME",
    "write_model_folder",
    "read_model_folder",
    "check_model_target",
    "is_model_folder",
    "resolve_model_path",
]

#: ``config.json``'s ``model_type``: what says a folder holds an l2l-taskmix model.
MODEL_TYPE = "l2l-taskmix"
#: The folder layout this version writes, and the newest it reads.
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
#: What a model folder is, for messages.
WHAT = f"a model folder ({CONFIG_NAME} and {WEIGHTS_NAME}, as l2l-taskmix train or save_pretrained write)"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
#: A JSON list of numbers only, spread over lines by ``indent``: written on one line instead.
_NUMBERS = re.compile(r"\[\s*([-+0-9.eE,\s]+?)\s*\]")


def is_model_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder whose ``config.json`` says ``model_type: l2l-taskmix``."""
    config = Path(path) / CONFIG_NAME
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("model_type") == MODEL_TYPE
    except (OSError, ValueError, AttributeError):
        return False


def check_model_target(path: str | os.PathLike, name: str = "path", *, overwrite: bool = True, need_bytes: int = 2**20) -> Path:
    """Check, before any compute, that a model folder can be written at ``path``: an existing
    model folder is replaced only with ``overwrite``; any other existing file or non-empty
    folder is never replaced (it is not ours to delete), nor is the current folder or one it
    lies in. ``name``: the flag or argument. :func:`write_model_folder` checks again holding
    the folder's lock, so of two writers of one new folder without ``overwrite`` the second is
    refused."""
    if not os.fspath(path).strip():
        raise ValueError(f"{name} == {os.fspath(path)!r}: give a folder to write the model to")
    path = Path(path).expanduser()
    here = Path.cwd().resolve()
    if path.resolve() == here or path.resolve() in here.parents:
        raise ValueError(
            f"{name} {os.fspath(path)!r} is the current folder{'' if path.resolve() == here else ' or one it lies in'} "
            "(an empty path means it too), which a model folder cannot replace; give a new folder, e.g. 'model'"
        )
    if path.exists():
        if not path.is_dir():
            raise FileExistsError(f"{name} {path} is a file; give a new folder for the model")
        if is_model_folder(path):
            if not overwrite:
                raise FileExistsError(f"{name} {path} holds a model already; give another folder, or --overwrite to replace it")
        elif any(path.iterdir()):
            raise FileExistsError(f"{name} {path} is a folder with other files in it, not a model folder; give a new or empty folder")
    check_writable(path.parent, name, need_bytes=need_bytes)
    return path


def write_model_folder(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], config: dict[str, Any], card: str, *, overwrite: bool = True
) -> Path:
    """Write the model folder ``path`` (``config.json`` gets ``model_type``, ``format_version``
    and ``library_version`` set here); whole or not at all. ``overwrite``: replace an existing
    model folder (anything else that exists is refused, see :func:`check_model_target`)."""
    from safetensors.torch import save

    path = Path(path)
    blob = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata={"format": "pt"})
    check_model_target(path, "path", overwrite=overwrite, need_bytes=2 * len(blob) + 2**20)
    config = {
        "model_type": MODEL_TYPE,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        **{k: v for k, v in config.items() if k not in ("model_type", "format_version", "library_version")},
    }
    text = (
        _NUMBERS.sub(
            lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]",
            json.dumps(to_jsonable(config), indent=2, ensure_ascii=False, allow_nan=False),
        )
        + "\n"
    )
    return atomic_folder(
        path,
        {CONFIG_NAME: text, WEIGHTS_NAME: blob, CARD_NAME: card},
        replace=True,
        check=lambda p: check_model_target(p, "path", overwrite=overwrite, need_bytes=2 * len(blob) + 2**20),
    )


def resolve_model_path(path: str | os.PathLike, revision: str | None = None) -> Path:
    """The local folder of ``path``: itself, or for a Hugging Face hub id (``org/name``) that
    is not a local folder, the downloaded snapshot (``huggingface_hub.snapshot_download``)."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path).strip():
        raise ValueError(f"model path must be a folder or a hub id, got {path!r}")
    local = Path(path).expanduser()
    if local.exists() or not _HUB_ID.match(os.fspath(path)):
        if not local.exists():
            raise FileNotFoundError(f"model folder {local} does not exist")
        return local
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(os.fspath(path), revision=revision, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, CARD_NAME]))
    except Exception as err:  # noqa: BLE001 - no network, no such repo, ...: one message
        raise OSError(
            f"{path} is not a local folder, and downloading it from the Hugging Face hub failed: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        ) from None


def read_model_folder(path: str | os.PathLike, revision: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, config)`` of a model folder (or hub id), checked: a missing or foreign
    folder, a newer format, a damaged ``config.json`` or ``model.safetensors`` are each a
    ``ValueError`` (or ``FileNotFoundError``) naming the file and the problem."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    folder = resolve_model_path(path, revision)
    if not folder.is_dir():
        raise ValueError(f"{folder} is a file, not {WHAT}")
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        raise ValueError(f"{folder} is not an l2l-taskmix model: it has no {CONFIG_NAME}; expected {WHAT}")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{config_path} is not UTF-8 text: not {WHAT}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{config_path}:{err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{config_path}: expected a JSON object, got {type(config).__name__}")
    kind = config.get("model_type")
    if kind != MODEL_TYPE:
        found = f"a {kind!r} model (its model_type)" if isinstance(kind, str) else "no model_type"
        raise ValueError(f"{folder} is not an l2l-taskmix model: {CONFIG_NAME} has {found}; expected {WHAT}")
    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"{config_path}: format_version must be a positive whole number, got {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{folder} was written by l2l-taskmix {config.get('library_version', '?')} in model format {version}; "
            f"this l2l-taskmix ({__version__}) reads format {FORMAT_VERSION} and older: pip install -U l2l-taskmix"
        )
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise ValueError(f"{folder} has no {WEIGHTS_NAME}: not {WHAT}")
    try:
        tensors = load(weights.read_bytes())
    except (SafetensorError, ValueError, OSError, RuntimeError) as err:
        raise ValueError(
            f"{weights} is damaged or not a safetensors file ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
        ) from None
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ValueError(f"{weights}: tensor {name!r} holds NaN or infinite values")
    return tensors, config
