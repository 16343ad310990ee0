"""gre_ipsec_tunnel: GRE protected by ESP in tunnel mode, with the same GRE selectors: a second
outer IP header that repeats the first (24 bytes more than classic tunnel mode).

The catalogue's tests (reachability, routing, SAs, header stack and overhead, nothing in clear)
come from :class:`labkit.catalogue_suite.CatalogueSuite`; this module states what the wire holds.
"""

import pytest

from labkit.catalogue_suite import CatalogueSuite

pytestmark = pytest.mark.runtimes("netns", reason="the catalogue asserts the kernel's encapsulation, the same on both runtimes")


class TestGreIpsecTunnel(CatalogueSuite):
    stack = "IP / ESP / IP / GRE / IP / ICMP"
    overhead = 68
    esp_mode = 'tunnel'
