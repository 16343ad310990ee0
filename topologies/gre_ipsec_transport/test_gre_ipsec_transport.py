"""gre_ipsec_transport: GRE protected by ESP in transport mode: the selectors are the GRE packets
between the two underlay addresses. 4 bytes more than classic tunnel mode.

The catalogue's tests (reachability, routing, SAs, header stack and overhead, nothing in clear)
come from :class:`labkit.catalogue_suite.CatalogueSuite`; this module states what the wire holds.
"""

import pytest

from labkit.catalogue_suite import CatalogueSuite

pytestmark = pytest.mark.runtimes("netns", reason="the catalogue asserts the kernel's encapsulation, the same on both runtimes")


class TestGreIpsecTransport(CatalogueSuite):
    stack = "IP / ESP / GRE / IP / ICMP"
    overhead = 48
    esp_mode = 'transport'
