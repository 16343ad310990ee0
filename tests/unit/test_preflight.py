"""Preflight: every missing prerequisite is reported at once, each naming its fix."""

from __future__ import annotations

import pytest

from labkit import preflight
from labkit.errors import PrerequisiteError
from labkit.load import load


def _topology(tmp_path, extra_nhrp: str = ""):
    (tmp_path / "topology.yaml").write_text(f"""
name: t
nodes:
  hub: {{role: hub}}
  s1: {{role: spoke}}
segments:
  wan: {{prefix: 192.0.2.0/24, members: [hub:eth0, s1:eth0]}}
dmvpn:
  underlay: wan
  tunnel: {{network: 172.16.0.0/24}}
  nhrp: {{holdtime: 60{extra_nhrp}}}
""")
    return load(tmp_path)


def test_this_host_can_run_the_shipped_topology(tmp_path):
    assert preflight.missing(_topology(tmp_path)) == []


def test_nhrp_authentication_is_rendered_or_refused_with_the_fix(tmp_path):
    """FRR 9.1+ gets `ip nhrp authentication`; an older nhrpd is refused before anything starts."""
    from labkit.expand import expand

    topo = _topology(tmp_path, ", authentication: secret")
    assert "ip nhrp authentication secret" in expand(topo).nodes["s1"].files["/run/labkit/frr/nhrpd.conf"]
    if preflight._binary_mentions(f"{preflight.FRR_BIN}/nhrpd", b"nhrp authentication"):
        assert preflight.missing(topo) == []
    else:
        with pytest.raises(PrerequisiteError, match=r"FRR 9\.1 or later"):
            preflight.check(topo)


def test_missing_frr_is_reported_with_the_apt_command(tmp_path, monkeypatch):
    monkeypatch.setattr(preflight, "FRR_BIN", str(tmp_path / "no-frr"))
    problems = preflight.missing(_topology(tmp_path))
    assert any("apt-get install frr" in p for p in problems), problems
