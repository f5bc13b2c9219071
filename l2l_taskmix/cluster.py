"""Ray, the optional engine that runs benchmark grids and featurization on many machines.

Ray is an optional extra (``pip install 'l2l-taskmix[ray]'``): nothing in the package imports
it unless asked to (``--ray``, ``--ray-address``). :func:`import_ray` is the one place that
imports it, with an error that says how to install it; :func:`connect` joins a cluster or
starts a local instance, the way ``ray.init`` does (``address="local"``: a new instance on this
machine; ``"auto"``: the one ``ray start`` runs here; ``"ray://host:10001"`` or
``"host:6379"``: a remote cluster).

Example::

    >>> from l2l_taskmix.cluster import RAY_INSTALL, check_address
    >>> RAY_INSTALL
    "pip install 'l2l-taskmix[ray]'"
    >>> check_address(" local ")
    'local'
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

__all__ = ["RAY_INSTALL", "import_ray", "check_address", "connect", "ray_session", "cluster_cpus", "cluster_gpus"]

#: How to install the optional Ray extra.
RAY_INSTALL = "pip install 'l2l-taskmix[ray]'"


def import_ray() -> Any:
    """The ``ray`` module, or ``ModuleNotFoundError`` (``name="ray"``) saying how to install it."""
    try:
        import ray
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] != "ray":
            raise
        raise ModuleNotFoundError(f"running on Ray needs the optional Ray extra; install it with: {RAY_INSTALL}", name="ray") from None
    return ray


def check_address(address: Any, name: str = "--ray-address") -> str:
    """``address`` stripped, or ``ValueError`` naming ``name`` for an empty or non-string one."""
    if not isinstance(address, str) or not address.strip():
        raise ValueError(f"{name} == {address!r}, must be 'local' (a new Ray instance here), 'auto' or a cluster address such as ray://host:10001.")
    return address.strip()


def connect(address: str = "local", num_cpus: int | None = None, object_store_memory: int | None = None) -> bool:
    """Connect this process to Ray at ``address`` unless it is connected already; whether this
    call did (the caller then shuts it down when done, with ``ray.shutdown()``).

    ``num_cpus``, ``object_store_memory``: of a new local instance (default: Ray's, every core).
    The dashboard is not started and the workers' output is not echoed here (runs on workers
    show no progress bars)."""
    ray = import_ray()
    address = check_address(address)
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "warning"}
    if address == "local":
        kwargs.update(num_cpus=num_cpus, object_store_memory=object_store_memory)
    ray.init(address=address, **kwargs)
    return True


@contextlib.contextmanager
def ray_session(address: str | None, num_cpus: int | None = None) -> Iterator[bool]:
    """Connected to Ray at ``address`` inside the block (nothing when ``address`` is ``None``);
    an instance this started is shut down at the end. Yields whether Ray is in use."""
    if address is None:
        yield False
        return
    started = connect(address, num_cpus=num_cpus)
    try:
        yield True
    finally:
        if started:
            import_ray().shutdown()


def cluster_cpus() -> int:
    """CPUs of the connected Ray cluster (at least 1)."""
    return max(1, int(import_ray().cluster_resources().get("CPU", 1)))


def cluster_gpus() -> float:
    """GPUs of the connected Ray cluster (0 without any)."""
    return float(import_ray().cluster_resources().get("GPU", 0))
