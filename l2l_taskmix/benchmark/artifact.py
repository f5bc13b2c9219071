"""The model folder: what ``l2l-taskmix train`` and ``save_pretrained`` write, reading it back
checked whole, the model card, and the meta-trained model it holds in memory.

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
                       keeps its meta-trained weights, under ``meta.``. Its metadata binds it to
                       ``config.json``: a SHA-256 of each top-level field of the config and one
                       of the tensors (names, dtypes, shapes and bytes)
``README.md``          the model card (Hugging Face metadata, then what, how and how well)
=====================  ==========================================================================

:func:`write_model_folder` writes the folder whole or not at all (:func:`~l2l_taskmix.files.atomic_folder`);
:func:`read_model_folder` checks it (a folder that is not a model, a newer format, damaged
weights, a ``config.json`` and ``model.safetensors`` that were not written together) and names
what is wrong; :func:`load_model_folder` also checks every value the classifier uses (with the
same bounds as the setting that set it) and builds the models. Format 1 (l2l-taskmix 0.9.0)
had no binding: it is read with every other check.

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

import dataclasses
import hashlib
import json
import math
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from .. import __version__
from ..features.encoders import check_encoder_spec
from ..files import atomic_folder, check_writable, recover_folder, to_jsonable
from ..markdown import markdown_cell, markdown_code
from ..models import IntentClassifier
from ..validation import check_scalar, short_repr
from .config import MAX_SEED, PROTOCOLS, BenchmarkConfig, check_head_width
from .methods import Method, get_method

__all__ = [
    "MODEL_TYPE",
    "FORMAT_VERSION",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "CARD_NAME",
    "PROBE_TEXTS",
    "MetaTrainedModel",
    "Adapted",
    "write_model_folder",
    "read_model_folder",
    "load_model_folder",
    "check_model_config",
    "build_model",
    "model_card",
    "check_model_target",
    "is_model_folder",
    "resolve_model_path",
]

#: ``config.json``'s ``model_type``: what says a folder holds an l2l-taskmix model.
MODEL_TYPE = "l2l-taskmix"
#: The folder layout this version writes, and the newest it reads. Format 2 binds
#: ``config.json`` and ``model.safetensors`` (digests in the weights' metadata); format 1
#: (0.9.0) is read without that binding.
FORMAT_VERSION = 2
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
#: Sentences whose features a model folder keeps, to recognize its encoder elsewhere.
PROBE_TEXTS = ("set an alarm for seven tomorrow morning", "¿va a llover mañana en Madrid?")
#: What a model folder is, for messages.
WHAT = f"a model folder ({CONFIG_NAME} and {WEIGHTS_NAME}, as l2l-taskmix train or save_pretrained write)"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
#: A JSON list of numbers only, spread over lines by ``indent``: written on one line instead.
_NUMBERS = re.compile(r"\[\s*([-+0-9.eE,\s]+?)\s*\]")
#: The weights' metadata keys that bind them to ``config.json``.
_CONFIG_DIGESTS = "l2l_taskmix.config_sha256"
_TENSORS_DIGEST = "l2l_taskmix.tensors_sha256"


@dataclass(frozen=True, eq=False, repr=False)
class MetaTrainedModel:
    """A meta-trained model as a model folder holds it, in memory: ``config`` (the folder's
    ``config.json`` content, less the task it was adapted to) and ``model``, the meta-trained
    :class:`~l2l_taskmix.models.IntentClassifier`. :func:`~l2l_taskmix.benchmark.classifier.meta_train`
    makes one, :func:`load_model_folder` reads one; ``FewShotIntentClassifier(model=...)`` takes
    one (or a folder's path)."""

    config: dict[str, Any]
    model: IntentClassifier

    @property
    def method(self) -> Method:
        """The :class:`~l2l_taskmix.benchmark.methods.Method` it was meta-trained with."""
        return get_method(self.config["method"])

    def __repr__(self) -> str:
        tasks = len(self.config.get("training", {}).get("tasks", []))
        return f"MetaTrainedModel({self.config.get('method')}, head of {self.model.num_classes}, {tasks} training task(s))"


@dataclass(frozen=True, eq=False)
class Adapted:
    """The task an adapted model folder was adapted to: ``model`` (the adapted copy),
    ``classes`` (the task's labels, sorted, as ``fit`` got them) and ``info`` (``config.json``'s
    ``adapted``)."""

    model: IntentClassifier
    classes: list[Any]
    info: dict[str, Any]


def _canonical(value: Any) -> bytes:
    """One byte string per JSON value, whatever its layout or key order."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _config_digests(config: dict[str, Any]) -> dict[str, str]:
    return {key: hashlib.sha256(_canonical(value)).hexdigest() for key, value in config.items()}


def _split_safetensors(blob: bytes) -> tuple[dict[str, Any], memoryview]:
    """``(header, data)`` of a safetensors file's bytes (its JSON header, then the tensor bytes,
    a view: not copied)."""
    (size,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8 : 8 + size]), memoryview(blob)[8 + size :]


def _tensors_digest(header: dict[str, Any], data: bytes | memoryview) -> str:
    """SHA-256 of the tensors' names, dtypes, shapes and bytes (offsets left out)."""
    manifest = sorted((name, h["dtype"], h["shape"]) for name, h in header.items() if name != "__metadata__")
    digest = hashlib.sha256(_canonical(manifest))
    digest.update(data)
    return digest.hexdigest()


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
    and ``library_version`` set here; the weights' metadata the digests that bind them to it);
    whole or not at all. ``overwrite``: replace an existing model folder (anything else that
    exists is refused, see :func:`check_model_target`)."""
    from safetensors.torch import save

    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
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
    header, data = _split_safetensors(save(tensors))
    metadata = {
        "format": "pt",
        _CONFIG_DIGESTS: json.dumps(_config_digests(json.loads(text)), sort_keys=True),
        _TENSORS_DIGEST: _tensors_digest(header, data),
    }
    blob = save(tensors, metadata=metadata)
    check_model_target(path, "path", overwrite=overwrite, need_bytes=2 * len(blob) + 2**20)  # before the lock: nothing made
    return atomic_folder(
        path,
        {CONFIG_NAME: text, WEIGHTS_NAME: blob, CARD_NAME: card},
        replace=True,
        check=lambda p: check_model_target(p, "path", overwrite=overwrite, need_bytes=2 * len(blob) + 2**20),
    )


def resolve_model_path(path: str | os.PathLike, revision: str | None = None) -> Path:
    """The local folder of ``path``: itself, or for a Hugging Face hub id (``org/name``) that
    is not a local folder, the downloaded snapshot (``huggingface_hub.snapshot_download``). A
    local folder that a killed write left aside is put back first
    (:func:`~l2l_taskmix.files.recover_folder`)."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path).strip():
        raise ValueError(f"model path must be a folder or a hub id, got {path!r}")
    local = Path(path).expanduser()
    recover_folder(local, locked=False)
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
    blob = weights.read_bytes()
    try:
        tensors = load(blob)
        header, data = _split_safetensors(blob)
    except (SafetensorError, ValueError, OSError, RuntimeError, struct.error) as err:
        raise ValueError(
            f"{weights} is damaged or not a safetensors file ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
        ) from None
    _check_binding(config, version, header, data, config_path, weights)
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ValueError(f"{weights}: tensor {name!r} holds NaN or infinite values")
    return tensors, config


