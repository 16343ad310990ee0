"""Faults a test (or an exercise) injects into a running lab: links, daemons, addresses, rekeys.

Every fault acts at once and returns an :class:`Undo`; use it as a context manager to restore
the previous state on exit, or call ``.undo()``::

    with lab.faults.link_down("spoke1", "eth0"):
        wait_until(lambda: not lab.ping("h1", "h2"), 30, "h1 to lose h2")
    lab.faults.restart("hub")                      # every daemon, in stage order, until they serve
    lab.faults.restart("spoke1", "nhrpd")          # one daemon
    lab.faults.set_address("spoke1", "eth0", "192.0.2.42/24")

The operations are runtime-neutral: netlink on the node's PID, and the lab's own daemon plans.
"""

from __future__ import annotations

import errno
import ipaddress
from typing import TYPE_CHECKING, Callable

from pyroute2.netlink.exceptions import NetlinkError

from .errors import LabError
from .runtime import kernel

if TYPE_CHECKING:
    from .lab import Lab


class Undo:
    """The way back from one fault. Idempotent; a context manager."""

    def __init__(self, description: str, undo: Callable[[], None]):
        self.description = description
        self._undo: Callable[[], None] | None = undo

    def undo(self) -> None:
        if self._undo is not None:
            fn, self._undo = self._undo, None
            fn()

    def __enter__(self) -> "Undo":
        return self

    def __exit__(self, *exc) -> None:
        self.undo()

    def __repr__(self) -> str:
        return f"<fault {self.description}{' (undone)' if self._undo is None else ''}>"


