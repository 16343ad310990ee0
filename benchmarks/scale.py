"""Benchmark: one hub and N spokes (DMVPN phase 2, BGP, IPsec), for each N given, in one VM boot.

    python3 benchmarks/scale.py [N ...] [--until HH:MM] [--memory 8G] [--json PATH]

For each N it writes a topology (hub + N spokes on one underlay segment, no host LANs: the
smallest valid DMVPN of that size) into a temporary directory, loads and validates it with
labkit's loader, brings it up with ``Lab`` and reports:

- the time from the start of lab-up until every spoke is registered at the hub (the hub's NHRP
  cache has a dynamic entry for its tunnel address) *and* has an IKE SA with an installed
  CHILD SA at the hub (charon's vici ``list-sas``), with the per-phase breakdown;
- memory per node: the PSS (shared pages split fairly) of every process in each node's network
  namespace, for the hub and the mean spoke;

then tears the lab down. Ns run one after the other, smallest first; ``--until`` (UTC) stops
starting new ones after that time. When the host kernel lacks GRE/ESP the whole run happens in
one VM sandbox boot. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, node_pss_kib, progress, write_json  # noqa: E402

from labkit.errors import LabkitError  # noqa: E402
from labkit.lab import Lab, stderr_progress  # noqa: E402
from labkit.load import load  # noqa: E402
from labkit.sandbox import vm  # noqa: E402
from labkit.wait import wait_until  # noqa: E402

CONVERGE_TIMEOUT = 1200.0


def topology_yaml(spokes: int) -> str:
    """A hub and ``spokes`` spokes on one underlay; the underlay and tunnel prefixes grow with N."""
    length = min(24, 32 - (spokes + 3).bit_length())  # room for hub + spokes (+ network/broadcast)
    underlay = ipaddress.IPv4Network(f"10.200.0.0/{length}")
    tunnel = ipaddress.IPv4Network(f"172.16.0.0/{length}")
    names = [f"s{i}" for i in range(1, spokes + 1)]
    lines = [f"name: scale_{spokes}", f"description: hub + {spokes} spokes (benchmarks/scale.py)", "nodes:",
             "  hub: {role: hub}"]
    lines += [f"  {n}: {{role: spoke}}" for n in names]
    lines += ["segments:", "  underlay:", f"    prefix: {underlay}",
              "    members: [" + ", ".join(["hub:eth0"] + [f"{n}:eth0" for n in names]) + "]",
              "dmvpn:", "  underlay: underlay", "  phase: 2",
              f"  tunnel: {{network: {tunnel}, ifname: gre1, key: 42}}",
              "  nhrp: {network_id: 1, holdtime: 60}", "  routing: {protocol: bgp, asn: 65000}",
              "  ipsec:", "    enabled: true",
              "    proposals: {ike: [aes256-sha256-modp2048], esp: [aes256gcm16]}", ""]
    return "\n".join(lines)


class ScaleLab(Lab):
    """A lab whose convergence is "every spoke registered at the hub with an IKE SA and CHILD SA"."""

    samples: list[tuple[float, int, int]]

    def converge(self) -> None:
        topo = self.topology
        hub = self.node(topo.hubs()[0].name)
        tunnel = {str(s.tunnel_address) for s in topo.spokes()}
        nbma = {str(topo.nbma(s.name).address.ip) for s in topo.spokes()}
        self.samples = []
        t0 = time.monotonic()

        def done() -> bool:
            registered = tunnel & {str(e.protocol) for e in hub.nhrp_cache() if e.type == "dynamic"}
            with_sa = nbma & {str(sa.remote_host) for sa in hub.ike_sas()
                              if sa.state == "ESTABLISHED" and any(c.state == "INSTALLED" for c in sa.children)}
            self.samples.append((round(time.monotonic() - t0, 2), len(registered), len(with_sa)))
            if len(self.samples) % 10 == 1:
                progress(f"{topo.name}: {len(registered)}/{len(tunnel)} registered, {len(with_sa)}/{len(nbma)} "
                         f"with SA after {time.monotonic() - t0:.0f}s")
            return len(registered) == len(tunnel) and len(with_sa) == len(nbma)

        wait_until(done, self.converge_timeout, f"{len(tunnel)} spokes registered at {hub.name} with IKE SAs",
                   interval=1.0, state=lambda: self.samples[-1:])


def measure(spokes: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="labkit-scale-") as tmp:
        Path(tmp, "topology.yaml").write_text(topology_yaml(spokes))
        stages: list[str] = []  # Lab's "<daemons> serving on N nodes after Xs", one per start stage

        def record(message: str) -> None:
            if " serving on " in message:
                stages.append(message.split("]", 1)[-1].strip())
            if os.environ.get("BENCH_VERBOSE"):
                stderr_progress(message)

        lab = ScaleLab.from_path(tmp, converge_timeout=CONVERGE_TIMEOUT, progress=record)
        nodes = len(lab.topology.nodes)
        t0 = time.monotonic()
        try:
            lab.up()
            ready = time.monotonic() - t0
            hub = lab.topology.hubs()[0].name
            pss = {n: node_pss_kib(lab.runtime.pid(n)) for n in lab.topology.nodes}
            spoke_kib = [v for n, v in pss.items() if n != hub]
            row = {
                "spokes": spokes, "nodes": nodes, "ok": True,
                "registered_with_sa_s": ready, "phases": dict(lab.timings),
                "wire_ms_per_node": lab.timings["wire"] / (nodes + len(lab.topology.segments)) * 1000,
                "hub_mib": pss[hub] / 1024, "spoke_mib_mean": sum(spoke_kib) / len(spoke_kib) / 1024,
                "node_mib_mean": sum(pss.values()) / nodes / 1024, "total_mib": sum(pss.values()) / 1024,
                "daemon_stages": stages, "samples": lab.samples,
            }
        except (LabkitError, OSError) as exc:  # a failed size is a figure too; the lab is already torn down
            return {"spokes": spokes, "nodes": nodes, "ok": False, "error": str(exc)[:2000],
                    "phases": dict(lab.timings), "after_s": time.monotonic() - t0}
        finally:
            t1 = time.monotonic()
            lab.down()
        row["teardown_s"] = time.monotonic() - t1
        return row


def print_rows(rows: list[dict]) -> None:
    print(f"\nhub + N spokes, DMVPN phase 2 + IPsec, {'VM sandbox' if vm.inside() else 'native'}, "
          f"kernel {os.uname().release}, {os.cpu_count()} CPUs")
    print(f"{'N':>4} {'registered+SA s':>16} {'create':>7} {'wire':>7} {'daemons':>8} {'converge':>9} "
          f"{'wire ms/node':>13} {'hub MiB':>8} {'spoke MiB':>10} {'teardown':>9}")
    for r in rows:
        if not r["ok"]:
            print(f"{r['spokes']:>4} FAILED after {r['after_s']:.0f}s: {r['error'].splitlines()[0]}")
            continue
        p = r["phases"]
        print(f"{r['spokes']:>4} {r['registered_with_sa_s']:16.1f} {p['create']:7.1f} {p['wire']:7.1f} "
              f"{p['daemons']:8.1f} {p['converge']:9.1f} {r['wire_ms_per_node']:13.1f} {r['hub_mib']:8.1f} "
              f"{r['spoke_mib_mean']:10.1f} {r['teardown_s']:9.1f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spokes", nargs="*", type=int, default=[10, 25, 50])
    ap.add_argument("--until", help="UTC HH:MM after which no further N is started")
    ap.add_argument("--memory", default="8G", help="VM memory (a node takes ~30 MiB)")
    ap.add_argument("--sandbox", choices=("auto", "on", "off"), default=None)
    ap.add_argument("--json", help="also write the figures to this file (rewritten after each N)")
    args = ap.parse_args()
    for n in args.spokes:  # every size must be a topology labkit accepts (exits on the first that is not)
        with tempfile.TemporaryDirectory(prefix="labkit-scale-") as tmp:
            Path(tmp, "topology.yaml").write_text(topology_yaml(n))
            features = load(tmp).required_kernel_features()
    decision = vm.decide(features, args.sandbox or vm.mode_from_env())
    print(f"scale: mode: {decision}", flush=True)
    if decision.use:
        argv = [sys.executable, os.path.abspath(__file__), *map(str, args.spokes), "--sandbox", "off"]
        argv += ["--until", args.until] if args.until else []
        argv += ["--json", os.path.abspath(args.json)] if args.json else []
        return vm.run(argv, cwd=str(ROOT), memory=args.memory, progress=stderr_progress)
    rows: list[dict] = []
    for n in sorted(args.spokes):
        now = datetime.now(timezone.utc).strftime("%H:%M")
        if args.until and now >= args.until:
            print(f"scale: N={n} not started: it is {now} UTC, past --until {args.until}", flush=True)
            rows.append({"spokes": n, "ok": False, "skipped": True, "error": f"not started: past {args.until} UTC",
                         "nodes": n + 1, "phases": {}, "after_s": 0.0})
            continue
        progress(f"hub + {n} spokes ...")
        rows.append(measure(n))
        r = rows[-1]
        progress(f"hub + {n} spokes: " + (f"registered with SAs after {r['registered_with_sa_s']:.1f}s"
                                           if r["ok"] else f"FAILED: {r['error'][:300]}"))
        write_json(args.json, {"scale": rows})
    print_rows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
