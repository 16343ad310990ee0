"""Labs that outlive a command (``labkit up``): their records, and cleanup of any leftovers.

A record is a small JSON file per lab under ``/run/labkit/labs``. ``labkit up`` writes it
*before* creating anything (status ``starting``) and marks it ``up`` once the lab converged, so a
run killed half-way is still an orphan. Cleanup does not trust the records alone: every process
whose mount namespace carries the labkit marker belongs to a lab, and every container carries
labkit labels, so leftovers of crashed runs are found even when no record was written.

:func:`residue` is the independent check that nothing of a lab is left: processes, namespaces,
containers, host links, and the sandbox VMs and temp dirs of its owner.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .runtime import engine, ns
from .runtime.netns import _reap, kill_node
from .sandbox.vm import VM_TMP_PREFIX

STATE_DIR = Path(os.environ.get("LABKIT_STATE_DIR", "/run/labkit/labs"))


@dataclass
class LabRecord:
    id: str
    topology: str
    runtime: str
    pids: dict[str, int]
    owner: int
    created: float
    status: str = "up"  # "starting" while `labkit up` runs: a dead owner then means an orphan
    notes: dict = field(default_factory=dict)  # what tools built on the lab keep (the exercise): goes with the record

    def protected(self) -> bool:
        """Whether cleanup must leave this lab alone (it is up, or its `labkit up` is still running)."""
        return self.status == "up" or _owner_alive(self.owner)

    def alive(self) -> bool:
        """Whether any node still exists (each carries the labkit marker in its ``/run``)."""
        return any((ns.read_marker(pid) or {}).get("lab") == self.id for pid in self.pids.values())


def save(record: LabRecord) -> Path:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    path = STATE_DIR / f"{record.id}.json"
    path.write_text(json.dumps(asdict(record), indent=2))
    return path


def records() -> list[LabRecord]:
    out = []
    if STATE_DIR.is_dir():
        for f in sorted(STATE_DIR.glob("*.json")):
            try:
                out.append(LabRecord(**json.loads(f.read_text())))
            except (OSError, ValueError, TypeError):
                continue
    return out


def forget(lab_id: str) -> None:
    try:
        (STATE_DIR / f"{lab_id}.json").unlink()
    except FileNotFoundError:
        pass


def _owner_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def scan(docker: bool = True, client=None) -> dict[str, dict]:
    """Every labkit lab on this host, by id.

    ``{lab: {"runtime": "netns"|"docker", "owner": pid, "mine": bool, "orphaned": bool,
    "holders": {node: pid}}}``. netns labs are found by the marker in each holder's ``/run``;
    docker labs by their containers' labels (when an engine answers).
    """
    labs: dict[str, dict] = {}
    seen_ns: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        marker = ns.read_marker(pid)
        if not marker or marker.get("runtime", "netns") != "netns":
            continue
        try:
            inode = ns.netns_inode(pid)
        except OSError:
            continue
        if inode in seen_ns:
            continue
        seen_ns.add(inode)
        owner = marker.get("owner")
        lab = labs.setdefault(marker["lab"], {"runtime": "netns", "owner": owner, "mine": owner == os.getpid(),
                                              "orphaned": not owner or not _owner_alive(owner), "holders": {}})
        lab["holders"][marker.get("node", "?")] = pid
    if client is None and docker:
        client = engine.client_or_none()
    if client is not None:
        from .runtime import docker as dk

        for lid, containers in dk.lab_containers(client).items():
            labels = containers[0].labels
            owner = labels.get(f"{dk.LABEL}.owner", "")
            labs[lid] = {"runtime": "docker", "owner": int(owner.partition(":")[0] or 0),
                         "mine": owner == dk.owner_id(),
                         "orphaned": not dk.owner_alive(owner),
                         "holders": {c.labels.get(f"{dk.LABEL}.node", c.name): c.name for c in containers}}
    return labs


def cleanup(all_labs: bool = False, lab_id: str | None = None, lab_ids: set[str] | None = None,
            timeout: float = 10.0) -> list[str]:
    """Remove labs whose owner is dead (or every lab with ``all_labs``, or the ones named); return their ids.

    A lab started by ``labkit up`` (it has a record) is never an orphan: only ``labkit down``
    or ``--all`` remove it.
    """
    wanted = set(lab_ids or ()) | ({lab_id} if lab_id else set())
    removed = []
    recorded = {r.id for r in records() if r.protected()}
    docker_labs = set()
    client = engine.client_or_none()  # one connection for the scan and the removal
    for lid, info in scan(docker=False, client=client).items():
        if wanted and lid not in wanted:
            continue
        if not (all_labs or lid in wanted or (info["orphaned"] and lid not in recorded)):
            continue
        if info["runtime"] == "docker":
            docker_labs.add(lid)
            continue
        deadline = time.monotonic() + timeout
        for pid in info["holders"].values():
            kill_node(pid)
        for pid in info["holders"].values():
            _reap(pid, deadline)
        forget(lid)
        removed.append(lid)
    if docker_labs:
        from .runtime.docker import remove_labs

        removed += remove_labs(client, docker_labs)
        for lid in docker_labs:
            forget(lid)
    for rec in records():  # records whose nodes are already gone, or whose `labkit up` died
        if (all_labs or rec.id in wanted or not rec.protected()) and not rec.alive():
            forget(rec.id)
    return removed


TEMP_PREFIXES = (VM_TMP_PREFIX, "labkit-image-")  # + owner pid + "-"


def remove_stale_temp_dirs() -> list[str]:
    """Remove labkit temp dirs (``/tmp/labkit-vm-PID-*``, ``labkit-image-PID-*``) whose owner is dead."""
    removed = []
    for prefix in TEMP_PREFIXES:
        for path in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
            pid = path.name[len(prefix):].partition("-")[0]
            if pid.isdigit() and not _owner_alive(int(pid)):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(str(path))
    return removed


def residue(lab_id: str, owner: int | None = None, client=None) -> list[str]:
    """Everything of lab ``lab_id`` (and of the labkit process ``owner``) still on this host.

    Checked independently of the runtime that made them: processes carrying the lab's marker
    (namespace holders) or its ``LABKIT_LAB`` environment (daemons), containers labelled with
    it, host interfaces named after it, and, for ``owner``, sandbox VM processes and temp dirs.
    An empty list means the lab left nothing behind.
    """
    found = []
    vm_tag = f"/{VM_TMP_PREFIX}{owner}-" if owner else None
    needle = f"LABKIT_LAB={lab_id}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        pid = int(entry)
        if (ns.read_marker(pid) or {}).get("lab") == lab_id:
            found.append(f"namespace holder or process {pid} (marker of {lab_id})")
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in environ:
            found.append(f"process {pid} ({cmdline.strip()[:60]}) with {needle.decode()}")
        elif vm_tag and vm_tag in cmdline:
            found.append(f"sandbox VM process {pid} of owner {owner}")
    if vm_tag:
        found += [f"temp dir {d}" for prefix in TEMP_PREFIXES
                  for d in Path(tempfile.gettempdir()).glob(f"{prefix}{owner}-*")]
    try:
        found += [f"host interface {name}" for name in os.listdir("/sys/class/net") if lab_id in name]
    except OSError:
        pass
    if client is None:  # False: the lab's runtime makes no containers, do not ask an engine
        client = engine.client_or_none()
    if client not in (None, False):
        from .runtime import docker as dk

        found += [f"container {c.name}" for c in dk.lab_containers(client, lab_id).get(lab_id, [])]
    return found
