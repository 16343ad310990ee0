"""The docker runtime: each node is a container with no network, wired by labkit through netlink.

* Containers are created with ``network_mode=none``, Docker's default capabilities plus
  NET_ADMIN and SYS_ADMIN (never ``--privileged``), a private tmpfs ``/run``, ``sleep infinity``
  under docker-init, and the node's global sysctls set at create time.
* Veths are then born directly inside the containers' namespaces (``net_ns_pid``), exactly as
  for the netns runtime: :mod:`labkit.runtime.kernel` works on the container's PID.
* Daemons are ``docker exec``'d only after wiring, so they live and die with the container.
* Every container carries the labels ``labkit.lab``, ``labkit.node``, ``labkit.owner`` (pid and
  start time of the controlling process): teardown and the reaper of dead owners work by label.
* No implicit pull: a missing image is a :class:`PrerequisiteError` before anything is created.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import signal
from dataclasses import dataclass
from pathlib import Path

from ..errors import LabError, PrerequisiteError
from ..exec import CommandResult
from . import engine, ns
from .base import Runtime, node_env

LABEL = "labkit"
CAPS = ["NET_ADMIN", "SYS_ADMIN"]
# Docker's defaults a node has no use for
CAP_DROP = ["MKNOD", "AUDIT_WRITE", "SETFCAP", "SYS_CHROOT"]
CAP_BITS = {"NET_ADMIN": 12, "SYS_ADMIN": 21}
# sysctls of interfaces that do not exist yet cannot be set at create time; kernel.py sets them
_LATE_SYSCTL = re.compile(r"^net\.ipv[46]\.conf\.(?!all\.|default\.|lo\.)")
PARALLEL = 8
# what a container runs until labkit starts its daemons; independent of the image's ENTRYPOINT/CMD
HOLDER = ["sleep", "infinity"]


def container_name(lab_id: str, node: str) -> str:
    """``lk1a2b3c-spoke1``; segments (``@lan``) become ``lk1a2b3c_lan`` (``_`` is not valid in node names)."""
    return f"{lab_id}_{node[1:]}" if node.startswith("@") else f"{lab_id}-{node}"


def owner_id(pid: int | None = None) -> str:
    """``PID:STARTTIME``: survives PID reuse, unlike a bare PID."""
    pid = pid or os.getpid()
    return f"{pid}:{_starttime(pid)}"


def _starttime(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def owner_alive(owner: str) -> bool:
    pid, _, start = owner.partition(":")
    return pid.isdigit() and Path(f"/proc/{pid}").exists() and _starttime(int(pid)) == start


def create_sysctls(sysctls: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in sysctls.items() if not _LATE_SYSCTL.match(k)}


class DockerProcess:
    """A daemon started with ``docker exec``: ``poll()`` and ``returncode`` like a Popen."""

    def __init__(self, api, exec_id: str, argv: list[str]):
        self.api, self.id, self.args = api, exec_id, argv
        self.returncode: int | None = None
        self.pid: int | None = None

    def kill(self) -> None:
        """SIGKILL the process (its host PID: labkit runs as root on the host)."""
        self.poll()
        if self.returncode is None and self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        if self.pid and _running(self.pid):
            return None  # cheap: no API round trip while the process is there
        info = self.api.exec_inspect(self.id)
        self.pid = info.get("Pid") or self.pid
        if info.get("Running") or info.get("ExitCode") is None:
            return None
        self.returncode = info["ExitCode"]
        return self.returncode


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class DockerRuntime(Runtime):
    """Nodes as containers of ``image`` (per node: ``images``) on the local Docker engine."""

    name = "docker"

    def __init__(self, lab_id: str, image: str = engine.DEFAULT_IMAGE, images: dict[str, str] | None = None,
                 topology: str = "", detach: bool = False, client=None):
        self.lab_id = lab_id
        self.image = image
        self.images = dict(images or {})
        self.topology = topology
        self.detach = detach
        self.client = client or engine.connect(timeout=600)
        self._pids: dict[str, int] = {}
        self._ids: dict[str, str] = {}

    # -- nodes ---------------------------------------------------------------------------
    def image_of(self, name: str) -> str:
        return self.images.get(name, self.image)

    def check_images(self, names: list[str]) -> None:
        engine.require_images(self.client, {self.image_of(n) for n in names})

    def labels(self, name: str) -> dict[str, str]:
        return {f"{LABEL}.lab": self.lab_id, f"{LABEL}.node": name, f"{LABEL}.owner": owner_id(),
                f"{LABEL}.topology": self.topology, f"{LABEL}.detached": "1" if self.detach else "0"}

    def create(self, name: str, sysctls: dict[str, str] | None = None) -> int:
        from docker.errors import APIError, ImageNotFound

        image = self.image_of(name)
        try:
            c = self.client.containers.create(
                image, entrypoint=HOLDER, name=container_name(self.lab_id, name), hostname=name.lstrip("@"),
                labels=self.labels(name), network_mode="none", cap_add=CAPS, cap_drop=CAP_DROP,
                sysctls=create_sysctls(sysctls or {}), tmpfs={"/run": "mode=755,size=64m"}, init=True,
                detach=True, environment={"LABKIT_LAB": self.lab_id, "LABKIT_NODE": name})
            self._ids[name] = c.id
            c.start()
            c.reload()
        except ImageNotFound as exc:
            raise PrerequisiteError(f"image {image} is missing: build it with 'labkit image build'") from exc
        except APIError as exc:
            hint = ""
            if "caps" in str(exc) or "operation not permitted" in str(exc).lower():
                hint = (". The engine could not grant NET_ADMIN and SYS_ADMIN: labkit needs a rootful engine "
                        "that may add them (rootless docker and userns-remap cannot)")
            raise LabError(f"cannot create container for {name}: {exc.explanation or exc}{hint}") from exc
        pid = c.attrs["State"]["Pid"]
        if not pid:
            raise LabError(f"container {c.name} for {name} is not running: {c.attrs['State'].get('Error') or c.status}")
        self._check_caps(name, pid)
        self._pids[name] = pid
        self.prepare_dirs(pid)
        marker = {"lab": self.lab_id, "node": name, "owner": os.getpid(), "runtime": self.name, "container": c.name}
        (ns.node_root(pid) / "run" / ns.MARKER).write_text(json.dumps(marker))
        return pid

    def create_all(self, nodes: dict[str, dict[str, str]]) -> None:
        """Create and start containers in parallel (one API round trip each)."""
        with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
            futures = [pool.submit(self.create, name, sysctls) for name, sysctls in nodes.items()]
            errors = [f.exception() for f in futures if f.exception()]
        if errors:
            raise errors[0]

    @staticmethod
    def _check_caps(name: str, pid: int) -> None:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            eff = int(re.search(r"^CapEff:\s*([0-9a-f]+)", status, re.M).group(1), 16)
        except (OSError, AttributeError):
            return
        lacking = [c for c, bit in CAP_BITS.items() if not eff >> bit & 1]
        if lacking:
            raise PrerequisiteError(f"the container of {name} lacks {', '.join(lacking)}; FRR and labkit's wiring need "
                                    "NET_ADMIN and SYS_ADMIN. Use a rootful engine that may grant them")

    # -- processes -------------------------------------------------------------------------
    def exec(self, name: str, argv: list[str], timeout: float = 60.0, input: str | None = None,
             env: dict[str, str] | None = None) -> CommandResult:
        env = node_env(self.lab_id, name, env)
        cmd = list(argv)
        if input is not None:  # docker exec has no stdin through the SDK's exec_run: pass it by environment
            env["LABKIT_STDIN"] = input
            cmd = ["sh", "-c", 'printf "%s" "$LABKIT_STDIN" | "$@"', "sh", *cmd]
        cmd = ["timeout", "-k", "2", f"{timeout:g}", *cmd]
        api = self.client.api
        exec_id = api.exec_create(self._cid(name), cmd, environment=env, workdir="/")["Id"]
        out, err = api.exec_start(exec_id, demux=True)
        rc = api.exec_inspect(exec_id).get("ExitCode")
        out = (out or b"").decode(errors="replace")
        err = (err or b"").decode(errors="replace")
        if rc == 127 and not out:
            err = err or f"{argv[0]}: command not found"
        if rc in (124, 137) and not err:
            err = f"timed out after {timeout:g}s"
        return CommandResult(name, tuple(argv), rc if rc is not None else -1, out, err)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None,
              log: str | None = None) -> DockerProcess:
        cmd = ["sh", "-c", 'exec "$@" >>"$0" 2>&1', log, *argv] if log else list(argv)
        api = self.client.api
        exec_id = api.exec_create(self._cid(name), cmd, environment=node_env(self.lab_id, name, env), workdir="/")["Id"]
        api.exec_start(exec_id, detach=True)
        return DockerProcess(api, exec_id, list(argv))

    def _cid(self, name: str) -> str:
        try:
            return self._ids[name]
        except KeyError:
            raise LabError(f"no node named {name!r}; nodes: {', '.join(sorted(self._ids))}") from None

    # -- teardown --------------------------------------------------------------------------
    def destroy(self) -> None:
        """Remove every container of this lab (by label, so half-created ones go too)."""
        remove_labs(self.client, {self.lab_id})
        self._pids.clear()
        self._ids.clear()


@dataclass(frozen=True)
class Found:
    """A labkit container as the engine's list shows it (no inspect: it may vanish meanwhile)."""

    id: str
    name: str
    labels: dict


