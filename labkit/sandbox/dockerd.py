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
import threading
import time
from pathlib import Path

from ..errors import LabkitError, PrerequisiteError
from ..runtime import engine

ENV_IMAGES = "LABKIT_SANDBOX_IMAGES"  # os.pathsep-separated archives the guest loads
DATA_ROOT = "/var/lib/docker"
CONTAINERD_ROOT = "/var/lib/containerd"
CONTAINERD_SOCKET = "/run/containerd/containerd.sock"
LOG = "/var/log/labkit-dockerd.log"
CONTAINERD_LOG = "/var/log/labkit-containerd.log"
DOCKERD_FLAGS = ["--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-forward=false",
                 "--ip-masq=false", "--userland-proxy=false", f"--data-root={DATA_ROOT}"]
START_TIMEOUT = 300.0


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


def _spawn(argv: list[str], log: str) -> subprocess.Popen:
    """Start an engine daemon at the lowest CPU priority: it works in the background while labs
    run, and must not slow them (their waits are bounded by protocol timers)."""
    try:
        with open(log, "ab") as out:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, preexec_fn=lambda: os.nice(19))
    except FileNotFoundError as exc:
        raise PrerequisiteError(f"the docker runtime in the VM sandbox needs {argv[0]}: apt-get install docker.io") from exc


def _wait(proc: subprocess.Popen, ready, what: str, log: str):
    """Poll ``ready()`` (truthy when done) until ``START_TIMEOUT``; fail at once if ``proc`` exits."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise LabkitError(f"{what} exited with {proc.returncode} in the sandbox:\n" + _tail(log))
        value = ready()
        if value:
            return value
        if time.monotonic() > deadline:
            raise LabkitError(f"{what} did not answer within {START_TIMEOUT:g}s in the sandbox:\n" + _tail(log))
        time.sleep(0.2)  # polling a daemon's socket, bounded above


def _start_engine(notes: list[str]) -> None:
    """containerd, then dockerd on it, then the images. containerd runs on its own: dockerd gives
    the containerd it spawns a fixed start-up timeout, which a cold TCG guest can exceed."""
    from ..runtime.ns import mount

    archives = [a for a in os.environ.get(ENV_IMAGES, "").split(os.pathsep) if a]
    t0 = time.monotonic()
    for root in (DATA_ROOT, CONTAINERD_ROOT):  # overlay2 cannot sit on the 9p root
        os.makedirs(root, exist_ok=True)
        if not _mounted(root):
            mount("labkit-docker", root, "tmpfs", 0, "mode=711")
    containerd = _spawn(["containerd", "--address", CONTAINERD_SOCKET], CONTAINERD_LOG)
    _wait(containerd, lambda: os.path.exists(CONTAINERD_SOCKET), "containerd", CONTAINERD_LOG)
    dockerd = _spawn(["dockerd", *DOCKERD_FLAGS, f"--containerd={CONTAINERD_SOCKET}"], LOG)
    client = _wait(dockerd, lambda: engine.client_or_none(timeout=900), "dockerd", LOG)
    notes.append(f"sandbox: private dockerd up in {time.monotonic() - t0:.0f}s (storage on tmpfs)")
    for archive in archives:
        t1 = time.monotonic()
        with open(archive, "rb") as f:
            list(client.api.load_image(f))
        notes.append(f"sandbox: loaded {os.path.basename(archive)} in {time.monotonic() - t1:.0f}s")
    for proc in (containerd, dockerd):  # every thread back to normal: containers inherit it
        for tid in os.listdir(f"/proc/{proc.pid}/task"):
            try:
                os.setpriority(os.PRIO_PROCESS, int(tid), 0)
            except ProcessLookupError:
                pass


class _GuestEngine:
    """Started at most once per boot, possibly in the background while other labs run."""

    def __init__(self):
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.notes: list[str] = []
        self.done = False

    def _run(self) -> None:
        try:
            _start_engine(self.notes)
        except BaseException as exc:  # re-raised by ensure()
            self.error = exc

    def start_background(self) -> None:
        with self.lock:
            if self.thread is None and not self.done and _wanted():
                self.thread = threading.Thread(target=self._run, name="labkit-guest-dockerd", daemon=True)
                self.thread.start()

    def ensure(self, progress) -> None:
        if self.done or not _wanted():
            return
        if engine.available() and self.thread is None:
            self.done = True  # an engine is already there (not ours)
            return
        self.start_background()
        progress("sandbox: waiting for the private dockerd and its images ...")
        self.thread.join()
        for note in self.notes:
            progress(note)
        self.notes.clear()
        if self.error is not None:
            raise self.error
        self.done = True


def _wanted() -> bool:
    return os.environ.get("LABKIT_IN_SANDBOX") == "1" and ENV_IMAGES in os.environ


_ENGINE = _GuestEngine()


def start_guest_engine_early() -> None:
    """Inside the VM sandbox: begin starting the private engine now (it takes a minute under TCG)."""
    _ENGINE.start_background()


def ensure_guest_engine(progress=lambda m: None) -> None:
    """Inside the VM sandbox: the private dockerd is up and has the host's images (once per boot)."""
    _ENGINE.ensure(progress)


def _tail(path: str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
