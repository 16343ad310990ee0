"""ipip_ipsec_transport: IPIP protected by ESP in transport mode: on the wire exactly the bytes of
classic tunnel mode (IP / ESP / IP); only the SA says transport.

The catalogue's tests (reachability, routing, SAs, header stack and overhead, nothing in clear)
come from :class:`labkit.catalogue_suite.CatalogueSuite`; this module states what the wire holds.
"""

import pytest

from labkit.catalogue_suite import CatalogueSuite

pytestmark = pytest.mark.runtimes("netns", reason="the catalogue asserts the kernel's encapsulation, the same on both runtimes")


class TestIpipIpsecTransport(CatalogueSuite):
    stack = "IP / ESP / IP / ICMP"
    overhead = 44
    esp_mode = 'transport'
