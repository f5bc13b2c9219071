"""A meta-trained model for a new task: adapt it from a few labelled utterances, then classify.

:func:`meta_train` meta-trains one method exactly as the benchmark does (its
:func:`~l2l_taskmix.benchmark.runner.fit_run`) and returns a :class:`FewShotIntentClassifier`;
``save_pretrained``/``from_pretrained`` keep it in a model folder
(:mod:`~l2l_taskmix.benchmark.artifact`). ``fit(utterances, intents)`` adapts a copy to a new
task as the benchmark's evaluation fine-tunes each meta-test task (same steps and learning rate;
the meta-learned head for the MAML variants, a new head for MTL and transfer), and
``predict``, ``predict_proba`` (columns in ``classes_`` order) and ``score`` (macro-F1) use it,
in scikit-learn's vocabulary. An utterance is a string or a list of N-best hypotheses (joined
with the encoder's separator, as in training); a float array ``(n, d)`` is taken as encoder
features.

Example, on precomputed features (a model with an encoder takes utterances the same way)::

    >>> import tempfile, torch
    >>> from l2l_taskmix.benchmark import BenchmarkConfig
    >>> from l2l_taskmix.benchmark.datasets import BenchmarkData
    >>> from l2l_taskmix.features import FeatureTask
    >>> g = torch.Generator().manual_seed(0)
    >>> def task(name):
    ...     return FeatureTask(name, torch.randn(30, 8, generator=g), torch.arange(30) % 3, ["a", "b", "c"])
    >>> config = BenchmarkConfig(iterations=5, batch_size=4, hidden=(16,), finetune_steps=5)
    >>> clf = meta_train(config, "maml+taskmix", data=BenchmarkData([task("t1"), task("t2")], []), progress=False)
    >>> folder = clf.save_pretrained(tempfile.mkdtemp() + "/model")
    >>> clf = FewShotIntentClassifier.from_pretrained(folder)
    >>> x = torch.randn(6, 8, generator=g)
    >>> clf.fit(x, ["alarm", "music"] * 3).classes_.tolist()
    ['alarm', 'music']
    >>> clf.predict_proba(x).shape, len(clf.predict(x))
    ((6, 2), 6)
"""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..features import Standardizer, featurize_texts, get_encoder
from ..features.encoders import encoder_from_spec, encoder_spec
from ..markdown import markdown_cell, markdown_code
from ..models import IntentClassifier
from ..validation import check_bool, check_choice, check_device, check_scalar, short_repr
from .artifact import CONFIG_NAME, WEIGHTS_NAME, read_model_folder, resolve_model_path, write_model_folder
from .config import PROTOCOLS, BenchmarkConfig, is_feature_file
from .datasets import BenchmarkData
from .evaluation import evaluate, finetune, macro_f1, make_splits
from .methods import get_method
from .runner import fit_run, load_data
from .store import data_fingerprint

__all__ = ["FewShotIntentClassifier", "NotFittedError", "meta_train", "model_card", "PROBE_TEXTS"]

#: Sentences whose features a model folder keeps, to recognize its encoder elsewhere.
PROBE_TEXTS = ("set an alarm for seven tomorrow morning", "¿va a llover mañana en Madrid?")
#: Cosine similarity each probe's features must reach for an encoder to count as the model's.
PROBE_COSINE = 0.999


class NotFittedError(ValueError, AttributeError):
    """Predicting before ``fit`` (scikit-learn's exception has the same two bases)."""


