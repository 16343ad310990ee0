"""``labkit graph``: draw a topology as Graphviz (DOT, SVG, PNG) or Mermaid.

:func:`describe` reads the model once into a neutral :class:`Drawing` (boxes, edges, clusters);
``labkit.graph_render`` writes it as DOT or Mermaid, so both show the same things:

- every node with its name and role (a shape and colour per role), segments as small boxes;
- the underlay: a node's attachment to a segment, labelled with its interface and address; a
  point-to-point link, labelled with each end's interface and address and the link's prefix;
- the overlay, dashed: each DMVPN spoke registering with each hub (tunnel interface, tunnel
  network, "IPsec" when ESP protects GRE), dotted "shortcut (on demand)" edges between spokes in
  phase 2 and 3; a ``tunnel`` section's tunnel between its two routers, with its encapsulation;
- NAT boundaries: each NAT box with what sits behind it (its inside) in one cluster, its outside
  interface labelled.

Everything comes out in file order, so the text is stable and tests compare it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import LabkitError, PrerequisiteError
from .model import Topology

RENDER_FORMATS = ("svg", "png")
FORMATS = ("png", "svg", "dot", "mermaid")  # what ``labkit graph --format`` takes
SUFFIX = {"png": ".png", "svg": ".svg", "dot": ".dot", "mermaid": ".mmd"}
DOT_TIMEOUT = 60.0  # seconds; a lab's graph takes dot a fraction of one


@dataclass(frozen=True)
class Box:
    """A drawn node: a lab node (``kind`` is its role) or a segment (``kind`` "segment")."""

    id: str
    kind: str
    lines: tuple[str, ...]  # the label, first line the name


@dataclass(frozen=True)
class Edge:
    """A drawn edge. ``kind``: member (segment to node), link, registration, shortcut, tunnel."""

    a: str
    b: str
    kind: str
    lines: tuple[str, ...] = ()  # the label in the middle
    a_end: tuple[str, ...] = ()  # the label at a's end (interface and address)
    b_end: tuple[str, ...] = ()


@dataclass(frozen=True)
class Cluster:
    """A group drawn as one frame: a NAT box and everything on its inside."""

    id: str
    lines: tuple[str, ...]
    members: tuple[str, ...]  # box ids, in file order


@dataclass(frozen=True)
class Drawing:
    name: str
    title: tuple[str, ...]
    boxes: tuple[Box, ...]
    edges: tuple[Edge, ...]
    clusters: tuple[Cluster, ...]


def segment_id(name: str) -> str:
    return f"seg:{name}"


def nat_inside(topo: Topology, nat: str) -> tuple[list[str], list[str]]:
    """What sits behind NAT box ``nat``: ``(nodes, segments)`` reached from its inside interfaces.

    The walk starts on every interface of the NAT box but its outside one and never crosses the
    DMVPN underlay, the outside's network or another NAT box. Spokes the model places behind
    ``nat`` (:meth:`Topology.nat_of`) are always part of it. Both lists are in file order.
    """
    try:
        outside = topo.outside(nat)
    except LookupError:
        return [], []
    barrier = {topo.dmvpn.underlay} if topo.dmvpn else set()
    barrier |= {s.name for s in topo.segments if outside in s.members}
    nodes, segs, todo = {nat}, set(), [nat]
    while todo:
        here = todo.pop(0)
        for link in topo.links:
            ends = [ep.node for ep in link.endpoints]
            if here in ends and outside not in link.endpoints:
                todo += [n for n in ends if n not in nodes and topo.nodes[n].role != "nat"]
                nodes.update(n for n in ends if topo.nodes[n].role != "nat")
        for seg in topo.segments:
            if seg.name in barrier or not any(ep.node == here for ep in seg.members):
                continue
            segs.add(seg.name)
            for ep in seg.members:
                if ep.node not in nodes and topo.nodes[ep.node].role != "nat":
                    nodes.add(ep.node)
                    todo.append(ep.node)
    nodes |= {n.name for n in topo.spokes() if (behind := topo.nat_of(n.name)) and behind[1].name == nat}
    nodes.discard(nat)
    return [n for n in topo.nodes if n in nodes], [s.name for s in topo.segments if s.name in segs]


def _box(topo: Topology, name: str) -> Box:
    node, dm, tun = topo.nodes[name], topo.dmvpn, topo.tunnel
    lines = [name, node.role]
    if dm and node.in_dmvpn and node.tunnel_address:
        lines.append(f"{dm.ifname} {node.tunnel_address}")
        behind = topo.nat_of(name) if node.role == "spoke" else None
        if behind:
            lines.append(f"NBMA {topo.nbma(name).address.ip}, seen as {topo.public_nbma(name)}")
    if tun and name in tun.between:
        inner = tun.inner_address(name)
        if inner:
            lines.append(f"{tun.ifname} {inner}")
        if tun.loopbacks:
            lines.append(f"lo {tun.outer_address(name)}")
    if node.role == "nat":
        try:
            lines.append(f"MASQUERADE out {topo.outside(name).ifname}")
        except LookupError:
            pass
    return Box(name, node.role, tuple(lines))


def _end(ep, side: str = "") -> tuple[str, ...]:
    return (f"{ep.ifname}{f' ({side})' if side else ''}", str(ep.address))


def _side(topo: Topology, ep, outsides: dict) -> str:
    """'outside' or 'inside' for a NAT box's interfaces, '' for everyone else's."""
    if topo.nodes[ep.node].role != "nat":
        return ""
    return "outside" if outsides.get(ep.node) == ep else "inside"


def _title(topo: Topology) -> tuple[str, ...]:
    dm, tun = topo.dmvpn, topo.tunnel
    if dm:
        what = f"DMVPN phase {dm.phase}, {dm.protocol.upper()}" + (f" AS {dm.asn}" if dm.protocol == "bgp" else "")
        what += ", IPsec (ESP transport)" if dm.ipsec.enabled else ", no IPsec"
        return topo.name, what
    if tun:
        return topo.name, f"site-to-site tunnel: {tun.label}"
    return (topo.name,)


def describe(topo: Topology) -> Drawing:
    """The drawing of ``topo``: what :func:`to_dot` and :func:`to_mermaid` write, in file order."""
    outsides = {}
    for n in topo.nodes.values():
        if n.role == "nat":
            try:
                outsides[n.name] = topo.outside(n.name)
            except LookupError:
                pass
    dm = topo.dmvpn
    boxes = [_box(topo, name) for name in topo.nodes]
    for seg in topo.segments:
        extra = ("DMVPN underlay (NBMA)",) if dm and seg.name == dm.underlay else ()
        boxes.append(Box(segment_id(seg.name), "segment", (seg.name, str(seg.prefix), *extra)))
    edges = [Edge(segment_id(seg.name), ep.node, "member", b_end=_end(ep, _side(topo, ep, outsides)))
             for seg in topo.segments for ep in seg.members]
    for link in topo.links:
        a, b = link.endpoints
        edges.append(Edge(a.node, b.node, "link", (str(link.prefix),), _end(a, _side(topo, a, outsides)),
                          _end(b, _side(topo, b, outsides))))
    if dm:
        for spoke in topo.spokes():
            ipsec = "IPsec" + (" (NAT-T)" if topo.nat_of(spoke.name) else "") if dm.ipsec.enabled else ""
            for hub in topo.hubs():
                lines = (f"{dm.ifname} {dm.network}", "NHRP registration", ipsec)
                edges.append(Edge(spoke.name, hub.name, "registration", tuple(x for x in lines if x)))
        if dm.phase in (2, 3):
            spokes = [s.name for s in topo.spokes()]
            edges += [Edge(a, b, "shortcut", ("shortcut (on demand)",))
                      for i, a in enumerate(spokes) for b in spokes[i + 1:]]
    tun = topo.tunnel
    if tun:
        lines = [f"{tun.ifname} {tun.network}" if tun.network else "", tun.label]
        if tun.loopbacks:
            lines.append(f"between loopbacks {tun.loopbacks[0]} and {tun.loopbacks[1]}")
        edges.append(Edge(tun.between[0], tun.between[1], "tunnel", tuple(x for x in lines if x)))
    clusters = []
    for nat, out in outsides.items():
        nodes, segs = nat_inside(topo, nat)
        if nodes or segs:
            members = (nat, *nodes, *(segment_id(s) for s in segs))
            label = (f"behind {nat} (NAT): inside, private", f"outside: {out.ifname} {out.address.ip}")
            clusters.append(Cluster(f"nat_{nat}", label, members))
    return Drawing(topo.name, _title(topo), tuple(boxes), tuple(edges), tuple(clusters))


def to_dot(topo: Topology) -> str:
    """The topology as a Graphviz DOT digraph (text, stable for a given topology)."""
    from .graph_render import dot

    return dot(describe(topo))


def to_mermaid(topo: Topology) -> str:
    """The topology as a Mermaid ``flowchart LR`` (text, stable for a given topology)."""
    from .graph_render import mermaid

    return mermaid(describe(topo))


def render(topo: Topology, fmt: str, timeout: float = DOT_TIMEOUT) -> bytes:
    """The topology drawn by Graphviz: ``fmt`` "svg" or "png".

    Raises:
        PrerequisiteError: Graphviz's ``dot`` is not installed.
        LabkitError: an unknown format, or ``dot`` failed or did not finish within ``timeout``.
    """
    if fmt not in RENDER_FORMATS:
        raise LabkitError(f"format {fmt!r} is not supported. Supported formats are {', '.join(RENDER_FORMATS)}")
    exe = shutil.which("dot")
    if exe is None:
        raise PrerequisiteError("drawing a topology as SVG or PNG needs Graphviz's 'dot', which is not installed: "
                                "apt-get install graphviz (scripts/setup.sh installs it); "
                                "'labkit graph --format dot' or '--format mermaid' need nothing")
    argv = [exe, f"-T{fmt}"]
    try:
        done = subprocess.run(argv, input=to_dot(topo).encode(), capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise LabkitError(f"{' '.join(argv)} did not finish within {timeout:.0f}s drawing {topo.name}") from None
    if done.returncode != 0 or not done.stdout:
        raise LabkitError(f"{' '.join(argv)} failed (exit code {done.returncode}) drawing {topo.name}: "
                          f"{done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def _summary(topo: Topology) -> str:
    overlay = f", DMVPN phase {topo.dmvpn.phase}" if topo.dmvpn else f", tunnel {topo.tunnel.encap}" if topo.tunnel else ""
    def count(n: int, noun: str) -> str:
        return f"{n} {noun}{'' if n == 1 else 's'}"

    return f"{count(len(topo.nodes), 'node')}, {count(len(topo.segments), 'segment')}, {count(len(topo.links), 'link')}{overlay}"


def cmd_graph(args) -> int:
    """``labkit graph DIR``: write the drawing to ``-o`` (default ``<name>.<ext>`` here; ``-`` is stdout)."""
    from .load import load

    topo = load(args.dir)
    fmt = args.format
    if fmt == "dot":
        data = to_dot(topo).encode()
    elif fmt == "mermaid":
        data = to_mermaid(topo).encode()
    else:
        data = render(topo, fmt)
    out = args.output or f"{topo.name}{SUFFIX[fmt]}"
    if out == "-":
        if fmt == "png" and sys.stdout.isatty():
            raise LabkitError("not writing a PNG to a terminal: give -o FILE, or pipe it")
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return 0
    Path(out).write_bytes(data)
    print(f"{out}: {topo.name} as {fmt} ({_summary(topo)})")
    return 0


def add_parser(sub):
    """Register ``labkit graph DIR [--format png|svg|dot|mermaid] [-o FILE]`` on argparse subparsers."""
    sp = sub.add_parser("graph", help="draw a topology: nodes, underlay, tunnels, NAT (PNG, SVG, DOT or Mermaid)")
    sp.add_argument("dir", help="a directory holding topology.yaml, or the topology file itself")
    sp.add_argument("--format", choices=FORMATS, default="png",
                    help="png (default) or svg (drawn by Graphviz), dot (Graphviz source) or mermaid (flowchart)")
    sp.add_argument("-o", "--output", default=None, metavar="FILE",
                    help="where to write (default: <topology name>.<png|svg|dot|mmd> in the current directory; "
                         "'-' for stdout)")
    sp.set_defaults(func=cmd_graph)
    return sp
