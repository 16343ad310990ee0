"""Running commands in nodes: one result type, one exception, argv lists only."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import CommandError


@dataclass(frozen=True)
class CommandResult:
    """What a command run in a node returned."""

    node: str
    argv: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def check(self) -> "CommandResult":
        """Return self if the command succeeded, else raise :class:`CommandError`."""
        __tracebackhide__ = True
        if self.rc != 0:
            raise CommandError(self.node, list(self.argv), self.rc, self.stdout, self.stderr)
        return self

    def expect(self, *expected_rc: int) -> "CommandResult":
        """Assert the exit code is one of ``expected_rc``."""
        __tracebackhide__ = True
        if self.rc not in expected_rc:
            raise CommandError(self.node, list(self.argv), self.rc, self.stdout, self.stderr)
        return self