def _check_binding(config: dict[str, Any], version: int, header: dict, data: bytes | memoryview, config_path: Path, weights: Path) -> None:
    """Refuse a ``config.json`` and ``model.safetensors`` that were not written together (by
    the digests in the weights' metadata), naming the first field that differs."""
    metadata = header.get("__metadata__") or {}
    if _CONFIG_DIGESTS not in metadata or _TENSORS_DIGEST not in metadata:
        if version >= 2:
            raise ValueError(
                f"{weights} has no digests binding it to {CONFIG_NAME} (format {version} writes them): these weights "
                "were not written with this config; write the folder again (save_pretrained or l2l-taskmix train)"
            )
        return  # format 1 (0.9.0): no binding to check; every value is still checked on load
    if metadata[_TENSORS_DIGEST] != _tensors_digest(header, data):
        raise ValueError(
            f"{weights}: its tensors are not the ones written with this folder (their digest differs: a tensor was "
            "edited, re-saved or replaced); write the folder again (save_pretrained or l2l-taskmix train)"
        )
    try:
        written = json.loads(metadata[_CONFIG_DIGESTS])
        written = written if isinstance(written, dict) else {}
    except ValueError:
        written = {}
    try:
        found = _config_digests(config)
    except ValueError:  # NaN or Infinity, which json reads but l2l-taskmix never writes
        raise ValueError(f"{config_path} holds NaN or Infinity: not the config {WEIGHTS_NAME} was written with") from None
    changed = sorted(k for k in set(written) | set(found) if written.get(k) != found.get(k))
    if changed:
        raise ValueError(
            f"{config_path} is not the config {WEIGHTS_NAME} was written with: field {changed[0]!r}"
            f"{f' (and {len(changed) - 1} more)' if len(changed) > 1 else ''} differs (edited after it was written, or "
            "one of the two files comes from another model folder); use the folder as written, or write it again "
            "(save_pretrained or l2l-taskmix train)"
        )


