"""A readable (or JSON) report of a lab's asserted state, for ``labkit run``."""

from __future__ import annotations

import json

from .checks import CheckResult
from .errors import LabkitError
from .lab import Lab


def _state(lab: Lab) -> dict:
    """Per-node NHRP and IPsec state, gathered after the checks ran."""
    out: dict = {}
    for name, node in lab.nodes.items():
        if not node.spec.in_dmvpn:
            continue
        entry: dict = {"role": node.spec.role, "tunnel": str(node.spec.tunnel_address)}
        try:
            entry["nhrp"] = [f"{e.type} {e.protocol} -> {e.nbma}" for e in node.nhrp_cache() if e.type != "local"]
            entry["shortcuts"] = [f"{s.prefix} via {s.via}" for s in node.nhrp_shortcuts()]
            entry["bgp"] = node.bgp_peers()
        except LabkitError as exc:
            entry["error"] = str(exc)
        if lab.topology.dmvpn and lab.topology.dmvpn.ipsec.enabled:
            try:
                entry["ipsec"] = [
                    f"{s.local_host} <-> {s.remote_host} {s.state}"
                    + "".join(f"; {c.protocol} {c.mode.lower()} {c.state} {c.local_ts[0] if c.local_ts else ''}"
                              f" in/out {c.packets_in}/{c.packets_out} pkts" for c in s.children)
                    for s in node.ike_sas()
                ]
            except LabkitError as exc:
                entry["ipsec_error"] = str(exc)
        out[name] = entry
    return out


def render(lab: Lab, results: list[CheckResult], elapsed: float, as_json: bool = False) -> str:
    state = _state(lab)
    timings = {k: round(v, 2) for k, v in lab.timings.items()}
    if as_json:
        return json.dumps({
            "lab": lab.topology.name, "id": lab.id, "timings": timings, "elapsed": round(elapsed, 1),
            "checks": [{"name": r.name, "ok": r.ok, "detail": r.detail} for r in results], "state": state,
        }, indent=2)
    lines = [f"labkit report: {lab.topology.name} (lab {lab.id})", ""]
    lines.append("bring-up: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()) + f"; total {elapsed:.0f}s")
    lines += ["", "asserted:"]
    for r in results:
        lines.append(f"  [{'PASS' if r.ok else 'FAIL'}] {r.name}")
        lines += [f"         {line}" for line in r.detail.splitlines()]
    lines += ["", "state:"]
    for name, entry in state.items():
        lines.append(f"  {name} ({entry['role']}, tunnel {entry['tunnel']})")
        for key in ("nhrp", "shortcuts", "ipsec"):
            for item in entry.get(key, []):
                lines.append(f"    {key:<9} {item}")
        for peer, st in entry.get("bgp", {}).items():
            lines.append(f"    bgp       {peer} {st}")
        for key in ("error", "ipsec_error"):
            if key in entry:
                lines.append(f"    {key}: {entry[key]}")
    passed = sum(r.ok for r in results)
    lines += ["", f"{passed} passed, {len(results) - passed} failed"]
    return "\n".join(lines)
