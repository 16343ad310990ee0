"""The Docker engine: connecting to it, and the clear errors when it or an image is missing."""

from __future__ import annotations

import os
import warnings

from ..errors import PrerequisiteError

DEFAULT_IMAGE = "labkit/node:latest"
SOCKET = "/var/run/docker.sock"
START_HINT = ("install Debian's docker.io and start dockerd ('bash scripts/setup.sh' does both; "
              "or 'apt-get install docker.io && service docker start')")


def _address() -> str:
    return os.environ.get("DOCKER_HOST") or f"unix://{SOCKET}"


def connect(timeout: float = 120.0):
    """A docker SDK client for the local engine (``$DOCKER_HOST`` or the default socket).

    Raises:
        PrerequisiteError: the SDK is not installed or no engine answers; the message names the fix.
    """
    try:
        with warnings.catch_warnings():  # urllib3's optional SOCKS support is irrelevant on a unix socket
            warnings.simplefilter("ignore")
            import docker
            from docker.errors import DockerException
    except ImportError as exc:
        raise PrerequisiteError(f"the docker runtime needs the docker SDK for Python: pip install docker ({exc})") from exc
    where = _address()
    if not available():
        raise PrerequisiteError(f"no Docker engine: {where[len('unix://'):]} does not exist. To fix: {START_HINT}")
    try:
        client = docker.DockerClient(base_url=where, version="auto", timeout=timeout)
        client.ping()
    except DockerException as exc:
        raise PrerequisiteError(f"the Docker engine at {where} does not answer ({exc}). To fix: {START_HINT}") from exc
    return client


def available() -> bool:
    """Whether an engine socket exists (cheap; no connection)."""
    where = _address()
    return not where.startswith("unix://") or os.path.exists(where[len("unix://"):])


def client_or_none(timeout: float = 120.0):
    """A client when an engine answers here, else None (for callers that work without docker)."""
    if not available():
        return None
    try:
        return connect(timeout)
    except PrerequisiteError:
        return None


def require_images(client, tags: set[str]) -> dict[str, str]:
    """``{tag: image id}`` for every tag; never pulls.

    Raises:
        PrerequisiteError: naming each missing image and the command that builds it.
    """
    from docker.errors import ImageNotFound

    found, missing = {}, []
    for tag in sorted(tags):
        try:
            found[tag] = client.images.get(tag).id
        except ImageNotFound:
            missing.append(tag)
    if missing:
        raise PrerequisiteError(f"image {', '.join(missing)} is not in the local Docker engine and labkit never "
                                "pulls implicitly. Build it with 'labkit image build' (no registry needed), or "
                                "'docker load' / 'docker pull' it yourself")
    return found