def load_model_folder(path: str | os.PathLike, revision: str | None = None) -> tuple[MetaTrainedModel, Adapted | None]:
    """The meta-trained model of a model folder (or hub id), and the task it was adapted to
    (``None`` if it was not), everything checked: the folder (:func:`read_model_folder`), every
    value of ``config.json`` the classifier uses (:func:`check_model_config`), the tensors'
    names, shapes and dtypes (:func:`build_model`). Nothing in the folder runs."""
    folder = resolve_model_path(path, revision)
    tensors, config = read_model_folder(folder)
    where, weights = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    check_model_config(config, where)
    arch = config["architecture"]
    shape = (arch["in_features"], arch["hidden"])
    meta = {k.removeprefix("meta."): v for k, v in tensors.items() if k.startswith("meta.")}
    plain = {k: v for k, v in tensors.items() if not k.startswith("meta.")}
    info = config.get("adapted")
    pretrained = MetaTrainedModel({**config, "adapted": None}, build_model(shape[0], arch["head_width"], shape[1], meta or plain, weights))
    if info is None:
        if meta:
            raise ValueError(f"{weights} holds an adapted model's weights (under 'meta.'), but {where} says adapted: null")
        return pretrained, None
    if not meta:
        raise ValueError(f"{weights}: an adapted model keeps its meta-trained weights under 'meta.'; they are missing")
    tuned = build_model(shape[0], info["head_outputs"], shape[1], plain, weights)
    return pretrained, Adapted(tuned, list(info["classes"]), info)


def _setting(name: str, value: Any, field: str, where: Path | str) -> Any:
    """``value`` checked as :class:`~l2l_taskmix.benchmark.config.BenchmarkConfig` checks its
    field ``name`` (the one declaration of its type and bounds); ``field``: where it sits in
    ``config.json``."""
    try:
        return getattr(BenchmarkConfig(**{name: value}), name)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {field}: {err}") from None


def _numbers(value: Any, size: int, field: str, where: Path | str) -> list[float]:
    if not isinstance(value, list) or len(value) != size:
        raise ValueError(f"{where}: {field} must be a list of {size} numbers (the feature width), got {short_repr(value)}")
    for k, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{where}: {field}[{k}] must be a finite number, got {short_repr(v)}")
    return value


