"""Load a topology file: YAML → schema check → semantic checks → :class:`~labkit.model.Topology`.

Every problem is collected with its file:line and field path; :class:`TopologyError` is raised
once, with all of them, before anything is created.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import Problem, TopologyError
from .model import Dmvpn, Endpoint, IPsec, Link, Node, Route, Segment, Topology

Path_ = tuple  # a field path: tuple of str keys and int indexes


def schema() -> dict:
    """The published JSON Schema of topology files."""
    text = resources.files("labkit.schema").joinpath("topology.schema.json").read_text()
    return json.loads(text)


def _to_python(node: yaml.Node, path: tuple, lines: dict, dups: list) -> Any:
    """Turn a composed YAML node into plain data, recording the line of every path.

    A key repeated in one mapping is recorded in ``dups`` as (path, first line, line):
    YAML loaders silently keep the last one, which hides mistakes.
    """
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node)) if key_node.tag != "tag:yaml.org,2002:str" else key_node.value
            line = key_node.start_mark.line + 1
            if key in out:
                dups.append((path + (key,), lines[path + (key,)], line))
            out[key] = _to_python(value_node, path + (key,), lines, dups)
            lines[path + (key,)] = line
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, path + (i,), lines, dups) for i, item in enumerate(node.value)]
    return yaml.safe_load(yaml.serialize(node))


def _fmt(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Collector:
    def __init__(self, file: str, lines: dict):
        self.file, self.lines, self.problems = file, lines, []

    def line_of(self, path: tuple) -> int | None:
        path = tuple(path)
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path)

    def add(self, path: tuple, message: str, hint: str = "") -> None:
        self.problems.append(Problem(self.file, self.line_of(path), _fmt(path), message, hint))


def unknown_fields(err) -> list[tuple[tuple, str, str]] | None:
    """For a JSON-schema "additionalProperties" error: (path, message, hint) per unknown key, with
    the closest allowed name; None for any other error. Shared by every YAML file labkit validates."""
    if err.validator != "additionalProperties" or not isinstance(err.instance, dict):
        return None
    where, allowed = tuple(err.absolute_path), sorted(err.schema.get("properties", {}))
    found = []
    for key in err.instance:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = (f"did you mean {close[0]!r}? " if close else "") + f"allowed fields here: {', '.join(allowed)}"
            found.append((where + (key,), f"unknown field {key!r}", hint))
    return found


def _schema_message(err: jsonschema.ValidationError) -> tuple[str, str]:
    """A readable message and hint for a schema error. A secret's value is never echoed."""
    if tuple(err.absolute_path)[-1:] == ("psk",):
        return "the pre-shared key is not acceptable (its value is not shown)", \
            "use at least 8 characters, without quotes, backslashes or spaces; or leave it out to have one generated"
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        return err.message, f"allowed fields here: {', '.join(allowed)}" if allowed else ""
    if err.validator == "enum":
        choices = ", ".join(repr(c) for c in err.validator_value)
        return f"{err.instance!r} is not supported", f"supported values are {choices}"
    if err.validator == "oneOf" and isinstance(err.instance, str):
        return f"{err.instance!r} is not a valid endpoint", "write 'node:ifname', e.g. 'hub:eth0'"
    if err.validator == "pattern":
        return f"{err.instance!r} does not have the expected form", f"expected to match {err.validator_value}"
    if err.validator == "required":
        return err.message, ""
    return err.message, ""


