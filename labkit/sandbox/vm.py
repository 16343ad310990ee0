"""The VM sandbox: run a command inside a throwaway VM with the distribution's kernel.

virtme-ng boots this host's own root filesystem (read-only, with writable overlays) under the
kernel from ``/boot``, loads the modules a lab needs, runs the command and powers off. Output
streams back, and the command's exit code becomes ours, so a sandboxed run reads like a local
one. Directories passed as ``rwdirs`` (the working directory by default) are shared read-write.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import PrerequisiteError

GUEST_MODULES = ("ip_gre", "esp4", "xfrm_user", "xfrm_algo", "veth", "bridge", "nfnetlink_log",
                 "xt_NFLOG", "xt_hashlimit", "nf_nat", "xt_MASQUERADE", "nf_conntrack",
                 "ipip", "xfrm_interface", "l2tp_netlink", "l2tp_eth", "crypto_null")
PASS_ENV = ("PYTEST_ADDOPTS", "CI", "TERM", "COLUMNS", "LINES", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE",
            "NO_COLOR", "FORCE_COLOR", "PY_COLORS")
ENV_MODE = "LABKIT_SANDBOX"  # auto | on | off
ENV_INSIDE = "LABKIT_IN_SANDBOX"
ENV_ACCEL = "LABKIT_SANDBOX_ACCEL"  # auto | kvm | tcg
KVM_PROBE_TIMEOUT = 20.0
VM_TMP_PREFIX = "labkit-vm-"  # + owner pid + "-": lets cleanup find VMs whose owner died


@dataclass(frozen=True)
class Decision:
    """Whether to use the sandbox, why, and (if so) with which accelerator."""

    use: bool
    reason: str

    def __str__(self) -> str:
        if inside():
            return f"inside the VM sandbox (kernel {os.uname().release})"
        return f"{'VM sandbox' if self.use else 'native (host kernel)'}: {self.reason}"


def inside() -> bool:
    return os.environ.get(ENV_INSIDE) == "1"


def mode_from_env(default: str = "auto") -> str:
    mode = os.environ.get(ENV_MODE, default).lower()
    if mode not in ("auto", "on", "off"):
        raise PrerequisiteError(f"{ENV_MODE}={mode!r} is not valid; use auto, on or off")
    return mode


def decide(needed: list[str], mode: str = "auto") -> Decision:
    """Choose native or sandbox for a run that needs kernel ``needed`` features."""
    if inside():
        return Decision(False, "already inside the VM sandbox")
    if mode == "on":
        return Decision(True, "forced on (--sandbox=on / LABKIT_SANDBOX=on)")
    from .probe import probe_kernel

    lacking = probe_kernel(needed).lacks(needed)
    if mode == "off":
        if lacking:
            detail = "; ".join(f"{f}: {why}" for f, why in lacking.items())
            raise PrerequisiteError(
                f"the sandbox is forced off but this kernel lacks {', '.join(lacking)} ({detail}). "
                "Run on a host whose kernel has them, or use --sandbox=auto")
        return Decision(False, "forced off (--sandbox=off / LABKIT_SANDBOX=off)")
    if lacking:
        return Decision(True, f"host kernel lacks {', '.join(sorted(lacking))}")
    return Decision(False, f"host kernel has {', '.join(needed)}")


def find_kernel() -> tuple[Path, str]:
    """The newest ``/boot/vmlinuz-*`` whose modules are installed."""
    candidates = []
    for image in Path("/boot").glob("vmlinuz-*"):
        release = image.name[len("vmlinuz-"):]
        if Path("/lib/modules", release, "modules.dep").exists():
            candidates.append((tuple(int(x) for x in re.findall(r"\d+", release)), image, release))
    if not candidates:
        raise PrerequisiteError("no kernel with modules in /boot for the VM sandbox: "
                                "apt-get install linux-image-amd64")
    _, image, release = max(candidates)
    return image, release


def _require_tools() -> None:
    missing = [b for b in ("vng", "qemu-system-x86_64", "busybox") if not shutil.which(b)]
    if missing:
        fixes = {"vng": "pip install virtme-ng", "qemu-system-x86_64": "apt-get install qemu-system-x86",
                 "busybox": "apt-get install busybox-static"}
        raise PrerequisiteError("the VM sandbox needs " + ", ".join(missing) + ": "
                                + "; ".join(fixes[m] for m in missing))


def _cache_file() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "labkit" / "kvm-probe.json"


def kvm_works(kernel: Path, progress=lambda m: None) -> tuple[bool, str]:
    """Bounded probe: boot the sandbox once with KVM; a guest that does not finish in time means TCG.

    The answer is cached per host kernel, guest kernel and qemu binary.
    """
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is not usable"
    forced = os.environ.get(ENV_ACCEL, "auto").lower()
    if forced in ("kvm", "tcg"):
        return forced == "kvm", f"forced by {ENV_ACCEL}={forced}"
    qemu = shutil.which("qemu-system-x86_64") or ""
    key = hashlib.sha256(f"{os.uname().release}|{kernel}|{qemu}|{os.stat(qemu).st_mtime if qemu else 0}".encode()).hexdigest()[:16]
    cache = _cache_file()
    try:
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return cached["kvm"], cached["reason"] + " (cached probe)"
    except (OSError, ValueError, KeyError):
        pass
    progress(f"probing KVM (a guest must boot within {KVM_PROBE_TIMEOUT:g}s) ...")
    t0 = time.monotonic()
    argv = ["vng", "--run", str(kernel), "--cpus", "1", "--memory", "512M", "--exec", "true"]
    try:
        probe = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        watchdog = Watchdog(probe.pid)
        try:
            rc = probe.wait(timeout=KVM_PROBE_TIMEOUT)
        finally:
            watchdog.release()
        ok = rc == 0
        reason = f"KVM guest booted in {time.monotonic() - t0:.1f}s" if ok else f"KVM guest failed (rc={rc})"
    except subprocess.TimeoutExpired:
        _kill_group(probe)
        ok, reason = False, f"KVM guest did not finish within {KVM_PROBE_TIMEOUT:g}s"
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"key": key, "kvm": ok, "reason": reason}))
    except OSError:
        pass
    return ok, reason


class Terminated(SystemExit):
    """SIGTERM or SIGHUP arrived while a sandbox VM was running."""


def _terminate(signum, frame) -> None:
    raise Terminated(128 + signum)


def orphaned_vms() -> dict[int, str]:
    """Sandbox VM processes (vng, qemu) whose labkit owner is gone: ``{pid: temp dir}``.

    Their command lines carry the guest script's directory, named after the owner's pid.
    """
    found = {}
    pattern = re.compile(rf"/tmp/{VM_TMP_PREFIX}(\d+)-[^/\s]+")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        match = pattern.search(cmdline)
        if match and int(entry) != os.getpid() and not Path(f"/proc/{match.group(1)}").exists():
            found[int(entry)] = match.group(0)
    return found


def _session(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[3])  # field 6: session id
    except (OSError, ValueError, IndexError):
        return None


def kill_orphaned_vms() -> list[int]:
    """Kill sandbox VMs whose owner died (``labkit cleanup``) and remove their temp dirs.

    vng runs in a session of its own, so every process of a matched process's session goes
    too: qemu's command line carries the guest script only base64-encoded.
    """
    orphans = orphaned_vms()
    sessions = {sid for pid in orphans if (sid := _session(pid)) and sid != _session(os.getpid())}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in orphans and _session(int(entry)) in sessions:
            orphans[int(entry)] = ""
    for pid in orphans:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for tmp in set(orphans.values()) - {""}:
        shutil.rmtree(tmp, ignore_errors=True)
    return sorted(orphans)


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill vng and its qemu (they share the process group we started)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def guest_script(argv: list[str], cwd: str, env: dict[str, str]) -> str:
    """The shell script the guest runs: load modules, enter cwd, exec the command."""
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))
    return (
        "#!/bin/sh\n"
        "exec 2>&1\n"  # vng forwards only the guest stdout

        f"modprobe -a {' '.join(GUEST_MODULES)} || echo 'labkit: warning: some kernel modules did not load' >&2\n"
        f"cd {shlex.quote(cwd)} || exit 125\n"
        f"{exports}"
        f"exec {shlex.join(argv)}\n"
    )


# The watchdog blocks reading a pipe whose only writer is the VM's owner. "done" means the owner
# finished with the VM; end of file without it means the owner died (even by SIGKILL): the VM's
# process group is killed and its temp dirs removed.
_WATCHDOG = (
    "import os, shutil, signal, sys\n"
    "if sys.stdin.buffer.read() != b'done':\n"
    "    try:\n"
    "        os.killpg(int(sys.argv[1]), signal.SIGKILL)\n"
    "    except ProcessLookupError:\n"
    "        pass\n"
    "    for path in sys.argv[2:]:\n"
    "        shutil.rmtree(path, ignore_errors=True)\n"
)


class Watchdog:
    """Kills a VM (its process group) and removes ``paths`` if this process dies before :meth:`release`."""

    def __init__(self, pgid: int, paths: list[str] = ()):
        r, self._w = os.pipe()  # the write end is ours alone: non-inheritable, closed by exec
        try:
            self.proc = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(pgid), *paths], stdin=r,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        finally:
            os.close(r)

    def release(self) -> None:
        """The owner is done with the VM: the watchdog exits without touching anything."""
        try:
            os.write(self._w, b"done")
        finally:
            os.close(self._w)
        self.proc.wait()


def run(argv: list[str], cwd: str | None = None, rwdirs: list[str] | None = None, cpus: int | None = None,
        memory: str = "4G", progress=lambda m: None, console=None, extra_env: dict[str, str] | None = None,
        remove_if_killed: list[str] = ()) -> int:
    """Run ``argv`` inside the VM sandbox and return its exit code.

    The guest's output is copied to ``console`` (a binary stream; default: our stdout). If this
    process dies while the VM runs, even by SIGKILL, a watchdog kills the VM and removes its temp
    dir and ``remove_if_killed``.

    Raises:
        PrerequisiteError: when qemu, virtme-ng, busybox or a kernel image is missing.
    """
    _require_tools()
    kernel, release = find_kernel()
    use_kvm, why = kvm_works(kernel, progress)
    cwd = os.path.abspath(cwd or os.getcwd())
    cpus = cpus or os.cpu_count() or 1
    progress(f"VM sandbox: kernel {release}, {'KVM' if use_kvm else 'TCG (software emulation)'} ({why}), "
             f"{cpus} vCPU, {memory}")
    env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
    env.update({k: v for k, v in os.environ.items() if k.startswith("LABKIT_")})
    env.update(extra_env or {})
    env[ENV_INSIDE] = "1"
    env["PYTHONUNBUFFERED"] = "1"  # stream output through the VM console as it happens
    env["PATH"] = os.pathsep.join(dict.fromkeys([os.path.dirname(sys.executable)] + os.environ.get("PATH", "").split(os.pathsep)))
    with tempfile.TemporaryDirectory(prefix=f"{VM_TMP_PREFIX}{os.getpid()}-") as tmp:
        script = Path(tmp, "guest.sh")
        script.write_text(guest_script(argv, cwd, env))
        cmd = ["vng", "--run", str(kernel), "--cpus", str(cpus), "--memory", memory, "--cwd", cwd]
        if not use_kvm:
            cmd.append("--disable-kvm")
        for d in dict.fromkeys([cwd] + list(rwdirs or [])):
            cmd += ["--rwdir", d]
        cmd += ["--exec", f"sh {shlex.quote(str(script))}"]
        t0 = time.monotonic()
        previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGTERM, signal.SIGHUP)}
        # qemu reopens /proc/self/fd/1 with O_TRUNC: hand it a pipe and copy to our stdout,
        # so output redirected to a file is not clobbered.
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        watchdog = Watchdog(proc.pid, [tmp, *remove_if_killed])
        try:
            out = console or sys.stdout.buffer
            for chunk in iter(lambda: proc.stdout.read1(65536), b""):
                out.write(chunk)
                out.flush()
            rc = proc.wait()
        except BaseException:  # Ctrl-C, SIGTERM/SIGHUP or a crash of ours: never leave a VM behind
            _kill_group(proc)
            raise
        finally:
            watchdog.release()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    progress(f"VM sandbox: finished in {time.monotonic() - t0:.0f}s with exit code {rc}")
    return rc
