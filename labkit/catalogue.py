"""Seed 000's site-to-site tunnel catalogue: convergence of a tunnel lab, and the bytes on its wire.

:func:`measure` sends one ICMP echo of a fixed size from the LAN behind one tunnel end to the LAN
behind the other, captures it leaving the near end's underlay interface, decodes the header
stack (:mod:`labkit.probes.decode`), has Scapy dissect the same frame with the SA's keys from the
kernel (:mod:`labkit.probes.scapy_view`: the two must agree) and reports the overhead the
encapsulation added. The same
inner packet crosses every lab, so the rows compare (``labkit report encapsulation``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import LabError
from .probes import decode, xfrm
from .wait import wait_until

PAYLOAD = 72  # ICMP echo payload: the inner IP packet is 100 bytes
INNER_LEN = PAYLOAD + 28
CLASSIC = "ipsec_tunnel"  # the baseline row: classic ESP tunnel mode
RECORD = "encapsulation.jsonl"


@dataclass(frozen=True)
class Row:
    """One scenario's encapsulation of the same inner packet."""

    topology: str
    what: str
    stack: str  # "IP / ESP / GRE / IP / ICMP"
    wire: int  # bytes of the outer IP packet
    inner: int  # bytes of the inner IP packet
    overhead: int
    esp_mode: str | None  # from the SA (strongSwan), not guessed from the wire
    esp: str | None  # the SA's algorithms (NULL/HMAC_SHA1_96 keeps the inner stack in sight)


def lan_host(topo, router: str) -> str:
    """The first host linked to ``router`` (the LAN side of a tunnel end or DMVPN router)."""
    for mine, theirs in topo.neighbours(router):
        if topo.nodes[theirs.node].role == "host":
            return theirs.node
    raise LabError(f"{router} has no host on a LAN: the catalogue sends its probe from one")


def converge_tunnel(lab) -> None:
    """SA (if any), OSPF adjacency (if routed so), routes to the remote LANs, and LAN-to-LAN reachability."""
    topo, t = lab.topology, lab.topology.tunnel
    a, b = t.between
    src, dst = lan_host(topo, a), lan_host(topo, b)
    timeout = lab.converge_timeout
    # traffic is what brings a trap-policy SA up: ping until the far LAN answers
    wait_until(lambda: lab.ping(src, dst, timeout=1.0), timeout, f"{src} behind {a} to reach {dst} behind {b}")
    if t.routing == "ospf":
        for end in t.between:
            node = lab.node(end)
            wait_until(lambda n=node: any(x.full for x in n.ospf_neighbours()), timeout,
                       f"an OSPF adjacency of {end} over {t.ifname} to be Full",
                       state=lambda n=node: [(str(x.address), x.state) for x in n.ospf_neighbours()])
    for end in t.between:
        want = {str(net) for net in topo.lans(t.peer(end))}
        node = lab.node(end)
        wait_until(lambda n=node, w=want: w <= {str(r.dst) for r in n.routes()}, timeout,
                   f"{end} to have routes to {sorted(want)}", state=lambda n=node: sorted(str(r.dst) for r in n.routes()))
    if t.ipsec != "none":
        for end in t.between:
            node = lab.node(end)
            wait_until(lambda n=node: installed(n), timeout, f"an installed CHILD_SA on {end}",
                       state=lambda n=node: [(s.state, [(c.name, c.state) for c in s.children]) for s in n.ike_sas()])


def installed(node) -> list:
    """``node``'s installed CHILD_SAs."""
    return [c for s in node.ike_sas() for c in s.children if c.state == "INSTALLED"]


