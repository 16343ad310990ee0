"""The named checks an exercise grades with, built on labkit's probes.

Each check takes the lab and its arguments, returns a one-line description of what it saw
when the property holds, and raises ``AssertionError`` naming what it found when it does not
(the contract of :mod:`labkit.checks`). The grader polls each one until it holds or its
timeout ends, so a check that needs traffic sends it on every poll.

Register a check with :func:`check`; ``exercise.yaml`` names it in ``checks[].check`` and
passes ``args``. Parameters listed in ``nodes`` name lab nodes and are validated against the
exercise's topology.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from .. import checks as dmvpn_checks
from ..probes import tcp

if TYPE_CHECKING:
    from ..lab import Lab


@dataclass(frozen=True)
class LibraryCheck:
    name: str
    fn: Callable[..., str]
    template: str  # the default title, formatted with the check's arguments
    nodes: tuple[str, ...]
    timeout: float  # seconds the grader polls before it calls the check failed

    def title(self, args: dict) -> str:
        defaults = {k: p.default for k, p in inspect.signature(self.fn).parameters.items()
                    if p.default is not inspect.Parameter.empty}
        values = {k: " ".join(map(str, v)) if isinstance(v, (list, tuple)) else v for k, v in {**defaults, **args}.items()}
        return self.template.format(**values)

    @property
    def signature(self) -> str:
        params = list(inspect.signature(self.fn).parameters.values())[1:]
        return "(" + ", ".join(str(p) for p in params) + ")"


LIBRARY: dict[str, LibraryCheck] = {}


def check(name: str, template: str, nodes: tuple[str, ...] = (), timeout: float = 30.0):
    """Register ``fn(lab, **args) -> str`` as the check ``name``."""

    def register(fn: Callable[..., str]) -> Callable[..., str]:
        LIBRARY[name] = LibraryCheck(name, fn, template, nodes, timeout)
        return fn

    return register


def _tunnel(lab: "Lab", node: str):
    addr = lab.topology.nodes[node].tunnel_address
    assert addr is not None, f"{node} is not in the DMVPN"
    return addr


def _hub(lab: "Lab") -> str:
    return lab.topology.hubs()[0].name


def _host_behind(lab: "Lab", router: str) -> str | None:
    return dmvpn_checks._host_behind(lab, router)


@check("registered", "{spoke} is registered at the hub", nodes=("spoke",), timeout=60.0)
def registered(lab: "Lab", spoke: str) -> str:
    """The hub maps ``spoke``'s tunnel address to its (public) NBMA address, and ``spoke`` has heard its NHS."""
    hub = _hub(lab)
    tun, public = _tunnel(lab, spoke), lab.topology.public_nbma(spoke)
    cache = lab.node(hub).nhrp_cache()
    entry = next((e for e in cache if e.protocol == tun and e.type == "dynamic"), None)
    assert entry is not None, f"{hub} has no registration of {tun}: its cache holds " \
        + (", ".join(f"{e.protocol}->{e.nbma} ({e.type})" for e in cache) or "nothing")
    assert entry.nbma == public, f"{hub} maps {tun} to {entry.nbma}, expected {public}"
    hub_tun = _tunnel(lab, hub)
    nhs = lab.node(spoke).nhrp_nhs()
    assert any(n.protocol == hub_tun for n in nhs), \
        f"{spoke}'s NHS has not answered (its NHS list: {[(str(n.nbma), str(n.protocol)) for n in nhs]})"
    return f"{hub} maps {tun} to NBMA {entry.nbma}; {spoke}'s NHS {hub_tun} answered"


@check("ping", "{src} reaches {dst}", nodes=("src", "dst"), timeout=30.0)
def ping(lab: "Lab", src: str, dst: str) -> str:
    """One ICMP echo from ``src`` to ``dst`` is answered (the first one on a new IPsec path may be lost)."""
    assert lab.ping(src, dst, timeout=1.0), f"no echo reply from {dst} ({lab.address_of(dst)}) to {src}"
    return f"{src} -> {dst} ({lab.address_of(dst)}): echo answered"


@check("ipsec_sa", "IPsec protects GRE between {a} and {b}", nodes=("a", "b"), timeout=60.0)
def ipsec_sa(lab: "Lab", a: str, b: str) -> str:
    """Both ends hold an ESTABLISHED IKE SA and an INSTALLED transport-mode CHILD SA over GRE."""
    ike, child = dmvpn_checks.transport_gre_sa(lab, a, b)
    dmvpn_checks.transport_gre_sa(lab, b, a)
    return f"{a} {ike.local_host} <-> {b} {ike.remote_host}: IKE {ike.state}, CHILD {child.state} " \
        f"{child.mode.lower()}" + (" in UDP (NAT-T)" if child.encap else "")


