"""Static safety rules of the code base: no shell command strings, secrets from a CSPRNG."""

from __future__ import annotations

import ast
from pathlib import Path

from labkit.expand import expand
from labkit.load import load

PACKAGE = Path(__file__).resolve().parents[2] / "labkit"
PHASE2 = PACKAGE.parent / "topologies" / "dmvpn_phase2" / "topology.yaml"


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def test_no_command_goes_through_a_shell():
    """Commands are argv lists: no shell=True, os.system or os.popen anywhere in labkit."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for call in _calls(ast.parse(path.read_text(), str(path))):
            func = call.func
            name = f"{getattr(func.value, 'id', '')}.{func.attr}" if isinstance(func, ast.Attribute) else ""
            if name in ("os.system", "os.popen"):
                found.append(f"{path.name}:{call.lineno} {name}")
            for kw in call.keywords:
                if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    found.append(f"{path.name}:{call.lineno} shell=")
    assert found == []


def test_generated_keys_are_fresh_and_long():
    """Without a key in the topology, every expansion draws a new one (secrets.token_urlsafe, 192 bits)."""
    topo = load(PHASE2)
    keys = {expand(topo).psk for _ in range(5)}
    assert len(keys) == 5 and all(len(k) >= 32 for k in keys)


def test_saved_artifacts_never_carry_the_psk(tmp_path):
    """Logs of a failed module are copied out for CI; the swanctl.conf among them loses its secret."""
    from types import SimpleNamespace

    from labkit.pytest_plugin import _save_artifacts

    psk = "s3cret-" + "x" * 30
    node = tmp_path / "nodes" / "hub"
    (node / "strongswan").mkdir(parents=True)
    (node / "strongswan" / "swanctl.conf").write_text(f'secrets {{ ike {{ secret = "{psk}" }} }}\n')
    (node / "log").mkdir()
    (node / "log" / "charon.log").write_text("authentication of '192.0.2.1' (myself) with pre-shared key\n")
    lab = SimpleNamespace(plan=SimpleNamespace(psk=psk), topology=SimpleNamespace(name="t", nodes={"hub": None}),
                          runtime=SimpleNamespace(node_path=lambda name, path: str(tmp_path / "nodes" / name),
                                                  pids={"hub": 1}))
    out = tmp_path / "artifacts"
    config = SimpleNamespace(getoption=lambda name: str(out), rootpath=tmp_path)
    _save_artifacts(lab, config)
    saved = out / "t" / "hub"
    assert (saved / "log" / "charon.log").read_text().startswith("authentication of")
    conf = (saved / "strongswan" / "swanctl.conf").read_text()
    assert psk not in conf and 'secret = "<psk redacted>"' in conf
