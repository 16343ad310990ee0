"""The runtime interface: what a lab needs from whatever hosts its nodes."""

from __future__ import annotations

import abc
import os
import subprocess
from pathlib import Path

from ..errors import LabError
from ..exec import CommandResult
from .ns import node_root

BASE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
# directories daemons need in a node's private /run, owned by the node's frr user
FRR_DIRS = ("run/frr", "run/labkit/log")


def node_env(lab_id: str, node: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every command and daemon in a node: it names the lab and its owner (our pid)."""
    return {**BASE_ENV, "LABKIT_LAB": lab_id, "LABKIT_NODE": node, "LABKIT_OWNER": str(os.getpid()), **(env or {})}


def _frr_ids(root: Path) -> tuple[int, int] | None:
    """uid and gid of ``frr`` in the node's own ``/etc/passwd`` (a container's may differ from the host's)."""
    try:
        for line in (root / "etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == "frr" and len(fields) > 3:
                return int(fields[2]), int(fields[3])
    except (OSError, ValueError):
        pass
    return None


class Runtime(abc.ABC):
    """Hosts nodes. Every node exposes a PID whose namespaces are the node's.

    Kernel configuration (veths, addresses, mGRE, sysctls) is done through netlink on that PID
    by :mod:`labkit.runtime.kernel`, and files through ``/proc/PID/root``: the same for every
    runtime.
    """

    name: str = "?"

    @abc.abstractmethod
    def create(self, name: str, sysctls: dict[str, str] | None = None) -> int:
        """Create a node (or segment) with empty namespaces and return its PID.

        ``sysctls`` are the node's ``net.*`` settings; a runtime may apply them at creation
        (docker must: ``/proc/sys`` is read-only inside containers). :mod:`kernel` writes them
        all again from the host after wiring, which also covers per-interface keys.

        Raises:
            LabError: the node could not be created.
        """

    def create_all(self, nodes: dict[str, dict[str, str]]) -> None:
        """Create every node of ``{name: sysctls}``; runtimes may do it in parallel."""
        for name, sysctls in nodes.items():
            self.create(name, sysctls)

    @abc.abstractmethod
    def exec(self, name: str, argv: list[str], timeout: float = 60.0, input: str | None = None,
             env: dict[str, str] | None = None) -> CommandResult:
        """Run ``argv`` inside the node and wait for it.

        Returns:
            The :class:`CommandResult`; a non-zero exit is not an error here (use ``.check()``).
        """

    @abc.abstractmethod
    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None,
              log: str | None = None) -> subprocess.Popen:
        """Start a long-running process in the node; stdout/stderr go to ``log`` (a node path).

        Returns an object with ``poll()`` and ``returncode`` (a Popen, or the runtime's equivalent).
        """

    _pids: dict[str, int]  # every runtime records the PID of each node it creates

    def pid(self, name: str) -> int:
        """The PID holding the node's namespaces."""
        try:
            return self._pids[name]
        except KeyError:
            raise LabError(f"no node named {name!r}; nodes: {', '.join(sorted(self._pids))}") from None

    @property
    def pids(self) -> dict[str, int]:
        """``{node: PID}`` of every node created so far."""
        return dict(self._pids)

    @abc.abstractmethod
    def destroy(self) -> None:
        """Remove every node and every process in them. Safe to call twice."""

    # -- files: through /proc/PID/root, the same for every runtime ---------------------------
    def node_path(self, name: str, path: str) -> str:
        """A host path through which ``path`` inside the node can be opened (e.g. a socket)."""
        return str(node_root(self.pid(name))) + path

    def write_file(self, name: str, path: str, content: str) -> None:
        """Write ``content`` to ``path`` inside the node, creating parent directories.

        World-readable: FRR daemons run as ``frr`` and read their configs.
        """
        target = Path(self.node_path(name, path))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)

    def read_file(self, name: str, path: str) -> str:
        return Path(self.node_path(name, path)).read_text(errors="replace")

    @staticmethod
    def prepare_dirs(pid: int) -> None:
        """Create the node's ``/run/frr`` and log directory, owned by the node's ``frr`` user."""
        root = node_root(pid)
        ids = _frr_ids(root)
        for sub in FRR_DIRS:
            path = root / sub
            path.mkdir(parents=True, exist_ok=True)
            if ids:
                os.chown(path, *ids)
