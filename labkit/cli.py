"""The ``labkit`` command: validate, run, up, status, exec, capture, down, cleanup, report, image, ..."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

from . import __version__, capture_cli, state
from . import graph
from .matrix import cli as matrix_cli
from .exercise import cli as exercise_cli
from .errors import LabkitError, TopologyError
from .lab import Lab, stderr_progress
from .load import load
from .runtime import ns
from .runtime.netns import BASE_ENV, NetnsRuntime
from .runtime import RUNTIMES, runtime_from_env
from .runtime.engine import DEFAULT_IMAGE, connect
from .sandbox import dockerd, vm


def _decide(args, topo_path: str) -> vm.Decision:
    mode = args.sandbox or vm.mode_from_env()
    decision = vm.decide(load(topo_path).required_kernel_features(), mode)
    stderr_progress(f"mode: {decision}")
    return decision


def cmd_validate(args) -> int:
    rc = 0
    for path in args.files:
        try:
            topo = load(path)
        except TopologyError as exc:
            print(exc, file=sys.stderr)
            rc = 1
            continue
        extra = f", dmvpn over {topo.dmvpn.underlay}" if topo.dmvpn else ""
        print(f"{topo.source}: ok ({len(topo.nodes)} nodes, {len(topo.links)} links, {len(topo.segments)} segments{extra})")
    return rc


def _runtime(args) -> str:
    return args.runtime or runtime_from_env()


def _in_sandbox(args, argv_tail: list[str], remove_if_killed: list[str] = ()) -> int:
    """Re-run this very command inside the VM sandbox; its console goes to our stderr."""
    runtime = _runtime(args)
    extra_env = dockerd.guest_env([runtime], [load(args.dir)], args.image, stderr_progress)
    argv = [sys.executable, "-m", "labkit.cli", *argv_tail, "--runtime", runtime]
    if args.image:
        argv += ["--image", args.image]
    return vm.run(argv, cwd=os.getcwd(), progress=stderr_progress, console=sys.stderr.buffer, extra_env=extra_env,
                  remove_if_killed=list(remove_if_killed))


def cmd_run(args) -> int:
    from . import checks, report

    if _decide(args, args.dir).use:
        # The result does not travel through the VM console: the guest writes the report into
        # the shared working directory and this process prints it.
        tmp = tempfile.mkdtemp(prefix=f".labkit-run-{os.getpid()}-", dir=os.getcwd())
        report_file = os.path.join(tmp, "report")
        try:
            rc = _in_sandbox(args, ["run", args.dir, "--sandbox", "off", "--report-file", report_file]
                             + (["--json"] if args.json else []), remove_if_killed=[tmp])
            if not os.path.exists(report_file):
                raise LabkitError(f"the sandboxed run ended (exit code {rc}) without a report; its output is above")
            with open(report_file) as f:
                print(f.read(), end="")
            return rc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.monotonic()
    lab = Lab.from_path(args.dir, progress=stderr_progress, converge_timeout=args.converge_timeout,
                        runtime=_runtime(args), image=args.image)
    with lab:
        stderr_progress(f"[{lab.topology.name}] asserting ...")
        results = checks.run_suite(checks.dmvpn_suite(lab)) if lab.topology.dmvpn else []
        text = report.render(lab, results, time.monotonic() - t0, as_json=args.json)
    if args.report_file:
        with open(args.report_file, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0 if all(r.ok for r in results) else 1


def cmd_up(args) -> int:
    decision = _decide(args, args.dir)
    if decision.use:
        raise LabkitError(
            f"'labkit up' keeps a lab running after it returns, which needs the host kernel, but {decision.reason}. "
            f"Use 'labkit run {args.dir}' (up, assert, report and down in one VM boot), or run on a Linux host "
            "with GRE, ESP and NFLOG (any stock Debian/Ubuntu kernel)")
    lab = Lab.from_path(args.dir, detach=True, progress=stderr_progress, converge_timeout=args.converge_timeout,
                        runtime=_runtime(args), image=args.image)
    # recorded before anything exists: if this process dies half-way, cleanup knows the lab is an orphan
    rec = state.LabRecord(lab.id, str(lab.topology.source.resolve()), _runtime(args), {}, os.getpid(), time.time(),
                          status="starting")
    state.save(rec)
    try:
        lab.up()
    except BaseException:
        state.forget(lab.id)  # up() has torn the partial lab down
        raise
    rec.pids, rec.status = lab.runtime.pids, "up"
    state.save(rec)
    print(f"lab {lab.id} is up: {lab.topology.name} ({', '.join(lab.topology.nodes)})")
    print(f"  labkit exec {next(iter(lab.topology.nodes))} -- ip -br addr   |   labkit status   |   labkit down {lab.id}")
    return 0


def _pick(lab_id: str | None) -> state.LabRecord:
    recs = [r for r in state.records() if r.alive()]
    if lab_id:
        recs = [r for r in recs if r.id == lab_id]
    if not recs:
        raise LabkitError(f"no running lab{' ' + lab_id if lab_id else ''}: start one with 'labkit up DIR'")
    if len(recs) > 1:
        raise LabkitError(f"{len(recs)} labs are running ({', '.join(r.id for r in recs)}): name one with --lab")
    return recs[0]


def cmd_status(args) -> int:
    recs = state.records()
    stray = {lid: info for lid, info in state.scan().items() if lid not in {r.id for r in recs}}
    if not recs and not stray:
        print("no labs")
        return 0
    for rec in recs:
        alive = rec.alive()
        how = "up  " if alive else "starting" if rec.status == "starting" and rec.protected() else "GONE"
        print(f"{rec.id}  {how}  {rec.topology}  ({rec.runtime}, {len(rec.pids)} namespaces)")
        if alive and not args.brief:
            lab = Lab(load(rec.topology), lab_id=rec.id)
            lab.runtime = _attach(rec)
            for name, node in lab.nodes.items():
                line = f"    {name:<10} {node.spec.role:<7}"
                if node.spec.in_dmvpn:
                    try:
                        cache = node.nhrp_cache()
                        line += f" nhrp: {sum(e.type != 'local' for e in cache)} entries"
                        line += f", ike: {sum(s.state == 'ESTABLISHED' for s in node.ike_sas())} established"
                    except LabkitError as exc:
                        line += f" ({exc})"
                print(line)
    for lid, info in stray.items():
        what = "containers" if info["runtime"] == "docker" else "namespaces"
        print(f"{lid}  stray  owner pid {info['owner']} ({len(info['holders'])} {what}): 'labkit cleanup' removes it")
    return 0


def _attach(rec: state.LabRecord):
    """A runtime object for a recorded lab (probes only need its PIDs)."""
    if rec.runtime == "docker":
        from .runtime.docker import attach

        return attach(rec.id, rec.pids)
    return NetnsRuntime(rec.id, pids=rec.pids)


def cmd_exec(args) -> int:
    rec = _pick(args.lab)
    if args.node not in rec.pids:
        raise LabkitError(f"no node {args.node!r} in lab {rec.id}; nodes: {', '.join(n for n in rec.pids if not n.startswith('@'))}")
    if not args.command:
        raise LabkitError("nothing to run: labkit exec NODE -- COMMAND [ARGS...]")
    if rec.runtime == "docker":  # docker exec keeps the command inside the container (its pid ns and cgroup)
        from .runtime.docker import container_name

        docker = shutil.which("docker")
        if not docker:
            raise LabkitError("labkit exec on a docker lab needs the docker CLI: apt-get install docker.io")
        tty = ["-t"] if sys.stdin.isatty() and sys.stdout.isatty() else []
        return subprocess.run([docker, "exec", "-i", *tty, container_name(rec.id, args.node), *args.command]).returncode
    env = {**BASE_ENV, "LABKIT_LAB": rec.id, "LABKIT_NODE": args.node, "TERM": os.environ.get("TERM", "dumb")}
    try:
        return subprocess.run(args.command, preexec_fn=ns.enter(rec.pids[args.node]), env=env).returncode
    except FileNotFoundError:
        print(f"labkit: {args.command[0]}: command not found on {args.node}", file=sys.stderr)
        return 127


def cmd_down(args) -> int:
    if args.all:
        removed = state.cleanup(all_labs=True)
    else:
        rec = _pick(args.lab_id)
        removed = state.cleanup(lab_id=rec.id)
    print(f"removed {len(removed)} lab(s){': ' + ', '.join(removed) if removed else ''}")
    return 0


def cmd_cleanup(args) -> int:
    removed = state.cleanup(all_labs=args.all)
    print(f"removed {len(removed)} leftover lab(s){': ' + ', '.join(removed) if removed else ''}")
    vms = vm.kill_orphaned_vms()
    if vms:
        print(f"killed {len(vms)} orphaned sandbox VM process(es): {', '.join(map(str, vms))}")
    tmp = state.remove_stale_temp_dirs()
    if tmp:
        print(f"removed {len(tmp)} temp dir(s) of dead labkit processes: {', '.join(tmp)}")
    return 0


def cmd_report(args) -> int:
    """``labkit report encapsulation``: the catalogue's header stacks and overheads, as a table and files."""
    from pathlib import Path

    from . import catalogue

    out = Path(args.out)
    if args.from_file:
        rows = catalogue.load_rows(args.from_file)
    else:
        dirs = catalogue.catalogue_dirs(args.topologies)
        if not dirs:
            raise LabkitError(f"no catalogue topology under {args.topologies}: pass --topologies DIR")
        mode = args.sandbox or vm.mode_from_env()
        needed = list(dict.fromkeys(f for d in dirs for f in load(d).required_kernel_features()))
        decision = vm.decide(needed, mode)
        stderr_progress(f"mode: {decision}")
        record = Path(tempfile.mkdtemp(prefix=f".labkit-run-{os.getpid()}-", dir=os.getcwd()))
        try:
            if decision.use:  # one VM boot for the whole catalogue; rows come back through the shared cwd
                argv = [sys.executable, "-m", "labkit.cli", "report", "encapsulation", "--sandbox", "off",
                        "--topologies", str(Path(args.topologies).resolve()), "--record", str(record),
                        "--converge-timeout", str(args.converge_timeout)]
                rc = vm.run(argv, cwd=os.getcwd(), progress=stderr_progress, console=sys.stderr.buffer,
                            remove_if_killed=[str(record)])
                if rc != 0:
                    raise LabkitError(f"the sandboxed catalogue run failed (exit code {rc}); its output is above")
            else:
                catalogue.run_catalogue(dirs, Path(args.record or record), stderr_progress,
                                        converge_timeout=args.converge_timeout, runtime=_runtime(args))
                if args.record:
                    return 0
            rows = catalogue.load_rows(record / catalogue.RECORD)
        finally:
            shutil.rmtree(record, ignore_errors=True)
    if not rows:
        raise LabkitError("no rows to report")
    print(catalogue.render(rows, "json" if args.json else "text"), flush=True)
    for path in catalogue.write_reports(rows, out):
        stderr_progress(f"wrote {path}")
    return 0