def _ends(lab) -> tuple[str, str, str, str | None, str]:
    """(source host, target host, capture node, capture ifname, direction) for a tunnel or DMVPN lab.

    A tunnel is captured leaving the sending end: the receiver's own interface would also show
    what its kernel decapsulated. A DMVPN's underlay segment is captured on its bridge ports.
    """
    topo = lab.topology
    if topo.tunnel:
        a, b = topo.tunnel.between
        return lan_host(topo, a), lan_host(topo, b), a, topo.tunnel.underlay_ifname(a), "out"
    if topo.dmvpn:
        spokes = [s.name for s in topo.spokes()]
        return lan_host(topo, spokes[0]), lan_host(topo, spokes[1]), topo.dmvpn.underlay, None, "in"
    raise LabError(f"{topo.name} has neither a tunnel nor a DMVPN to measure")


def measure(lab, payload: int = PAYLOAD, timeout: float = 30.0) -> Row:
    """Send one echo of ``payload`` bytes across the lab's tunnel and decode it from the far underlay.

    Raises:
        LabError: no echo crossed, or none was seen on the wire.
    """
    topo = lab.topology
    src, dst, where, ifname, direction = _ends(lab)
    src_ip, dst_ip = str(lab.address_of(src)), str(lab.address_of(dst))
    found: list[decode.Decoded] = []

    def one_crossing() -> bool:
        with lab.capture(where, ifname, direction) as cap:
            answered = lab.ping(src, dst, timeout=2.0, size=payload)
        sas = _kernel_states(lab)  # read after the echo: it may have brought a new SA up
        hit = decode.find(cap.frames, src_ip, dst_ip, proto=1, keys=xfrm.aead_keys(sas))
        if answered and hit and len(hit.inner) == payload + 28:
            found.append((hit, sas))
        return bool(found)

    wait_until(one_crossing, timeout, f"an echo {src}->{dst} of {payload} bytes seen on {where}:{ifname or 'all'}")
    hit, sas = found[0]
    _agree_with_scapy(hit, sas)
    esp_mode, esp = None, None
    if hit.spi is not None:
        child = _child_by_spi(lab, hit.spi)
        if child is not None:
            esp_mode = child.mode.lower()
            esp = "/".join(a for a in (child.encr_alg, child.integ_alg) if a)
    what = topo.tunnel.label if topo.tunnel else f"DMVPN phase {topo.dmvpn.phase} (mGRE with key + ESP transport mode)"
    return Row(topo.name, what, hit.text(), hit.wire_len, len(hit.inner), decode.overhead(hit), esp_mode, esp)


def _kernel_states(lab) -> dict[int, xfrm.XfrmState]:
    """Every IPsec router's ESP states, with their keys, from its kernel."""
    found: dict[int, xfrm.XfrmState] = {}
    for name, spec in lab.topology.nodes.items():
        if spec.is_router and any(d.name == "charon" for d in lab.plan.nodes[name].daemons):
            found.update(xfrm.states(lab.node(name)))
    return found


def _agree_with_scapy(hit: decode.Decoded, sas: dict[int, xfrm.XfrmState]) -> None:
    """Scapy dissects the same frame (opening ESP with the SA's keys, ICV verified): the stacks must match.

    Scapy's L2TP is version 2, so its view stops at UDP 1701; the rest is labkit's decoder alone.
    """
    from .probes.scapy_view import dissect

    ours = tuple(hit.text().split(" / "))
    theirs = dissect(hit.frame, sas)
    if ours[:len(theirs)] != theirs or (len(theirs) < len(ours) and theirs[-1] != "UDP"):
        raise LabError(f"labkit's decoder reads {' / '.join(ours)} but Scapy reads {' / '.join(theirs)}")


def _child_by_spi(lab, spi: int):
    for name, spec in lab.topology.nodes.items():
        if not spec.is_router:
            continue
        try:
            sas = lab.node(name).ike_sas()
        except LabError:
            continue
        for child in (c for s in sas for c in s.children):
            if spi in (child.spi_in, child.spi_out):
                return child
    return None


