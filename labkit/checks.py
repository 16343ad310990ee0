"""DMVPN checks: each asserts one property of a running lab and returns what it saw.

A check raises ``AssertionError`` with the state it found when the property does not hold,
and returns a one-line description of the asserted state when it does. Tests call them
directly; ``labkit run`` calls them in order and prints the report.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Callable

from .lab import Lab
from .wait import wait_until


def _nbma(lab: Lab, node: str) -> ipaddress.IPv4Address:
    """``node``'s own NBMA address (private when it sits behind a NAT box)."""
    assert lab.topology.dmvpn is not None, "the topology has no dmvpn section"
    return lab.topology.nbma(node).address.ip


def _public(lab: Lab, node: str) -> ipaddress.IPv4Address:
    """The NBMA address others see ``node`` at: its NAT box's outside address when NATed."""
    return lab.topology.public_nbma(node)


def _tunnel(lab: Lab, node: str) -> ipaddress.IPv4Address:
    addr = lab.topology.nodes[node].tunnel_address
    assert addr is not None, f"{node} has no tunnel address"
    return addr


def spokes_registered(lab: Lab) -> str:
    """Every spoke is in the hub's NHRP cache with its own tunnel ↔ NBMA pair, and sees the hub as NHS."""
    __tracebackhide__ = True
    hub = lab.topology.hubs()[0].name
    cache = lab.node(hub).nhrp_cache()
    seen = {str(e.protocol): e for e in cache if e.type == "dynamic"}
    pairs = []
    for spoke in lab.topology.spokes():
        tun, nbma = _tunnel(lab, spoke.name), _nbma(lab, spoke.name)
        public = _public(lab, spoke.name)
        entry = seen.get(str(tun))
        assert entry is not None, f"{spoke.name} ({tun}) is not registered at {hub}; hub cache: {cache}"
        assert entry.nbma == public, f"{spoke.name}: hub maps {tun} to NBMA {entry.nbma}, expected {public}"
        if public != nbma:  # behind NAT: the spoke claims its private address, the hub sees the NAT's
            assert entry.claimed_nbma == nbma, \
                f"{spoke.name}: hub records claimed NBMA {entry.claimed_nbma}, expected {nbma} (NATed to {public})"
            nbma = f"{public} (claimed {nbma})"
        nhs = lab.node(spoke.name).nhrp_nhs()
        hub_tun, hub_nbma = _tunnel(lab, hub), _nbma(lab, hub)
        assert any(n.nbma == hub_nbma and n.protocol == hub_tun for n in nhs), \
            f"{spoke.name} does not show {hub} ({hub_tun} at {hub_nbma}) as NHS: {nhs}"
        pairs.append(f"{spoke.name} {tun}->{nbma}")
    return f"registered at {hub}: " + ", ".join(pairs) + f"; each spoke's NHS is {hub}"


def transport_gre_sa(lab: Lab, node: str, peer: str):
    """The ESTABLISHED IKE SA of ``node`` towards ``peer`` with an INSTALLED transport GRE CHILD SA."""
    mine, theirs = _nbma(lab, node), _public(lab, peer)
    sas = lab.node(node).ike_sas()
    for ike in sas:
        if ike.state == "ESTABLISHED" and ike.local_host == mine and ike.remote_host == theirs:
            for child in ike.children:
                if child.state == "INSTALLED" and child.mode == "TRANSPORT" and child.protects_gre:
                    return ike, child
    summary = [(str(s.local_host), str(s.remote_host), s.state, [(c.state, c.mode, c.local_ts) for c in s.children])
               for s in sas]
    raise AssertionError(f"{node} has no ESTABLISHED IKE SA with an INSTALLED transport GRE CHILD SA "
                         f"towards {peer} ({mine} -> {theirs}); SAs: {summary}")


def hub_spoke_ipsec(lab: Lab) -> str:
    """Each spoke and the hub hold an ESTABLISHED IKE SA and an INSTALLED transport CHILD SA over GRE."""
    __tracebackhide__ = True
    hub = lab.topology.hubs()[0].name
    out = []
    for spoke in lab.topology.spokes():
        _, child = transport_gre_sa(lab, spoke.name, hub)
        transport_gre_sa(lab, hub, spoke.name)
        out.append(f"{spoke.name}<->{hub} {child.protocol} {child.mode.lower()} {child.local_ts[0]}")
    return "IKE ESTABLISHED + CHILD INSTALLED: " + ", ".join(out)


def _shortcut_to(lab: Lab, spoke: str, other: str) -> bool:
    """Does ``spoke`` hold an NHRP entry resolving ``other``'s tunnel address (not via the hub)?"""
    tun = _tunnel(lab, other)
    return any(e.protocol == tun and e.type in ("dynamic", "cached") and e.nbma in (_nbma(lab, other), _public(lab, other))
               for e in lab.node(spoke).nhrp_cache())


