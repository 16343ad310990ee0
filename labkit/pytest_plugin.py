"""The labkit pytest plugin (entry point ``pytest11: labkit``).

* Chooses where labs run: natively when this kernel has what the collected topologies need,
  otherwise the whole pytest session is re-run inside the VM sandbox (one boot per session),
  whose output and exit code become this run's. The choice and its reason are always printed.
* Fixtures: ``lab`` (module scope, from ``topology.yaml`` beside the test module),
  ``lab_node`` and ``lab_host`` factories, and ``wait_until``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

from . import wait as _wait
from .errors import LabkitError, TopologyError
from .lab import Lab
from .pytest_capture import REPORTS_KEY, artifacts_root, capture  # noqa: F401 - capture is a fixture
from .load import load
from .runtime import runtime_from_env, runtime_list
from .runtime.engine import DEFAULT_IMAGE
from .sandbox import dockerd, vm

_DECISION_KEY = pytest.StashKey[str]()
_FAILED_KEY = pytest.StashKey[set]()
_HOST_KEY = pytest.StashKey[dict]()


def _runtime_arg(value: str) -> list[str]:
    import argparse

    try:
        return runtime_list(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_options(add) -> None:
    """Options shared by pytest (``parser.addoption``) and the CLI (``argparse``)."""
    add("--sandbox", choices=("auto", "on", "off"), default=None,
        help="run labs in the VM sandbox: auto (when this kernel lacks a needed feature), on, off. "
             "Default: $LABKIT_SANDBOX or auto.")
    add("--runtime", dest="labkit_runtime", type=_runtime_arg, default=None, metavar="RUNTIME[,RUNTIME]",
        help="node runtime: netns (namespaces of this kernel) or docker (containers); 'netns,docker' runs every "
             "lab test on both (one sandbox boot). Default: $LABKIT_RUNTIME or netns")
    add("--image", dest="labkit_image", default=None,
        help=f"docker runtime: the node image (default {DEFAULT_IMAGE}; a node's 'image' wins). Never pulled.")
    add("--keep-lab", action="store_true", default=False, help="do not tear labs down (debugging; native mode only)")
    add("--lab-artifacts", default=None, metavar="DIR",
        help="copy daemon logs of labs with failed tests here (default: .labkit-artifacts in the rootdir)")
    add("--keep-pcaps", action="store_true", default=False,
        help="keep the pcaps of the capture fixture after a passing test too (always kept on failure)")
    add("--keep-logs", action="store_true", default=False,
        help="copy the daemon logs of every lab to --lab-artifacts, not only of labs with failed tests")
    add("--converge-timeout", type=float, default=300.0, help="seconds a lab may take to converge (default 300)")
    add("--check-host", action="store_true", default=None,
        help="snapshot the host's own network (links, addresses, routes, rules, xfrm, firewall, net sysctls) "
             "before the session and fail it if anything changed (default: on when $CI is set)")
    add("--forbid-skips", action="store_true", default=None,
        help="fail the session if any lab test is skipped (default: on when $CI is set)")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("labkit", "labkit network labs")
    add_options(group.addoption)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "topology(path): the topology a module's `lab` fixture builds")
    config.addinivalue_line("markers", "runtimes(*names, reason=''): the runtimes a lab module supports; "
                                       "its tests on other requested runtimes are deselected, never skipped")
    config.stash[_FAILED_KEY] = set()
    if vm.inside() and "docker" in _runtimes(config):
        dockerd.start_guest_engine_early()  # a minute under TCG: overlap it with the first labs


def _topologies(args: list[str], rootdir: Path) -> list[Path]:
    """Topology files under the paths pytest was given (or the rootdir)."""
    found = []
    paths = [Path(a.split("::")[0]) for a in args] or [rootdir]
    for p in paths:
        p = p if p.is_absolute() else rootdir / p
        if p.is_dir():
            found += sorted(p.rglob("topology.yaml"))
        elif p.is_file() and (p.parent / "topology.yaml").exists():
            found.append(p.parent / "topology.yaml")
    return sorted(set(found))


def _runtimes(config: pytest.Config) -> list[str]:
    return config.getoption("labkit_runtime") or runtime_list(runtime_from_env())


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """With several runtimes, every test of a lab runs once per runtime (``test_x[docker]``)."""
    runtimes = _runtimes(metafunc.config)
    pinned = _cell_runtime(Path(str(metafunc.definition.path)).parent)
    if pinned and "labkit_runtime" in metafunc.fixturenames:  # a `labkit matrix` cell runs on its runtime only
        metafunc.parametrize("labkit_runtime", [pinned], indirect=True, scope="module")
    elif len(runtimes) > 1 and "labkit_runtime" in metafunc.fixturenames:
        metafunc.parametrize("labkit_runtime", runtimes, indirect=True, scope="module")


def _cell_runtime(directory: Path) -> str | None:
    """The runtime a ``labkit matrix`` cell pins in the ``cell.json`` beside its tests (None elsewhere)."""
    try:
        return json.loads((directory / "cell.json").read_text()).get("runtime")
    except (OSError, ValueError, AttributeError):
        return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect (never skip) lab tests of a runtime their module does not support.

    A module declares ``pytestmark = pytest.mark.runtimes("netns")`` when its lab is limited
    to some runtimes; the session says what it left out and why.
    """
    keep, dropped = [], {}
    for item in items:
        marker = item.get_closest_marker("runtimes")
        callspec = getattr(item, "callspec", None)
        runtime = callspec.params.get("labkit_runtime") if callspec else None
        if "labkit_runtime" in getattr(item, "fixturenames", ()) and runtime is None:
            runtime = _runtimes(config)[0]
        if marker and runtime and runtime not in marker.args:
            key = (item.module.__name__ if getattr(item, "module", None) else item.nodeid, runtime)
            dropped.setdefault(key, [marker.kwargs.get("reason", ""), 0])[1] += 1
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        for (module, runtime), (reason, n) in dropped.items():
            line = f"labkit: {n} test(s) of {module} not run on {runtime}: the module supports other runtimes only"
            line += f" ({reason})" if reason else ""
            if reporter:
                reporter.ensure_newline()
                reporter.write_line(line)


