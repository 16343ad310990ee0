"""The node image: a Debian base without a registry (debootstrap), then the top-level Dockerfile.

``labkit image build`` runs the recipe:

1. **Base.** Where no registry is reachable (the default), ``debootstrap --variant=minbase``
   from the Debian mirror apt on this host is configured with, imported as
   ``labkit/base:<codename>``. Its apt sources are this host's Debian sources, so the image gets
   the same package versions as the host. With ``--base IMAGE`` (a registry is reachable) that
   image is used instead.
2. **Node.** The Dockerfile ``FROM`` that base installs FRR, strongSwan and the node tools.
3. **Tags.** ``labkit/node:frr<FRR>-swan<strongSwan>`` records the versions inside, and
   ``labkit/node:latest`` points at the newest build.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import LabkitError, PrerequisiteError
from .runtime.engine import DEFAULT_IMAGE

BASE_REPO = "labkit/base"
NODE_REPO = DEFAULT_IMAGE.split(":")[0]
REPO_DOCKERFILE = Path(__file__).resolve().parents[1] / "Dockerfile"
DEBOOTSTRAP_TIMEOUT = 1800.0
VERSION_LABEL = "io.labkit.version.{}"


@dataclass(frozen=True)
class AptSource:
    uri: str
    suite: str
    components: tuple[str, ...]

    def line(self) -> str:
        return f"deb {self.uri} {self.suite} {' '.join(self.components)}"


def host_codename(os_release: str = "/etc/os-release") -> str:
    try:
        text = Path(os_release).read_text()
    except OSError as exc:
        raise PrerequisiteError(f"cannot read {os_release} to learn the Debian release: {exc}") from exc
    m = re.search(r"^VERSION_CODENAME=\"?([a-z]+)\"?$", text, re.M)
    if not m:
        raise PrerequisiteError(f"{os_release} names no VERSION_CODENAME: is this Debian? Pass --base IMAGE instead")
    return m.group(1)


def _deb822(text: str) -> list[AptSource]:
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for raw in stanza.splitlines():
            if raw.startswith("#") or not raw.strip():
                continue
            if raw[0] in " \t" and fields:
                continue  # continuation lines (keys) carry nothing we need
            key, _, value = raw.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        comps = tuple(fields.get("components", "main").split())
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                out.append(AptSource(uri.rstrip("/"), suite, comps))
    return out


def _one_line(text: str) -> list[AptSource]:
    out = []
    for raw in text.splitlines():
        raw = re.sub(r"\[[^]]*\]", "", raw.split("#", 1)[0]).split()
        if len(raw) >= 3 and raw[0] == "deb":
            out.append(AptSource(raw[1].rstrip("/"), raw[2], tuple(raw[3:]) or ("main",)))
    return out


def apt_sources(etc: Path = Path("/etc/apt")) -> list[AptSource]:
    """The ``deb`` sources apt is configured with (one-line ``.list`` and deb822 ``.sources``)."""
    found: list[AptSource] = []
    files = [etc / "sources.list"] + sorted((etc / "sources.list.d").glob("*"))
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        if f.name.endswith(".sources"):
            found += _deb822(text)
        elif f.name.endswith(".list"):
            found += _one_line(text)
    return found


def debian_sources(codename: str, sources: list[AptSource]) -> list[AptSource]:
    """Sources of this release (``bookworm``, ``bookworm-updates``, ``bookworm-security``)."""
    return [s for s in sources if s.suite == codename or s.suite.startswith(codename + "-")]


def mirror(codename: str, sources: list[AptSource]) -> str:
    """The mirror debootstrap fetches ``codename`` from: the first source of exactly that suite."""
    for s in sources:
        if s.suite == codename:
            return s.uri
    raise PrerequisiteError(f"apt on this host has no source for Debian {codename} (in /etc/apt/sources.list*), "
                            "so there is no mirror to debootstrap from. Add one, or pass --base IMAGE "
                            "where a registry is reachable")


def build_base(client, progress: Callable[[str], None], rebuild: bool = False) -> str:
    """``labkit/base:<codename>`` from debootstrap; reused when present unless ``rebuild``."""
    from docker.errors import ImageNotFound

    codename = host_codename()
    tag = f"{BASE_REPO}:{codename}"
    if not rebuild:
        try:
            client.images.get(tag)
            progress(f"base {tag}: present (--rebuild makes it again)")
            return tag
        except ImageNotFound:
            pass
    if not shutil.which("debootstrap"):
        raise PrerequisiteError("building the base image needs debootstrap: apt-get install debootstrap")
    sources = apt_sources()
    url = mirror(codename, sources)
    progress(f"base {tag}: debootstrap --variant=minbase {codename} from {url} (about a minute) ...")
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"labkit-image-{os.getpid()}-") as tmp:
        root = Path(tmp, "rootfs")
        argv = ["debootstrap", "--variant=minbase", "--components=main", codename, str(root), url]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=DEBOOTSTRAP_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            raise LabkitError(f"debootstrap did not finish within {DEBOOTSTRAP_TIMEOUT:g}s") from exc
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
            raise LabkitError(f"debootstrap failed (exit {proc.returncode}):\n{tail}")
        lines = [s.line() for s in debian_sources(codename, sources)] or [f"deb {url} {codename} main"]
        (root / "etc/apt/sources.list").write_text("\n".join(lines) + "\n")
        for stale in (root / "etc/apt/sources.list.d").glob("*"):
            stale.unlink()
        for cache in (root / "var/cache/apt/archives").glob("*.deb"):
            cache.unlink()
        progress(f"base {tag}: rootfs ready in {time.monotonic() - t0:.0f}s; importing ...")
        archive = Path(tmp, "rootfs.tar")
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(archive), "."], check=True,
                       capture_output=True, timeout=600)
        client.api.import_image_from_file(str(archive), repository=BASE_REPO, tag=codename)
    progress(f"base {tag}: imported ({time.monotonic() - t0:.0f}s)")
    return tag


def _context(dockerfile: Path) -> io.BytesIO:
    """A build context holding only the Dockerfile (the node image copies nothing in)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(dockerfile), arcname="Dockerfile")
    buf.seek(0)
    return buf


