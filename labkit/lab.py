"""A lab: a topology brought up on a runtime, in phases, and torn down without leftovers."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from . import preflight, swanload
from .errors import LabError, PrerequisiteError, WaitTimeout
from .faults import Faults
from .expand.strongswan import VICI_SOCKET
from .expand import LabPlan, expand, segment_key
from .expand.plan import DaemonPlan
from .load import load
from .model import Topology
from .node import NodeHandle
from .probes.capture import Capture
from .probes.inject import InjectResult, inject
from .probes.path import Path as TracePath
from .probes.path import ping, trace
from .runtime import kernel, make_runtime
from .wait import wait_until

# A daemon must serve within this bound. Generous: under TCG the first start of a binary reads
# (one slow run of this host measured 219 s for three charons)
# its libraries through 9p cold (measured: charon 4-5 s warm, over 60 s cold with 3 in parallel).
READY_TIMEOUT = 480.0
VICI_TIMEOUT = 120.0  # nhrpd retries its vici connection every few seconds
VICI_VERDICT = 10.0  # after connecting, an unpatched strongSwan is reported within the same second
UNPATCHED = "StrongSwan does not support mandatory events (unpatched?)"
PHASES = ("validate", "create", "wire", "daemons", "converge")


def new_lab_id() -> str:
    return "lk" + secrets.token_hex(3)


def stderr_progress(message: str) -> None:
    print(f"labkit: {message}", file=sys.stderr, flush=True)


class Lab:
    """A running (or about to run) lab.

    Use as a context manager, or call :meth:`up` and :meth:`down`::

        with Lab.from_path("topologies/dmvpn_phase2") as lab:
            lab.node("spoke1").nhrp_cache()
    """

    def __init__(self, topology: Topology, runtime: str = "netns", lab_id: str | None = None,
                 detach: bool = False, progress: Callable[[str], None] | None = None,
                 converge_timeout: float = 300.0, image: str | None = None):
        self.topology = topology
        self.id = lab_id or new_lab_id()
        self.runtime_name = runtime
        self.detach = detach
        self.image = image
        self.runtime = None  # made in up(), after the preflight: a missing engine is a prerequisite
        self.plan: LabPlan | None = None
        self.timings: dict[str, float] = {}
        self.progress = progress or (lambda m: None)
        self.converge_timeout = converge_timeout
        self._daemons: dict[tuple[str, str], subprocess.Popen] = {}
        self.faults = Faults(self)
        self.on_failed_up: Callable[["Lab"], None] | None = None  # e.g. save the logs before the teardown

    @classmethod
    def from_path(cls, path: str | Path, **kw) -> "Lab":
        t0 = time.monotonic()
        topo = load(path)
        lab = cls(topo, **kw)
        lab.timings["validate"] = time.monotonic() - t0
        return lab

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> "Lab":
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()

    @contextmanager
    def _phase(self, name: str, what: str):
        self.progress(f"[{self.topology.name}] {what} ...")
        t0 = time.monotonic()
        yield
        self.timings[name] = time.monotonic() - t0
        self.progress(f"[{self.topology.name}] {what}: done in {self.timings[name]:.1f}s")

    def up(self) -> "Lab":
        """Create nodes, wire them, configure kernels, start daemons, wait for convergence.

        On any failure the partial lab is torn down before the error propagates.
        """
        # before anything exists: nothing to tear down
        if self.runtime is None:
            self.runtime = make_runtime(self.runtime_name, self.id, topology=self.topology, detach=self.detach,
                                        image=self.image, progress=self.progress)
        preflight.check(self.topology, self.runtime)
        try:
            self.plan = expand(self.topology)
            what = (f"creating {len(self.plan.nodes)} nodes and {len(self.plan.segments)} segments "
                    f"({self.runtime.name} runtime)")
            with self._phase("create", what):
                nodes = {name: node.sysctls for name, node in self.plan.nodes.items()}
                nodes.update({segment_key(seg): {} for seg in self.plan.segments})
                self.runtime.create_all(nodes)
            with self._phase("wire", "wiring links and addresses"):
                kernel.wire_all(self.runtime.pids, self.plan.wires)
                for name, node in self.plan.nodes.items():
                    kernel.configure_node(self.runtime.pid(name), node)
                for name, node in self.plan.nodes.items():
                    for argv in node.firewall:
                        self.runtime.exec(name, list(argv)).check()
            with self._phase("daemons", "starting daemons"):
                self._start_daemons()
            with self._phase("converge", "waiting for convergence"):
                self.converge()
        except BaseException:
            self.progress(f"[{self.topology.name}] bring-up failed; tearing down")
            if self.on_failed_up is not None:
                try:
                    self.on_failed_up(self)
                except Exception as exc:  # the bring-up's own error is the one to report
                    self.progress(f"[{self.topology.name}] could not save the logs: {exc}")
            self.down()
            raise
        return self

    def down(self) -> None:
        """Tear everything down, then check that nothing of the lab is left. Idempotent.

        Raises:
            LabError: the residue check found processes, containers or interfaces of this lab.
        """
        if self.runtime is None:
            return
        self.runtime.destroy()
        self._daemons.clear()
        from . import state

        left = state.residue(self.id, client=getattr(self.runtime, "client", None) or False)
        if left:
            raise LabError(f"teardown of lab {self.id} left {len(left)} thing(s) behind: {'; '.join(left)}. "
                           "'labkit cleanup --all' removes them")

    # -- daemons -------------------------------------------------------------------------------
    def _start_daemons(self) -> None:
        assert self.plan is not None
        for name, node in self.plan.nodes.items():
            for path, content in node.files.items():
                self.runtime.write_file(name, path, content)
        self._launch([(name, d) for name, node in self.plan.nodes.items() for d in node.daemons])

    def _launch(self, daemons: list[tuple[str, DaemonPlan]]) -> None:
        """Start ``(node, daemon)`` pairs stage by stage; each stage serves before the next starts."""
        assert self.plan is not None
        for stage in sorted({d.stage for _, d in daemons}):
            t0 = time.monotonic()
            started = [(name, d) for name, d in daemons if d.stage == stage]
            for name, d in started:
                ready = self.runtime.node_path(name, d.ready) if d.ready else None
                if ready and os.path.exists(ready):  # a stale socket of a previous run (restart)
                    os.unlink(ready)
                log = f"/run/labkit/log/{d.name}.out"
                self._daemons[(name, d.name)] = self.runtime.start(name, list(d.argv), env=dict(d.env), log=log)
            for name, d in started:
                if d.ready:
                    self._wait_ready(name, d.name, d.ready)
            for name, d in started:
                if d.name == "charon" and self.plan.nodes[name].swanctl:
                    conf = self.plan.nodes[name].swanctl
                    swanload.load(self.runtime.node_path(name, VICI_SOCKET), self.runtime.read_file(name, conf))
            for name, d in started:
                if d.name == "nhrpd":
                    self._check_vici_mode(name)
            names = sorted({d.name for _, d in started})
            self.progress(f"[{self.topology.name}]   {', '.join(names)} serving on {len({n for n, _ in started})} nodes "
                          f"after {time.monotonic() - t0:.1f}s")

    def stop_daemons(self, node: str, names: list[str] | None = None, timeout: float = 30.0) -> list[DaemonPlan]:
        """SIGKILL daemons of ``node`` (all, or ``names``) and wait until they are gone; return their plans."""
        assert self.plan is not None
        plans = [d for d in self.plan.nodes[node].daemons if names is None or d.name in names]
        unknown = set(names or ()) - {d.name for d in plans}
        if unknown:
            raise LabError(f"{node} runs no {', '.join(sorted(unknown))}; its daemons: "
                           f"{', '.join(d.name for d in self.plan.nodes[node].daemons) or 'none'}")
        for d in plans:
            proc = self._daemons.pop((node, d.name), None)
            if proc is not None and proc.poll() is None:
                proc.kill()
                wait_until(lambda p=proc: p.poll() is not None, timeout, f"{d.name} on {node} to exit after SIGKILL")
        return plans

    def restart_daemons(self, node: str, names: list[str] | None = None) -> None:
        """Kill and start again daemons of ``node`` (all, or ``names``), waiting until they serve."""
        self._launch([(node, d) for d in self.stop_daemons(node, names)])

    def _check_vici_mode(self, node: str) -> None:
        """``tunnel protection vici`` needs a strongSwan with the DMVPN patches: stop at once without them.

        nhrpd says so in its log as soon as it reaches charon's vici socket; without this check
        the lab would wait for SAs that never come.
        """
        dm = self.topology.dmvpn
        if not dm or not dm.ipsec.enabled or dm.ipsec.mode != "vici":
            return
        def met_charon() -> str | None:
            text = self._log_tail(node, "nhrpd", 200)
            return text if "VICI: Connected" in text or UNPATCHED in text else None

        text = wait_until(met_charon, VICI_TIMEOUT, f"nhrpd on {node} to connect to charon's vici socket",
                          state=lambda: self._log_tail(node, "nhrpd")[-1000:], abort_on=(LabError,))
        if UNPATCHED not in text:  # nhrpd registers for charon's events right after connecting
            try:
                text = wait_until(lambda: UNPATCHED in (t := self._log_tail(node, "nhrpd", 200)) and t,
                                  VICI_VERDICT, f"nhrpd on {node} to reject charon's vici events")
            except WaitTimeout:
                return  # no complaint: this strongSwan has the patches
        if UNPATCHED in text:
            raise PrerequisiteError(
                f"dmvpn.ipsec.mode: vici needs a strongSwan with the DMVPN patches FRR's 'tunnel protection vici' "
                f"relies on; this one lacks them (nhrpd on {node}: '{UNPATCHED}'). Use mode: trap (the "
                "default, stock strongSwan), or a strongSwan built with those patches")

    def _wait_ready(self, node: str, daemon: str, ready: str) -> None:
        proc = self._daemons[(node, daemon)]
        path = self.runtime.node_path(node, ready)

        def ready_now() -> bool:
            if proc.poll() is not None:
                raise LabError(f"{daemon} on {node} exited with {proc.returncode} during start-up:\n"
                               + self._log_tail(node, daemon))
            return os.path.exists(path)

        wait_until(ready_now, timeout=READY_TIMEOUT, interval=0.05, desc=f"{daemon} on {node} to serve {ready}",
                   abort_on=(LabError,))

    def _log_tail(self, node: str, daemon: str, lines: int = 20) -> str:
        text = ""
        for suffix in ("out", "log"):
            try:
                text += self.runtime.read_file(node, f"/run/labkit/log/{daemon}.{suffix}")
            except OSError:
                pass
        return "\n".join(text.splitlines()[-lines:]) or "(no log output)"

    # -- convergence ---------------------------------------------------------------------------
    def converge(self) -> None:
        """Wait until every spoke is registered at the hub and its routing protocol has spread every LAN
        (a site-to-site tunnel: until its SA, adjacency and routes are up, and LAN reaches LAN)."""
        topo = self.topology
        if topo.tunnel:
            from .catalogue import converge_tunnel

            return converge_tunnel(self)
        if not topo.dmvpn:
            return
        hub = self.node(topo.hubs()[0].name)
        spokes = [self.node(s.name) for s in topo.spokes()]
        expected = {str(s.spec.tunnel_address) for s in spokes}

        def registered():
            got = {str(e.protocol) for e in hub.nhrp_cache() if e.type == "dynamic"}
            return expected <= got

        wait_until(registered, self.converge_timeout, f"spokes {sorted(expected)} registered at {hub.name}",
                   state=lambda: [(e.type, str(e.protocol), str(e.nbma)) for e in hub.nhrp_cache()])

        # spokes sharing a NAT box's address: transport-mode IPsec serves one of each group (docs/dmvpn.md)
        groups = topo.shared_nat_groups() if topo.dmvpn.ipsec.enabled else []
        for group in groups:
            self.progress(f"[{topo.name}] {', '.join(group)} share one NAT address: ESP transport mode serves "
                          "only one of them; convergence waits for one")
        shared = {s for g in groups for s in g}
        tun = {s.name: str(s.spec.tunnel_address) for s in spokes}

        def serving(up: set[str]) -> list[set[str]] | None:
            """``[up]`` (tunnel addresses with a routing session; listed, so an empty set still counts)
            once every spoke that can be served is in it."""
            enough = all(tun[s.name] in up for s in spokes if s.name not in shared) and \
                all(any(tun[s] in up for s in g) for g in groups)
            return [up] if enough else None

        if topo.dmvpn.igp:
            (up,) = wait_until(lambda: serving({str(n.address) for n in hub.igp_neighbours() if n.full}),
                               self.converge_timeout,
                               f"{topo.dmvpn.protocol.upper()} adjacencies hub<->{sorted(expected)} up",
                               state=lambda: [(str(n.address), n.state, n.role) for n in hub.igp_neighbours()])
        else:
            (up,) = wait_until(lambda: serving({a for a, state in hub.bgp_peers().items() if state == "Established"}),
                               self.converge_timeout, f"BGP sessions hub<->{sorted(expected)} Established",
                               state=hub.bgp_peers)
        spokes = [s for s in spokes if tun[s.name] in up]
        served = [hub.name] + [s.name for s in spokes]
        lans = {str(net) for n in served for net in topo.lans(n)}
        summary = topo.summary()
        for router in [hub] + spokes:
            mine = {str(ep.address.network) for ep in topo.endpoints(router.name)}
            # phase 3: a spoke learns only the hub's summary
            want = {str(summary)} if summary is not None and router is not hub else lans - mine

            def has_routes(r=router, want=want):
                return want <= {str(x.dst) for x in r.routes()}

            wait_until(has_routes, self.converge_timeout, f"{router.name} to learn routes to {sorted(want)}",
                       state=lambda r=router: sorted(str(x.dst) for x in r.routes()))

    # -- access ------------------------------------------------------------------------------------
    def node(self, name: str) -> NodeHandle:
        if name not in self.topology.nodes:
            raise LabError(f"no node named {name!r}; nodes: {', '.join(self.topology.nodes)}")
        return NodeHandle(self, self.topology.nodes[name])

    @property
    def nodes(self) -> dict[str, NodeHandle]:
        return {n: self.node(n) for n in self.topology.nodes}

    def address_of(self, node: str, ifname: str | None = None):
        """The first address of ``node`` (on ``ifname`` if given)."""
        for ep in self.topology.endpoints(node):
            if ifname is None or ep.ifname == ifname:
                return ep.address.ip
        raise LabError(f"{node} has no address" + (f" on {ifname}" if ifname else ""))

    def path(self, source: str, target: str, **kw) -> TracePath:
        """The hop-by-hop path from node ``source`` to node (or address) ``target``."""
        dst = str(self.address_of(target)) if target in self.topology.nodes else target
        return trace(self.runtime.pid(source), source, dst, owner_of=self.topology.owner_of, **kw)

    def ping(self, source: str, target: str, timeout: float = 1.0, size: int | None = None) -> bool:
        """One ICMP echo from node ``source`` to node (or address) ``target`` (``size``: payload bytes)."""
        dst = str(self.address_of(target)) if target in self.topology.nodes else target
        return ping(self.runtime.pid(source), dst, timeout, size)

    def capture(self, where: str, ifname: str | None = None, direction: str = "in", bpf: str | None = None) -> Capture:
        """Start capturing on a node's interface, or on every port of a segment (``"@name"`` or a segment name).

        ``direction="out"``: what the interface sends (the wire as its sender encapsulated it).
        ``bpf``: a tcpdump filter such as ``"udp port 4500"``, applied in the kernel.
        """
        names = {s.name for s in self.topology.segments}
        key = segment_key(where) if where in names else where
        return Capture(self.runtime.pid(key), ifname, label=f"{where}:{ifname or 'all'}", direction=direction, bpf=bpf)

    def inject(self, node: str, packets, count: int = 1, rate: float | None = None, timeout: float = 2.0,
               iface: str | None = None, expect_reply: bool = True) -> InjectResult:
        """Send Scapy ``packets`` from inside ``node`` and return the replies and the loss.

        See :func:`labkit.probes.inject.inject`: IPv4 packets follow the node's routes and get its
        source address unless they set one; Ethernet frames need ``iface``.
        """
        return inject(self.runtime.pid(node), node, packets, count=count, rate=rate, timeout=timeout,
                      iface=iface, expect_reply=expect_reply)
