"""A handle on one running node: exec, files, FRR and strongSwan queries, typed probes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .exec import CommandResult
from .model import Node
from .probes import igp, ipsec, links, nhrp, routes
from .probes.vty import vty_command, vty_configure, vty_json, vty_running_config

if TYPE_CHECKING:
    from .lab import Lab


class NodeHandle:
    """Everything a test does with one node. Obtain it with ``lab.node("spoke1")``."""

    def __init__(self, lab: "Lab", spec: Node):
        self.lab = lab
        self.spec = spec
        self.name = spec.name

    def __repr__(self) -> str:
        return f"<node {self.name} ({self.spec.role})>"

    @property
    def pid(self) -> int:
        return self.lab.runtime.pid(self.name)

    # -- commands and files ----------------------------------------------------------------
    def exec(self, *argv: str, timeout: float = 60.0, input: str | None = None) -> CommandResult:
        """Run a command (argv list) in the node; see :meth:`CommandResult.check`."""
        return self.lab.runtime.exec(self.name, list(argv), timeout=timeout, input=input)

    def read_file(self, path: str) -> str:
        return self.lab.runtime.read_file(self.name, path)

    def log(self, daemon: str) -> str:
        """The log of a daemon of this node (zebra, nhrpd, bgpd, charon)."""
        try:
            return self.read_file(f"/run/labkit/log/{daemon}.log")
        except OSError:
            return ""

    # -- FRR ---------------------------------------------------------------------------------
    def vty(self, daemon: str, command: str) -> str:
        """Run a vty command on one FRR daemon of this node (``show ...``)."""
        return vty_command(self.lab.runtime.node_path(self.name, f"/run/frr/{daemon}.vty"), command)

    def running_config(self, daemon: str) -> str:
        """The running configuration of one FRR daemon of this node."""
        return vty_running_config(self.lab.runtime.node_path(self.name, f"/run/frr/{daemon}.vty"))

    def configure(self, daemon: str, *lines: str) -> None:
        """Change a running FRR daemon's configuration (``configure terminal`` + ``lines``)."""
        vty_configure(self.lab.runtime.node_path(self.name, f"/run/frr/{daemon}.vty"), list(lines))

    def vty_json(self, daemon: str, command: str):
        return vty_json(self.lab.runtime.node_path(self.name, f"/run/frr/{daemon}.vty"), command)

    def nhrp_cache(self) -> list[nhrp.CacheEntry]:
        """``show ip nhrp cache json`` as typed entries."""
        return nhrp.parse_cache(self.vty_json("nhrpd", "show ip nhrp cache json"))

    def nhrp_nhs(self) -> list[nhrp.NhsEntry]:
        """``show ip nhrp nhs json``: the next-hop servers this node registers with."""
        return nhrp.parse_nhs(self.vty_json("nhrpd", "show ip nhrp nhs json"))

    def nhrp_shortcuts(self) -> list[nhrp.Shortcut]:
        """``show ip nhrp shortcut json``: spoke-to-spoke shortcuts."""
        return nhrp.parse_shortcuts(self.vty_json("nhrpd", "show ip nhrp shortcut json"))

    def bgp_peers(self) -> dict[str, str]:
        """BGP neighbour address → state (``Established``, ``Active``, ...)."""
        data = self.vty_json("bgpd", "show bgp ipv4 unicast summary json")
        peers = data.get("peers", {}) if isinstance(data, dict) else {}
        return {addr: p.get("state", "?") for addr, p in peers.items()}

    def ospf_neighbours(self) -> list[igp.IgpNeighbour]:
        """``show ip ospf neighbor json``: adjacencies with state and DR role."""
        return igp.parse_ospf(self.vty_json("ospfd", "show ip ospf neighbor json"))

    def eigrp_neighbours(self) -> list[igp.IgpNeighbour]:
        """``show ip eigrp neighbors`` (eigrpd has no JSON): the neighbours that are up."""
        return igp.parse_eigrp(self.vty("eigrpd", "show ip eigrp neighbors"))

    def igp_neighbours(self) -> list[igp.IgpNeighbour]:
        """The neighbours of the topology's IGP (phase 1), or [] when it routes with BGP."""
        dm = self.lab.topology.dmvpn
        if dm is None or not dm.igp:
            return []
        return self.ospf_neighbours() if dm.protocol == "ospf" else self.eigrp_neighbours()

    # -- IPsec and kernel ----------------------------------------------------------------------
    def ike_sas(self) -> list[ipsec.IkeSa]:
        """charon's IKE SAs (with CHILD SAs) through vici."""
        return ipsec.list_sas(self.lab.runtime.node_path(self.name, "/run/charon.vici"))

    def routes(self) -> list[routes.KernelRoute]:
        """The kernel's main routing table, through netlink."""
        return routes.kernel_routes(self.pid)

    def gre(self, ifname: str | None = None) -> links.GreLink:
        """The DMVPN tunnel interface (or ``ifname``) as the kernel holds it: endpoints, key, flags."""
        dm = self.lab.topology.dmvpn
        return links.gre_link(self.pid, ifname or (dm.ifname if dm else "gre1"))

    def route_to(self, prefix: str) -> routes.KernelRoute | None:
        import ipaddress

        net = ipaddress.IPv4Network(prefix, strict=False)
        return next((r for r in self.routes() if r.dst == net), None)

    def inject(self, packets, **kw):
        """Send Scapy ``packets`` from this node: :meth:`labkit.lab.Lab.inject`."""
        return self.lab.inject(self.name, packets, **kw)

    def capture(self, ifname: str | None = None, **kw):
        """Capture on one of this node's interfaces: :meth:`labkit.lab.Lab.capture`."""
        return self.lab.capture(self.name, ifname, **kw)

    def host(self):
        """A testinfra host for this node (commands run inside the node)."""
        from .testinfra_backend import host_for

        return host_for(self)
