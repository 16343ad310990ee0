"""Benchmark: labkit's lab-up against a plain script doing the same kernel and daemon operations.

    python3 benchmarks/raw_baseline.py [TOPOLOGY_DIR] [--rounds N] [--json PATH]

The plain script ("raw") takes from labkit only the *contents*: the expanded plan's addresses,
routes, sysctls, iptables argv, config files and daemon argv (``labkit.expand.expand``). It does
the work the way a shell script would: ``unshare`` holders (with a tmpfs on ``/run``), one
``ip -batch`` for all veths, one ``nsenter ... ip -batch`` and one ``sysctl`` per node,
``iptables``, the daemons under ``nsenter`` stage by stage (charon, zebra, nhrpd + bgpd, each
stage serving before the next), ``swanctl --load-all`` and, for convergence, ``vtysh`` and
``ip -j route`` polled for the same conditions labkit waits for. In the same process it then
times labkit's ``Lab.up`` on the same topology, and prints both, per phase, with labkit / raw.
Rounds alternate the order (raw first, then labkit first, ...) so neither always runs warm.

Supported: routed labs and DMVPN labs routed by BGP (the ``dmvpn_phase2`` shape). When the host
kernel lacks GRE/ESP the benchmark re-runs itself inside the VM sandbox, like ``lab_up.py``.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, progress, write_json  # noqa: E402

from labkit.expand import LabPlan, expand, segment_key  # noqa: E402
from labkit.lab import Lab, stderr_progress  # noqa: E402
from labkit.load import load  # noqa: E402
from labkit.model import Topology  # noqa: E402
from labkit.probes.nhrp import parse_cache  # noqa: E402
from labkit.runtime import ns  # noqa: E402
from labkit.sandbox import vm  # noqa: E402
from labkit.wait import wait_until  # noqa: E402

PHASES = ("create", "wire", "daemons", "converge")
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
HOLDER_SCRIPT = ('mount -t tmpfs -o mode=755,size=64m tmpfs /run && mkdir -p /run/frr /run/labkit/log '
                 '&& chown frr:frr /run/frr /run/labkit/log && hostname "$1" && exec sleep infinity')
READY_TIMEOUT = 480.0


def _run(argv: list[str], input: str | None = None, timeout: float = 120.0) -> str:
    res = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, env=ENV)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])} ... failed ({res.returncode}): {res.stderr.strip()[:500]}")
    return res.stdout


def _in(pid: int, *flags: str) -> list[str]:
    return ["nsenter", "-t", str(pid), *flags, "--"]


class RawLab:
    """The same lab, by plain tools. Nothing of labkit's runtime or kernel modules is used."""

    def __init__(self, topo: Topology, plan: LabPlan):
        self.topo, self.plan = topo, plan
        self.pids: dict[str, int] = {}
        self.procs: list[subprocess.Popen] = []
        self.timings: dict[str, float] = {}

    def _timed(self, name: str, fn) -> None:
        t0 = time.monotonic()
        fn()
        self.timings[name] = time.monotonic() - t0

    def up(self) -> None:
        try:
            for phase in PHASES:
                self._timed(phase, getattr(self, phase))
        except BaseException:
            self.down()
            raise

    # -- phases ------------------------------------------------------------------------------
    def create(self) -> None:
        names = list(self.plan.nodes) + [segment_key(s) for s in self.plan.segments]
        for name in names:
            proc = subprocess.Popen(
                ["unshare", "--net", "--uts", "--mount", "--propagation", "private", "--",
                 "sh", "-c", HOLDER_SCRIPT, "holder", name.lstrip("@")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
                preexec_fn=ns.set_pdeathsig)
            self.procs.append(proc)
            self.pids[name] = proc.pid

        def holding(pid: int, proc: subprocess.Popen) -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"holder {pid} exited with {proc.returncode}")
            return Path(f"/proc/{pid}/comm").read_text().strip() == "sleep"  # set up, then exec'd sleep

        for proc in self.procs:
            wait_until(lambda p=proc: holding(p.pid, p), 60, f"holder {proc.pid} to hold its namespaces",
                       interval=0.02)

    def wire(self) -> None:
        p = self.pids
        veths = "".join(f"link add {w.a_ifname} netns {p[w.a_node]} type veth peer name {w.b_ifname} "
                        f"netns {p[w.b_node]}\n" for w in self.plan.wires)
        _run(["ip", "-batch", "-"], input=veths)
        ports: dict[str, list[str]] = {}
        for w in self.plan.wires:
            if w.segment:
                ports.setdefault(w.b_node, []).append(w.b_ifname)
        for seg, names in ports.items():
            if Path("/proc/sys/net/bridge").exists():
                _run(_in(p[seg], "-n") + ["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=0",
                                          "net.bridge.bridge-nf-call-arptables=0"])
            batch = "link set lo up\nlink add br0 type bridge\nlink set br0 up\n"
            batch += "".join(f"link set {port} master br0 up\n" for port in names)
            _run(_in(p[seg], "-n") + ["ip", "-batch", "-"], input=batch)
        for name, node in self.plan.nodes.items():
            batch = ["link set lo up"]
            for ifname, addrs in node.addresses.items():
                batch += [f"addr add {a} dev {ifname}" for a in addrs] + [f"link set {ifname} up"]
            if node.gre:
                g = node.gre
                batch += [f"link add {g.ifname} type gre key {g.key} ttl {g.ttl} local {g.local} dev {g.dev}",
                          f"addr add {g.address.ip}/32 dev {g.ifname}"]
                batch += [f"link set {g.ifname} multicast on"] if g.multicast else []
                batch += [f"link set {g.ifname} up"]
            if node.tunnel:
                raise SystemExit("raw_baseline: point-to-point tunnels are not supported by the plain script")
            for r in node.routes:
                batch.append(f"route add blackhole {r.dst}" if r.blackhole else f"route add {r.dst} via {r.via}")
            _run(_in(p[name], "-n") + ["ip", "-batch", "-"], input="\n".join(batch) + "\n")
            if node.sysctls:
                _run(_in(p[name], "-n") + ["sysctl", "-q", "-w", *(f"{k}={v}" for k, v in node.sysctls.items())])
            for argv in node.firewall:
                _run(_in(p[name], "-n") + list(argv))

    def daemons(self) -> None:
        p = self.pids
        for name, node in self.plan.nodes.items():
            for path, content in node.files.items():
                target = Path(f"/proc/{p[name]}/root{path}")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)
        todo = [(name, d) for name, node in self.plan.nodes.items() for d in node.daemons]
        for stage in sorted({d.stage for _, d in todo}):
            batch = [(name, d) for name, d in todo if d.stage == stage]
            for name, d in batch:
                with open(f"/proc/{p[name]}/root/run/labkit/log/{d.name}.out", "ab") as log:
                    self.procs.append(subprocess.Popen(
                        _in(p[name], "-n", "-m", "-u") + list(d.argv), env={**ENV, **dict(d.env)}, cwd="/",
                        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, preexec_fn=ns.set_pdeathsig))
            for name, d in batch:
                if d.ready:
                    wait_until(lambda n=name, r=d.ready: os.path.exists(f"/proc/{p[n]}/root{r}"), READY_TIMEOUT,
                               f"{d.name} on {name} to serve {d.ready}", interval=0.05)
            loads = [subprocess.Popen(_in(p[name], "-n", "-m") + ["swanctl", "--load-all", "--noprompt", "--file",
                                                                   self.plan.nodes[name].swanctl],
                                      env=ENV, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True)
                     for name, d in batch if d.name == "charon" and self.plan.nodes[name].swanctl]
            for proc in loads:
                _, err = proc.communicate(timeout=300)
                if proc.returncode != 0:
                    raise RuntimeError(f"swanctl --load-all failed: {err.strip()[:500]}")

    def _vtysh(self, node: str, daemon: str, command: str):
        out = _run(_in(self.pids[node], "-n", "-m") + ["vtysh", "-d", daemon, "-c", command], timeout=60)
        start = min((i for i in (out.find("{"), out.find("[")) if i >= 0), default=0)
        return json.loads(out[start:])

    def _routes(self, node: str) -> set[str]:
        rows = json.loads(_run(_in(self.pids[node], "-n") + ["ip", "-j", "route"]) or "[]")
        return {r["dst"] if "/" in r["dst"] or r["dst"] == "default" else f"{r['dst']}/32" for r in rows}

    def converge(self) -> None:
        """The conditions of ``Lab.converge`` for a BGP DMVPN: registered, BGP Established, routes learnt."""
        topo = self.topo
        if not topo.dmvpn:
            return
        hub = topo.hubs()[0].name
        spokes = [s.name for s in topo.spokes()]
        expected = {str(topo.nodes[s].tunnel_address) for s in spokes}
        wait_until(lambda: expected <= {str(e.protocol) for e in parse_cache(
            self._vtysh(hub, "nhrpd", "show ip nhrp cache json")) if e.type == "dynamic"},
            300, f"raw: spokes registered at {hub}")

        def established() -> bool:
            peers = self._vtysh(hub, "bgpd", "show bgp ipv4 unicast summary json").get("peers", {})
            return expected <= {a for a, v in peers.items() if v.get("state") == "Established"}

        wait_until(established, 300, f"raw: BGP sessions at {hub} Established")
        lans = {str(net) for n in [hub] + spokes for net in topo.lans(n)}
        summary = topo.summary()
        for router in [hub] + spokes:
            mine = {str(ep.address.network) for ep in topo.endpoints(router)}
            want = {str(summary)} if summary is not None and router != hub else lans - mine
            wait_until(lambda r=router, w=want: w <= self._routes(r), 300, f"raw: {router} to learn {sorted(want)}")

    # -- teardown ------------------------------------------------------------------------------
    def down(self) -> None:
        for pid in self.pids.values():
            try:
                victims = ns.pids_in_netns(ns.netns_inode(pid))
            except OSError:
                victims = [pid]
            for v in victims:
                try:
                    os.kill(v, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        self.pids.clear()
        self.procs.clear()


def run_raw(path: str) -> dict[str, float]:
    topo = load(path)
    raw = RawLab(topo, expand(topo))
    try:
        raw.up()
    finally:
        t0 = time.monotonic()
        raw.down()
        raw.timings["teardown"] = time.monotonic() - t0
    return raw.timings


def run_labkit_timed(path: str) -> dict[str, float]:
    lab = Lab.from_path(path, progress=stderr_progress if os.environ.get("BENCH_VERBOSE") else None)
    lab.up()
    t0 = time.monotonic()
    lab.down()
    return {**lab.timings, "teardown": time.monotonic() - t0}


def compare(path: str, rounds: int) -> dict:
    raws, labs = [], []
    for i in range(rounds):
        order = ("raw", "labkit") if i % 2 == 0 else ("labkit", "raw")
        for who in order:
            progress(f"{Path(path).name}: round {i + 1}: {who} ...")
            if who == "raw":
                raws.append(run_raw(path))
            else:
                labs.append(run_labkit_timed(path))
            row = (raws if who == "raw" else labs)[-1]
            print(f"round {i + 1} {who:<6} " + "  ".join(f"{k} {v:.3f}s" for k, v in row.items()), flush=True)
    med = lambda rows, k: statistics.median(r.get(k, 0.0) for r in rows)  # noqa: E731
    table = {}
    for phase in (*PHASES, "total", "teardown"):
        if phase == "total":
            r, lk = (sum(med(raws, p) for p in PHASES), sum(med(labs, p) for p in PHASES))
        else:
            r, lk = med(raws, phase), med(labs, phase)
        table[phase] = {"raw_s": r, "labkit_s": lk, "ratio": lk / r if r >= 0.001 else None}
    topo = load(path)
    nodes = len(topo.nodes)
    holders = nodes + len(topo.segments)  # a segment's bridge lives in a holder of its own: wired like a node
    result = {"topology": topo.name, "nodes": nodes, "segments": len(topo.segments), "rounds": rounds,
              "phases": table, "labkit_validate_s": med(labs, "validate"),
              "wire_ms_per_node": {"raw": med(raws, "wire") / holders * 1000, "labkit": med(labs, "wire") / holders * 1000},
              "rounds_raw": raws, "rounds_labkit": labs}
    print(f"\n{topo.name}: {nodes} nodes, {len(topo.segments)} segments, median of {rounds} rounds, "
          f"{'VM sandbox' if vm.inside() else 'native'}, kernel {os.uname().release}")
    print(f"{'phase':<10} {'raw s':>9} {'labkit s':>9} {'labkit/raw':>11}")
    for phase, row in table.items():
        ratio = f"{row['ratio']:.2f}x" if row["ratio"] else "-"
        print(f"{phase:<10} {row['raw_s']:9.3f} {row['labkit_s']:9.3f} {ratio:>11}")
    print(f"(total = create + wire + daemons + converge; labkit's validate, which raw has no equivalent of: "
          f"{result['labkit_validate_s']:.3f}s; wiring per node (nodes + segments): raw {result['wire_ms_per_node']['raw']:.1f} ms, "
          f"labkit {result['wire_ms_per_node']['labkit']:.1f} ms)")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("topology", nargs="?", default=str(ROOT / "topologies/dmvpn_phase2"))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--sandbox", choices=("auto", "on", "off"), default=None)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    path = os.path.abspath(args.topology)
    decision = vm.decide(load(path).required_kernel_features(), args.sandbox or vm.mode_from_env())
    print(f"raw baseline: mode: {decision}", flush=True)
    if decision.use:
        argv = [sys.executable, os.path.abspath(__file__), path, "--rounds", str(args.rounds), "--sandbox", "off"]
        argv += ["--json", os.path.abspath(args.json)] if args.json else []
        return vm.run(argv, cwd=str(ROOT), progress=stderr_progress)
    write_json(args.json, {"raw_baseline": compare(path, args.rounds)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
