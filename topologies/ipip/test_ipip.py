"""ipip: An IPIP tunnel in clear, OSPF over it: only an outer IP header (20 bytes).

The catalogue's tests (reachability, routing, SAs, header stack and overhead, nothing in clear)
come from :class:`labkit.catalogue_suite.CatalogueSuite`; this module states what the wire holds.
"""

import pytest

from labkit.catalogue_suite import CatalogueSuite

pytestmark = pytest.mark.runtimes("netns", reason="the catalogue asserts the kernel's encapsulation, the same on both runtimes")


class TestIpip(CatalogueSuite):
    stack = "IP / IP / ICMP"
    overhead = 20
    esp_mode = None
