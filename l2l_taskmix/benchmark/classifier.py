"""A meta-trained model for a new task, as a scikit-learn classifier: adapt it from a few
labelled utterances, then classify.

:func:`meta_train` meta-trains one method exactly as the benchmark does (its
:func:`~l2l_taskmix.benchmark.run.fit_run`) and returns a :class:`FewShotIntentClassifier`
holding the :class:`~l2l_taskmix.benchmark.artifact.MetaTrainedModel`; ``save_pretrained`` writes
its model folder, and ``FewShotIntentClassifier(folder)`` (or ``from_pretrained``) reads one
(:mod:`~l2l_taskmix.benchmark.artifact`). ``fit(X, y)`` adapts a copy to a new task as the
benchmark's evaluation fine-tunes each meta-test task (same steps and learning rate unless
``finetune_steps``/``finetune_lr`` are given; the meta-learned head for the MAML variants, a new
head for MTL and transfer); ``predict``, ``predict_proba`` (columns in ``classes_`` order) and
``score`` (macro-F1) use it. It follows scikit-learn's rules (``clone``, pipelines,
cross-validation and grid search work), and is also ``from l2l_taskmix import FewShotIntentClassifier``.

``X`` is utterances (a list, 1-d array, pandas Series or one-column DataFrame of texts; an
utterance may be a list of N-best hypotheses, joined with the encoder's separator as in
training), or a float array ``(n, d)`` of encoder features. ``y`` is labels, texts or whole
numbers; ``classes_`` keeps their values and dtype.

Example, on precomputed features (a model with an encoder takes utterances the same way)::

    >>> import tempfile, torch
    >>> from sklearn.base import clone
    >>> from l2l_taskmix.benchmark import BenchmarkConfig
    >>> from l2l_taskmix.benchmark.datasets import BenchmarkData
    >>> from l2l_taskmix.features import FeatureTask
    >>> g = torch.Generator().manual_seed(0)
    >>> def task(name):
    ...     return FeatureTask(name, torch.randn(30, 8, generator=g), torch.arange(30) % 3, ["a", "b", "c"])
    >>> config = BenchmarkConfig(iterations=5, batch_size=4, hidden=(16,), finetune_steps=5)
    >>> clf = meta_train(config, "maml+taskmix", data=BenchmarkData([task("t1"), task("t2")], []), progress=False)
    >>> folder = clf.save_pretrained(tempfile.mkdtemp() + "/model")
    >>> clf = FewShotIntentClassifier(folder, finetune_steps=10)
    >>> x = torch.randn(6, 8, generator=g).numpy()
    >>> clf.fit(x, [10, 2] * 3).classes_
    array([ 2, 10])
    >>> clf.predict_proba(x).shape, clf.predict(x).dtype, clone(clf).get_params()["finetune_steps"]
    ((6, 2), dtype('int64'), 10)
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError

from ..features import Standardizer, featurize_texts, get_encoder
from ..features.encoders import encoder_from_spec, encoder_spec
from ..models import IntentClassifier
from ..validation import check_bool, check_choice, check_device, check_scalar, short_repr
from .artifact import (
    PROBE_TEXTS,
    Adapted,
    MetaTrainedModel,
    check_classes,
    load_model_folder,
    model_card,
    write_model_folder,
)
from .config import PROTOCOLS, BenchmarkConfig, is_feature_file
from .datasets import BenchmarkData
from .evaluation import finetune, macro_f1
from .methods import get_method
from .run import fit_run, score_meta_test
from .runner import load_data
from .store import data_fingerprint

__all__ = ["FewShotIntentClassifier", "NotFittedError", "meta_train", "PROBE_COSINE"]

#: Cosine similarity each probe's features must reach for an encoder to count as the model's.
PROBE_COSINE = 0.999
#: What ``X`` may be, for messages.
X_KINDS = (
    "utterances (a list, 1-d array, pandas Series or one-column DataFrame of texts or N-best lists) "
    "or a float array (n, {width}) of features"
)


@dataclass
class _Loaded:
    """What the classifier built from its parameters (not a parameter; rebuilt when they change)."""

    source: Any
    revision: Any
    device_given: Any
    device: torch.device
    pretrained: MetaTrainedModel
    adapted: Adapted | None
    meta_model: IntentClassifier
    standardizer: Standardizer | None
    encoder: Any = None
    encoder_given: Any = None


class FewShotIntentClassifier(ClassifierMixin, BaseEstimator):
    """A meta-trained intent classifier that ``fit`` adapts to one task, a scikit-learn estimator.

    ``fit`` always starts again from the meta-trained weights, so one model serves many tasks,
    and ``clone``, ``Pipeline``, ``cross_val_score`` and ``GridSearchCV`` work. Parameters are
    stored as given and checked when used (scikit-learn's rule); the model is read on first use.

    Args:
        model: the meta-trained model: a model folder (path, or a Hugging Face hub id of one)
            as ``l2l-taskmix train`` or :meth:`save_pretrained` write, or the
            :class:`~l2l_taskmix.benchmark.artifact.MetaTrainedModel` that :func:`meta_train`'s
            classifier holds. A folder's adapted task is used by :meth:`from_pretrained` only;
            ``fit`` starts from its meta-trained weights.
        finetune_steps, finetune_lr: fine-tuning steps and Adam learning rate of ``fit``
            (``None``: the model's, those of its meta-training; the same bounds as
            ``--finetune-steps``/``--finetune-lr``).
        encoder: an encoder (object or name) to use instead of the one the model names (say,
            a local copy of it); it must give the model's features, checked on first use.
        cache_dir, cache: the feature cache for utterances (as the benchmark's).
        device: where the model runs (default the CPU: the benchmark's CPU numbers, bit for bit).
        revision: the hub revision, for a hub id.
        progress: the encoder's progress bar while it encodes.

    Attributes:
        classes_: after ``fit``: the task's labels, sorted (``np.unique`` of ``y``, in ``y``'s
            dtype); ``predict_proba``'s columns. model_: the adapted copy.
            adapted_: what ``fit`` did (classes, head outputs, support rows, steps, learning rate).
            n_features_in_: the feature width, when ``fit`` was given features.
    """

    def __init__(
        self,
        model: str | os.PathLike | MetaTrainedModel | None = None,
        *,
        finetune_steps: int | None = None,
        finetune_lr: float | None = None,
        encoder: Any = None,
        cache_dir: str | os.PathLike | None = None,
        cache: bool = True,
        device: str = "cpu",
        revision: str | None = None,
        progress: bool = True,
    ) -> None:
        self.model = model
        self.finetune_steps = finetune_steps
        self.finetune_lr = finetune_lr
        self.encoder = encoder
        self.cache_dir = cache_dir
        self.cache = cache
        self.device = device
        self.revision = revision
        self.progress = progress

    # -- the model ---------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **params: Any) -> "FewShotIntentClassifier":
        """The classifier of a model folder (or a Hugging Face hub id of one) written by
        ``l2l-taskmix train``, ``adapt`` or :meth:`save_pretrained`; an adapted folder loads
        adapted, ready to predict. ``params``: the constructor's other parameters. Only JSON and
        safetensors are read, every value checked: nothing in the folder runs."""
        clf = cls(path, **params)
        state = clf._loaded()
        if state.adapted is not None:
            clf.model_ = copy.deepcopy(state.adapted.model).to(state.device).eval()
            clf.classes_ = np.array(state.adapted.classes)
            clf.adapted_ = dict(state.adapted.info)
        return clf

    def _loaded(self) -> _Loaded:
        """The model of ``model`` on ``device``, read and checked once per parameter value."""
        state = self.__dict__.get("_state")
        is_path = isinstance(self.model, (str, os.PathLike))
        if (
            state is not None
            and (state.source == self.model if is_path else state.source is self.model)
            and state.revision == self.revision
            and state.device_given == self.device
        ):
            return state
        device = check_device(self.device, "device")
        if is_path:
            pretrained, adapted = load_model_folder(self.model, self.revision)
        elif isinstance(self.model, MetaTrainedModel):
            pretrained, adapted = self.model, None
        elif self.model is None:
            raise ValueError(
                "model is None: give the meta-trained model, a model folder (a path or a Hugging Face hub id) "
                "or the MetaTrainedModel of a classifier meta_train made (its .model)"
            )
        else:
            raise TypeError(
                f"model must be a model folder (a path or a Hugging Face hub id) or a MetaTrainedModel, got {short_repr(self.model)}"
            )
        meta = pretrained.model if device.type == "cpu" else copy.deepcopy(pretrained.model).to(device)
        stats = pretrained.config.get("standardization")
        standardizer = None
        if stats is not None:
            standardizer = Standardizer(torch.tensor(stats["mean"], dtype=torch.float32), torch.tensor(stats["std"], dtype=torch.float32))
        state = _Loaded(self.model, self.revision, self.device, device, pretrained, adapted, meta.eval(), standardizer)
        self.__dict__["_state"] = state
        return state

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_state", None)  # rebuilt from the parameters where it is unpickled
        return state

    @property
    def config(self) -> dict[str, Any]:
        """The model's ``config.json`` content (method, hyperparameters, encoder, training
        tasks, ...; its ``adapted`` is the task a folder was adapted to, if any)."""
        state = self._loaded()
        return {**state.pretrained.config, "adapted": None if state.adapted is None else state.adapted.info}

    @property
    def method(self):
        """The :class:`~l2l_taskmix.benchmark.methods.Method` it was meta-trained with."""
        return self._loaded().pretrained.method

    @property
    def meta_model(self) -> IntentClassifier:
        """The meta-trained :class:`~l2l_taskmix.models.IntentClassifier` (never changed by ``fit``)."""
        return self._loaded().meta_model

    @property
    def standardizer(self) -> Standardizer | None:
        """The meta-training features' standardization (``None``: the method uses none)."""
        return self._loaded().standardizer

    def save_pretrained(self, path: str | os.PathLike, *, overwrite: bool = True):
        """Write the model folder ``path`` (``config.json``, ``model.safetensors``, ``README.md``),
        whole or not at all; after ``fit`` it holds the adapted model too (and loads adapted).
        The fine-tuning steps and learning rate ``fit`` uses are stored as the folder's. An
        existing model folder is replaced (``overwrite=False``: refused); any other existing
        file or non-empty folder is never replaced. Returns the folder's path."""
        state = self._loaded()
        steps, lr = self._adaptation()
        config = {
            **state.pretrained.config,
            "adaptation": {**state.pretrained.config["adaptation"], "finetune_steps": steps, "finetune_lr": lr},
        }
        tensors = dict(state.pretrained.model.state_dict())
        if self.__sklearn_is_fitted__():
            tensors = {**{f"meta.{k}": v for k, v in tensors.items()}, **self.model_.state_dict()}
            config["adapted"] = self.adapted_
        else:
            config["adapted"] = None
        return write_model_folder(path, tensors, config, model_card(config), overwrite=overwrite)

    def _adaptation(self) -> tuple[int, float]:
        """``(finetune_steps, finetune_lr)`` of ``fit``: the parameters, checked as the settings
        of the same names are, or the model's."""
        stored = self._loaded().pretrained.config["adaptation"]
        checked = BenchmarkConfig(
            finetune_steps=stored["finetune_steps"] if self.finetune_steps is None else self.finetune_steps,
            finetune_lr=stored["finetune_lr"] if self.finetune_lr is None else self.finetune_lr,
        )
        return checked.finetune_steps, float(checked.finetune_lr)

    # -- the encoder ---------------------------------------------------------------------------
    @property
    def sep(self) -> str:
        """The separator N-best hypotheses are joined with: the model's encoder's (read from the
        folder; the encoder is not loaded)."""
        return self._encoder_spec()["sep"]

    def _encoder_spec(self) -> dict[str, Any]:
        spec = self._loaded().pretrained.config.get("encoder")
        if spec is None:
            raise ValueError(
                "this model was meta-trained on precomputed features, without an encoder, so it takes "
                "features, not utterances: in Python pass a float array (n, d) of the same encoder's features "
                "(the command line takes utterances: train on a dataset of texts, not a .pt feature file)"
            )
        return spec

    @property
    def text_encoder(self):
        """The encoder utterances go through (built from the model's description, or the
        ``encoder`` given), checked on first use to give the model's features."""
        state = self._loaded()
        given = self.encoder
        if state.encoder is None or state.encoder_given is not given:
            spec = self._encoder_spec()
            progress = check_bool(self.progress, "progress")
            if given is None:
                built = encoder_from_spec(spec, device=str(state.device))
            elif isinstance(given, (str, os.PathLike)):
                built = get_encoder(given, device=str(state.device))
            else:
                built = given
            if hasattr(built, "progress") and (given is None or not progress):  # a given one is left as it is unless False
                built.progress = progress
            state.encoder, state.encoder_given = _check_encoder(built, spec), given
        return state.encoder

    def features(self, X: Any) -> torch.Tensor:
        """``FloatTensor[n, d]``: the standardized features the model takes, of utterances
        (encoded through the feature cache) or of raw encoder features (see the module's ``X``)."""
        return self._standardized(self._inputs(X))

    def _standardized(self, inputs: torch.Tensor | list[str]) -> torch.Tensor:
        state = self._loaded()
        if isinstance(inputs, list):
            inputs = featurize_texts(inputs, self.text_encoder, self.cache_dir, cache=check_bool(self.cache, "cache"))
        x = state.standardizer(inputs) if state.standardizer is not None else inputs.float()
        return x.to(state.device)

    def _inputs(self, X: Any) -> torch.Tensor | list[str]:
        """``X`` as a float tensor of raw features, or as the list of texts to encode; anything
        else refused, saying what ``X`` may be."""
        width = int(self._loaded().pretrained.config["architecture"]["in_features"])
        kinds = X_KINDS.format(width=width)
        if isinstance(X, (str, bytes)):
            raise ValueError("X must be a list of utterances, not a single string: wrap it, [text]")
        if hasattr(X, "columns") and hasattr(X, "iloc"):  # a pandas DataFrame
            if X.shape[1] != 1:
                raise ValueError(
                    f"X is a DataFrame of {X.shape[1]} columns ({', '.join(map(str, list(X.columns)[:5]))}); give its "
                    "column of utterances, X['text'] or X[['text']]"
                )
            X = X.iloc[:, 0]
        if hasattr(X, "to_numpy") and hasattr(X, "index") and not isinstance(X, (np.ndarray, torch.Tensor)):  # a Series
            X = X.to_numpy()
        if hasattr(X, "tocsr") or type(X).__module__.startswith("scipy.sparse"):
            raise TypeError(f"X is a sparse matrix: sparse input is not supported; give {kinds}, dense")
        if hasattr(X, "__array__") and not isinstance(X, (np.ndarray, torch.Tensor)):  # an array-like
            X = np.asarray(X)
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu()
        if isinstance(X, (np.ndarray, torch.Tensor)):
            floating = X.is_floating_point() if isinstance(X, torch.Tensor) else np.issubdtype(X.dtype, np.floating)
            if X.ndim == 2 and floating:
                return _check_features(torch.as_tensor(np.asarray(X, dtype=np.float32) if isinstance(X, np.ndarray) else X.float()), width)
            if not (isinstance(X, np.ndarray) and X.ndim == 1 and X.dtype.kind in "OUS"):
                raise ValueError(f"X must be {kinds}; got an array of shape {tuple(X.shape)} and dtype {X.dtype}")
            X = X.tolist()
        try:
            items = list(X)
        except TypeError:
            raise ValueError(f"X must be {kinds}; got {short_repr(X)}") from None
        if not items:
            raise ValueError("X is empty: no utterances to classify")
        return self.texts(items)

    def texts(self, X: Any) -> list[str]:
        """The texts of utterances ``X`` (a list of strings or N-best lists) as the encoder
        reads them: a string as it is, an N-best list joined with the encoder's separator."""
        from ..data import join_hypotheses

        out = []
        for i, item in enumerate(X):
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
    def fit(self, X: Any, y: Any) -> "FewShotIntentClassifier":
        """Adapt a copy of the meta-trained model to the task of ``X`` labelled ``y``, exactly
        as the benchmark fine-tunes a meta-test task's support split: ``finetune_steps``
        full-batch Adam steps at ``finetune_lr`` on the task's classes (sorted: ``classes_``).
        MAML variants start from the meta-learned head and use its first ``len(classes_)``
        outputs; MTL and transfer get a new head, drawn from a generator seeded by the training
        seed (the benchmark draws its first meta-test task's head so). Returns ``self``."""
        state = self._loaded()
        steps, lr = self._adaptation()
        y = _check_labels(y)
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError(
                f"the support set (y) has one intent ({short_repr(classes.tolist()[0])}), so one class: "
                "give examples of at least two intents"
            )
        check_classes(classes.tolist(), "y")
        width = int(state.pretrained.config["architecture"]["head_width"])
        method = state.pretrained.method
        if method.keeps_head and len(classes) > width:
            raise ValueError(
                f"y has {len(classes)} intents but this {method.name} model's head has {width} "
                f"outputs; meta-train it with a wider head: l2l-taskmix train --head-width {len(classes)} "
                f"(Python: meta_train(..., head_width={len(classes)}))"
            )
        inputs = self._inputs(X)
        if len(inputs) != len(y):
            raise ValueError(f"X has {len(inputs)} utterances or feature rows but y has {len(y)} labels")  # before any encoding
        x = self._standardized(inputs)
        target = torch.as_tensor(np.searchsorted(classes, y), dtype=torch.long, device=state.device)
        generator = torch.Generator().manual_seed(int(state.pretrained.config["adaptation"]["seed"]))
        tuned = method.finetune_model(state.meta_model, len(classes), generator)
        tuned.train()
        finetune(tuned, x, target, len(classes), finetune_steps=steps, finetune_lr=lr)
        self.model_ = tuned.eval()
        self.classes_ = classes
        self.adapted_ = {
            "classes": classes.tolist(),
            "head_outputs": int(tuned.head.out_features),
            "support_rows": len(y),
            "support_per_intent": {str(c): int((y == c).sum()) for c in classes},
            "finetune_steps": steps,
            "finetune_lr": lr,
        }
        if isinstance(inputs, torch.Tensor):
            self.n_features_in_ = int(inputs.shape[1])
        elif hasattr(self, "n_features_in_"):
            del self.n_features_in_
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return getattr(self, "model_", None) is not None

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True  # utterances
        return tags

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits ``(n, len(classes_))`` of the adapted model."""
        return self._logits(X).cpu().numpy()

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities ``(n, len(classes_))``, columns in ``classes_`` order; rows sum to 1."""
        return torch.softmax(self._logits(X), dim=1).cpu().numpy()

    def predict(self, X: Any) -> np.ndarray:
        """The most likely label of each utterance (values of ``classes_``, in its dtype)."""
        best = self._logits(X).argmax(1).cpu().numpy()
        return self.classes_[best]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Macro-F1 of ``predict(X)`` against ``y`` (the benchmark's metric, so also what
        ``GridSearchCV`` and ``cross_val_score`` maximize; a label of ``y`` the model was not
        adapted to counts, with F1 0). ``sample_weight``: weights of the rows, as scikit-learn's
        ``f1_score`` takes them."""
        y = _check_labels(y)
        predicted = self.predict(X)
        if len(predicted) != len(y):
            raise ValueError(f"X has {len(predicted)} utterances or feature rows but y has {len(y)} labels")
        if sample_weight is None:
            return macro_f1(y, predicted)
        from sklearn.metrics import f1_score

        return float(f1_score(y, predicted, average="macro", zero_division=0, sample_weight=sample_weight))

    def require_adapted(self) -> None:
        """``NotFittedError`` (scikit-learn's, a ``ValueError``) unless ``fit`` has adapted the
        model to a task (or it was loaded adapted)."""
        if not self.__sklearn_is_fitted__():
            raise NotFittedError(
                "this model is meta-trained but not adapted to a task yet: call fit(utterances, intents) "
                "first (command line: l2l-taskmix adapt)"
            )

    def _logits(self, X: Any) -> torch.Tensor:
        self.require_adapted()
        x = self.features(X)
        with torch.no_grad():
            return self.model_(x.to(next(self.model_.parameters()).device))[:, : len(self.classes_)]


def _check_features(x: torch.Tensor, width: int) -> torch.Tensor:
    if x.shape[0] == 0:
        raise ValueError("X is empty: no utterances or feature rows")
    if x.shape[1] == 0:
        raise ValueError(f"X has 0 feature(s) (shape={tuple(x.shape)}) while a minimum of 1 is required; this model takes {width}")
    if not torch.isfinite(x).all():
        raise ValueError(f"X has NaN or infinite features (row {int((~torch.isfinite(x)).any(1).nonzero()[0])})")
    if x.shape[1] != width:
        raise ValueError(
            f"X has {x.shape[1]} feature(s) per row (features of width {x.shape[1]}); this model takes {width} (its encoder's)"
        )
    return x


def _check_labels(y: Any) -> np.ndarray:
    """``y`` as a 1-d array in its own dtype, if it holds class labels: all texts (each one line,
    not empty) or all whole numbers (integers, or floats without a fraction); else a
    ``ValueError`` saying what is wrong."""
    from sklearn.utils.multiclass import check_classification_targets

    if y is None:
        raise ValueError("fit requires y to be passed, but the target y is None: give the intent of each row of X")
    if isinstance(y, (str, bytes)):
        raise ValueError("y must be a list of intents, not a single string")
    if hasattr(y, "columns") and hasattr(y, "iloc"):
        if y.shape[1] != 1:
            raise ValueError(f"y is a DataFrame of {y.shape[1]} columns; give the column of intents, y['intent']")
        y = y.iloc[:, 0]
    array = y.to_numpy() if hasattr(y, "to_numpy") and not isinstance(y, np.ndarray) else y
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    elif hasattr(array, "__array__") and not isinstance(array, np.ndarray):  # an array-like
        array = np.asarray(array)
    if not isinstance(array, np.ndarray):
        items = list(array)
        if not items:
            raise ValueError("y is empty: no intents")
        kinds = {
            "text" if isinstance(v, str) else "number" if isinstance(v, (int, float, np.number)) and not isinstance(v, bool) else "other"
            for v in items
        }
        if "other" in kinds or len(kinds) > 1:
            bad = (
                next((v for v in items if not isinstance(v, str)), None)
                if "text" in kinds
                else next((v for v in items if isinstance(v, bool) or not isinstance(v, (int, float, np.number))), None)
            )
            raise ValueError(f"y must hold intents, all texts or all whole numbers; it holds {short_repr(bad)}")
        array = np.asarray(items)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"y must be one label per row, a 1-d list or array; got shape {array.shape}")
    if len(array) == 0:
        raise ValueError("y is empty: no intents")
    if array.dtype.kind == "b":
        raise ValueError("y holds True/False: give intents as texts or whole numbers")
    if array.dtype.kind == "O":
        for i, v in enumerate(array):
            if not isinstance(v, str) and (isinstance(v, bool) or not isinstance(v, (int, float, np.number))):
                raise ValueError(f"y[{i}] must be an intent, a text or a whole number, got {short_repr(v)}")
    check_classification_targets(array)  # "Unknown label type: continuous ..." for fractions
    if array.dtype.kind in "OU":
        for i, v in enumerate(array):
            if isinstance(v, str) and not v.strip():
                raise ValueError(f"y[{i}] is an empty intent")
    return array


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
    of that method and seed does (:func:`~l2l_taskmix.benchmark.run.fit_run`), and return it
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
    config = config.for_method(method.name)  # the method's own settings where the config has a per_method section
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
    run = fit_run(
        method, seed, data.train, data.test, config, protocol=protocol, head_width=head_width, device=config.device, progress=progress
    )
    model = run.trained.model
    benchmark = None
    if data.test:
        per_task, _ = score_meta_test(model, method, run.test_side, seed, config)  # as the benchmark scores a run
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
        if k not in ("methods", "protocols", "seeds", "cache_dir", "dataset", "data_root", "encoder", "per_method")
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
    return FewShotIntentClassifier(
        MetaTrainedModel(settings, model.eval()), encoder=used_encoder, cache_dir=config.cache_dir, progress=progress
    )