@pytest.fixture(scope="module")
def labkit_runtime(request: pytest.FixtureRequest) -> str:
    """Name: labkit_runtime. Scope: module. The runtime this module's ``lab`` runs on (``--runtime``)."""
    return getattr(request, "param", None) or _runtimes(request.config)[0]


def _loaded(files: list[Path]) -> list:
    out = []
    for f in files:
        try:
            out.append(load(f))
        except TopologyError:
            continue  # reported by the lab fixture of that module
    return out


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config):
    """Re-run the whole session inside the VM sandbox when this kernel cannot host the labs."""
    if config.option.help or config.option.collectonly and not vm.inside():
        return None
    mode = config.getoption("sandbox") or vm.mode_from_env()
    # config.args: the paths pytest will collect (testpaths or the invocation dir when none given)
    files = _topologies(list(config.args), Path(str(config.invocation_params.dir)))
    if not files:
        return None
    topologies = _loaded(files)
    needed = list(dict.fromkeys(feat for topo in topologies for feat in topo.required_kernel_features()))
    tw = sys.stdout
    say = lambda m: (tw.write(f"labkit: {m}\n"), tw.flush())  # noqa: E731
    try:
        runtimes = _runtimes(config)
        decision = vm.decide(needed, mode)
        config.stash[_DECISION_KEY] = f"{decision}; runtime {','.join(runtimes)}"
        if not decision.use:
            return None
        say(f"mode: {decision}; runtime {','.join(runtimes)}")
        extra_env = dockerd.guest_env(runtimes, topologies, config.getoption("labkit_image"), say)
    except LabkitError as exc:
        sys.stderr.write(f"labkit: error: {exc}\n")
        return pytest.ExitCode.USAGE_ERROR
    argv = [sys.executable, "-m", "pytest", *config.invocation_params.args]
    # The outcome must not depend on the VM console alone (it has dropped output on a slow
    # host): the inner session also writes JUnit XML into the shared directory.
    tmp = Path(tempfile.mkdtemp(prefix=f".labkit-run-{os.getpid()}-", dir=str(config.invocation_params.dir)))
    given = config.getoption("xmlpath", None)  # the caller's own --junitxml carries the summary then
    junit = Path(str(config.invocation_params.dir), given) if given else tmp / "junit.xml"
    if not given:
        argv.append(f"--junitxml={junit}")
    try:
        rc = vm.run(argv, cwd=str(config.invocation_params.dir), progress=say, extra_env=extra_env,
                    remove_if_killed=[str(tmp)])
        tw.write(_junit_summary(junit, rc) + "\n")
        tw.flush()
        return rc
    except LabkitError as exc:
        sys.stderr.write(f"labkit: error: {exc}\n")
        return pytest.ExitCode.USAGE_ERROR
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _junit_summary(path: Path, rc: int) -> str:
    """The inner session's totals as a closing line, read from its JUnit XML."""
    import xml.etree.ElementTree as ET

    try:
        suites = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return f"labkit: the sandboxed session wrote no results (exit code {rc})"
    suites = [suites] if suites.tag == "testsuite" else list(suites)
    total = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    passed = total["tests"] - total["failures"] - total["errors"] - total["skipped"]
    # the plain closing line CI runners read: "N passed, N failed, N skipped", alone on its line
    return f"sandbox: {passed} passed, {total['failures'] + total['errors']} failed, {total['skipped']} skipped"