@check("nat_t", "{spoke}'s ESP to the hub is UDP-encapsulated (NAT-T)", nodes=("spoke",), timeout=60.0)
def nat_t(lab: "Lab", spoke: str) -> str:
    """``spoke``'s CHILD SA towards the hub runs ESP in UDP 4500, as a spoke behind NAT must."""
    _, child = dmvpn_checks.transport_gre_sa(lab, spoke, _hub(lab))
    assert child.encap, f"{spoke}'s CHILD SA to the hub is plain ESP, not UDP-encapsulated"
    return f"{spoke}'s CHILD SA {child.name} is ESP in UDP"


@check("bgp_session", "BGP session {a} <-> {b} is Established", nodes=("a", "b"), timeout=45.0)
def bgp_session(lab: "Lab", a: str, b: str) -> str:
    """``a`` has an Established BGP session with ``b``'s tunnel address."""
    peers = lab.node(a).bgp_peers()
    state = peers.get(str(_tunnel(lab, b)))
    assert state == "Established", f"{a}'s session with {b} ({_tunnel(lab, b)}) is {state or 'not configured'}; " \
        f"{a}'s peers: {peers or 'none'}"
    return f"{a} <-> {b} ({_tunnel(lab, b)}) Established"


@check("shortcut", "after traffic, {a} reaches {b} by an NHRP shortcut", nodes=("a", "b"), timeout=60.0)
def shortcut(lab: "Lab", a: str, b: str) -> str:
    """Traffic between the hosts behind ``a`` and ``b``; then ``a`` has resolved ``b`` and routes by a shortcut via it."""
    ha, hb = _host_behind(lab, a), _host_behind(lab, b)
    if ha and hb:
        lab.ping(ha, hb, timeout=0.5)
    via = _tunnel(lab, b)
    nbmas = {lab.topology.nbma(b).address.ip, lab.topology.public_nbma(b)}
    cache = lab.node(a).nhrp_cache()
    assert any(e.protocol == via and e.type in ("dynamic", "cached") and e.nbma in nbmas for e in cache), \
        f"{a} has not resolved {b} ({via}); its cache: " + ", ".join(f"{e.protocol}->{e.nbma} ({e.type})" for e in cache)
    short = [s for s in lab.node(a).nhrp_shortcuts() if s.via == via]
    assert short, f"{a} resolved {b} but routes no shortcut via {via}: {lab.node(a).nhrp_shortcuts()}"
    return f"{a}: " + ", ".join(f"{s.prefix} via {s.via}" for s in short)


@check("path_direct", "traffic {src} -> {dst} does not cross {avoid}", nodes=("src", "dst", "avoid"), timeout=60.0)
def path_direct(lab: "Lab", src: str, dst: str, avoid: str) -> str:
    """The hop-by-hop path from ``src`` reaches ``dst`` without crossing ``avoid`` (the trace is itself traffic)."""
    path = lab.path(src, dst)
    assert path.reached, f"{dst} is not reached: {path}"
    assert not path.crosses(avoid), f"the path crosses {avoid}: {path}"
    return f"path {path}"


@check("tcp_transfer", "{size} bytes of TCP cross from {src} to {dst}", nodes=("src", "dst"), timeout=40.0)
def tcp_transfer(lab: "Lab", src: str, dst: str, size: int = 300000) -> str:
    """A bulk TCP transfer of full-size segments arrives whole (a path MTU black hole stalls it)."""
    result = tcp.transfer(lab.runtime.pid(src), lab.runtime.pid(dst), str(lab.address_of(dst)), size, timeout=12.0)
    assert result.ok, f"{src} -> {dst}: {result}"
    return f"{src} -> {dst}: {result}"


@check("iptables_rule", "{node} keeps its rule: {chain} {rule}", nodes=("node",), timeout=5.0)
def iptables_rule(lab: "Lab", node: str, chain: str, rule: list, table: str = "filter") -> str:
    """``node``'s ``table``/``chain`` still holds ``rule`` (``iptables -C``): a policy a fix must not remove."""
    res = lab.node(node).exec("iptables", "-w", "-t", table, "-C", chain, *map(str, rule))
    assert res.ok, f"{node} no longer has '{' '.join(map(str, rule))}' in {table}/{chain}: {res.stderr.strip()}"
    return f"{node}: {table}/{chain} {' '.join(map(str, rule))}"
