"""The netns runtime: each node is a network + mount + UTS namespace held by a paused process."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from ..errors import LabError
from ..exec import CommandResult
from . import ns
from .base import BASE_ENV, Runtime, node_env  # noqa: F401  (BASE_ENV: re-exported)


class NetnsRuntime(Runtime):
    """Nodes as namespaces of this kernel. ``detach`` keeps them after this process exits."""

    name = "netns"

    def __init__(self, lab_id: str, detach: bool = False, pids: dict[str, int] | None = None):
        self.lab_id = lab_id
        self.detach = detach
        self._pids: dict[str, int] = dict(pids or {})
        self._procs: list[subprocess.Popen] = []
        self._main = threading.main_thread()

    # -- nodes ---------------------------------------------------------------------------
    def create(self, name: str, sysctls: dict[str, str] | None = None) -> int:
        marker = {"lab": self.lab_id, "node": name, "owner": os.getpid(), "runtime": self.name}
        try:
            pid = ns.spawn_holder(marker, hostname=name.lstrip("@") or name, detach=self.detach)
        except OSError as exc:
            raise LabError(f"cannot create node {name}: {exc}. labkit's netns runtime needs root "
                           "(CAP_SYS_ADMIN and CAP_NET_ADMIN)") from exc
        self._pids[name] = pid
        self.prepare_dirs(pid)
        return pid

    # -- processes -------------------------------------------------------------------------
    def exec(self, name: str, argv: list[str], timeout: float = 60.0, input: str | None = None,
             env: dict[str, str] | None = None) -> CommandResult:
        pid = self.pid(name)
        try:
            proc = subprocess.run(list(argv), preexec_fn=ns.enter(pid), env=node_env(self.lab_id, name, env),
                                  input=input, capture_output=True, text=True, timeout=timeout,
                                  stdin=None if input is not None else subprocess.DEVNULL)
        except FileNotFoundError:
            return CommandResult(name, tuple(argv), 127, "", f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            return CommandResult(name, tuple(argv), 124, out, f"timed out after {timeout:g}s")
        return CommandResult(name, tuple(argv), proc.returncode, proc.stdout, proc.stderr)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None,
              log: str | None = None) -> subprocess.Popen:
        pid = self.pid(name)
        # Tie daemons to the controller's life unless the lab must outlive it (labkit up).
        tie = not self.detach and threading.current_thread() is self._main
        out = open(self.node_path(name, log), "ab") if log else subprocess.DEVNULL
        try:
            proc = subprocess.Popen(list(argv), preexec_fn=ns.enter(pid, pdeathsig=tie), env=node_env(self.lab_id, name, env),
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=self.detach)
        except FileNotFoundError as exc:
            raise LabError(f"cannot start {argv[0]} on {name}: not installed ({exc})") from exc
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        self._procs.append(proc)
        return proc

    # -- teardown --------------------------------------------------------------------------
    def destroy(self, timeout: float = 10.0) -> None:
        """Kill every process in every node's network namespace, then reap the holders."""
        for name, pid in list(self._pids.items()):
            kill_node(pid)
        deadline = time.monotonic() + timeout
        for proc in self._procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for pid in self._pids.values():
            _reap(pid, deadline)
        self._pids.clear()
        self._procs.clear()


def kill_node(holder: int) -> list[int]:
    """SIGKILL every process sharing ``holder``'s network namespace (the holder last)."""
    try:
        inode = ns.netns_inode(holder)
    except OSError:
        return []
    victims = [p for p in ns.pids_in_netns(inode) if p != holder] + [holder]
    for p in victims:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return victims


def _reap(pid: int, deadline: float) -> None:
    """Wait (bounded) until ``pid`` is gone; reap it if it is our child."""
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        except ChildProcessError:
            if not Path(f"/proc/{pid}").exists():
                return
        if time.monotonic() > deadline:
            raise LabError(f"process {pid} did not exit within the teardown timeout")
        time.sleep(0.02)  # polling process exit with a deadline
