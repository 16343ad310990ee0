"""Runtimes host a lab's nodes: ``netns`` (namespaces of this kernel) or ``docker`` (containers)."""

from __future__ import annotations

import os

from ..errors import PrerequisiteError

RUNTIMES = ("netns", "docker")
ENV_RUNTIME = "LABKIT_RUNTIME"


def runtime_from_env(default: str = "netns") -> str:
    name = os.environ.get(ENV_RUNTIME, default).lower()
    if name not in RUNTIMES:
        raise PrerequisiteError(f"{ENV_RUNTIME}={name!r} is not a runtime; use one of {', '.join(RUNTIMES)}")
    return name


def runtime_list(value: str) -> list[str]:
    """``"netns,docker"`` → ``["netns", "docker"]``, each checked."""
    names = list(dict.fromkeys(v.strip().lower() for v in value.split(",") if v.strip()))
    bad = [n for n in names if n not in RUNTIMES]
    if bad or not names:
        raise ValueError(f"unknown runtime {', '.join(bad) or repr(value)}; use {' or '.join(RUNTIMES)} "
                         "(or both, comma-separated)")
    return names


def make_runtime(name: str, lab_id: str, topology=None, detach: bool = False, image: str | None = None,
                 progress=lambda m: None):
    """The runtime called ``name`` for lab ``lab_id``.

    Raises:
        PrerequisiteError: unknown runtime, or (docker) no engine answers.
    """
    if name == "netns":
        from .netns import NetnsRuntime

        return NetnsRuntime(lab_id, detach=detach)
    if name == "docker":
        from ..sandbox import dockerd
        from . import engine
        from .docker import DockerRuntime

        dockerd.ensure_guest_engine(progress)  # inside the VM sandbox only: its private engine

        images = {n.name: n.image for n in topology.nodes.values() if n.image} if topology else {}
        return DockerRuntime(lab_id, image=image or engine.DEFAULT_IMAGE, images=images, detach=detach,
                             topology=str(topology.source) if topology is not None else "")
    raise PrerequisiteError(f"runtime {name!r} is not supported; use one of {', '.join(RUNTIMES)}")
