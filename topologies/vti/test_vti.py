"""vti: Route-based IPsec: an xfrm interface on each router (Linux's equivalent of Cisco's static
VTI), ESP tunnel mode with 0.0.0.0/0 selectors bound to the interface's if_id, OSPF over it.
Same bytes as classic tunnel mode.

The catalogue's tests (reachability, routing, SAs, header stack and overhead, nothing in clear)
come from :class:`labkit.catalogue_suite.CatalogueSuite`; this module states what the wire holds.
"""

import pytest

from labkit.catalogue_suite import CatalogueSuite

pytestmark = pytest.mark.runtimes("netns", reason="the catalogue asserts the kernel's encapsulation, the same on both runtimes")


class TestVti(CatalogueSuite):
    stack = "IP / ESP / IP / ICMP"
    overhead = 44
    esp_mode = 'tunnel'