def no_shortcut(lab: Lab, a: str, b: str) -> str:
    """Neither spoke holds a shortcut to the other, and no shortcut route exists."""
    __tracebackhide__ = True
    for x, y in ((a, b), (b, a)):
        assert not _shortcut_to(lab, x, y), f"{x} already resolved {y}: {lab.node(x).nhrp_cache()}"
        assert not lab.node(x).nhrp_shortcuts(), f"{x} already has shortcuts: {lab.node(x).nhrp_shortcuts()}"
    return f"no shortcut between {a} and {b}"


def path_via(lab: Lab, src: str, dst: str, through: str) -> str:
    __tracebackhide__ = True
    path = lab.path(src, dst)
    assert path.reached, f"{dst} not reached from {src}: {path}"
    assert path.crosses(through), f"path {src}->{dst} should cross {through}: {path}"
    return f"path {path}"


def path_direct(lab: Lab, src: str, dst: str, avoid: str, timeout: float = 120.0) -> str:
    __tracebackhide__ = True

    def direct():
        path = lab.path(src, dst)
        return path if path.reached and not path.crosses(avoid) else None

    path = wait_until(direct, timeout, f"path {src}->{dst} to stop crossing {avoid}",
                      state=lambda: str(lab.path(src, dst)))
    return f"path {path}"


def _host_behind(lab: Lab, router: str) -> str | None:
    for link in lab.topology.links:
        a, b = link.endpoints
        for r, h in ((a, b), (b, a)):
            if r.node == router and lab.topology.nodes[h.node].role == "host":
                return h.node
    return None


def shortcut_established(lab: Lab, a: str, b: str, timeout: float = 120.0) -> str:
    """Both spokes resolved each other (NHRP shortcut entries) and hold a spoke-to-spoke SA.

    The SA comes from a trap policy: it is negotiated when GRE first flows between the two
    NBMA addresses, so traffic between the hosts behind the spokes is kept flowing while waiting.
    """
    __tracebackhide__ = True
    ha, hb = _host_behind(lab, a), _host_behind(lab, b)

    def traffic() -> None:
        if ha and hb:
            lab.ping(ha, hb, timeout=0.5)
    for x, y in ((a, b), (b, a)):
        wait_until(lambda x=x, y=y: traffic() or _shortcut_to(lab, x, y), timeout,
                   f"{x} to resolve {y} (NHRP shortcut)", state=lambda x=x: lab.node(x).nhrp_cache())
        wait_until(lambda x=x: traffic() or lab.node(x).nhrp_shortcuts(), timeout, f"{x} to list a shortcut route",
                   state=lambda x=x: lab.node(x).nhrp_shortcuts())
    wait_until(lambda: traffic() or transport_gre_sa(lab, a, b), timeout, f"spoke-to-spoke SA {a}<->{b}")
    transport_gre_sa(lab, b, a)
    short = lab.node(a).nhrp_shortcuts()
    return f"{a} and {b} resolved each other; {a} shortcuts: " + ", ".join(f"{s.prefix} via {s.via}" for s in short) \
        + f"; SA {a}<->{b} INSTALLED"


def no_cleartext_gre(lab: Lab, src: str, dst: str, count: int = 5) -> str:
    """Traffic between two hosts crosses the underlay as ESP only: no cleartext GRE on the wire."""
    __tracebackhide__ = True
    with lab.capture(lab.topology.dmvpn.underlay) as cap:
        for _ in range(count):
            lab.path(src, dst, max_hops=8)
    counts = cap.counts()
    assert counts.get("gre", 0) == 0, f"{counts['gre']} cleartext GRE packets crossed the underlay: {dict(counts)}"
    assert counts.get("esp", 0) + counts.get("nat-t", 0) > 0, f"no ESP on the underlay during traffic: {dict(counts)}"
    return f"underlay capture: {counts.get('esp', 0)} ESP, {counts.get('gre', 0)} cleartext GRE"


def igp_adjacencies(lab: Lab) -> str:
    """Phase 1: the hub is fully adjacent to every spoke, and each spoke to the hub only."""
    __tracebackhide__ = True
    dm = lab.topology.dmvpn
    hub = lab.topology.hubs()[0].name
    hub_tun = _tunnel(lab, hub)
    seen = {n.address: n for n in lab.node(hub).igp_neighbours()}
    for spoke in lab.topology.spokes():
        n = seen.get(_tunnel(lab, spoke.name))
        assert n is not None and n.full, f"{hub} has no full {dm.protocol} adjacency with {spoke.name}: {list(seen.values())}"
        mine = lab.node(spoke.name).igp_neighbours()
        assert [(m.address, m.full) for m in mine] == [(hub_tun, True)], \
            f"{spoke.name} should be adjacent to {hub} only: {mine}"
    return f"{dm.protocol.upper()}: {hub} adjacent to " + ", ".join(s.name for s in lab.topology.spokes())