class Faults:
    """The fault API of one lab (``lab.faults``)."""

    def __init__(self, lab: "Lab"):
        self.lab = lab

    def _pid(self, node: str) -> int:
        return self.lab.runtime.pid(node)

    # -- links -----------------------------------------------------------------------------
    def _set_link(self, node: str, ifname: str, up: bool) -> None:
        with kernel.iproute(self._pid(node)) as ipr:
            idx = ipr.link_lookup(ifname=ifname)
            if not idx:
                raise LabError(f"{node} has no interface {ifname}")
            ipr.link("set", index=idx[0], state="up" if up else "down")

    def link_down(self, node: str, ifname: str) -> Undo:
        """Set ``node``'s ``ifname`` down (the veth peer sees carrier loss). Undo: up again."""
        self._set_link(node, ifname, False)
        return Undo(f"{node}:{ifname} down", lambda: self.link_up(node, ifname))

    def link_up(self, node: str, ifname: str) -> None:
        self._set_link(node, ifname, True)

    # -- daemons ---------------------------------------------------------------------------
    def stop(self, node: str, *daemons: str) -> Undo:
        """Kill daemons of ``node`` (every one when none is named). Undo: start them again."""
        stopped = self.lab.stop_daemons(node, list(daemons) or None)
        names = [d.name for d in stopped]
        return Undo(f"{node} {','.join(names)} stopped", lambda: self.lab.restart_daemons(node, names))

    def restart(self, node: str, *daemons: str) -> None:
        """Restart daemons of ``node``, or the whole node when none is named; returns once they serve.

        A whole-node restart is what a reboot does to the control and data planes: every daemon
        is killed, the kernel's IPsec state and policies and the routes daemons installed are
        flushed (killed daemons leave them behind), then the daemons start again in stage
        order. Interfaces, addresses and labkit's static routes stay, as a saved configuration
        would restore them.
        """
        if daemons:
            self.lab.restart_daemons(node, list(daemons))
            return
        self.lab.stop_daemons(node)
        # one process for both flushes (each spawn costs up to half a second in the VM sandbox)
        self.lab.runtime.exec(node, ["ip", "-batch", "-"], input="xfrm state flush\nxfrm policy flush\n").check()
        with kernel.iproute(self._pid(node)) as ipr:
            for r in ipr.get_routes(family=2, table=254):
                if r["proto"] not in KEEP_ROUTE_PROTOS and r.get_attr("RTA_TABLE") in (None, 254):
                    try:
                        ipr.route("del", **_route_key(r))
                    except NetlinkError as exc:
                        if exc.code != errno.ESRCH:  # gone already (removed with another route)
                            raise
        self.lab.restart_daemons(node)

    # -- addresses -------------------------------------------------------------------------
    def set_address(self, node: str, ifname: str, address: str) -> Undo:
        """Replace the IPv4 addresses of ``node``'s ``ifname`` with ``address`` (``a.b.c.d/len``).

        Routes through the interface that the kernel drops with the old address (a default
        route, say) are put back, as a DHCP client would. A spoke whose NBMA address changes is
        the field case of a dynamic public address. Undo: the previous addresses come back.
        """
        new = ipaddress.IPv4Interface(address)
        old = self._replace_addresses(node, ifname, [new])
        return Undo(f"{node}:{ifname} {', '.join(map(str, old))} -> {new}",
                    lambda: self._replace_addresses(node, ifname, old))

    def change_nbma(self, node: str, address: str) -> Undo:
        """A spoke's NBMA (public) address changes, as with a new DHCP lease or ISP.

        The NBMA interface gets ``address``, the mGRE's ``local`` follows it, and charon's
        connection is reloaded with it: what a DHCP hook does on a Linux spoke (IOS's
        ``tunnel source IF`` follows the interface by itself; Linux's GRE ``local`` and
        charon's ``local_addrs`` do not). nhrpd notices the new address and re-registers.
        Undo: the old address, the same way.
        """
        lab = self.lab
        assert lab.plan is not None
        plan = lab.plan.nodes[node]
        if plan.gre is None:
            raise LabError(f"{node} is not in the DMVPN (no mGRE interface)")
        old = plan.gre.local
        new = ipaddress.IPv4Interface(address)
        previous = self._replace_addresses(node, plan.gre.dev, [new])
        self._retarget(node, old, new.ip)
        return Undo(f"{node} NBMA {old} -> {new.ip}", lambda: (self._replace_addresses(node, plan.gre.dev, previous),
                                                              self._retarget(node, new.ip, old)))

    def _retarget(self, node: str, old: ipaddress.IPv4Address, new: ipaddress.IPv4Address) -> None:
        """Point the mGRE's local address and charon's connection at ``new``."""
        gre = self.lab.plan.nodes[node].gre
        with kernel.iproute(self._pid(node)) as ipr:
            # changelink replaces every GRE parameter: restate them all with the new local
            ipr.link("set", index=ipr.link_lookup(ifname=gre.ifname)[0], kind="gre", gre_local=str(new),
                     gre_ikey=gre.key, gre_okey=gre.key, gre_iflags=kernel.GRE_KEY_FLAG,
                     gre_oflags=kernel.GRE_KEY_FLAG, gre_ttl=gre.ttl,
                     gre_link=ipr.link_lookup(ifname=gre.dev)[0])
        conf = self.lab.plan.nodes[node].swanctl
        if conf:
            self._reload_swanctl(node, self.lab.runtime.read_file(node, conf).replace(f"= {old}\n", f"= {new}\n"))

    def _reload_swanctl(self, node: str, text: str) -> str:
        """Write ``node``'s swanctl.conf and load it into charon over vici; return the vici socket path."""
        from . import swanload
        from .expand.strongswan import VICI_SOCKET

        self.lab.runtime.write_file(node, self.lab.plan.nodes[node].swanctl, text)
        vici = self.lab.runtime.node_path(node, VICI_SOCKET)
        swanload.load(vici, text)
        return vici

    def _replace_addresses(self, node: str, ifname: str, new: list[ipaddress.IPv4Interface]):
        with kernel.iproute(self._pid(node)) as ipr:
            idx = ipr.link_lookup(ifname=ifname)
            if not idx:
                raise LabError(f"{node} has no interface {ifname}")
            idx = idx[0]
            old = [ipaddress.IPv4Interface(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
                   for a in ipr.get_addr(index=idx, family=2)]
            routes = _gateway_routes(ipr, idx)
            for a in old:
                ipr.addr("del", index=idx, address=str(a.ip), prefixlen=a.network.prefixlen)
            for a in new:
                ipr.addr("add", index=idx, address=str(a.ip), prefixlen=a.network.prefixlen)
            for dst, gw in set(routes) - set(_gateway_routes(ipr, idx)):
                ipr.route("add", dst=dst, gateway=gw, oif=idx)
        return old

    def start_daemon(self, node: str, name: str, config: str) -> Undo:
        """Start an extra FRR daemon (``ospfd``, ``eigrpd``, ...) on ``node`` with ``config``.

        For showing what a protocol does on the live tunnel, or for an exercise that starts a
        misconfigured one. Undo: the daemon is killed and forgotten.
        """
        from .expand import frr

        lab = self.lab
        assert lab.plan is not None
        plan = frr.daemon(name, stage=3)
        lab.runtime.write_file(node, f"{frr.CONF_DIR}/{name}.conf", config)
        lab.plan.nodes[node].daemons.append(plan)
        lab._launch([(node, plan)])

        def stop() -> None:
            lab.stop_daemons(node, [name])
            lab.plan.nodes[node].daemons.remove(plan)
        return Undo(f"{name} started on {node}", stop)

    # -- IPsec -----------------------------------------------------------------------------
    def set_psk(self, node: str, psk: str) -> Undo:
        """Give ``node`` a different IPsec pre-shared key and close its IKE SAs, so it must
        authenticate again (an authentication mismatch when ``psk`` differs from its peers').

        Undo: the lab's key comes back (the SAs are closed again, so recovery starts at once).
        """
        from .probes import ipsec

        lab = self.lab
        conf = lab.plan.nodes[node].swanctl if lab.plan else None
        if not conf:
            raise LabError(f"{node} runs no IPsec")
        original = lab.runtime.read_file(node, conf)

        def apply(text: str) -> None:
            ipsec.terminate_all(self._reload_swanctl(node, text))
        changed = original.replace(f'secret = "{lab.plan.psk}"', f'secret = "{psk}"')
        if changed == original:
            raise LabError(f"{node}'s swanctl.conf does not hold the lab's key: nothing to change")
        apply(changed)
        return Undo(f"{node} PSK changed", lambda: apply(original))

    def rekey(self, node: str, ike: bool = True) -> None:
        """Rekey every IKE SA (``ike``) or every CHILD SA of ``node`` now, over vici."""
        from .expand.strongswan import VICI_SOCKET
        from .probes import ipsec

        ipsec.rekey_all(self.lab.runtime.node_path(node, VICI_SOCKET), ike=ike)


# kernel (connected), boot (labkit's own static routes), static: what a rebooted node gets back
KEEP_ROUTE_PROTOS = (2, 3, 4)


def _route_key(r) -> dict:
    key = {"dst": f"{r.get_attr('RTA_DST') or '0.0.0.0'}/{r['dst_len']}", "table": 254, "proto": r["proto"],
           "type": r["type"]}
    for attr, name in (("RTA_OIF", "oif"), ("RTA_GATEWAY", "gateway"), ("RTA_PRIORITY", "priority")):
        if r.get_attr(attr) is not None:
            key[name] = r.get_attr(attr)
    return key


def _gateway_routes(ipr, idx: int) -> list[tuple[str, str]]:
    """``(dst/len, gateway)`` of the main table's routes through interface ``idx`` with a gateway."""
    out = []
    for r in ipr.get_routes(family=2, table=254, oif=idx):
        gw = r.get_attr("RTA_GATEWAY")
        if gw:
            out.append((f"{r.get_attr('RTA_DST') or '0.0.0.0'}/{r['dst_len']}", gw))
    return out