def cmd_image(args) -> int:
    from . import image

    if args.image_command == "build":
        image.build(base=args.base, dockerfile=args.dockerfile, rebuild=args.rebuild, progress=stderr_progress,
                    repo=args.repo)
        return 0
    client = connect()
    for img in client.images.list(filters={"label": "io.labkit.image"}):
        vers = image.image_versions(client, img.id)
        print(f"{img.short_id}  {', '.join(img.tags) or '<untagged>'}  {img.attrs.get('Size', 0) / 2**20:.0f} MiB  "
              + " ".join(f"{k} {v}" for k, v in sorted(vers.items())))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="labkit", description="DMVPN network labs from a topology YAML.")
    p.add_argument("--version", action="version", version=f"labkit {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def with_lab_opts(sp):
        sp.add_argument("--sandbox", choices=("auto", "on", "off"), default=None,
                        help="VM sandbox: auto (default, when this kernel lacks a feature), on, off; or $LABKIT_SANDBOX")
        sp.add_argument("--converge-timeout", type=float, default=300.0, help="seconds to wait for convergence")
        sp.add_argument("--runtime", choices=RUNTIMES, default=None,
                        help="node runtime: netns (namespaces, default) or docker (containers); or $LABKIT_RUNTIME")
        sp.add_argument("--image", default=None, help=f"docker runtime: node image (default {DEFAULT_IMAGE})")
        return sp

    sp = sub.add_parser("validate", help="check topology files; print every problem with file:line")
    sp.add_argument("files", nargs="+")
    sp.set_defaults(func=cmd_validate)
    sp = with_lab_opts(sub.add_parser("run", help="bring a lab up, assert it, print the report, tear it down"))
    sp.add_argument("dir")
    sp.add_argument("--json", action="store_true", help="print the report as JSON")
    sp.add_argument("--report-file", default=None, help="write the report to this file instead of stdout")
    sp.set_defaults(func=cmd_run)
    sp = with_lab_opts(sub.add_parser("up", help="bring a lab up and leave it running"))
    sp.add_argument("dir")
    sp.set_defaults(func=cmd_up)
    sp = sub.add_parser("status", help="list running labs and their NHRP/IPsec state")
    sp.add_argument("--brief", action="store_true")
    sp.set_defaults(func=cmd_status)
    sp = sub.add_parser("exec", help="run a command in a node: labkit exec NODE -- CMD ...")
    sp.add_argument("--lab", default=None, help="lab id (needed when several labs run)")
    sp.add_argument("node")
    sp.add_argument("command", nargs=argparse.REMAINDER)
    sp.set_defaults(func=cmd_exec)
    sp = sub.add_parser("down", help="tear a lab down")
    sp.add_argument("lab_id", nargs="?")
    sp.add_argument("--all", action="store_true")
    sp.set_defaults(func=cmd_down)
    sp = sub.add_parser("cleanup", help="remove leftovers of crashed runs (labs whose owner died)")
    sp.add_argument("--all", action="store_true", help="remove every labkit lab, running or not")
    sp.set_defaults(func=cmd_cleanup)
    sp = with_lab_opts(sub.add_parser("report", help="reports: 'encapsulation' runs the tunnel catalogue and "
                                      "tabulates header stacks and overheads"))
    sp.add_argument("what", choices=("encapsulation",))
    sp.add_argument("--from", dest="from_file", default=None, metavar="JSONL",
                    help="render rows recorded by the catalogue's tests (.labkit-artifacts/encapsulation.jsonl) "
                         "instead of running the labs")
    sp.add_argument("--topologies", default="topologies", help="where the catalogue's topologies are (default ./topologies)")
    sp.add_argument("--out", default=".labkit-artifacts", help="where encapsulation.md and .json go")
    sp.add_argument("--json", action="store_true", help="print JSON instead of the table")
    sp.add_argument("--record", default=None, help=argparse.SUPPRESS)  # the sandboxed half writes its rows here
    sp.set_defaults(func=cmd_report)
    sp = sub.add_parser("image", help="the docker runtime's node image: build, list")
    isub = sp.add_subparsers(dest="image_command", required=True)
    ib = isub.add_parser("build", help="build labkit/node from the top-level Dockerfile (no registry needed)")
    ib.add_argument("--base", default=None, help="an ordinary base image (where a registry is reachable) "
                    "instead of the debootstrap base, e.g. debian:bookworm-slim")
    ib.add_argument("--dockerfile", default=None, help="the Dockerfile (default: the checkout's top-level one)")
    ib.add_argument("--rebuild", action="store_true", help="rebuild the base and every layer")
    ib.add_argument("--repo", default="labkit/node", help="image name for a variant (default labkit/node)")
    isub.add_parser("list", help="labkit node images and the versions they record")
    sp.set_defaults(func=cmd_image)
    capture_cli.add_parser(sub)
    graph.add_parser(sub)
    matrix_cli.add_parser(sub)
    exercise_cli.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "command", None) and isinstance(args.command, list) and args.command[:1] == ["--"]:
        args.command = args.command[1:]
    try:
        return args.func(args)
    except TopologyError as exc:
        print(exc, file=sys.stderr)
        return 1
    except LabkitError as exc:
        print(f"labkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("labkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
