"""IPsec integration modes: ``tunnel protection vici`` on a stock strongSwan is refused at once.

FRR's nhrpd can drive IKE itself over vici (IOS's ``tunnel protection ipsec profile``), but only
with strongSwan patches that were never merged upstream. With stock packages nhrpd logs
"StrongSwan does not support mandatory events (unpatched?)" and no SA ever comes up; labkit
reads that and stops the bring-up with the fix, instead of timing out on convergence.
"""

import time

import pytest

from labkit import state
from labkit.errors import PrerequisiteError
from labkit.lab import Lab

pytestmark = pytest.mark.runtimes("netns", reason="runtime-independent behaviour; CI runs docker on dmvpn_phase2")

TOPOLOGY = __file__.rsplit("/", 1)[0] + "/topology.yaml"


def test_stock_strongswan_is_refused_as_soon_as_nhrpd_meets_it(labkit_runtime):
    lab = Lab.from_path(TOPOLOGY, runtime=labkit_runtime)
    t0 = time.monotonic()
    with pytest.raises(PrerequisiteError, match=r"unpatched.*Use mode: trap"):
        lab.up()
    # it stopped with the daemons, well before the 300 s convergence bound, and left nothing
    assert lab.timings.get("converge") is None
    assert time.monotonic() - t0 < 300
    assert lab.id not in state.scan()
