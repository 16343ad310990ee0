"""The runtime interface: what a lab needs from whatever hosts its nodes."""

from __future__ import annotations

import abc
import subprocess

from ..exec import CommandResult


class Runtime(abc.ABC):
    """Hosts nodes. Every node exposes a PID whose namespaces are the node's.

    Kernel configuration (veths, addresses, mGRE, sysctls) is done through netlink on that PID
    by :mod:`labkit.runtime.kernel`, the same for every runtime.
    """

    name: str = "?"

    @abc.abstractmethod
    def create(self, name: str) -> int:
        """Create a node (or segment) with empty namespaces and return its PID.

        Raises:
            LabError: the node could not be created.
        """

    @abc.abstractmethod
    def exec(self, name: str, argv: list[str], timeout: float = 60.0, input: str | None = None,
             env: dict[str, str] | None = None) -> CommandResult:
        """Run ``argv`` inside the node and wait for it.

        Returns:
            The :class:`CommandResult`; a non-zero exit is not an error here (use ``.check()``).
        """

    @abc.abstractmethod
    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None,
              log: str | None = None) -> subprocess.Popen | int:
        """Start a long-running process in the node; stdout/stderr go to ``log`` (a node path)."""

    @abc.abstractmethod
    def write_file(self, name: str, path: str, content: str) -> None:
        """Write ``content`` to ``path`` inside the node (creating parent directories)."""

    @abc.abstractmethod
    def read_file(self, name: str, path: str) -> str:
        """Read a file inside the node."""

    @abc.abstractmethod
    def node_path(self, name: str, path: str) -> str:
        """A host path through which ``path`` inside the node can be opened (e.g. a socket)."""

    @abc.abstractmethod
    def pid(self, name: str) -> int:
        """The PID holding the node's namespaces."""

    @abc.abstractmethod
    def destroy(self) -> None:
        """Remove every node and every process in them. Safe to call twice."""
