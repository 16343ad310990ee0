"""Spokes behind NAT boxes: which share one public address (transport mode serves one of them)."""

from pathlib import Path

from labkit.load import load

TOPOS = Path(__file__).resolve().parents[2] / "topologies"


def test_spokes_sharing_a_nat_address_are_grouped():
    """Convergence waits for one spoke of each group: transport mode serves only one (docs/dmvpn.md)."""
    multi = load(TOPOS / "dmvpn_nat_multi" / "topology.yaml")
    assert multi.shared_nat_groups() == [["spoke1", "spoke3"]]
    assert str(multi.public_nbma("spoke2")) == "203.0.113.3"
    assert load(TOPOS / "dmvpn_nat" / "topology.yaml").shared_nat_groups() == []
