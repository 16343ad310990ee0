"""Every exception labkit raises on purpose derives from :class:`LabkitError`."""

from __future__ import annotations


class LabkitError(Exception):
    """Base of all labkit errors. The message is complete and names the fix."""


class TopologyError(LabkitError):
    """A topology file failed validation. Carries every problem found, not just the first."""

    def __init__(self, problems: list["Problem"]):
        self.problems = list(problems)
        lines = [str(p) for p in self.problems]
        noun = "problem" if len(lines) == 1 else "problems"
        super().__init__(f"{len(lines)} {noun} in topology:\n" + "\n".join(lines))


class Problem:
    """One validation finding: where (file:line and field path), what, and a hint."""

    __slots__ = ("file", "line", "path", "message", "hint")

    def __init__(self, file: str, line: int | None, path: str, message: str, hint: str = ""):
        self.file, self.line, self.path, self.message, self.hint = file, line, path, message, hint

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where}: {self.path or '<top>'}: {self.message}"
        return f"{text}\n    hint: {self.hint}" if self.hint else text

    def __repr__(self) -> str:
        return f"Problem({str(self)!r})"


class PrerequisiteError(LabkitError):
    """Something the host must provide is missing (binary, kernel feature, permission)."""


class CommandError(LabkitError):
    """A command run inside a node exited non-zero."""

    def __init__(self, node: str, argv: list[str], rc: int, stdout: str, stderr: str):
        self.node, self.argv, self.rc, self.stdout, self.stderr = node, argv, rc, stdout, stderr
        super().__init__(
            f"command failed on {node} (rc={rc}): {' '.join(argv)}\n"
            f"--- stdout ---\n{stdout.rstrip()}\n--- stderr ---\n{stderr.rstrip()}"
        )


class LabError(LabkitError):
    """The lab could not be brought up or torn down."""


class WaitTimeout(AssertionError, LabkitError):
    """A bounded wait ran out. The message says what was awaited and the last state seen."""
