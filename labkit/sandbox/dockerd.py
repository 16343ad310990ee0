"""The docker runtime inside the VM sandbox: a private dockerd, fed the host's images.

The host exports each image a run needs once (``docker save``, cached by image id under
``~/.cache/labkit/images``); the guest sees the host's file system, so it starts its own dockerd
(storage on a tmpfs: overlay2 cannot sit on the 9p root), loads the archives and runs the lab.
The engine dies with the VM: nothing can leak from it. Its flags keep it out of networking
altogether (no bridge, no iptables): labkit wires every container itself.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from ..errors import LabkitError, PrerequisiteError
from ..runtime import engine

ENV_IMAGES = "LABKIT_SANDBOX_IMAGES"  # os.pathsep-separated archives the guest loads
DATA_ROOT = "/var/lib/docker"
LOG = "/var/log/labkit-dockerd.log"
DOCKERD_FLAGS = ["--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-forward=false",
                 "--ip-masq=false", "--userland-proxy=false", f"--data-root={DATA_ROOT}"]
START_TIMEOUT = 300.0
_started = False


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "labkit" / "images"


def export_images(tags: set[str], progress=lambda m: None) -> list[str]:
    """Save each image (by tag) to an archive the guest can load; reuse archives of the same image id.

    Raises:
        PrerequisiteError: no engine on the host, or an image is missing (with the fix).
    """
    client = engine.connect(timeout=600)
    ids = engine.require_images(client, tags)
    out = []
    cache = _cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    for tag, image_id in sorted(ids.items()):
        path = cache / f"{tag.replace('/', '_').replace(':', '_')}-{image_id.split(':')[-1][:12]}.tar"
        if not path.exists():
            t0 = time.monotonic()
            for stale in cache.glob(f"{tag.replace('/', '_').replace(':', '_')}-*.tar"):
                stale.unlink()
            partial = path.with_suffix(".partial")
            with open(partial, "wb") as f:
                for chunk in client.api.get_image(tag):
                    f.write(chunk)
            partial.rename(path)
            progress(f"exported {tag} for the sandbox ({path.stat().st_size / 2**20:.0f} MiB, "
                     f"{time.monotonic() - t0:.0f}s)")
        out.append(str(path))
    return out


def guest_env(runtimes: list[str], topologies: list, image: str | None = None, progress=lambda m: None) -> dict[str, str]:
    """What the guest needs to run ``runtimes``: for docker, the archives of every image the topologies use."""
    if "docker" not in runtimes:
        return {}
    tags = {image or engine.DEFAULT_IMAGE}
    for topo in topologies:
        tags |= {n.image for n in topo.nodes.values() if n.image}
    return {ENV_IMAGES: os.pathsep.join(export_images(tags, progress))}


def _mounted(path: str) -> bool:
    return any(line.split()[1] == path for line in Path("/proc/self/mounts").read_text().splitlines())


def ensure_guest_engine(progress=lambda m: None) -> None:
    """Inside the VM sandbox: start a private dockerd and load the host's images (once per boot)."""
    global _started
    if _started or os.environ.get("LABKIT_IN_SANDBOX") != "1":
        return
    archives = [a for a in os.environ.get(ENV_IMAGES, "").split(os.pathsep) if a]
    if engine.available():
        _started = True
        return
    t0 = time.monotonic()
    progress("sandbox: starting a private dockerd (storage on tmpfs) ...")
    from ..runtime.ns import mount

    os.makedirs(DATA_ROOT, exist_ok=True)
    if not _mounted(DATA_ROOT):
        mount("labkit-docker", DATA_ROOT, "tmpfs", 0, "mode=711")
    try:
        log = open(LOG, "ab")
        proc = subprocess.Popen(["dockerd", *DOCKERD_FLAGS], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    except FileNotFoundError as exc:
        raise PrerequisiteError("the docker runtime in the VM sandbox needs dockerd: apt-get install docker.io") from exc
    deadline = time.monotonic() + START_TIMEOUT
    client = None
    while client is None:
        if proc.poll() is not None:
            raise LabkitError(f"dockerd exited with {proc.returncode} in the sandbox:\n" + _tail(LOG))
        if time.monotonic() > deadline:
            raise LabkitError(f"dockerd did not answer on its socket within {START_TIMEOUT:g}s in the sandbox:\n"
                              + _tail(LOG))
        if engine.available():
            try:
                client = engine.connect(timeout=900)
                break
            except PrerequisiteError:
                pass
        time.sleep(0.2)  # polling for the engine to answer, bounded above
    progress(f"sandbox: dockerd up in {time.monotonic() - t0:.0f}s; loading {len(archives)} image(s) ...")
    for archive in archives:
        t1 = time.monotonic()
        with open(archive, "rb") as f:
            list(client.api.load_image(f))
        progress(f"sandbox: loaded {os.path.basename(archive)} in {time.monotonic() - t1:.0f}s")
    _started = True


def _tail(path: str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
