"""``labkit graph``: every topology as DOT and Mermaid, Graphviz rendering, the CLI (no lab, no root)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from labkit import graph
from labkit.errors import LabkitError, PrerequisiteError
from labkit.graph import render, to_dot, to_mermaid
from labkit.load import load

ROOT = Path(__file__).resolve().parents[2]
TOPOS = sorted(p.parent for p in (ROOT / "topologies").glob("*/topology.yaml"))
NAT_TOPOS = [p for p in TOPOS if any(n.role == "nat" for n in load(p).nodes.values())]


def test_every_topology_is_covered():
    assert len(TOPOS) >= 10 and {p.name for p in NAT_TOPOS} >= {"dmvpn_nat", "dmvpn_nat_multi"}


@pytest.mark.parametrize("topo_dir", TOPOS, ids=lambda p: p.name)
def test_dot_names_every_node_with_its_role(topo_dir):
    topo = load(topo_dir)
    text = to_dot(topo)
    assert text.startswith(f'digraph "{topo.name}" {{') and text.endswith("}\n")
    for node in topo.nodes.values():
        assert f'"{node.name}" [label="{node.name}\\n{node.role}' in text
    for seg in topo.segments:
        assert f'"seg:{seg.name}" [label="{seg.name}\\n{seg.prefix}' in text
    for link in topo.links:
        a, b = link.endpoints
        assert f'"{a.node}" -> "{b.node}" [minlen="2", label="{link.prefix}"' in text
    assert text == to_dot(load(topo_dir))  # stable


@pytest.mark.parametrize("topo_dir", TOPOS, ids=lambda p: p.name)
def test_mermaid_names_every_node_with_its_role(topo_dir):
    topo = load(topo_dir)
    text = to_mermaid(topo)
    assert text.startswith("flowchart LR\n")
    for node in topo.nodes.values():
        assert f"n_{node.name.replace('-', '_')}" in text and f'"{node.name}<br/>{node.role}' in text
    for seg in topo.segments:
        assert f"s_{seg.name.replace('-', '_')}[[\"{seg.name}<br/>{seg.prefix}" in text
    n_edges = sum(1 for line in text.splitlines() if "|\"" in line)
    styled = [i for line in text.splitlines() if line.startswith("  linkStyle ")
              for i in line.split()[1].split(",")]
    assert sorted(map(int, styled)) == list(range(n_edges))  # every edge styled once
    assert text == to_mermaid(load(topo_dir))


@pytest.mark.parametrize("topo_dir", [p for p in TOPOS if load(p).dmvpn], ids=lambda p: p.name)
def test_dmvpn_tunnels_and_shortcuts(topo_dir):
    topo = load(topo_dir)
    dot, mmd, dm = to_dot(topo), to_mermaid(topo), topo.dmvpn
    for spoke in topo.spokes():
        for hub in topo.hubs():
            assert f'"{spoke.name}" -> "{hub.name}" [style="dashed"' in dot
            assert f"n_{spoke.name} -.->|\"{dm.ifname} {dm.network}<br/>NHRP registration" in mmd
    shortcuts = dot.count("shortcut (on demand)")
    n = len(topo.spokes())
    assert shortcuts == (n * (n - 1) // 2 if dm.phase in (2, 3) else 0)
    assert mmd.count("shortcut (on demand)") == shortcuts
    assert ("IPsec" in dot.split("NHRP registration", 1)[1].split('"', 1)[0]) == dm.ipsec.enabled


@pytest.mark.parametrize("topo_dir", [p for p in TOPOS if load(p).tunnel], ids=lambda p: p.name)
def test_point_to_point_tunnel_edge_names_its_encapsulation(topo_dir):
    topo = load(topo_dir)
    tun = topo.tunnel
    a, b = tun.between
    edge = next(line for line in to_dot(topo).splitlines() if line.startswith(f'  "{a}" -> "{b}" [style="dashed"'))
    assert tun.label in edge
    assert (f"{tun.ifname} {tun.network}" in edge) == (tun.network is not None)
    assert f"n_{a} <-.->|\"" in to_mermaid(topo) and tun.label in to_mermaid(topo)


@pytest.mark.parametrize("topo_dir", NAT_TOPOS, ids=lambda p: p.name)
def test_nat_boxes_frame_their_inside(topo_dir):
    topo = load(topo_dir)
    dot, mmd = to_dot(topo), to_mermaid(topo)
    for nat in (n.name for n in topo.nodes.values() if n.role == "nat"):
        out = topo.outside(nat)
        cluster = dot.split(f'subgraph "cluster_nat_{nat}" {{', 1)[1].split("\n  }", 1)[0]
        assert f"behind {nat} (NAT): inside, private\\noutside: {out.ifname} {out.address.ip}" in cluster
        behind = [s.name for s in topo.spokes() if topo.nat_of(s.name) and topo.nat_of(s.name)[1].name == nat]
        assert behind
        for name in [nat, *behind]:
            assert f'    "{name}" [label=' in cluster
        assert f"{out.ifname} (outside)" in dot and f'subgraph c_nat_{nat}["behind {nat} (NAT)' in mmd
        for spoke in behind:
            assert f"seen as {topo.public_nbma(spoke)}" in dot


def test_nat_multi_groups():
    topo = load(ROOT / "topologies" / "dmvpn_nat_multi")
    assert graph.nat_inside(topo, "nat1") == (["spoke1", "spoke3", "h1", "h3"], ["home1"])
    assert graph.nat_inside(topo, "nat2") == (["spoke2", "h2"], [])
    hub_side = [m for c in graph.describe(topo).clusters for m in c.members]
    assert "hub" not in hub_side and "h0" not in hub_side and "seg:internet" not in hub_side


def test_dmvpn_phase2_edges():
    """The phase 2 lab, edge by edge, as Graphviz gets it."""
    edges = [line for line in to_dot(load(ROOT / "topologies" / "dmvpn_phase2")).splitlines() if " -> " in line]
    assert edges == [
        '  "seg:underlay" -> "hub" [headlabel="eth0\\n192.0.2.1/24", labeldistance=2.5, labelangle=25];',
        '  "seg:underlay" -> "spoke1" [headlabel="eth0\\n192.0.2.2/24", labeldistance=2.5, labelangle=25];',
        '  "seg:underlay" -> "spoke2" [headlabel="eth0\\n192.0.2.3/24", labeldistance=2.5, labelangle=25];',
        ('  "hub" -> "h0" [minlen="2", label="10.0.0.0/24", taillabel="eth1\\n10.0.0.1/24", '
         'headlabel="eth0\\n10.0.0.2/24", labeldistance=2.5, labelangle=25];'),
        ('  "spoke1" -> "h1" [minlen="2", label="10.0.1.0/24", taillabel="eth1\\n10.0.1.1/24", '
         'headlabel="eth0\\n10.0.1.2/24", labeldistance=2.5, labelangle=25];'),
        ('  "spoke2" -> "h2" [minlen="2", label="10.0.2.0/24", taillabel="eth1\\n10.0.2.1/24", '
         'headlabel="eth0\\n10.0.2.2/24", labeldistance=2.5, labelangle=25];'),
        ('  "spoke1" -> "hub" [style="dashed", color="#1d70b8", fontcolor="#1d70b8", penwidth="1.5", dir="forward", '
         'constraint="false", label="gre1 172.16.0.0/24\\nNHRP registration\\nIPsec"];'),
        ('  "spoke2" -> "hub" [style="dashed", color="#1d70b8", fontcolor="#1d70b8", penwidth="1.5", dir="forward", '
         'constraint="false", label="gre1 172.16.0.0/24\\nNHRP registration\\nIPsec"];'),
        ('  "spoke1" -> "spoke2" [style="dotted", color="#8e44ad", fontcolor="#8e44ad", penwidth="1.5", dir="both", '
         'constraint="false", label="shortcut (on demand)"];'),
    ]


def test_dmvpn_phase2_mermaid_edges():
    lines = [line for line in to_mermaid(load(ROOT / "topologies" / "dmvpn_phase2")).splitlines() if '|"' in line]
    assert lines[0] == '  s_underlay ---|"eth0<br/>192.0.2.1/24"| n_hub'
    assert lines[4] == '  n_spoke1 ---|"eth1 10.0.1.1/24 ↔ eth0 10.0.1.2/24<br/>10.0.1.0/24"| n_h1'
    assert lines[6:] == [
        '  n_spoke1 -.->|"gre1 172.16.0.0/24<br/>NHRP registration<br/>IPsec"| n_hub',
        '  n_spoke2 -.->|"gre1 172.16.0.0/24<br/>NHRP registration<br/>IPsec"| n_hub',
        '  n_spoke1 <-.->|"shortcut (on demand)"| n_spoke2',
    ]


@pytest.mark.parametrize("topo_dir", TOPOS, ids=lambda p: p.name)
def test_graphviz_accepts_every_topology(topo_dir):
    assert render(load(topo_dir), "svg").lstrip().startswith(b"<?xml")


def test_render_png_and_svg():
    topo = load(ROOT / "topologies" / "dmvpn_phase2")
    assert render(topo, "png").startswith(b"\x89PNG\r\n\x1a\n")
    svg = render(topo, "svg")
    assert b"<svg" in svg and b"shortcut (on demand)" in svg and b"spoke2" in svg


def test_render_refuses_an_unknown_format():
    with pytest.raises(LabkitError, match="format 'pdf' is not supported. Supported formats are svg, png"):
        render(load(ROOT / "topologies" / "dmvpn_phase2"), "pdf")


def test_render_without_graphviz_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot anywhere
    with pytest.raises(PrerequisiteError, match="apt-get install graphviz"):
        render(load(ROOT / "topologies" / "dmvpn_phase2"), "png")


def _cli(*args, cwd=ROOT):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "labkit.cli", "graph", *args], cwd=cwd, env=env,
                          capture_output=True, timeout=120, check=False)


def test_cli_writes_a_png(tmp_path):
    out = tmp_path / "x.png"
    done = _cli("topologies/dmvpn_phase2", "--format", "png", "-o", str(out))
    assert done.returncode == 0, done.stderr.decode()
    assert out.read_bytes().startswith(b"\x89PNG")
    assert f"{out}: dmvpn_phase2 as png" in done.stdout.decode()


def test_cli_default_name_and_stdout(tmp_path):
    yaml = ROOT / "topologies" / "dmvpn_nat" / "topology.yaml"
    done = _cli(str(yaml), "--format", "mermaid", cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "dmvpn_nat.mmd").read_text() == to_mermaid(load(yaml))
    done = _cli(str(yaml.parent), "--format", "dot", "-o", "-")
    assert done.returncode == 0 and done.stdout.decode() == to_dot(load(yaml))


def test_cli_reports_an_invalid_topology(tmp_path):
    (tmp_path / "topology.yaml").write_text("name: bad\nnodes:\n  a: {role: spok}\n")
    done = _cli(str(tmp_path), "--format", "dot", "-o", "-")
    assert done.returncode == 1 and not done.stdout
    assert "nodes.a.role: 'spok' is not supported" in done.stderr.decode()


def test_the_docs_example_is_current():
    """docs/graph.md shows dmvpn_nat's Mermaid as labkit writes it today."""
    doc = (ROOT / "docs" / "graph.md").read_text()
    block = doc.split("```mermaid\n", 1)[1].split("```", 1)[0]
    assert block == to_mermaid(load(ROOT / "topologies" / "dmvpn_nat"))
