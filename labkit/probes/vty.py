"""Talk to a FRR daemon's vty unix socket directly (the protocol vtysh uses), no process spawn.

The client sends the command NUL-terminated; the daemon answers with the output followed by
three NUL bytes and a status byte (0 = success).
"""

from __future__ import annotations

import json
import socket

from ..errors import LabkitError


class VtyError(LabkitError):
    """A FRR daemon rejected a command or could not be reached."""


def _exchange(sock: socket.socket, socket_path: str, command: str) -> tuple[int, str]:
    sock.sendall(command.encode() + b"\0")
    buf = b""
    while not (len(buf) >= 4 and buf[-4:-1] == b"\0\0\0"):
        chunk = sock.recv(65536)
        if not chunk:
            raise VtyError(f"FRR daemon at {socket_path} closed the connection during {command!r}")
        buf += chunk
    return buf[-1], buf[:-4].decode(errors="replace")


def vty_session(socket_path: str, commands: list[str], timeout: float = 10.0) -> list[tuple[int, str]]:
    """Run commands in order on one vty connection (so ``configure`` modes carry over): (status, output) each."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    command = ""
    try:
        try:
            sock.connect(socket_path)
        except OSError as exc:
            raise VtyError(f"cannot reach FRR daemon at {socket_path}: {exc.strerror or exc}") from exc
        return [_exchange(sock, socket_path, command) for command in commands]
    except socket.timeout as exc:
        raise VtyError(f"FRR daemon at {socket_path} did not answer {command!r} within {timeout:g}s") from exc
    finally:
        sock.close()


def vty_raw(socket_path: str, command: str, timeout: float = 10.0) -> tuple[int, str]:
    """Run one vty command against the daemon listening on ``socket_path``: (status, output)."""
    return vty_session(socket_path, [command], timeout)[0]


def vty_running_config(socket_path: str, timeout: float = 10.0) -> str:
    """The daemon's running configuration (``show running-config`` needs the enable node)."""
    status, text = vty_session(socket_path, ["enable", "show running-config"], timeout)[-1]
    if status != 0:
        raise VtyError(f"'show running-config' failed (status {status}): {text.strip()}")
    return text


def vty_configure(socket_path: str, lines: list[str], timeout: float = 10.0) -> None:
    """Apply configuration lines (``interface gre1``, `` ip ospf ...``) to a running daemon.

    Raises:
        VtyError: naming the first line the daemon rejected.
    """
    commands = ["enable", "configure terminal"] + [line.strip() for line in lines if line.strip()] + ["end"]
    for command, (status, text) in zip(commands, vty_session(socket_path, commands, timeout)):
        if status != 0 and command != "enable":  # a vtysh connection may already be privileged
            raise VtyError(f"configuration line {command!r} rejected (status {status}): {text.strip()}")


def vty_command(socket_path: str, command: str, timeout: float = 10.0) -> str:
    """Run one vty command and return its output; a non-zero status raises :class:`VtyError`."""
    status, text = vty_raw(socket_path, command, timeout)
    if status != 0:
        raise VtyError(f"{command!r} failed (status {status}): {text.strip()}")
    return text


def vty_json(socket_path: str, command: str, timeout: float = 10.0):
    """Run a ``... json`` command and decode its output.

    FRR answers an empty table with status 1 (warning) *and* valid JSON (seen with
    ``show ip nhrp shortcut json`` on 8.4): the JSON wins; only output that is not JSON fails.
    FRR 8.4 also prints the text table's header line before the JSON of
    ``show ip nhrp shortcut json`` when there are entries: parsing starts at the first line
    that opens a JSON value.
    """
    status, text = vty_raw(socket_path, command, timeout)
    if not text.strip():
        return {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.lstrip()[:1] in ("{", "["):
            try:
                return json.loads("\n".join(lines[i:]))
            except ValueError:
                break
    raise VtyError(f"{command!r} did not return JSON (status {status}): {text[:200]!r}")