def hub_and_spoke_only(lab: Lab, a: str, b: str, rounds: int = 5) -> str:
    """Phase 1: after traffic between the spokes' hosts, it still crosses the hub: no NHRP resolution,
    no shortcut and no spoke-to-spoke SA ever appear."""
    __tracebackhide__ = True
    ha, hb = _host_behind(lab, a), _host_behind(lab, b)
    assert ha and hb, f"{a} and {b} need a host behind each"
    for _ in range(rounds):
        path_via(lab, ha, hb, lab.topology.hubs()[0].name)
    no_shortcut(lab, a, b)
    for x, y in ((a, b), (b, a)):
        try:
            ike, _ = transport_gre_sa(lab, x, y)
        except AssertionError:
            continue
        raise AssertionError(f"{x} negotiated a spoke-to-spoke SA with {y} in phase 1: {ike}")
    return f"{ha}->{hb} crossed the hub {rounds} times; no shortcut, no {a}<->{b} SA"


def summary_only(lab: Lab, spoke: str) -> str:
    """Phase 3: ``spoke`` routes the hub's summary via the hub and has no route to another spoke's LAN."""
    __tracebackhide__ = True
    summary = lab.topology.summary()
    hub = _tunnel(lab, lab.topology.hubs()[0].name)
    routes = {r.dst: r for r in lab.node(spoke).routes()}
    assert summary in routes and routes[summary].gateway == hub, \
        f"{spoke} has no route to the summary {summary} via the hub {hub}: {sorted(map(str, routes))}"
    others = [lan for s in lab.topology.spokes() if s.name != spoke for lan in lab.topology.lans(s.name)]
    leaked = [str(lan) for lan in others if lan in routes]
    assert not leaked, f"{spoke} has routes to other spokes' LANs {leaked}: the hub should send only {summary}"
    return f"{spoke}: {summary} via {hub}, no remote spoke LAN"


def nhrp_route(lab: Lab, spoke: str, other: str) -> str:
    """Phase 3: after the redirect, ``spoke`` routes ``other``'s LAN via ``other`` with an NHRP route."""
    __tracebackhide__ = True
    via = _tunnel(lab, other)
    routes = {r.dst: r for r in lab.node(spoke).routes()}
    found = []
    for lan in lab.topology.lans(other):
        r = routes.get(lan)
        assert r is not None and r.proto == "nhrp" and r.gateway == via, \
            f"{spoke} has no NHRP route to {lan} via {via}: {routes.get(lan)}"
        found.append(f"{lan} via {via} dev {r.dev}")
    return f"{spoke}: NHRP route " + ", ".join(found)


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str


def dmvpn_suite(lab: Lab) -> list[tuple[str, Callable[[], str]]]:
    """The ordered checks ``labkit run`` applies to a DMVPN lab (a shortcut's lifecycle included)."""
    spokes = [s.name for s in lab.topology.spokes()]
    hub = lab.topology.hubs()[0].name
    behind = {s: h for s in spokes if (h := _host_behind(lab, s))}
    checks = [("spokes registered at the hub", lambda: spokes_registered(lab))]
    if lab.topology.dmvpn.ipsec.enabled:
        checks.append(("hub-spoke IPsec", lambda: hub_spoke_ipsec(lab)))
    if lab.topology.dmvpn.igp:
        checks.append((f"{lab.topology.dmvpn.protocol.upper()} adjacencies", lambda: igp_adjacencies(lab)))
    if lab.topology.dmvpn.phase == 1 and len(spokes) >= 2 and spokes[0] in behind and spokes[1] in behind:
        s1, s2 = spokes[:2]
        h1, h2 = behind[s1], behind[s2]
        checks += [(f"{h1}->{h2} crosses the hub", lambda: path_via(lab, h1, h2, hub)),
                   (f"{s1}<->{s2} stays hub-and-spoke", lambda: hub_and_spoke_only(lab, s1, s2))]
        if lab.topology.dmvpn.ipsec.enabled:
            checks.append(("no cleartext GRE on the underlay", lambda: no_cleartext_gre(lab, h1, h2)))
    elif len(spokes) >= 2 and spokes[0] in behind and spokes[1] in behind:
        s1, s2 = spokes[:2]
        h1, h2 = behind[s1], behind[s2]
        phase3 = lab.topology.summary() is not None
        checks += [(f"{s1} has only the hub's summary", lambda: summary_only(lab, s1))] if phase3 else []
        checks += [
            (f"no shortcut {s1}<->{s2} before traffic", lambda: no_shortcut(lab, s1, s2)),
            (f"{h1}->{h2} crosses the hub", lambda: path_via(lab, h1, h2, hub)),
            (f"shortcut {s1}<->{s2} after traffic", lambda: shortcut_established(lab, s1, s2)),
        ]
        checks += [(f"{s1} routes {s2}'s LAN by NHRP", lambda: nhrp_route(lab, s1, s2))] if phase3 else []
        checks += [(f"{h1}->{h2} goes direct", lambda: path_direct(lab, h1, h2, hub))]
        if lab.topology.dmvpn.ipsec.enabled:
            checks.append(("no cleartext GRE on the underlay", lambda: no_cleartext_gre(lab, h1, h2)))
    return checks


def run_suite(checks) -> list[CheckResult]:
    results = []
    for name, fn in checks:
        try:
            results.append(CheckResult(name, True, fn()))
        except AssertionError as exc:
            results.append(CheckResult(name, False, str(exc)))
    return results