def record(row: Row, directory: str | os.PathLike | None = None) -> Path:
    """Append ``row`` to ``encapsulation.jsonl`` (``$LABKIT_REPORT_DIR``, default ``.labkit-artifacts``)."""
    out = Path(directory or os.environ.get("LABKIT_REPORT_DIR", ".labkit-artifacts"))
    out.mkdir(parents=True, exist_ok=True)
    path = out / RECORD
    with path.open("a") as f:
        f.write(json.dumps(asdict(row)) + "\n")
    return path


def load_rows(path: str | os.PathLike) -> list[Row]:
    """Rows recorded in ``path``, the last one of each topology, in catalogue order."""
    rows: dict[str, Row] = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            row = Row(**json.loads(line))
            rows[row.topology] = row
    return sorted(rows.values(), key=lambda r: (ORDER.index(r.topology) if r.topology in ORDER else len(ORDER), r.topology))


# seed 000's order, then the DMVPN row
ORDER = ["ipsec_tunnel", "vti", "gre", "gre_ipsec_transport", "gre_ipsec_tunnel", "gre_ipsec_tunnel_loopback",
         "ipip", "ipip_ipsec_transport", "ipip_ipsec_tunnel", "ipip_ipsec_tunnel_loopback", "l2tp_ipsec",
         "dmvpn_phase2"]


def render(rows: list[Row], fmt: str = "text") -> str:
    """The table: header stack, bytes on the wire, overhead, and overhead against classic ESP tunnel mode."""
    base = next((r.overhead for r in rows if r.topology == CLASSIC), None)
    if fmt == "json":
        return json.dumps({"inner_packet": rows[0].inner if rows else INNER_LEN, "baseline": CLASSIC,
                           "rows": [{**asdict(r), "vs_classic": None if base is None else r.overhead - base}
                                    for r in rows]}, indent=2)
    head = ["topology", "what", "header stack", "wire", "overhead", "vs classic", "ESP"]
    body = [[r.topology, r.what, r.stack, str(r.wire), str(r.overhead),
             "-" if base is None else f"{r.overhead - base:+d}",
             f"{r.esp_mode} ({r.esp})" if r.esp_mode else "-"] for r in rows]
    if fmt == "markdown":
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    fmt_row = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    inner = rows[0].inner if rows else INNER_LEN
    return "\n".join([f"encapsulation of one {inner}-byte IP packet (ICMP echo), bytes counted from the outer IP header",
                      fmt_row(head), fmt_row(["-" * w for w in widths])] + [fmt_row(r) for r in body])


def catalogue_dirs(root: str | os.PathLike = "topologies") -> list[Path]:
    """The catalogue's topologies under ``root`` (a ``tunnel`` section, or the DMVPN phase 2 row), in order."""
    from .load import load

    found = []
    for d in sorted(Path(root).iterdir()) if Path(root).is_dir() else []:
        if (d / "topology.yaml").exists() and (d.name == "dmvpn_phase2" or load(d).tunnel is not None):
            found.append(d)
    return sorted(found, key=lambda d: (ORDER.index(d.name) if d.name in ORDER else len(ORDER), d.name))


def run_catalogue(dirs: list[Path], record_dir: Path, progress=lambda m: None, **lab_kw) -> list[Row]:
    """Bring each lab up in turn, measure its wire, record the row, tear it down."""
    from .lab import Lab

    rows = []
    for i, d in enumerate(dirs, 1):
        progress(f"[{i}/{len(dirs)}] {d.name}")
        with Lab.from_path(d, progress=progress, **lab_kw) as lab:
            row = measure(lab)
        record(row, record_dir)
        progress(f"[{i}/{len(dirs)}] {d.name}: {row.stack}, {row.overhead} bytes of overhead")
        rows.append(row)
    return rows


def write_reports(rows: list[Row], out: Path) -> list[Path]:
    """The table as Markdown and JSON files in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "encapsulation.md", out / "encapsulation.json"]
    paths[0].write_text("# Encapsulation overhead\n\n" + render(rows, "text").splitlines()[0] + ".\n\n"
                        + render(rows, "markdown") + "\n")
    paths[1].write_text(render(rows, "json") + "\n")
    return paths