def lab_containers(client, lab_id: str | None = None) -> dict[str, list[Found]]:
    """Every labkit container on the engine (or lab ``lab_id``'s), by lab id.

    One list call and no per-container inspect: labs of other processes are created and removed
    concurrently (``pytest -n``), and a container gone between list and inspect is no error.
    """
    label = f"{LABEL}.lab={lab_id}" if lab_id else f"{LABEL}.lab"
    labs: dict[str, list[Found]] = {}
    for c in client.api.containers(all=True, filters={"label": label}):
        found = Found(c["Id"], (c.get("Names") or ["/?"])[0].lstrip("/"), c.get("Labels") or {})
        labs.setdefault(found.labels.get(f"{LABEL}.lab", "?"), []).append(found)
    return labs


def remove_labs(client, lab_ids: set[str]) -> list[str]:
    """Force-remove (SIGKILL, then delete) every container of ``lab_ids``, in parallel."""
    from docker.errors import APIError, NotFound

    only = next(iter(lab_ids)) if len(lab_ids) == 1 else None
    victims = [c for lid, cs in lab_containers(client, only).items() if lid in lab_ids for c in cs]

    def remove(c: Found) -> str | None:
        try:
            client.api.remove_container(c.id, force=True)
        except NotFound:
            pass
        except APIError as exc:
            if exc.status_code == 409 and "already in progress" in str(exc):
                return None  # another cleanup is removing it
            return f"{c.name}: {exc}"
        return None

    with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
        failed = [msg for msg in pool.map(remove, victims) if msg]
    if failed:
        raise LabError("could not remove containers: " + "; ".join(failed))
    return sorted({c.labels.get(f"{LABEL}.lab", "?") for c in victims})


def attach(lab_id: str, pids: dict[str, int] | None = None) -> DockerRuntime:
    """A runtime for an existing lab's containers (``labkit status``), found by label."""
    rt = DockerRuntime(lab_id)
    for c in lab_containers(rt.client, lab_id).get(lab_id, []):
        node = c.labels.get(f"{LABEL}.node", c.name)
        rt._ids[node] = c.id
        rt._pids[node] = (pids or {}).get(node) or rt.client.api.inspect_container(c.id)["State"]["Pid"]
    return rt
