"""Connecting to Ray.

A search owns its Ray: with no address it starts Ray in-process (never joining another user's Ray on
the same machine by accident); it joins a cluster only when told (``--address``, or ``RAY_ADDRESS``
as ``ray submit`` under ``cluster.yaml`` sets it), says which at start, refuses a per-trial resource
request no node can meet (unless an autoscaler may add one), and gives up on an unreachable address
after a bounded wait."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from typing import Any

from nas.core.errors import NasError
from nas.settings import Resources

CONNECT_TIMEOUT_S = 15.0
"""How long to wait for a cluster's address to answer before saying it cannot be reached."""


class RayError(NasError):
    """Ray cannot run the trials as asked: an unreachable cluster, resources no node has."""


# ---------------------------------------------------------------- Ray itself


def connect(resources: Resources) -> str:
    """Start or join Ray as ``resources.address`` says, check that a trial fits, and return one line
    saying where trials run. No address: ``$RAY_ADDRESS`` when set, else Ray started in-process."""
    import ray

    in_process = False
    if ray.is_initialized():
        where = "Ray already running in this process"
    else:
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        address, source = resources.address, "--address"
        if address is None and os.environ.get("RAY_ADDRESS"):
            address, source = os.environ["RAY_ADDRESS"], "$RAY_ADDRESS"
        if address in (None, "local"):
            with _without_env("RAY_ADDRESS"):
                ray.init(address="local", include_dashboard=False, log_to_driver=False)
            in_process = True
            where = "Ray started in-process (join a cluster with --address auto or $RAY_ADDRESS)"
        else:
            if address != "auto":
                _check_reachable(address)
            try:
                ray.init(address=address, log_to_driver=False)
            except (ConnectionError, ValueError, RuntimeError, ray.exceptions.AuthenticationError) as error:
                if _is_authentication_failure(error):
                    raise RayError(f"the Ray cluster at {address} ({source}) refused this driver's authentication "
                                   "token: give it the cluster's token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or "
                                   "~/.ray/auth_token, with RAY_AUTH_MODE=token)") from None
                raise RayError(f"cannot reach the Ray cluster at {address} ({source}): "
                               f"{str(error).splitlines()[0] if str(error) else type(error).__name__}") from None
            where = f"joined the Ray cluster at {address} ({source})"
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    total_cpu = sum(n.get("CPU", 0) for n in nodes)
    total_gpu = sum(n.get("GPU", 0) for n in nodes)
    _check_fits(resources, nodes, autoscaler=not in_process and _has_autoscaler())
    return f"{where}: {len(nodes)} node(s), {total_cpu:g} CPUs, {total_gpu:g} GPUs"


def run_on_cluster(function: Any, *args: Any, resources: Resources, whole_node: bool = True, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)`` as one Ray task (a GPU if trials get one; the CPUs of ``concurrency``
    trials, at most a node's), waited for; where a supernet is trained."""
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    largest = max((n.get("CPU", 1) for n in nodes), default=1)
    cpus = min(largest, resources.cpus_per_trial * (resources.concurrency if whole_node else 1))
    gpus = 1 if resources.gpus_per_trial > 0 else 0
    return ray.get(ray.remote(num_cpus=cpus, num_gpus=gpus)(function).remote(*args, **kwargs))


def _check_fits(resources: Resources, nodes: list[dict[str, float]], *, autoscaler: bool) -> None:
    """A trial runs on one node: some node must have its CPUs and GPUs, or no trial would ever start."""
    need = {"CPU": resources.cpus_per_trial, "GPU": resources.gpus_per_trial}
    if any(all(node.get(k, 0) >= v for k, v in need.items() if v > 0) for node in nodes) or autoscaler:
        return
    largest = {k: max((node.get(k, 0) for node in nodes), default=0) for k in need}
    raise RayError(f"a trial asks for {need['CPU']:g} CPUs and {need['GPU']:g} GPUs, but the largest node has "
                   f"{largest['CPU']:g} CPUs and {largest['GPU']:g} GPUs and no autoscaler can add one: "
                   "lower --cpus-per-trial / --gpus-per-trial")


def _has_autoscaler() -> bool:
    """Whether an autoscaler with node types reports for this cluster (``ray up``): then a node that fits
    may yet be added. Every Ray head publishes a status; only a configured autoscaler adds its report."""
    try:
        from ray._private import ray_constants
        from ray.experimental.internal_kv import _internal_kv_get, _internal_kv_initialized

        status = _internal_kv_get(ray_constants.DEBUG_AUTOSCALING_STATUS) if _internal_kv_initialized() else None
        return bool(status) and "autoscaler_report" in json.loads(status)
    except Exception:  # noqa: BLE001 - private API moved: assume none
        return False


AUTHENTICATION_MARKERS = ("AuthenticationError", "InvalidAuthToken", "Unauthenticated")
"""How a token-authentication failure reads in Ray's errors. Joining with a wrong or missing token, Ray
retries the GCS and raises ``ConnectionError("Failed to connect to Ray cluster at ...")`` from a
``RuntimeError`` whose text holds the GCS client's ``ray.exceptions.AuthenticationError: RPC error:
InvalidAuthToken: ...`` (the status is ``Unauthenticated``); with token mode on and no token at all,
``ray.init`` raises ``AuthenticationError`` itself."""


def _is_authentication_failure(error: BaseException | None) -> bool:
    """Whether ``error`` or any error it came from is Ray refusing the token (not an unreachable cluster)."""
    import ray

    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, ray.exceptions.AuthenticationError) or any(m in str(error) for m in AUTHENTICATION_MARKERS):
            return True
        error = error.__cause__ or error.__context__
    return False


def _check_reachable(address: str) -> None:
    """Fail in bounded time when ``host:port`` does not answer (Ray itself retries for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise RayError(f"--address {address!r} is not host:port, 'auto' or 'local'")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S) as connection:
            speaks_grpc = _answers_http2(connection)
    except OSError as error:
        raise RayError(f"cannot reach the Ray cluster at {address}: {error.strerror or error} "
                       f"(waited at most {CONNECT_TIMEOUT_S:g} s)") from None
    if not speaks_grpc:
        raise RayError(f"{address} answers, but not as a Ray cluster (Ray's GCS and Ray Client speak gRPC; "
                       "this port does not): check the address and port")


def _answers_http2(connection: socket.socket) -> bool:
    """Whether the server answers an HTTP/2 connection preface with a SETTINGS frame, as every gRPC server
    (Ray's GCS, Ray Client) does. Any other server (HTTP/1, Redis, SSH) answers otherwise or not at all,
    where ``ray.init`` would retry for minutes."""
    connection.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
    frame = b""
    try:
        while len(frame) < 9:
            chunk = connection.recv(9 - len(frame))
            if not chunk:
                break
            frame += chunk
    except OSError:  # a timeout, a reset
        return False
    return len(frame) == 9 and frame[3] == 4  # frame type 4: SETTINGS


@contextlib.contextmanager
def _without_env(name: str) -> Iterator[None]:
    saved = os.environ.pop(name, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[name] = saved