class FewShotIntentClassifier:
    """A meta-trained model, its encoder and standardization; ``fit`` adapts it to one task.

    Build it with :func:`meta_train` or :meth:`from_pretrained`. ``fit`` always starts again
    from the meta-trained weights (scikit-learn's ``fit``), so one loaded model serves many
    tasks. Everything runs on ``device`` (default the CPU: the benchmark's CPU numbers, bit for
    bit).

    Attributes:
        config: the model folder's ``config.json`` content (method, hyperparameters, encoder,
            training tasks, ...).
        method: the :class:`~l2l_taskmix.benchmark.methods.Method` it was meta-trained with.
        meta_model: the meta-trained :class:`~l2l_taskmix.models.IntentClassifier` (never
            changed by ``fit``).
        model_: after ``fit``: the adapted copy. classes_: after ``fit``: the task's intents,
            sorted; ``predict_proba``'s columns.
    """

    def __init__(
        self,
        meta_model: IntentClassifier,
        config: dict[str, Any],
        *,
        encoder: Any = None,
        cache_dir: str | os.PathLike | None = None,
        cache: bool = True,
        device: str | torch.device = "cpu",
        progress: bool = True,
    ) -> None:
        self.config = config
        self.method = get_method(config["method"])
        self.device = check_device(device)
        self.meta_model = meta_model.to(self.device).eval()
        stats = config.get("standardization")
        self.standardizer = (
            None
            if stats is None
            else Standardizer(torch.tensor(stats["mean"], dtype=torch.float32), torch.tensor(stats["std"], dtype=torch.float32))
        )
        self.cache_dir, self.cache, self.progress = cache_dir, check_bool(cache, "cache"), check_bool(progress, "progress")
        self._given_encoder = encoder
        self._encoder = None
        self.model_: IntentClassifier | None = None
        self.classes_: np.ndarray | None = None
        self.adapted_: dict[str, Any] | None = None

    # -- the model folder ------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        *,
        encoder: Any = None,
        cache_dir: str | os.PathLike | None = None,
        cache: bool = True,
        device: str | torch.device = "cpu",
        revision: str | None = None,
        progress: bool = True,
    ) -> "FewShotIntentClassifier":
        """Load a model folder (or a Hugging Face hub id of one) written by ``l2l-taskmix train``
        or :meth:`save_pretrained`. Only JSON and safetensors are read: nothing in the folder runs.

        ``encoder``: an encoder (object or name) to use instead of the one the folder names
        (say, a local copy of it); it must give the features the model was trained on, checked
        on first use. ``cache_dir``/``cache``: the feature cache for utterances (as the benchmark's);
        ``progress``: the encoder's progress bar while it encodes.
        """
        folder = resolve_model_path(path, revision)
        tensors, config = read_model_folder(folder)
        where = folder / CONFIG_NAME
        in_features, hidden, width, method = _check_settings(config, where)
        meta = {k.removeprefix("meta."): v for k, v in tensors.items() if k.startswith("meta.")}
        plain = {k: v for k, v in tensors.items() if not k.startswith("meta.")}
        adapted = config.get("adapted")
        clf = cls(
            _build(in_features, width, hidden, meta or plain, folder / WEIGHTS_NAME),
            config,
            encoder=encoder,
            cache_dir=cache_dir,
            cache=cache,
            device=device,
            progress=progress,
        )
        if adapted is not None:
            try:
                classes = [str(c) for c in adapted["classes"]]
                outputs = int(adapted["head_outputs"])
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"{where}: 'adapted' must hold the task's classes and head_outputs") from None
            if not meta:
                raise ValueError(
                    f"{folder / WEIGHTS_NAME}: an adapted model keeps its meta-trained weights under 'meta.'; they are missing"
                )
            if len(classes) < 2 or len(classes) > outputs or (method.keeps_head and outputs != width):
                raise ValueError(f"{where}: 'adapted' has {len(classes)} classes for {outputs} head outputs (head width {width})")
            clf.model_ = _build(in_features, outputs, hidden, plain, folder / WEIGHTS_NAME).to(clf.device).eval()
            clf.classes_ = np.array(classes, dtype=object)
            clf.adapted_ = adapted
        return clf

    def save_pretrained(self, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
        """Write the model folder ``path`` (``config.json``, ``model.safetensors``, ``README.md``),
        whole or not at all; after ``fit`` it holds the adapted model too (and loads adapted).
        An existing model folder is replaced (``overwrite=False``: refused); any other existing
        file or non-empty folder is never replaced."""
        config = dict(self.config)
        tensors = dict(self.meta_model.state_dict())
        if self.model_ is not None:
            tensors = {**{f"meta.{k}": v for k, v in tensors.items()}, **self.model_.state_dict()}
            config["adapted"] = self.adapted_
        else:
            config["adapted"] = None
        return write_model_folder(path, tensors, config, model_card(config), overwrite=overwrite)

    # -- the encoder ---------------------------------------------------------------------------
    @property
    def sep(self) -> str:
        """The separator N-best hypotheses are joined with: the model's encoder's (read from the
        folder; the encoder is not loaded)."""
        return self._encoder_spec()["sep"]

    def _encoder_spec(self) -> dict[str, Any]:
        spec = self.config.get("encoder")
        if spec is None:
            raise ValueError(
                "this model was meta-trained on precomputed features, without an encoder, so it takes "
                "features, not utterances: in Python pass a float array (n, d) of the same encoder's features "
                "(the command line takes utterances: train on a dataset of texts, not a .pt feature file)"
            )
        return spec

    @property
    def encoder(self):
        """The encoder utterances go through (built from the folder's description, or the one
        given), checked on first use to give the model's features."""
        if self._encoder is None:
            spec = self._encoder_spec()
            given = self._given_encoder
            if given is None:
                encoder = encoder_from_spec(spec, device=str(self.device))
            else:
                encoder = get_encoder(given, device=str(self.device)) if isinstance(given, (str, os.PathLike)) else given
            if hasattr(encoder, "progress") and (given is None or not self.progress):  # a given one is left as it is unless False
                encoder.progress = self.progress
            self._encoder = _check_encoder(encoder, spec)
        return self._encoder

    def features(self, X: Any) -> torch.Tensor:
        """``FloatTensor[n, d]``: the standardized features the model takes, of utterances
        (strings or N-best lists; encoded through the feature cache) or of raw encoder features."""
        x = self._raw_features(X)
        x = self.standardizer(x) if self.standardizer is not None else x.float()
        return x.to(self.device)

    def _raw_features(self, X: Any) -> torch.Tensor:
        width = int(self.config["architecture"]["in_features"])
        if isinstance(X, (torch.Tensor, np.ndarray)) and getattr(X, "ndim", 0) == 2 and _is_float(X):
            x = torch.as_tensor(np.asarray(X) if isinstance(X, np.ndarray) else X.detach().cpu(), dtype=torch.float32)
            if x.shape[0] == 0:
                raise ValueError("X is empty: no utterances or feature rows")
            if x.shape[1] != width:
                raise ValueError(f"X has features of width {x.shape[1]}; this model takes {width}")
            if not torch.isfinite(x).all():
                raise ValueError(f"X has NaN or infinite features (row {int((~torch.isfinite(x)).any(1).nonzero()[0])})")
            return x
        texts = self.texts(X)
        return featurize_texts(texts, self.encoder, self.cache_dir, cache=self.cache)

    def texts(self, X: Any) -> list[str]:
        """The texts of utterances ``X`` as the encoder reads them: a string as it is, an N-best
        list of hypotheses joined with the encoder's separator (as in training)."""
        from ..data import join_hypotheses

        if isinstance(X, str):
            raise ValueError("X must be a list of utterances, not a single string: wrap it, [text]")
        if isinstance(X, (torch.Tensor, np.ndarray)) and getattr(X, "ndim", 1) != 1 and not _is_text_array(X):
            raise ValueError(f"X must be utterances or a float array (n, d) of features; got an array of shape {tuple(X.shape)}")
        items = list(X)
        if not items:
            raise ValueError("X is empty: no utterances to classify")
        out = []
        for i, item in enumerate(items):
            if isinstance(item, str):
                if not item.strip():
                    raise ValueError(f"X[{i}] is an empty utterance")
                out.append(item)
            elif isinstance(item, (list, tuple)):
                try:
                    out.append(join_hypotheses(list(item), self.sep))
                except ValueError as err:
                    raise ValueError(f"X[{i}]: {err}") from None
            else:
                raise ValueError(f"X[{i}] must be a string or a list of N-best hypotheses, got {short_repr(item)}")
        return out

    # -- scikit-learn's interface ------------------------------------------------------------
    def fit(self, X: Any, y: Sequence[Any]) -> "FewShotIntentClassifier":
        """Adapt a copy of the meta-trained model to the task of utterances ``X`` labelled ``y``
        (intent names), exactly as the benchmark fine-tunes a meta-test task's support split:
        ``finetune_steps`` full-batch Adam steps at ``finetune_lr`` on the task's classes
        (sorted: ``classes_``). MAML variants start from the meta-learned head and use its first
        ``len(classes_)`` outputs; MTL and transfer get a new head, drawn from a generator seeded
        by the training seed (the benchmark draws its first meta-test task's head so)."""
        labels = _labels(y)
        classes = sorted(set(labels))
        if len(classes) < 2:
            raise ValueError(f"the support set has one intent ({short_repr(classes[0])}): give examples of at least two intents")
        width = int(self.config["architecture"]["head_width"])
        if self.method.keeps_head and len(classes) > width:
            raise ValueError(
                f"the support set has {len(classes)} intents but this {self.method.name} model's head has {width} "
                f"outputs; meta-train it with a wider head: l2l-taskmix train --head-width {len(classes)} "
                f"(Python: meta_train(..., head_width={len(classes)}))"
            )
        if not isinstance(X, (str, torch.Tensor, np.ndarray)) and hasattr(X, "__len__") and 0 < len(X) != len(labels):
            raise ValueError(f"X has {len(X)} utterances but y has {len(labels)} intents")  # before any encoding
        x = self.features(X)
        if len(x) != len(labels):
            raise ValueError(f"X has {len(x)} utterances but y has {len(labels)} intents")
        index = {c: i for i, c in enumerate(classes)}
        target = torch.tensor([index[c] for c in labels], dtype=torch.long, device=self.device)
        adaptation = self.config["adaptation"]
        generator = torch.Generator().manual_seed(int(adaptation["seed"]))
        tuned = self.method.finetune_model(self.meta_model, len(classes), generator)
        tuned.train()
        finetune(
            tuned, x, target, len(classes), finetune_steps=int(adaptation["finetune_steps"]), finetune_lr=float(adaptation["finetune_lr"])
        )
        self.model_ = tuned.eval()
        self.classes_ = np.array(classes, dtype=object)
        self.adapted_ = {
            "classes": classes,
            "head_outputs": int(tuned.head.out_features),
            "support_rows": len(labels),
            "support_per_intent": {c: labels.count(c) for c in classes},
        }
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits ``(n, len(classes_))`` of the adapted model."""
        return self._logits(X).cpu().numpy()

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities ``(n, len(classes_))``, columns in ``classes_`` order; rows sum to 1."""
        return torch.softmax(self._logits(X), dim=1).cpu().numpy()

    def predict(self, X: Any) -> np.ndarray:
        """The most likely intent of each utterance (an array of names from ``classes_``)."""
        return self.classes_[self._logits(X).argmax(1).cpu().numpy()]

    def score(self, X: Any, y: Sequence[Any]) -> float:
        """Macro-F1 of ``predict(X)`` against ``y`` (the benchmark's metric; an intent of ``y``
        that the model was not adapted to counts, with F1 0)."""
        labels = _labels(y)
        predicted = self.predict(X)
        if len(predicted) != len(labels):
            raise ValueError(f"X has {len(predicted)} utterances but y has {len(labels)} intents")
        return macro_f1(np.array(labels, dtype=object), predicted)

    def require_adapted(self) -> None:
        """``NotFittedError`` (a ``ValueError``) unless ``fit`` has adapted the model to a task."""
        if self.model_ is None:
            raise NotFittedError(
                "this model is meta-trained but not adapted to a task yet: call fit(utterances, intents) "
                "first (command line: l2l-taskmix adapt)"
            )

    def _logits(self, X: Any) -> torch.Tensor:
        self.require_adapted()
        with torch.no_grad():
            return self.model_(self.features(X))[:, : len(self.classes_)]

    def __repr__(self) -> str:
        state = f"adapted to {len(self.classes_)} intents" if self.classes_ is not None else "not adapted"
        return f"FewShotIntentClassifier({self.method.name}, {state})"


#: What ``config.json`` must hold, as (path of keys, type) pairs; the encoder's only when it has one.
REQUIRED = (
    (("architecture", "in_features"), int),
    (("architecture", "hidden"), list),
    (("architecture", "head_width"), int),
    (("method",), str),
    (("adaptation", "finetune_steps"), int),
    (("adaptation", "finetune_lr"), (int, float)),
    (("adaptation", "seed"), int),
)
ENCODER_REQUIRED = (("kind", str), ("name", str), ("dim", int), ("sep", str), ("cache_key", str))
_KINDS = {int: "a whole number", str: "a text", list: "a list"}


def _check_settings(config: dict[str, Any], where: Path) -> tuple[int, list[int], int, Any]:
    """``(in_features, hidden, head_width, method)`` of a model's ``config.json``, every field
    the classifier reads checked for presence and type first."""

    def bad(key: str, why: str) -> ValueError:
        return ValueError(f"{where}: {key} {why}; expected what l2l-taskmix train writes")

    for keys, kind in REQUIRED:
        value: Any = config
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None or isinstance(value, bool) or not isinstance(value, kind):
            raise bad(".".join(keys), "is missing" if value is None else f"must be {_KINDS.get(kind, 'a number')}, got {short_repr(value)}")
    arch = config["architecture"]
    if not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in arch["hidden"]):
        raise bad("architecture.hidden", f"must be a list of positive widths, got {short_repr(arch['hidden'])}")
    try:
        method = get_method(config["method"])
    except ValueError as err:
        raise bad("method", str(err)) from None
    spec = config.get("encoder")
    if spec is not None:
        if not isinstance(spec, dict):
            raise bad("encoder", f"must be an object or null, got {short_repr(spec)}")
        for key, kind in ENCODER_REQUIRED:
            if not isinstance(spec.get(key), kind) or isinstance(spec.get(key), bool):
                raise bad(f"encoder.{key}", f"is missing or not {_KINDS[kind]}")
    stats = config.get("standardization")
    if stats is not None and not (
        isinstance(stats, dict)
        and all(
            isinstance(stats.get(k), list) and len(stats[k]) == arch["in_features"] and all(isinstance(v, (int, float)) for v in stats[k])
            for k in ("mean", "std")
        )
    ):
        raise bad("standardization", f"must hold mean and std lists of {arch['in_features']} numbers")
    return arch["in_features"], list(arch["hidden"]), arch["head_width"], method