def check_model_config(config: dict[str, Any], where: Path | str = CONFIG_NAME) -> dict[str, Any]:
    """``config`` (a model folder's ``config.json`` content) if every value the classifier and
    the model card use is valid, else a ``ValueError`` naming ``where``, the field and what it
    should be. A value a setting set passes that setting's checks
    (:class:`~l2l_taskmix.benchmark.config.BenchmarkConfig`'s declarations: ``hidden``,
    ``finetune_steps``, ``finetune_lr``, every ``hyperparameters`` field); the encoder description is checked by
    :func:`~l2l_taskmix.features.encoders.check_encoder_spec`; the standardization is finite
    with a positive ``std``; an adapted task's classes are unique, of one type, and fit the head.

    Example::

        >>> check_model_config({"architecture": {"in_features": 8, "hidden": [16], "head_width": 1}}, "m/config.json")
        Traceback (most recent call last):
        ...
        ValueError: m/config.json: architecture.head_width: head_width == 1, must be >= 2.
    """

    def part(key: str, kind: type, parent: dict[str, Any] = config, prefix: str = "") -> Any:
        value = parent.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            what = {dict: "an object", int: "a whole number", str: "a text", list: "a list"}.get(kind, kind.__name__)
            found = "is missing" if value is None else f"must be {what}, got {short_repr(value)}"
            raise ValueError(f"{where}: {prefix}{key} {found}; expected what l2l-taskmix train writes")
        return value

    def scalar(value: Any, field: str, kind: type, **bounds: Any) -> Any:
        try:
            return check_scalar(value, field.rpartition(".")[2], kind, **bounds)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: {field}: {err}") from None

    arch = part("architecture", dict)
    in_features = scalar(part("in_features", int, arch, "architecture."), "architecture.in_features", int, min_val=1)
    hidden = _setting("hidden", part("hidden", list, arch, "architecture."), "architecture.hidden", where)
    try:  # the bounds of train's --head-width, the memory named
        head_width = check_head_width(part("head_width", int, arch, "architecture."), tuple(hidden), "head_width", in_features)
    except ValueError as err:
        raise ValueError(f"{where}: architecture.head_width: {err}") from None
    try:
        method = get_method(part("method", str))
    except ValueError as err:
        raise ValueError(f"{where}: method: {err}") from None
    adaptation = part("adaptation", dict)
    _setting("finetune_steps", part("finetune_steps", int, adaptation, "adaptation."), "adaptation.finetune_steps", where)
    _setting("finetune_lr", adaptation.get("finetune_lr"), "adaptation.finetune_lr", where)
    scalar(part("seed", int, adaptation, "adaptation."), "adaptation.seed", int, min_val=0, max_val=MAX_SEED)
    spec = config.get("encoder")
    if spec is not None:
        try:
            check_encoder_spec(spec, "encoder")
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        if spec["dim"] != in_features:
            raise ValueError(f"{where}: encoder.dim is {spec['dim']} but architecture.in_features is {in_features}; they must agree")
        probe = spec.get("probe")
        if probe is not None:
            texts = probe.get("texts") if isinstance(probe, dict) else None
            if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
                raise ValueError(f"{where}: encoder.probe must hold its texts (a list of sentences) and their features")
            features = probe.get("features")
            if not isinstance(features, list) or len(features) != len(texts):
                raise ValueError(f"{where}: encoder.probe.features must hold one feature list per probe text")
            for k, row in enumerate(features):
                _numbers(row, in_features, f"encoder.probe.features[{k}]", where)
    stats = config.get("standardization")
    if stats is not None:
        if not isinstance(stats, dict):
            raise ValueError(f"{where}: standardization must be an object with mean and std, or null")
        _numbers(stats.get("mean"), in_features, "standardization.mean", where)
        for k, v in enumerate(_numbers(stats.get("std"), in_features, "standardization.std", where)):
            if v <= 0:
                raise ValueError(
                    f"{where}: standardization.std[{k}] is {v!r}; a standard deviation here must be positive "
                    "(the folder was edited: write it again with l2l-taskmix train)"
                )
    for key, kind in (("protocol", str), ("head", str), ("seed", int), ("hyperparameters", dict), ("training", dict)):
        part(key, kind)
    if config["protocol"] not in PROTOCOLS:
        raise ValueError(f"{where}: protocol is {short_repr(config['protocol'])}; expected one of {', '.join(PROTOCOLS)}")
    scalar(config["seed"], "seed", int, min_val=0, max_val=MAX_SEED)
    known = {f.name for f in dataclasses.fields(BenchmarkConfig)}  # a field of an older release is left alone
    try:
        BenchmarkConfig(**{k: v for k, v in config["hyperparameters"].items() if k in known})
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: hyperparameters: {err}") from None
    training = config["training"]
    part("dataset", str, training, "training.")
    part("feature_fingerprint", str, training, "training.")
    tasks = part("tasks", list, training, "training.")
    for k, task in enumerate(tasks):
        if not (isinstance(task, dict) and isinstance(task.get("name"), str) and isinstance(task.get("classes"), list)):
            raise ValueError(f"{where}: training.tasks[{k}] must hold the task's name, classes and rows")
    bench = config.get("benchmark")
    if bench is not None and not (isinstance(bench, dict) and isinstance(bench.get("per_task"), dict)):
        raise ValueError(f"{where}: benchmark must be null or hold macro_f1, per_task, regime, protocol and seed")
    adapted = config.get("adapted")
    if adapted is not None:
        if not isinstance(adapted, dict):
            raise ValueError(f"{where}: adapted must be null or the task the model was adapted to, got {short_repr(adapted)}")
        classes = check_classes(part("classes", list, adapted, "adapted."), f"{where}: adapted.classes")
        outputs = scalar(part("head_outputs", int, adapted, "adapted."), "adapted.head_outputs", int, min_val=2)
        expected = head_width if method.keeps_head else len(classes)
        if outputs != expected or len(classes) > outputs:
            raise ValueError(
                f"{where}: adapted has {len(classes)} classes and {outputs} head outputs; a {method.name} model adapted "
                f"to {len(classes)} classes has {expected} (head width {head_width})"
            )
        part("support_rows", int, adapted, "adapted.")
    return config


