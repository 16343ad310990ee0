"""A testinfra backend that runs commands inside a labkit node.

testinfra modules build shell command strings themselves (quoting their arguments); this
backend hands each one to ``/bin/sh -c`` inside the node as a single argv element.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import testinfra.host
from testinfra.backend import base

if TYPE_CHECKING:
    from .node import NodeHandle


class LabkitBackend(base.BaseBackend):
    NAME = "labkit"

    def __init__(self, node: "NodeHandle", *args: Any, **kwargs: Any):
        self.node = node
        super().__init__(node.name, *args, **kwargs)

    @classmethod
    def get_connection_type(cls) -> str:
        return "labkit"

    def run(self, command: str, *args: str, **kwargs: Any) -> base.CommandResult:
        cmd = self.get_command(command, *args)
        res = self.node.exec("/bin/sh", "-c", cmd)
        return self.result(res.rc, self.encode(cmd), res.stdout, res.stderr)


def host_for(node: "NodeHandle") -> testinfra.host.Host:
    """A testinfra ``Host`` whose commands run in ``node``."""
    backend = LabkitBackend(node)
    host = testinfra.host.Host(backend)
    backend.set_host(host)
    return host