def _is_float(x: Any) -> bool:
    return x.is_floating_point() if isinstance(x, torch.Tensor) else np.issubdtype(x.dtype, np.floating)


def _is_text_array(x: Any) -> bool:
    return isinstance(x, np.ndarray) and x.dtype == object


def _labels(y: Any) -> list[str]:
    """Intent names as texts (numbers too), each checked."""
    from ..data.tasks import check_name

    if isinstance(y, str):
        raise ValueError("y must be a list of intents, not a single string")
    labels = list(y)
    if not labels:
        raise ValueError("y is empty: no intents")
    out = []
    for i, label in enumerate(labels):
        if isinstance(label, (float, np.floating)) and not float(label).is_integer():
            raise ValueError(f"y[{i}] = {label!r}: intents are names (or whole numbers)")
        if label is None or isinstance(label, bool) or not isinstance(label, (str, int, np.integer, float, np.floating)):
            raise ValueError(f"y[{i}] must be an intent name, got {short_repr(label)}")
        text = str(int(label)) if isinstance(label, (float, np.floating)) else str(label).strip()
        if not text:
            raise ValueError(f"y[{i}] is an empty intent")
        out.append(check_name(text, "intent", f"y[{i}]"))
    return out


def _build(in_features: int, width: int, hidden: Sequence[int], state: dict[str, torch.Tensor], where: Path) -> IntentClassifier:
    """An :class:`IntentClassifier` holding ``state`` exactly (shapes checked against the architecture)."""
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
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model


