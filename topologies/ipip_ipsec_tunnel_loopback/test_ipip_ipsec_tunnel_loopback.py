"""ipip_ipsec_tunnel_loopback: IPIP between loopback (private) addresses, carried by ESP tunnel
mode between the underlay addresses.

The catalogue's tests (reachability, routing, SAs, header stack and overhead, nothing in clear)
come from :class:`labkit.catalogue_suite.CatalogueSuite`; this module states what the wire holds.
"""

import pytest

from labkit.catalogue_suite import CatalogueSuite

pytestmark = pytest.mark.runtimes("netns", reason="the catalogue asserts the kernel's encapsulation, the same on both runtimes")


class TestIpipIpsecTunnelLoopback(CatalogueSuite):
    stack = "IP / ESP / IP / IP / ICMP"
    overhead = 64
    esp_mode = 'tunnel'
