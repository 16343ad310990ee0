"""gre: A point-to-point GRE tunnel in clear, OSPF over it: multicast hellos travel as unicast GRE.
4 bytes of GRE header plus the outer IP header.

The catalogue's tests (reachability, routing, SAs, header stack and overhead, nothing in clear)
come from :class:`labkit.catalogue_suite.CatalogueSuite`; this module states what the wire holds.
"""

import pytest

from labkit.catalogue_suite import CatalogueSuite

pytestmark = pytest.mark.runtimes("netns", reason="the catalogue asserts the kernel's encapsulation, the same on both runtimes")


class TestGre(CatalogueSuite):
    stack = "IP / GRE / IP / ICMP"
    overhead = 24
    esp_mode = None