def _upstream(version: str) -> str:
    """``8.4.4-1.1~deb12u1`` → ``8.4.4``; ``1:10.1-0~deb12u1`` → ``10.1``."""
    return version.split(":", 1)[-1].split("-", 1)[0].split("+", 1)[0]


def versions(client, image: str) -> dict[str, str]:
    """Package versions inside an image: ``{"frr": "8.4.4", "strongswan": "5.9.8"}``."""
    out = client.containers.run(image, ["dpkg-query", "-W", "-f", "${Package} ${Version}\\n",
                                        "frr", "strongswan-swanctl"], remove=True, network_mode="none")
    found = {}
    for line in out.decode().splitlines():
        pkg, _, ver = line.partition(" ")
        found["strongswan" if pkg.startswith("strongswan") else pkg] = _upstream(ver)
    return found


def _run_build(client, dockerfile: Path, tag: str, base: str, nocache: bool, progress: Callable[[str], None],
               labels: dict[str, str] | None = None) -> str | None:
    """One ``docker build`` (classic builder, host network for apt); returns the image id."""
    from docker.errors import APIError, BuildError

    image_id = None
    try:
        for chunk in client.api.build(fileobj=_context(dockerfile), custom_context=True, tag=tag, rm=True,
                                      forcerm=True, buildargs={"BASE": base}, network_mode="host",
                                      nocache=nocache, labels=labels, decode=True):
            if "error" in chunk:
                raise BuildError(chunk["error"], [])
            line = chunk.get("stream", "").strip()
            if line.startswith("Step ") and not labels:
                progress(f"  {line}")
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
    except (BuildError, APIError) as exc:
        raise LabkitError(f"docker build failed: {exc}") from exc
    return image_id


def image_versions(client, tag: str) -> dict[str, str]:
    """``{"frr": ..., "strongswan": ...}`` from a labkit image's labels (empty for other images)."""
    labels = client.images.get(tag).labels or {}
    prefix = VERSION_LABEL.format("")
    return {k[len(prefix):]: v for k, v in labels.items() if k.startswith(prefix)}


def build(base: str | None = None, dockerfile: Path | None = None, rebuild: bool = False,
          progress: Callable[[str], None] = print, repo: str = NODE_REPO) -> list[str]:
    """Build the node image as ``repo``; return its tags (versioned first, then ``latest``)."""
    from .runtime.engine import connect

    dockerfile = Path(dockerfile or REPO_DOCKERFILE)
    if not dockerfile.is_file():
        raise PrerequisiteError(f"no Dockerfile at {dockerfile}: run from a labkit checkout or pass --dockerfile")
    client = connect(timeout=1800)
    base = base or build_base(client, progress, rebuild)
    progress(f"{repo}: docker build {dockerfile} FROM {base} (apt-get install; a minute or two) ...")
    t0 = time.monotonic()
    staging = f"{repo}:building"
    _run_build(client, dockerfile, staging, base, rebuild, progress)
    found = versions(client, staging)
    if "frr" not in found or "strongswan" not in found:
        raise LabkitError(f"the built image lacks FRR or strongSwan (found {json.dumps(found)})")
    # the versions also become labels (they travel with the image, e.g. into the VM sandbox);
    # this second build hits the cache for every step and only adds the labels
    labels = {VERSION_LABEL.format(pkg): ver for pkg, ver in found.items()}
    image_id = _run_build(client, dockerfile, staging, base, False, progress, labels)
    image = client.images.get(image_id or staging)
    tags = [f"{repo}:frr{found['frr']}-swan{found['strongswan']}", f"{repo}:latest"]
    for t in tags:
        repo, tag = t.split(":")
        image.tag(repo, tag)
    client.images.remove(staging, noprune=True)
    size = client.images.get(tags[0]).attrs.get("Size", 0) / 2**20
    progress(f"{repo}: {', '.join(tags)} ({size:.0f} MiB) built in {time.monotonic() - t0:.0f}s")
    return tags