def check_classes(classes: Sequence[Any], where: str = "classes") -> list[Any]:
    """``classes`` as a list if they are at least two distinct labels of one kind (all texts,
    each one line without control characters, or all whole numbers, integers or floats), sorted
    as ``np.unique`` sorts them; else a ``ValueError`` naming ``where``.

    Example::

        >>> check_classes(["music", "alarm", "music"], "adapted.classes")
        Traceback (most recent call last):
        ...
        ValueError: adapted.classes: 'music' is there twice; the classes must be distinct
    """
    from ..data.tasks import check_name

    classes = list(classes)
    if len(classes) < 2:
        raise ValueError(f"{where}: {len(classes)} class(es); a task has at least two")
    texts = all(isinstance(c, str) for c in classes)
    numbers = all(isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) and float(c).is_integer() for c in classes)
    if not (texts or numbers):
        raise ValueError(f"{where}: expected all texts or all whole numbers, got {short_repr(classes)}")
    seen: set[Any] = set()
    for c in classes:
        if c in seen:
            raise ValueError(f"{where}: {short_repr(c)} is there twice; the classes must be distinct")
        seen.add(c)
        if texts:
            check_name(c, "class", where)
    if classes != sorted(classes):
        raise ValueError(f"{where}: not sorted ({short_repr(classes)}); fit stores them sorted")
    return classes


def build_model(in_features: int, width: int, hidden: Sequence[int], state: dict[str, torch.Tensor], where: Path | str) -> IntentClassifier:
    """An :class:`~l2l_taskmix.models.IntentClassifier` holding ``state`` exactly, its names,
    shapes and float dtypes checked against the architecture (an integer or boolean tensor is
    refused, never cast); ``where``: the weights file, for messages."""
    with torch.device("meta"):
        model = IntentClassifier(in_features, width, hidden=tuple(hidden))
    model = model.to_empty(device="cpu")
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected != found:
        missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
        wrong = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
        detail = "; ".join(
            part
            for part in (
                f"missing {missing}" if missing else "",
                f"unexpected {extra}" if extra else "",
                f"shape of {wrong[0]} is {found[wrong[0]]}, the architecture's {expected[wrong[0]]}" if wrong else "",
            )
            if part
        )
        raise ValueError(f"{where}: the weights do not fit the architecture of {CONFIG_NAME} ({detail})")
    for name, tensor in sorted(state.items()):
        if not tensor.is_floating_point():
            raise ValueError(
                f"{where}: tensor {name!r} is {str(tensor.dtype).removeprefix('torch.')}; weights must be floating point "
                "(l2l-taskmix writes float32): these are not a model's weights"
            )
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model