def _check_encoder(encoder: Any, spec: dict[str, Any]):
    """``encoder`` if it gives the features the model was trained on; else ``ValueError``."""
    for key in ("dim", "sep"):
        have = int(encoder.dim) if key == "dim" else str(encoder.sep)
        if have != spec[key]:
            raise ValueError(
                f"encoder {short_repr(getattr(encoder, 'name', encoder))} has {key} {short_repr(have)}, but the model "
                f"was trained with {short_repr(spec['name'])} ({key} {short_repr(spec[key])}): use that encoder"
            )
    if str(encoder.cache_key) == spec.get("cache_key"):
        return encoder
    probe = spec.get("probe")
    if not probe:
        raise ValueError(f"encoder {encoder.cache_key!r} is not the one the model was trained with ({spec.get('cache_key')!r})")
    ref = torch.tensor(probe["features"], dtype=torch.float32)
    got = _encode_quietly(encoder, probe["texts"])
    cosine = torch.nn.functional.cosine_similarity(got, ref, dim=1) if got.shape == ref.shape else torch.zeros(1)
    if float(cosine.min()) < PROBE_COSINE:
        raise ValueError(
            f"encoder {encoder.cache_key!r} gives other features than the one the model was trained with "
            f"({spec.get('cache_key')!r}): cosine similarity {float(cosine.min()):.3f} on a probe sentence "
            f"(at least {PROBE_COSINE} needed); use the model's encoder"
        )
    return encoder