def pytest_report_header(config: pytest.Config) -> list[str]:
    decision = config.stash.get(_DECISION_KEY, None)
    where = "inside the VM sandbox" if vm.inside() else (decision or "no topology collected")
    return [f"labkit: mode: {where}"]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    report = yield
    item.stash.setdefault(REPORTS_KEY, {})[report.when] = report  # the capture fixture keeps pcaps of failures
    if report.failed:
        item.config.stash[_FAILED_KEY].add(item.module.__name__ if hasattr(item, "module") and item.module else "")
    return report


_SKIPS: list[str] = []  # node ids of skipped tests in this process
_LIVE_LABS: list[Lab] = []  # labs brought up by the lab fixture and not yet torn down


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and report.when in ("setup", "call"):
        _SKIPS.append(report.nodeid)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Leftovers of crashed runs (labs and sandbox VMs whose owner died) go before any lab starts."""
    if hasattr(session.config, "workerinput"):  # an xdist worker: its controller did it
        return
    from . import state

    try:
        removed = state.cleanup()
    except LabkitError as exc:
        sys.stderr.write(f"labkit: warning: could not remove leftovers of crashed runs: {exc}\n")
        return
    vms = [] if vm.inside() else vm.kill_orphaned_vms()
    if removed or vms:
        sys.stderr.write(f"labkit: removed leftovers of crashed runs: {len(removed)} lab(s) {' '.join(removed)}, "
                         f"{len(vms)} sandbox VM process(es)\n")
    if _checks_host(session.config):
        from . import hoststate

        session.config.stash[_HOST_KEY] = hoststate.snapshot()


def _checks_host(config: pytest.Config) -> bool:
    check = config.getoption("check_host")
    return (bool(os.environ.get("CI")) if check is None else check) and not config.getoption("keep_lab")


def _compare_host(session: pytest.Session) -> None:
    before = session.config.stash.get(_HOST_KEY, None)
    if before is None:
        return
    from . import hoststate

    changes = hoststate.diff(before, hoststate.snapshot())
    if changes:
        sys.stderr.write(f"labkit: the host's own network changed during the session ({len(changes)} change(s)):\n")
        for line in changes:
            sys.stderr.write(f"  {line}\n")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A lab test that skipped is a test that did not run: with --forbid-skips (CI) that fails the run."""
    forbid = session.config.getoption("forbid_skips")
    if forbid is None:
        forbid = bool(os.environ.get("CI"))
    if not session.config.getoption("keep_lab"):
        from . import state

        # Ctrl-C skips fixture teardown: labs still up are taken down here, properly
        for the_lab in list(_LIVE_LABS):
            sys.stderr.write(f"labkit: session interrupted; tearing down lab {the_lab.id}\n")
            try:
                the_lab.down()
            except LabkitError as exc:
                sys.stderr.write(f"labkit: {exc}\n")
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
            _LIVE_LABS.remove(the_lab)

        leftovers = {lid for lid, info in state.scan().items() if info["mine"]}
        if leftovers:  # teardown must leave nothing: report it and clean up anyway
            sys.stderr.write(f"labkit: residue after the session: labs {', '.join(sorted(leftovers))} were still "
                             "running; removing them\n")
            state.cleanup(lab_ids=leftovers)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        _compare_host(session)
    lab_skips = [n for n in _SKIPS if "topologies/" in n]
    if forbid and lab_skips:
        sys.stderr.write(f"labkit: {len(lab_skips)} lab test(s) skipped; skips are failures here (--forbid-skips / CI):\n")
        for nodeid in lab_skips:
            sys.stderr.write(f"  {nodeid}\n")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _topology_for(request: pytest.FixtureRequest) -> Path:
    marker = request.node.get_closest_marker("topology")
    base = Path(str(request.node.path)).parent
    if marker:
        return (base / marker.args[0]).resolve()
    if hasattr(request, "param"):
        return (base / request.param).resolve()
    here = base / "topology.yaml"
    if not here.exists():
        raise LabkitError(f"no topology.yaml beside {request.node.path}: add one, or mark the module with "
                          "pytestmark = pytest.mark.topology('path/to/topology.yaml')")
    return here


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest, labkit_runtime: str):
    """Name: lab. Scope: module. Depends: the topology.yaml beside the test module.

    A running :class:`labkit.lab.Lab`, converged, shared by the module's tests and torn down
    after them (kept with ``--keep-lab``). Daemon logs of a module with failures are copied to
    ``--lab-artifacts``.
    """
    config = request.config
    topo = _topology_for(request)
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    capman = config.pluginmanager.get_plugin("capturemanager")

    def progress(msg: str) -> None:
        """Long steps report progress past pytest's output capture (with -v)."""
        if reporter is None or config.getoption("verbose") <= 0:
            return
        with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
            reporter.write_line(f"labkit: {msg}")

    keep = config.getoption("keep_lab") and not vm.inside()
    the_lab = Lab.from_path(topo, converge_timeout=config.getoption("converge_timeout"), progress=progress,
                            runtime=labkit_runtime, image=config.getoption("labkit_image"), detach=keep)
    the_lab.on_failed_up = lambda failed: _save_artifacts(failed, config)  # the logs say why
    the_lab.up()
    _LIVE_LABS.append(the_lab)
    try:
        yield the_lab
    finally:
        if request.module.__name__ in config.stash[_FAILED_KEY] or config.getoption("keep_logs"):
            _save_artifacts(the_lab, config)
        if not keep:
            the_lab.down()
            _LIVE_LABS.remove(the_lab)
        else:  # recorded like `labkit up`: `labkit status`/`exec` reach it, cleanup leaves it alone
            from . import state

            state.save(state.LabRecord(the_lab.id, str(topo), the_lab.runtime.name, the_lab.runtime.pids,
                                       os.getpid(), time.time()))
            sys.stderr.write(f"labkit: keeping lab {the_lab.id} (--keep-lab); remove it with 'labkit down {the_lab.id}'\n")