def model_card(config: dict[str, Any]) -> str:
    """The folder's ``README.md``: Hugging Face metadata (YAML), then what the model was trained
    on, how, and its benchmark score where there is one."""
    from huggingface_hub import ModelCard, ModelCardData

    training, encoder, bench = config["training"], config.get("encoder"), config.get("benchmark")
    data = ModelCardData(
        library_name="l2l-taskmix",
        pipeline_tag="text-classification",
        license="mit",
        tags=["taskmix", "maml", "meta-learning", "few-shot", "intent-classification", config["method"]],
        metrics=["f1"],
        base_model=encoder["name"] if encoder and encoder.get("kind") == "hf" else None,
    )
    cell = markdown_cell
    lines = [
        f"# {config['method']} intent classifier (l2l-taskmix)",
        "",
        "A neck and head meta-trained with l2l-taskmix for few-shot intent classification of a new task: adapt it "
        "from a few labelled utterances per intent, then classify.",
        "",
    ]
    enc = (
        (
            f"{markdown_code(encoder['name'])} ({encoder['kind']}, {encoder['dim']}-d, pooling {encoder.get('pooling')}, "
            f"max length {encoder.get('max_length')}, revision {encoder.get('revision')})"
        )
        if encoder
        else "none: precomputed features" + (f" (stated: {cell(training['encoder_stated'])})" if training.get("encoder_stated") else "")
    )
    lines += [
        "## Training",
        "",
        f"- Method: **{config['method']}**, {config['protocol']} protocol, seed {config['seed']}; head: {config['head']}, "
        f"{config['architecture']['head_width']} outputs; neck {config['architecture']['hidden']}.",
        f"- Encoder (frozen): {enc}.",
        f"- Data: {markdown_code(training['dataset'])}, {len(training['tasks'])} meta-training task(s) "
        f"(feature fingerprint `{training['feature_fingerprint']}`).",
        "",
        "| task | intents | utterances |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {cell(t['name'])} | {len(t['classes'])} | {t['rows']} |" for t in training["tasks"]]
    hp = config["hyperparameters"]
    lines += ["", "Hyperparameters: " + ", ".join(f"{k} {v}" for k, v in hp.items() if v is not None) + ".", ""]
    lines += ["## Benchmark score", ""]
    if bench:
        lines += [
            f"Average macro-F1 {bench['macro_f1']:.3f} on the dataset's {len(bench['per_task'])} meta-test task(s) "
            f"({bench['regime']}, {bench['protocol']} protocol, seed {bench['seed']}; one seed, so no spread):",
            "",
            "| meta-test task | macro-F1 |",
            "| --- | ---: |",
        ]
        lines += [f"| {cell(name)} | {score:.3f} |" for name, score in bench["per_task"].items()]
    else:
        lines += ["None: every task of the data was used for meta-training."]
    adapted = config.get("adapted")
    if adapted:
        lines += [
            "",
            "## Adapted",
            "",
            f"Adapted to a task of {len(adapted['classes'])} intents from "
            f"{adapted['support_rows']} labelled utterances: " + ", ".join(cell(c) for c in adapted["classes"]) + ".",
        ]
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from l2l_taskmix import FewShotIntentClassifier",
        "",
        'clf = FewShotIntentClassifier.from_pretrained("path/to/this/folder")',
    ]
    lines += [
        'clf.predict(["what will the weather be tomorrow"])'
        if adapted
        else "clf.fit(utterances, intents)          # a few labelled examples per intent of the new task\n"
        'clf.predict(["what will the weather be tomorrow"])'
    ]
    lines += ["```", "", "or `l2l-taskmix adapt`, `predict` and `evaluate` on the command line.", ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)).content
