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

from .runtime import ns
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
        return any(ns.read_marker(pid) is not None for pid in self.pids.values())


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


def scan() -> dict[str, dict]:
    """Every labkit holder on this host, by lab id: ``{lab: {"owner": pid, "holders": {node: pid}}}``."""
    labs: dict[str, dict] = {}
    seen_ns: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        marker = ns.read_marker(pid)
        if not marker:
            continue
        try:
            inode = ns.netns_inode(pid)
        except OSError:
            continue
        if inode in seen_ns:
            continue
        seen_ns.add(inode)
        lab = labs.setdefault(marker["lab"], {"owner": marker.get("owner"), "holders": {}})
        lab["holders"][marker.get("node", "?")] = pid
    return labs


def cleanup(all_labs: bool = False, lab_id: str | None = None, timeout: float = 10.0) -> list[str]:
    """Kill the nodes of labs whose owner is dead (or every lab with ``all_labs``); return their ids."""
    removed = []
    recorded = {r.id for r in records()}
    for lid, info in scan().items():
        if lab_id and lid != lab_id:
            continue
        owner_gone = not info["owner"] or not _owner_alive(info["owner"])
        if not (all_labs or lab_id or (owner_gone and lid not in recorded)):
            continue
        deadline = time.monotonic() + timeout
        for pid in info["holders"].values():
            kill_node(pid)
        for pid in info["holders"].values():
            _reap(pid, deadline)
        forget(lid)
        removed.append(lid)
    for rec in records():  # records whose nodes are already gone
        if (all_labs or rec.id == lab_id) and not rec.alive():
            forget(rec.id)
    return removed
