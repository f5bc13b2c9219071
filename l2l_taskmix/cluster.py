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
import socket
import urllib.parse
from typing import Any, Iterator

from .validation import short_repr

__all__ = [
    "RAY_INSTALL",
    "RAY_CLIENT_INSTALL",
    "CONNECT_TIMEOUT_S",
    "import_ray",
    "check_address",
    "check_cluster",
    "connect",
    "ray_session",
    "cluster_cpus",
    "cluster_gpus",
]

#: How to install the optional Ray extra.
RAY_INSTALL = "pip install 'l2l-taskmix[ray]'"
#: How to install Ray Client, which ``ray://`` addresses need.
RAY_CLIENT_INSTALL = 'pip install "ray[client]"'
#: Seconds a cluster address's port has to answer (Ray itself retries a dead address for minutes).
CONNECT_TIMEOUT_S = 10.0


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
        raise ValueError(
            f"{name} == {short_repr(address)}, must be 'local' (a new Ray instance here), 'auto' or a cluster address "
            "such as ray://host:10001."
        )
    return address.strip()


def check_cluster(address: str, name: str = "--ray-address", timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse, naming ``name`` and ``address`` as given, a cluster address that cannot work, in
    at most ``timeout`` seconds: a ``ray://`` address without Ray Client installed
    (``ModuleNotFoundError``), or a ``host:port`` or ``ray://host:port`` whose port does not
    answer (``ConnectionError``; ``ray.init`` would retry it for minutes). ``local``, ``auto``,
    other schemes and addresses without a port are left to Ray.
    """
    address = check_address(address, name)
    client = address.startswith("ray://")
    if client:
        try:
            import grpc  # noqa: F401  (what the ray[client] extra adds)
        except ImportError:
            raise ModuleNotFoundError(
                f"{name} {address}: a ray:// address needs Ray Client; install it with: {RAY_CLIENT_INSTALL}", name="grpc"
            ) from None
    if address in ("local", "auto") or ("://" in address and not client):
        return
    try:
        netloc = urllib.parse.urlsplit("//" + address.removeprefix("ray://")).netloc
    except ValueError as err:  # "[::1:6379"
        raise ValueError(f"{name} == {short_repr(address)}: {err}; give host:port, e.g. head:6379 or ray://head:10001") from None
    host, _, port = netloc.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    if not host or not port or (":" in host and not bracketed):  # no port ([::1], or ::1 unbracketed): left to Ray
        return
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{name} == {short_repr(address)}: the port must be a number from 1 to 65535, e.g. head:6379 or ray://head:10001")
    host = host.strip("[]")  # [::1]:6379
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        reason = f"no answer within {timeout:g} s" if isinstance(err, TimeoutError) else (err.strerror or str(err))
        raise ConnectionError(
            f"{name} {address}: no Ray cluster answers at {netloc} ({reason}); start one there with "
            "'ray start --head', or check the host and port"
        ) from None


def connect(address: str = "local", num_cpus: int | None = None, object_store_memory: int | None = None) -> bool:
    """Connect this process to Ray at ``address`` unless it is connected already; whether this
    call did (the caller then shuts it down when done, with ``ray.shutdown()``).

    ``num_cpus``, ``object_store_memory``: of a new local instance (default: Ray's, every core).
    The dashboard is not started and the workers' output is not echoed here (runs on workers
    show no progress bars). A cluster address is checked first (:func:`check_cluster`): a dead
    one fails in seconds, naming it."""
    ray = import_ray()
    name = "--ray" if isinstance(address, str) and address.strip() == "local" else "--ray-address"
    address = check_address(address, name)
    if ray.is_initialized():
        return False
    check_cluster(address, name)
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "warning"}
    if address == "local":
        kwargs.update(num_cpus=num_cpus, object_store_memory=object_store_memory)
    try:
        ray.init(address=address, **kwargs)
    except ConnectionError as err:
        if address != "auto":
            raise ConnectionError(f"{name} {address}: cannot connect to Ray: {err}") from None
        # Ray's own message points to its `--address` flag and RAY_ADDRESS
        raise ConnectionError(
            "--ray-address auto: no running Ray instance found on this machine (auto joins the one 'ray start --head' "
            "started here, or the cluster RAY_ADDRESS names); start one, give a cluster address (host:6379 or "
            "ray://host:10001), or use --ray for a new local instance"
        ) from None
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
