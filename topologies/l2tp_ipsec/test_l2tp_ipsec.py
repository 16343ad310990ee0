"""l2tp_ipsec: L2TP over IPsec transport mode. The seed's L2TP/IPsec is L2TPv2 with PPP; the Linux
kernel's equivalent without pppd is an L2TPv3 Ethernet pseudowire over UDP 1701, protected by
ESP transport mode on UDP/1701 selectors.

The catalogue's tests (reachability, routing, SAs, header stack and overhead, nothing in clear)
come from :class:`labkit.catalogue_suite.CatalogueSuite`; this module states what the wire holds.
"""

import pytest

from labkit.catalogue_suite import CatalogueSuite

pytestmark = pytest.mark.runtimes("netns", reason="the catalogue asserts the kernel's encapsulation, the same on both runtimes")


class TestL2tpIpsec(CatalogueSuite):
    stack = "IP / ESP / UDP / L2TPv3 / Ether / IP / ICMP"
    overhead = 72
    esp_mode = 'transport'
