"""Linux namespace primitives through libc: unshare, setns, mount, and node holders.

A *holder* is a small process that owns one node's namespaces (network, mount with a private
tmpfs on ``/run``, UTS). It is a fork of the controller that pauses forever; everything else in
the node is started by entering the holder's namespaces. Killing every process of the node's
network namespace tears the node down completely: the namespaces vanish with their last
process, and with them the veths, routes, xfrm state and the private ``/run``.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Callable, TypeVar

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNET = 0x40000000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
MARKER = ".labkit.json"  # in a node's private /run: identifies labkit processes

_libc = ctypes.CDLL(None, use_errno=True)
T = TypeVar("T")


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns_path(path: str, nstype: int) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.setns(fd, nstype), f"setns {path}")
    finally:
        os.close(fd)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    enc = lambda s: s.encode() if s is not None else None  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def set_pdeathsig(sig: int = signal.SIGKILL) -> None:
    _check(_libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")


def netns_inode(pid: int) -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def in_netns(pid: int, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a short-lived thread that has entered the network namespace of ``pid``.

    Sockets created there stay in that namespace; ``/proc/sys/net`` writes apply to it.
    """
    box: dict = {}

    def run() -> None:
        try:
            setns_path(f"/proc/{pid}/ns/net", CLONE_NEWNET)
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=run, name=f"netns-{pid}")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def netns_socket(pid: int, family: int, type_: int, proto: int = 0) -> socket.socket:
    return in_netns(pid, lambda: socket.socket(family, type_, proto))


def enter(pid: int, pdeathsig: bool = False) -> Callable[[], None]:
    """A ``preexec_fn`` that moves the child into the holder's mount, network and UTS namespaces."""
    paths = [(f"/proc/{pid}/ns/net", CLONE_NEWNET), (f"/proc/{pid}/ns/uts", CLONE_NEWUTS),
             (f"/proc/{pid}/ns/mnt", CLONE_NEWNS)]

    def preexec() -> None:
        for path, nstype in paths:
            setns_path(path, nstype)
        os.chdir("/")
        if pdeathsig:
            set_pdeathsig(signal.SIGKILL)

    return preexec


def spawn_holder(marker: dict, hostname: str, detach: bool = False) -> int:
    """Fork a holder with fresh namespaces and return its pid once they are ready.

    Args:
        marker: written as JSON to ``/run/.labkit.json`` in the holder's private ``/run``.
        hostname: set in the holder's UTS namespace.
        detach: keep running after the controller exits (``labkit up``); otherwise the holder
            dies with the controller thread that forked it.

    Raises:
        OSError: if the namespaces could not be created (with the child's reason).
    """
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: only syscalls from here, then pause; never return into the caller
        status = 1
        try:
            os.close(ready_r)
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):  # never hold the caller's terminal or pipes open
                os.dup2(devnull, fd)
            keep = {ready_w}
            for fd in range(3, 1024):
                if fd not in keep:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            if detach:
                os.setsid()
            else:
                set_pdeathsig(signal.SIGKILL)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            unshare(CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWNS)
            _libc.sethostname(hostname.encode(), len(hostname.encode()))
            mount(None, "/", None, MS_REC | MS_PRIVATE)
            mount("labkit", "/run", "tmpfs", 0, "mode=755,size=64m")
            for sub in ("frr", "labkit", "netns", "lock"):
                os.makedirs(f"/run/{sub}", exist_ok=True)
            Path("/run", MARKER).write_text(json.dumps(marker))
            os.write(ready_w, b"ok")
            os.close(ready_w)
            while True:
                signal.pause()
        except BaseException as exc:  # report and die; never run the caller's code
            try:
                os.write(ready_w, f"error: {exc}".encode())
            except OSError:
                pass
        finally:
            os._exit(status)
    os.close(ready_w)
    with os.fdopen(ready_r, "rb") as pipe:
        answer = pipe.read(4096).decode(errors="replace")  # EOF after "ok" or error
    if answer != "ok":
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        raise OSError(f"could not create namespaces for {hostname}: {answer or 'holder died'}")
    return pid


def node_root(pid: int) -> Path:
    """The node's file-system view as seen from the host: ``/proc/PID/root``."""
    return Path(f"/proc/{pid}/root")


def read_marker(pid: int) -> dict | None:
    """The labkit marker of a process, or None if it is not in a labkit node."""
    try:
        return json.loads((node_root(pid) / "run" / MARKER).read_text())
    except (OSError, ValueError):
        return None


def pids_in_netns(inode: int) -> list[int]:
    """Every process whose network namespace is ``inode``."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino == inode:
                    out.append(int(entry))
            except OSError:
                pass
    return out
