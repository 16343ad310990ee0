"""The tests every catalogue topology runs, as a base class its test module subclasses.

A topology's module states what its wire must look like and inherits the tests::

    from labkit.catalogue_suite import CatalogueSuite

    class TestGre(CatalogueSuite):
        stack = "IP / GRE / IP / ICMP"
        overhead = 24

The class is not collected by itself (its name does not start with ``Test``).
"""

from __future__ import annotations

import ipaddress

from . import catalogue

# how each tunnel's packets look when nothing protects them: a Frame.kind, or an IP protocol number
IN_CLEAR = {"gre": "gre", "ipip": 4, "l2tp": "udp", "none": "icmp", "xfrm": "icmp"}


def _count(frames, what) -> int:
    return sum((f.ip_proto == what) if isinstance(what, int) else (f.kind == what) for f in frames)


class CatalogueSuite:
    stack: str = ""  # the header stack of the echo on the underlay, outer first, without Ethernet
    overhead: int = 0  # bytes the encapsulation adds to the 100-byte inner packet
    esp_mode: str | None = None  # the CHILD_SA's mode, when IPsec protects the tunnel

    def test_lan_reaches_lan_across_the_tunnel(self, lab):
        t = lab.topology.tunnel
        a, b = t.between
        h0, h1 = catalogue.lan_host(lab.topology, a), catalogue.lan_host(lab.topology, b)
        for src, dst in ((h0, h1), (h1, h0)):
            path = lab.path(src, dst)
            assert path.reached, path
            routers = [n for n in path.nodes if n in t.between]
            assert routers == ([a, b] if src == h0 else [b, a]), path  # through both tunnel ends, nothing else

    def test_routing_to_the_remote_lan(self, lab):
        t = lab.topology.tunnel
        for end in t.between:
            node = lab.node(end)
            peer = t.peer(end)
            for net in lab.topology.lans(peer):
                route = node.route_to(str(net))
                assert route is not None, f"{end} has no route to {net}"
                if t.routing == "ospf":
                    assert route.proto == "ospf" and route.dev == t.ifname, route
                    assert route.gateway is None or route.gateway == t.inner_address(peer).ip, route
                elif t.encap == "none":  # policy-based: routed to the peer, ESP selected by policy
                    assert route.gateway == t.underlay_address(peer), route
                else:
                    assert route.dev == t.ifname, route
            if t.routing == "ospf":
                full = [n for n in node.ospf_neighbours() if n.full]
                assert [(n.interface, n.address) for n in full] == [(t.ifname, t.inner_address(peer).ip)], full

    def test_ipsec_sas_and_their_mode(self, lab):
        t = lab.topology.tunnel
        if self.esp_mode is None:
            assert t.ipsec == "none" and not any(d.name == "charon" for n in lab.plan.nodes.values() for d in n.daemons)
            return
        for end in t.between:
            children = catalogue.installed(lab.node(end))
            assert children, f"no installed CHILD_SA on {end}"
            for child in children:
                assert child.mode.lower() == self.esp_mode, child
                assert (child.encr_alg, child.integ_alg) == ("NULL", "HMAC_SHA1_96"), child
                assert child.protocol == "ESP" and not child.encap, child

    def test_header_stack_and_overhead_on_the_wire(self, lab):
        row = catalogue.measure(lab)
        catalogue.record(row)
        assert row.stack == self.stack, row
        assert row.inner == catalogue.INNER_LEN and row.overhead == self.overhead, row
        assert row.esp_mode == self.esp_mode, row
        assert row.esp == (None if self.esp_mode is None else "NULL/HMAC_SHA1_96"), row

    def test_nothing_crosses_the_underlay_in_clear(self, lab):
        t = lab.topology.tunnel
        a, b = t.between
        h0, h1 = catalogue.lan_host(lab.topology, a), catalogue.lan_host(lab.topology, b)
        # what r0 puts on the wire (r1's own interface would also show what its kernel decapsulated)
        with lab.capture(a, t.underlay_ifname(a), direction="out") as cap:
            for _ in range(3):
                assert lab.ping(h0, h1, timeout=2.0)
        counts, clear = cap.counts(), _count(cap.frames, IN_CLEAR[t.encap])
        if self.esp_mode is None:
            assert counts["esp"] == 0 and clear >= 3, dict(counts)
            return
        assert counts["esp"] >= 3, dict(counts)
        assert clear == 0 and counts["icmp"] == 0, dict(counts)
        h0_ip = ipaddress.IPv4Address(str(lab.address_of(h0)))
        assert not any(h0_ip.packed in f.data[26:30] for f in cap.frames), "an inner address showed as an outer one"
