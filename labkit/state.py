"""Labs that outlive a command (``labkit up``): their records, and cleanup of any leftovers.

A record is a small JSON file per lab under ``/run/labkit/labs``. Cleanup does not trust the
records alone: every process whose mount namespace carries the labkit marker belongs to a lab,
so leftovers of crashed runs are found even when no record was written.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .runtime import engine, ns
from .runtime.netns import _reap, kill_node

STATE_DIR = Path(os.environ.get("LABKIT_STATE_DIR", "/run/labkit/labs"))


@dataclass
class LabRecord:
    id: str
    topology: str
    runtime: str
    pids: dict[str, int]
    owner: int
    created: float

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
                         "orphaned": labels.get(f"{dk.LABEL}.detached") != "1" and not dk.owner_alive(owner),
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
    recorded = {r.id for r in records()}
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
    for rec in records():  # records whose nodes are already gone
        if (all_labs or rec.id in wanted) and not rec.alive():
            forget(rec.id)
    return removed
