"""gre_ipsec_tunnel_loopback: GRE between loopback (private) addresses, carried by ESP tunnel mode
between the underlay addresses: here tunnel mode is required, since transport mode would put the
loopbacks on the wire.

The catalogue's tests (reachability, routing, SAs, header stack and overhead, nothing in clear)
come from :class:`labkit.catalogue_suite.CatalogueSuite`; this module states what the wire holds.
"""

import pytest

from labkit.catalogue_suite import CatalogueSuite

pytestmark = pytest.mark.runtimes("netns", reason="the catalogue asserts the kernel's encapsulation, the same on both runtimes")


class TestGreIpsecTunnelLoopback(CatalogueSuite):
    stack = "IP / ESP / IP / GRE / IP / ICMP"
    overhead = 68
    esp_mode = 'tunnel'