def load(path: str | Path) -> Topology:
    """Load and validate a topology file (or a directory holding ``topology.yaml``).

    Raises:
        TopologyError: with every problem found, each with file:line and field path.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "topology.yaml"
    if not path.exists():
        raise TopologyError([Problem(str(path), None, "", "file not found")])
    text = path.read_text()
    lines: dict = {}
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        message = f"YAML syntax error: {getattr(exc, 'problem', exc)}"
        context, cmark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and cmark is not None and cmark.line + 1 != line:
            message += f" ({context} started at line {cmark.line + 1})"
        raise TopologyError([Problem(str(path), line, "", message)]) from None
    dups: list = []
    data = _to_python(root, (), lines, dups) if root is not None else None
    col = _Collector(str(path), lines)
    for where, first, line in dups:
        col.problems.append(Problem(str(path), line, _fmt(where), f"duplicate key {where[-1]!r} (first at line {first})",
                                    "YAML would silently keep only the last one; rename or merge them"))
    if not isinstance(data, dict):
        col.add((), "the file must hold a mapping with at least 'name' and 'nodes'")
        raise TopologyError(col.problems)
    validator = jsonschema.Draft202012Validator(schema())
    found = []
    for err in validator.iter_errors(data):
        unknown = unknown_fields(err)
        found += unknown if unknown is not None else [(tuple(err.absolute_path), *_schema_message(err))]
    for where, message, hint in sorted(found, key=lambda f: col.line_of(f[0]) or 0):
        col.add(where, message, hint)
    if col.problems:
        raise TopologyError(col.problems)
    topo = _build(data, path, col)
    if col.problems:
        raise TopologyError(col.problems)
    return topo


def _net(value: str, col: _Collector, where: tuple) -> ipaddress.IPv4Network | None:
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        try:
            hint = f"host bits must be zero: did you mean {ipaddress.IPv4Network(value, strict=False)}?"
        except ValueError:
            hint = "write a network address and a prefix length, e.g. 10.0.1.0/24"
        col.add(where, f"{value!r} is not a valid IPv4 prefix: {exc}", hint)
        return None


def _addr(value: str, col: _Collector, where: tuple) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(value)
    except ValueError as exc:
        col.add(where, f"{value!r} is not a valid IPv4 address: {exc}")
        return None


def _endpoints(raw: list, prefix, nodes: dict, col: _Collector, where: tuple) -> list[Endpoint]:
    """Resolve endpoints; an endpoint without an address gets host number index+1 of the prefix."""
    out = []
    hosts = list(prefix.hosts()) if prefix else []
    for i, item in enumerate(raw):
        here = where + (i,)
        if isinstance(item, str):
            node, ifname = item.split(":", 1)
            explicit = None
        else:
            node, ifname, explicit = item["node"], item["ifname"], item.get("address")
        if node not in nodes:
            known = ", ".join(sorted(nodes))
            col.add(here, f"unknown node {node!r}", f"nodes defined in this file: {known}")
            continue
        if explicit:
            try:
                address = ipaddress.IPv4Interface(explicit)
            except ValueError as exc:
                col.add(here + ("address",), f"{explicit!r} is not a valid address: {exc}")
                continue
            if prefix and address.network != prefix:
                col.add(here + ("address",), f"{explicit} is not inside {prefix}", f"use an address of {prefix} with /{prefix.prefixlen}")
                continue
        elif prefix:
            if i >= len(hosts):
                col.add(here, f"{prefix} has no room for endpoint number {i + 1}", "use a larger prefix")
                continue
            address = ipaddress.IPv4Interface(f"{hosts[i]}/{prefix.prefixlen}")
        else:
            continue
        out.append(Endpoint(node, ifname, address))
    return out


def _build(data: dict, path: Path, col: _Collector) -> Topology:
    nodes_raw: dict = data["nodes"]
    nodes: dict[str, Node] = {}
    for name, raw in nodes_raw.items():
        where = ("nodes", name)
        routes = []
        for i, r in enumerate(raw.get("routes", [])):
            to = ipaddress.IPv4Network("0.0.0.0/0") if r["to"] == "default" else _net(r["to"], col, where + ("routes", i, "to"))
            via = _addr(r["via"], col, where + ("routes", i, "via"))
            if to is not None and via is not None:
                routes.append(Route(to, via))
        tun = raw.get("tunnel_address")
        tun_addr = _addr(tun, col, where + ("tunnel_address",)) if tun else None
        if tun and raw["role"] not in ("hub", "spoke"):
            col.add(where + ("tunnel_address",), f"a node with role {raw['role']!r} has no tunnel", "only hub and spoke nodes join the DMVPN")
        nodes[name] = Node(
            name=name,
            role=raw["role"],
            routes=tuple(routes),
            sysctls=tuple((k, str(v)) for k, v in raw.get("sysctls", {}).items()),
            tunnel_address=tun_addr,
            frr_extra=tuple(raw.get("frr_extra", {}).items()),
            swanctl_extra=raw.get("swanctl_extra", ""),
            image=raw.get("image"),
            outside=raw.get("outside"),
        )

    links = []
    for i, raw in enumerate(data.get("links", [])):
        where = ("links", i)
        prefix = _net(raw["prefix"], col, where + ("prefix",))
        eps = _endpoints(raw["endpoints"], prefix, nodes, col, where + ("endpoints",))
        if len(eps) == 2:
            name = raw.get("name") or f"{eps[0]}--{eps[1]}"
            if eps[0].node == eps[1].node:
                col.add(where + ("endpoints",), f"link joins node {eps[0].node!r} to itself")
            links.append(Link(name, prefix, (eps[0], eps[1])))

    segments = []
    for name, raw in data.get("segments", {}).items():
        where = ("segments", name)
        prefix = _net(raw["prefix"], col, where + ("prefix",))
        eps = _endpoints(raw["members"], prefix, nodes, col, where + ("members",))
        segments.append(Segment(name, prefix, tuple(eps)))

    _check_endpoints(links, segments, col)
    _check_overlaps(links, segments, col)
    used = {(ep.node, ep.ifname) for link in links for ep in link.endpoints} | {(ep.node, ep.ifname) for s in segments for ep in s.members}
    dmvpn = _build_dmvpn(data.get("dmvpn"), nodes, segments, col, used) if "dmvpn" in data else None
    if dmvpn:
        nodes = _assign_tunnel_addresses(nodes, dmvpn, col)
    _check_roles(nodes, dmvpn, col, has_section="dmvpn" in data)
    tunnel = None
    if "tunnel" in data:
        from .load_tunnel import build_tunnel

        if "dmvpn" in data:
            col.add(("tunnel",), "a topology has either a dmvpn or a tunnel section, not both",
                    "split it into two topologies")
        tunnel = build_tunnel(data["tunnel"], nodes, links, col)
    topo = Topology(
        name=data["name"], source=path, nodes=nodes, links=tuple(links), segments=tuple(segments),
        dmvpn=dmvpn, description=data.get("description", ""), tunnel=tunnel,
    )
    if tunnel is not None:
        from .load_tunnel import check_lans

        check_lans(tunnel, topo, col)
    _check_attachment(topo, used, col)
    if dmvpn is not None and dmvpn.summary is not None and dmvpn.underlay in {s.name for s in segments}:
        for n in nodes.values():
            for lan in topo.lans(n.name) if n.in_dmvpn else ():
                if not lan.subnet_of(dmvpn.summary):
                    col.add(("dmvpn", "routing", "summary"), f"the summary {dmvpn.summary} does not cover {lan}, "
                            f"a LAN of {n.name}", "widen the summary, or leave it out to have it computed")
    return topo


def _check_overlaps(links, segments, col: _Collector) -> None:
    """Two links or segments whose prefixes overlap would route ambiguously: name both."""
    seen: list[tuple[ipaddress.IPv4Network, str]] = []
    places = [(("links", i, "prefix"), l.prefix) for i, l in enumerate(links)]
    places += [(("segments", s.name, "prefix"), s.prefix) for s in segments]
    for where, prefix in places:
        if prefix is None:
            continue
        for other, at in seen:
            if prefix.overlaps(other):
                col.add(where, f"prefix {prefix} overlaps {other} (at {at})", "give each link and segment its own subnet")
                break
        seen.append((prefix, _fmt(where)))


def _check_endpoints(links, segments, col: _Collector) -> None:
    seen_if: dict[tuple[str, str], str] = {}
    seen_ip: dict[ipaddress.IPv4Address, str] = {}
    places = [(("links", i, "endpoints", j), ep) for i, l in enumerate(links) for j, ep in enumerate(l.endpoints)]
    places += [(("segments", s.name, "members", j), ep) for s in segments for j, ep in enumerate(s.members)]
    for where, ep in places:
        key = (ep.node, ep.ifname)
        if key in seen_if:
            col.add(where, f"interface {ep} is used twice (also at {seen_if[key]})", "give each attachment its own ifname")
        else:
            seen_if[key] = _fmt(where)
        if ep.address.ip in seen_ip:
            col.add(where, f"address {ep.address.ip} is assigned twice (also at {seen_ip[ep.address.ip]})")
        else:
            seen_ip[ep.address.ip] = _fmt(where)


# FRR's eigrpd accepts packets only from its interface's subnet (a point-to-point interface
# aside), and nhrpd only works with a host (/32) tunnel address: the two cannot meet on a DMVPN
# tunnel. topologies/dmvpn_phase1 shows it on live daemons.
EIGRP_LIMIT = ("EIGRP cannot run over an NHRP tunnel with FRR: nhrpd needs a /32 tunnel address and eigrpd "
               "drops every packet from outside its interface's subnet (see docs/dmvpn.md, phase 1)")

def _build_dmvpn(raw: dict, nodes: dict, segments: list, col: _Collector, used: set = frozenset()) -> Dmvpn | None:
    where = ("dmvpn",)
    names = [s.name for s in segments]
    if raw["underlay"] not in names:
        col.add(where + ("underlay",), f"underlay {raw['underlay']!r} is not a segment of this topology",
                f"segments defined: {', '.join(names) or 'none'}")
    network = _net(raw["tunnel"]["network"], col, where + ("tunnel", "network"))
    if network is None:
        return None
    nhrp, routing, ipsec_raw = raw.get("nhrp", {}), raw.get("routing", {}), raw.get("ipsec", {})
    props = ipsec_raw.get("proposals", {})
    default = IPsec()
    ipsec = IPsec(
        enabled=ipsec_raw.get("enabled", True),
        ike_proposals=tuple(props.get("ike", default.ike_proposals)),
        esp_proposals=tuple(props.get("esp", default.esp_proposals)),
        psk=ipsec_raw.get("psk"),
        inactivity=ipsec_raw.get("inactivity"),
        mode=ipsec_raw.get("mode", "trap"),
    )
    dm = Dmvpn(
        underlay=raw["underlay"], network=network,
        ifname=raw["tunnel"].get("ifname", "gre1"), key=raw["tunnel"].get("key", 42),
        network_id=nhrp.get("network_id", 1), holdtime=nhrp.get("holdtime", 60),
        authentication=nhrp.get("authentication"), phase=raw.get("phase", 2),
        protocol=routing.get("protocol", "bgp"), asn=routing.get("asn", 65000), ipsec=ipsec,
        summary=_net(routing["summary"], col, where + ("routing", "summary")) if "summary" in routing else None,
    )
    if dm.summary is not None and dm.phase != 3:
        col.add(where + ("routing", "summary"), f"a summary applies to phase 3 only; this DMVPN is phase {dm.phase}",
                "set dmvpn.phase: 3, or remove the summary")
    if dm.protocol == "eigrp":
        col.add(where + ("routing", "protocol"), EIGRP_LIMIT, "use protocol: ospf (phase 1) or bgp")
    if dm.phase == 1 and not dm.igp:
        col.add(where + ("routing", "protocol"), f"phase 1 runs OSPF over the tunnel, not {dm.protocol}",
                "set dmvpn.routing.protocol: ospf")
    elif dm.phase != 1 and dm.protocol == "ospf":
        col.add(where + ("routing", "protocol"), f"{dm.protocol} is supported with phase 1 only; phase {dm.phase} "
                "labs route with BGP", "set dmvpn.routing.protocol: bgp, or dmvpn.phase: 1")
    return dm


def _check_attachment(topo: Topology, used: set, col: _Collector) -> None:
    """Hubs sit on the underlay; spokes on it or behind a NAT box; NAT boxes have an outside."""
    dm = topo.dmvpn
    if dm is None or dm.underlay not in {s.name for s in topo.segments}:
        return
    members = {ep.node for ep in topo.segment(dm.underlay).members}
    for node in topo.nodes.values():
        if node.role == "nat":
            try:
                topo.outside(node.name)
            except LookupError:
                col.add(("nodes", node.name, "outside") if node.outside else ("nodes", node.name, "role"),
                        f"NAT box {node.name!r} has no outside interface"
                        + (f" {node.outside!r}" if node.outside else f" on the underlay {dm.underlay!r}"),
                        f"attach it to segments.{dm.underlay} or set outside: to one of its interfaces")
        if not node.in_dmvpn or node.name in members or (node.role == "spoke" and topo.nat_of(node.name)):
            continue
        ifname = next(f"eth{i}" for i in range(len(used) + 1) if (node.name, f"eth{i}") not in used)
        col.add(("nodes", node.name, "role"), f"{node.role} {node.name!r} is not attached to the underlay segment {dm.underlay!r}"
                + (" nor behind a NAT box" if node.role == "spoke" else ""),
                f"add '{node.name}:{ifname}' to segments.{dm.underlay}.members"
                + (", or link it to a node with role: nat" if node.role == "spoke" else ""))


def _assign_tunnel_addresses(nodes: dict, dm: Dmvpn, col: _Collector) -> dict:
    """Hubs first, then spokes, in file order, take .1, .2, ... of the tunnel network."""
    taken = {n.tunnel_address for n in nodes.values() if n.tunnel_address}
    for n in nodes.values():
        if n.tunnel_address and n.tunnel_address not in dm.network:
            col.add(("nodes", n.name, "tunnel_address"), f"{n.tunnel_address} is not inside the tunnel network {dm.network}")
    free = (h for h in dm.network.hosts() if h not in taken)
    order = [n for n in nodes.values() if n.role == "hub"] + [n for n in nodes.values() if n.role == "spoke"]
    out = dict(nodes)
    for n in order:
        if n.tunnel_address is None:
            address = next(free, None)
            if address is None:
                col.add(("dmvpn", "tunnel", "network"), f"{dm.network} has no free address left for {n.role} {n.name!r}",
                        "use a larger tunnel network")
                continue
            out[n.name] = Node(**{**n.__dict__, "tunnel_address": address})
    return out


def _check_roles(nodes: dict, dmvpn: Dmvpn | None, col: _Collector, has_section: bool = False) -> None:
    hubs = [n for n in nodes.values() if n.role == "hub"]
    spokes = [n for n in nodes.values() if n.role == "spoke"]
    if (hubs or spokes) and dmvpn is None and not has_section:
        col.add(("dmvpn",), "hub and spoke nodes need a 'dmvpn' section", "add dmvpn: {underlay: ..., tunnel: {network: ...}}")
    if dmvpn is not None and not hubs:
        col.add(("nodes",), "a DMVPN needs exactly one hub, found none", "set role: hub on one node")
    elif dmvpn is not None and len(hubs) > 1:
        names = ", ".join(repr(n.name) for n in hubs)
        col.add(("nodes", hubs[1].name, "role"), f"a DMVPN needs exactly one hub, found {len(hubs)}: {names}",
                f"keep role: hub on {hubs[0].name!r} and make the others spokes")
