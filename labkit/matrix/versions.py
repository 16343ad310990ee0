"""The versions a cell ran with: FRR, strongSwan, the kernel, the runtime (and image).

A cell's generated ``conftest.py`` calls :func:`record` when its first test module starts, in
the session that runs the lab (inside the VM sandbox when there is one, so the kernel is the
one the lab used). netns nodes run this host's packages; docker nodes the image's, as recorded
in its labels by ``labkit image build``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from ..image import _upstream
from .cells import CELL_FILE, VERSIONS_FILE

PACKAGES = {"frr": "frr", "strongswan-swanctl": "strongswan"}


def host_packages() -> dict[str, str]:
    """Upstream versions of FRR and strongSwan installed on this host (what netns nodes run)."""
    try:
        proc = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", *PACKAGES],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": f"dpkg-query: {exc}"}
    found = {}
    for line in proc.stdout.splitlines():
        pkg, _, version = line.partition(" ")
        if pkg in PACKAGES and version:
            found[PACKAGES[pkg]] = _upstream(version)
    return found


def image_packages(tag: str) -> dict[str, str]:
    """FRR and strongSwan of a docker image, from its labkit labels (else read inside it)."""
    from .. import image
    from ..runtime.engine import connect

    try:
        client = connect()
        found = image.image_versions(client, tag) or image.versions(client, tag)
    except Exception as exc:  # noqa: BLE001 - the versions are reported, not needed to run
        return {"error": f"image {tag}: {exc}"}
    return {k: found[k] for k in ("frr", "strongswan") if k in found}


def collect(runtime: str, image: str | None) -> dict[str, str]:
    """``{"runtime", "kernel", "frr", "strongswan"[, "image"]}`` for a lab of this runtime."""
    from ..sandbox import vm

    out = {"runtime": runtime, "kernel": os.uname().release, "sandbox": "VM" if vm.inside() else "native"}
    if runtime == "docker":
        from ..runtime.engine import DEFAULT_IMAGE

        out["image"] = image or DEFAULT_IMAGE
        out.update(image_packages(out["image"]))
    else:
        out.update(host_packages())
    return out


def record(cell_dir: Path, runtime: str, session_image: str | None = None) -> dict[str, str]:
    """Write ``versions.json`` into a cell directory (once per cell) and return it."""
    cell_dir = Path(cell_dir)
    target = cell_dir / VERSIONS_FILE
    if target.exists():
        return json.loads(target.read_text())
    try:
        cell = json.loads((cell_dir / CELL_FILE).read_text())
    except (OSError, ValueError):
        cell = {}
    found = collect(runtime, cell.get("image") or session_image)
    tmp = target.with_suffix(".partial")
    tmp.write_text(json.dumps(found, indent=2) + "\n")
    tmp.replace(target)
    return found