def _encode_quietly(encoder: Any, texts: Sequence[str]) -> torch.Tensor:
    """``encoder.encode(texts)`` without its progress bar (a few probe sentences)."""
    shown = getattr(encoder, "progress", None)
    if shown is not None:
        encoder.progress = False
    try:
        return torch.as_tensor(encoder.encode(list(texts)), dtype=torch.float32)
    finally:
        if shown is not None:
            encoder.progress = shown


def meta_train(
    config: BenchmarkConfig,
    method: str = "maml+taskmix",
    *,
    seed: int = 0,
    protocol: str = "paper",
    head_width: int | None = None,
    data: BenchmarkData | None = None,
    encoder: Any = None,
    progress: bool = True,
) -> FewShotIntentClassifier:
    """Meta-train ``method`` on ``config.dataset``'s meta-training tasks, as the benchmark's run
    of that method and seed does (:func:`~l2l_taskmix.benchmark.runner.fit_run`), and return it
    ready to adapt.

    A task table meta-trains on every task (a user's old clients) unless ``config.num_train``
    or its ``split`` column say otherwise; a named dataset (``mtop-long``, ...) on its
    meta-training tasks. Where there are meta-test tasks, they are scored as the benchmark
    scores them, and the score goes into the model card. ``head_width``: the head's outputs,
    to adapt later to tasks with more intents than any seen here (default: the largest task's
    class count, the paper's head). ``data``/``encoder``: featurized tasks or an encoder object
    to use instead of loading ``config.dataset`` with ``config.encoder``.
    """
    method = get_method(method)
    seed = check_scalar(seed, "seed", int)
    check_choice(protocol, "protocol", PROTOCOLS)  # before the data are loaded
    start = time.perf_counter()
    if encoder is None and data is None and not is_feature_file(config.dataset):
        encoder = config.encoder
    if isinstance(encoder, (str, os.PathLike)):  # built here: its description and probe features go into the folder
        encoder = get_encoder(encoder, device=config.device, progress=progress)
    used_encoder = encoder
    if data is None:
        source = str(config.dataset)
        data = load_data(config, encoder, progress=progress, num_train="all" if config.num_train is None else None)
    else:
        source = str(data.info.get("source") or data.info.get("dataset") or "tasks given to meta_train")
    splits = make_splits(data.test, config.shots, config.fraction, seed=seed) if data.test else []
    run = fit_run(
        method, seed, data.train, data.test, config, protocol=protocol, head_width=head_width, device=config.device, progress=progress
    )
    model = run.trained.model
    benchmark = None
    if data.test:
        per_task = evaluate(model, method, run.test_side, splits, seed=seed, **config.kwargs_for(evaluate))
        benchmark = {
            "macro_f1": float(np.mean(list(per_task.values()))),
            "per_task": per_task,
            "regime": config.regime,
            "protocol": protocol,
            "seed": seed,
        }
    model = copy.deepcopy(model).cpu()
    spec = None
    if used_encoder is not None:
        spec = encoder_spec(used_encoder)
        spec["probe"] = {"texts": list(PROBE_TEXTS), "features": _encode_quietly(used_encoder, PROBE_TEXTS).tolist()}
    stats = None if run.standardizer is None else {"mean": run.standardizer.mean.tolist(), "std": run.standardizer.std.tolist()}
    hyper = {
        k: v
        for k, v in config.to_dict().items()
        if k not in ("methods", "protocols", "seeds", "cache_dir", "dataset", "data_root", "encoder")
    }
    settings = {
        "architecture": {
            "class": "IntentClassifier",
            "in_features": int(model.in_features),
            "hidden": list(model.hidden),
            "head_width": int(model.num_classes),
        },
        "method": method.name,
        "head": "meta-learned (a task uses its first outputs)" if method.keeps_head else "new for each task",
        "protocol": protocol,
        "seed": seed,
        "hyperparameters": hyper,
        "adaptation": {"finetune_steps": int(config.finetune_steps), "finetune_lr": float(config.finetune_lr), "seed": seed},
        "encoder": spec,
        "standardization": stats,
        "training": {
            "dataset": source,
            "data_root": config.data_root,
            "tasks": [{"name": t.name, "classes": list(t.classes), "rows": len(t)} for t in run.fit_side],
            "validation_tasks": [t.name for t in run.val_side],
            "feature_fingerprint": data_fingerprint(list(data.train)),
            "best_iteration": int(run.trained.best_iteration) if method.trains else 0,
            "final_loss": run.trained.history[-1]["loss"] if run.trained.history else None,
            "seconds": round(time.perf_counter() - start, 1),
            "encoder_stated": data.info.get("stated_encoder"),
        },
        "benchmark": benchmark,
        "adapted": None,
    }
    return FewShotIntentClassifier(model, settings, encoder=used_encoder, cache_dir=config.cache_dir, progress=progress)


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
        "from l2l_taskmix.benchmark import FewShotIntentClassifier",
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
