"""The swanctl.conf parser behind loading configuration over vici (no charon needed)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from labkit.errors import LabError
from labkit.expand.strongswan import swanctl_conf
from labkit.load import load
from labkit.model import IPsec
from labkit.swanload import LIST_KEYS, SwanctlSyntaxError, _shared, _vici_section, parse

PHASE2 = Path(__file__).resolve().parents[2] / "topologies" / "dmvpn_phase2" / "topology.yaml"


@pytest.fixture(scope="module")
def rendered() -> str:
    topo = load(PHASE2)
    ipsec = IPsec(ike_proposals=("aes256-sha256-modp2048", "aes128-sha256-modp2048"))
    return swanctl_conf(topo.nodes["spoke1"], ipaddress.IPv4Address("192.0.2.2"), ipsec, "s3cret-psk")


def test_rendered_conf(rendered):
    conf = parse(rendered)
    assert set(conf) == {"connections", "secrets"}
    conn = conf["connections"]["dmvpn"]
    assert conn["version"] == "2"
    assert conn["local"] == {"auth": "psk", "id": "192.0.2.2"}
    assert conn["remote"] == {"auth": "psk"}
    assert conn["children"]["gre"] == {
        "mode": "transport", "local_ts": "dynamic[gre]", "remote_ts": "dynamic[gre]",
        "esp_proposals": "aes256gcm16", "start_action": "trap", "dpd_action": "clear"}
    assert conf["secrets"] == {"ike-dmvpn": {"secret": "s3cret-psk"}}


def test_comments_are_ignored():
    conf = parse("# leading comment\nconnections { # after a brace\n  a { # x = y\n    version = 2 # trailing\n  }\n}\n")
    assert conf == {"connections": {"a": {"version": "2"}}}


def test_quoted_values_keep_spaces_and_special_characters():
    conf = parse('secrets {\n  ike-1 {\n    secret = "a b=c {d} #e"\n    id-1 = host\n  }\n}\n')
    assert conf["secrets"]["ike-1"] == {"secret": "a b=c {d} #e", "id-1": "host"}


def test_unquoted_values_are_stripped():
    assert parse("a {\n  k =   v1, v2   \n}\n") == {"a": {"k": "v1, v2"}}


def test_nested_sections_and_section_on_one_line():
    conf = parse("a { b { c { d = 1 } } e = 2 }\nf {\n}\n")
    assert conf == {"a": {"b": {"c": {"d": "1"}}, "e": "2"}, "f": {}}


def test_repeated_section_merges():
    assert parse("a { x = 1 }\na { y = 2 }\n") == {"a": {"x": "1", "y": "2"}}


def test_empty_text():
    assert parse("") == {} and parse("  \n# only a comment\n") == {}


@pytest.mark.parametrize("text, message", [
    ("a {\n  b = 1\n", "missing '}'"),
    ("a {\n  b = 1\n}\n}\n", "unbalanced '}'"),
    ("{\n  b = 1\n}\n", "'{' without a section name"),
    ("a {\n  b = 1\n  just words\n}\n", "cannot parse 'just words"),
    ("a {\n  b = 1\n  just words\n}\n", "line 3"),
], ids=["missing-close", "extra-close", "nameless", "not-key-value", "line-number"])
def test_syntax_errors(text, message):
    with pytest.raises(SwanctlSyntaxError, match=message) as info:
        parse(text)
    assert isinstance(info.value, LabError)


def test_vici_section_splits_list_keys(rendered):
    conn = _vici_section(parse(rendered)["connections"]["dmvpn"])
    assert conn["proposals"] == ["aes256-sha256-modp2048", "aes128-sha256-modp2048"]
    assert conn["local_addrs"] == ["192.0.2.2"]
    assert conn["remote_addrs"] == ["%any"]
    assert conn["version"] == "2"  # not a list key: stays a string
    child = conn["children"]["gre"]
    assert child["local_ts"] == child["remote_ts"] == ["dynamic[gre]"]
    assert child["esp_proposals"] == ["aes256gcm16"]
    assert child["mode"] == "transport"


def test_vici_section_every_list_key():
    section = {key: " x , y,,z " for key in LIST_KEYS} | {"other": "x, y"}
    out = _vici_section({"nested": section})["nested"]
    assert all(out[key] == ["x", "y", "z"] for key in LIST_KEYS)
    assert out["other"] == "x, y"


def test_shared_secret_message():
    assert _shared("ike-dmvpn", {"secret": "k", "id-a": "1.2.3.4", "id-b": "5.6.7.8"}) == {
        "id": "ike-dmvpn", "type": "IKE", "data": "k", "owners": ["1.2.3.4", "5.6.7.8"]}
    assert _shared("eap-user", {"secret": "p"})["type"] == "EAP"
    assert _shared("xauth-user", {"secret": "p"})["type"] == "XAUTH"
