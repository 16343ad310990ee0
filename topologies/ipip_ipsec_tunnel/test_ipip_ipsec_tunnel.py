"""ipip_ipsec_tunnel: IPIP protected by ESP in tunnel mode: two outer IP headers (20 bytes more
than classic tunnel mode).

The catalogue's tests (reachability, routing, SAs, header stack and overhead, nothing in clear)
come from :class:`labkit.catalogue_suite.CatalogueSuite`; this module states what the wire holds.
"""

import pytest

from labkit.catalogue_suite import CatalogueSuite

pytestmark = pytest.mark.runtimes("netns", reason="the catalogue asserts the kernel's encapsulation, the same on both runtimes")


class TestIpipIpsecTunnel(CatalogueSuite):
    stack = "IP / ESP / IP / IP / ICMP"
    overhead = 64
    esp_mode = 'tunnel'
