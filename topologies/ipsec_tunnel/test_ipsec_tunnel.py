"""ipsec_tunnel: Classic policy-based IPsec: ESP tunnel mode between the two LANs, selected by
policy (no tunnel interface); static routes send each LAN's traffic towards the peer, where the
policy catches it.

The catalogue's tests (reachability, routing, SAs, header stack and overhead, nothing in clear)
come from :class:`labkit.catalogue_suite.CatalogueSuite`; this module states what the wire holds.
"""

import pytest

from labkit.catalogue_suite import CatalogueSuite

pytestmark = pytest.mark.runtimes("netns", reason="the catalogue asserts the kernel's encapsulation, the same on both runtimes")


class TestIpsecTunnel(CatalogueSuite):
    stack = "IP / ESP / IP / ICMP"
    overhead = 44
    esp_mode = 'tunnel'