def _save_artifacts(the_lab: Lab, config: pytest.Config) -> None:
    dest = artifacts_root(config) / the_lab.topology.name
    dest.mkdir(parents=True, exist_ok=True)
    secret = the_lab.plan.psk if the_lab.plan else None
    for name in the_lab.topology.nodes:
        if name not in the_lab.runtime.pids:  # a bring-up that failed before creating it
            continue
        src = Path(the_lab.runtime.node_path(name, "/run/labkit"))
        if src.exists():
            shutil.copytree(src, dest / name, dirs_exist_ok=True)
    if secret:  # artifacts outlive the lab (CI uploads them): the IPsec key does not go with them
        for f in dest.rglob("*"):
            if f.is_file() and secret in (text := f.read_text(errors="replace")):
                f.write_text(text.replace(secret, "<psk redacted>"))
    sys.stderr.write(f"labkit: logs of {the_lab.topology.name} saved in {dest}\n")


@pytest.fixture(scope="module")
def lab_node(lab: Lab):
    """Name: lab_node. Scope: module. Depends: lab. ``lab_node("spoke1")`` → :class:`NodeHandle`."""
    return lab.node


@pytest.fixture(scope="module")
def lab_host(lab: Lab):
    """Name: lab_host. Scope: module. Depends: lab. ``lab_host("h1")`` → a testinfra ``Host``."""
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            cache[name] = lab.node(name).host()
        return cache[name]

    return get


@pytest.fixture
def wait_until():
    """Name: wait_until. Scope: function. ``wait_until(predicate, timeout, desc)``: bounded polling."""
    return _wait.wait_until
