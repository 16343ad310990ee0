"""The Scapy NHRP layer: build every message type as FRR sends it, dissect it back, and let tshark agree."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import GRE, Ether
from scapy.packet import Raw
from scapy.utils import checksum, wrpcap

from labkit.probes import nhrp_wire
from labkit.probes.nhrp_scapy import NHRP, NHRPCIE, TYPES, NHRPExtension, bind, summary

HUB_NBMA, HUB_PROTO = "192.0.2.1", "172.16.0.1"
SPOKE_NBMA, SPOKE_PROTO = "192.0.2.2", "172.16.0.2"
NAT_INSIDE, NAT_OUTSIDE, NAT_PROTO = "10.0.0.3", "198.51.100.7", "172.16.0.3"  # spoke 3, behind NAT
HOLD, MTU, KEY = 7200, 1400, 42


def cie(**fields) -> NHRPCIE:
    return NHRPCIE(mtu=MTU, holding_time=HOLD, **fields)


def ext(kind: int, *cies: NHRPCIE) -> NHRPExtension:
    return NHRPExtension(type=kind, cies=list(cies))


END = NHRPExtension(type=0)
REQUEST_EXTS = [ext(4), ext(5), ext(3)]  # FRR's nhrp_ext_request: empty placeholders


def registration_request(**over) -> NHRP:
    """Spoke 3 (behind NAT) registers with the hub; the NAT extension names the hub."""
    fields = dict(type=3, hop_count=1, flags="unique+nat", request_id=0x1001, src_nbma=NAT_INSIDE,
                  src_proto=NAT_PROTO, dst_proto=HUB_PROTO, cies=[cie(prefix_len=255)],
                  extensions=REQUEST_EXTS + [ext(9, cie(prefix_len=32, cli_nbma=HUB_NBMA, cli_proto=HUB_PROTO)), END])
    return NHRP(**{**fields, **over})


MESSAGES = {
    "resolution_request": (SPOKE_NBMA, HUB_NBMA, NHRP(
        type=1, flags="source_is_router+authoritative+source_stable+nat", request_id=0x2002,
        src_nbma=SPOKE_NBMA, src_proto=SPOKE_PROTO, dst_proto=NAT_PROTO, cies=[cie(prefix_len=255)],
        extensions=REQUEST_EXTS + [ext(9), END])),
    "resolution_reply": (NAT_OUTSIDE, SPOKE_NBMA, NHRP(
        type=2, flags="source_is_router+authoritative+destination_stable+source_stable", request_id=0x2002,
        src_nbma=SPOKE_NBMA, src_proto=SPOKE_PROTO, dst_proto=NAT_PROTO,
        cies=[cie(prefix_len=32, cli_nbma=NAT_INSIDE, cli_proto=NAT_PROTO)],
        extensions=[ext(4), ext(5), ext(3, cie(cli_nbma=NAT_INSIDE, cli_proto=NAT_PROTO)),
                    ext(9, cie(prefix_len=32, cli_nbma=NAT_OUTSIDE, cli_proto=NAT_PROTO)), END])),
    "registration_request": (NAT_OUTSIDE, HUB_NBMA, registration_request()),
    "registration_reply": (HUB_NBMA, NAT_OUTSIDE, NHRP(
        type=4, hop_count=1, flags="unique+nat", request_id=0x1001, src_nbma=NAT_INSIDE, src_proto=NAT_PROTO,
        dst_proto=HUB_PROTO, cies=[cie(code=0, prefix_len=255)],
        extensions=[ext(4), ext(5), ext(3, cie(cli_nbma=HUB_NBMA, cli_proto=HUB_PROTO)),
                    ext(9, cie(prefix_len=32, cli_nbma=HUB_NBMA, cli_proto=HUB_PROTO),
                        cie(prefix_len=32, cli_nbma=NAT_OUTSIDE, cli_proto=NAT_PROTO)), END])),
    "purge_request": (HUB_NBMA, SPOKE_NBMA, NHRP(
        type=5, request_id=0x3003, src_nbma=HUB_NBMA, src_proto=HUB_PROTO, dst_proto=SPOKE_PROTO,
        cies=[NHRPCIE(prefix_len=32, cli_proto=NAT_PROTO)])),
    "purge_reply": (SPOKE_NBMA, HUB_NBMA, NHRP(
        type=6, flags="no_reply", request_id=0x3003, src_nbma=HUB_NBMA, src_proto=HUB_PROTO,
        dst_proto=SPOKE_PROTO, cies=[NHRPCIE(prefix_len=32, cli_proto=NAT_PROTO)])),
    "error_indication": (HUB_NBMA, NAT_OUTSIDE, NHRP(  # FRR: request's addresses swapped, no extensions
        type=7, hop_count=0, flags=0x8002, error_code=11, error_offset=0, src_nbma=NAT_INSIDE,
        src_proto=HUB_PROTO, dst_proto=NAT_PROTO, error_packet=registration_request(extensions=[]))),
    "traffic_indication": (HUB_NBMA, SPOKE_NBMA, NHRP(  # the hub's redirect: "talk to 192.168.3.10 directly"
        type=8, hop_count=1, src_nbma=HUB_NBMA, src_proto=HUB_PROTO, dst_proto="192.168.3.10",
        orig_packet=IP(src="192.168.2.10", dst="192.168.3.10") / ICMP(id=7, seq=1) / (b"p" * 16))),
}
EXPECTED = {
    "resolution_request": dict(type="Resolution Request", code=0, src_nbma=SPOKE_NBMA, src_proto=SPOKE_PROTO,
                               dst_proto=NAT_PROTO, request_id=0x2002, nat_address=None),
    "resolution_reply": dict(type="Resolution Reply", code=0, src_nbma=SPOKE_NBMA, src_proto=SPOKE_PROTO,
                             dst_proto=NAT_PROTO, request_id=0x2002, nat_address=NAT_OUTSIDE),
    "registration_request": dict(type="Registration Request", code=0, src_nbma=NAT_INSIDE, src_proto=NAT_PROTO,
                                 dst_proto=HUB_PROTO, request_id=0x1001, nat_address=None),
    "registration_reply": dict(type="Registration Reply", code=0, src_nbma=NAT_INSIDE, src_proto=NAT_PROTO,
                               dst_proto=HUB_PROTO, request_id=0x1001, nat_address=NAT_OUTSIDE),
    "purge_request": dict(type="Purge Request", code=0, src_nbma=HUB_NBMA, src_proto=HUB_PROTO,
                          dst_proto=SPOKE_PROTO, request_id=0x3003, nat_address=None),
    "purge_reply": dict(type="Purge Reply", code=0, src_nbma=HUB_NBMA, src_proto=HUB_PROTO,
                        dst_proto=SPOKE_PROTO, request_id=0x3003, nat_address=None),
    "error_indication": dict(type="Error Indication", code=11, src_nbma=NAT_INSIDE, src_proto=HUB_PROTO,
                             dst_proto=NAT_PROTO, request_id=None, nat_address=None),
    "traffic_indication": dict(type="Traffic Indication", code=0, src_nbma=HUB_NBMA, src_proto=HUB_PROTO,
                               dst_proto="192.168.3.10", request_id=None, nat_address=None),
}


def frame(name: str) -> Ether:
    src, dst, nhrp = MESSAGES[name]
    gre = GRE(key_present=1, key=KEY, proto=0x2001)
    return Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01") / IP(src=src, dst=dst) / gre / nhrp


def wire(name: str) -> tuple[bytes, NHRP]:
    """The NHRP bytes of a serialized frame, and the frame dissected back."""
    raw = bytes(frame(name))
    back = Ether(raw)
    assert back[GRE].key == KEY and NHRP in back, back.summary()
    return raw[14 + 20 + 8:], back[NHRP]


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_every_message_type_survives_a_round_trip_over_keyed_gre(name):
    raw, back = wire(name)
    assert summary(back) == EXPECTED[name]
    assert back.sprintf("%NHRP.type%") == TYPES[back.type]
    assert bytes(back) == raw  # nothing lost or reordered
    built = MESSAGES[name][2]
    for field in ("afn", "pro_type", "hop_count", "version", "type", "flags", "src_nbma", "src_proto", "dst_proto"):
        assert getattr(back, field) == getattr(built, field), field
    assert (back.shtl_len, back.sstl_len, back.src_proto_len, back.dst_proto_len) == (4, 0, 4, 4)
    assert back.pkt_size == len(raw)
    assert [(e.compulsory, e.type) for e in back.extensions] == [
        (int(e.type in (0, 3, 4, 5, 7)), e.type) for e in built.extensions]


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_checksum_verifies_and_extension_offset_points_at_the_first_extension(name):
    raw, back = wire(name)
    assert checksum(raw) == 0  # the IP checksum over the whole NHRP packet, its own field included
    assert back.checksum == checksum(raw[:12] + b"\x00\x00" + raw[14:])
    if not back.extensions:
        assert back.ext_offset == 0
        return
    first = bytes(back.extensions[0])
    assert raw[back.ext_offset:back.ext_offset + len(first)] == first
    assert raw[back.ext_offset:] == b"".join(bytes(e) for e in back.extensions)
    assert raw.endswith(b"\x80\x00\x00\x00")  # End of Extensions, compulsory bit set, as FRR sends it


def test_registration_reply_cie_carries_code_and_holding_time():
    reply = NHRP(type=4, request_id=9, src_nbma=SPOKE_NBMA, src_proto=SPOKE_PROTO, dst_proto=HUB_PROTO,
                 cies=[NHRPCIE(code=14, prefix_len=255, holding_time=HOLD)])
    back = NHRP(bytes(reply))
    (entry,) = back.cies
    assert (entry.code, entry.holding_time, entry.prefix_len) == (14, HOLD, 255)
    assert entry.sprintf("%NHRPCIE.code%") == "Unique Address Already Registered"
    assert summary(back)["code"] == 14


def test_resolution_reply_cie_carries_client_nbma_proto_and_host_prefix():
    _, back = wire("resolution_reply")
    (entry,) = back.cies
    assert (entry.cli_nbma, entry.cli_proto, entry.prefix_len) == (NAT_INSIDE, NAT_PROTO, 32)
    assert (entry.cli_addr_len, entry.cli_proto_len, entry.holding_time) == (4, 4, HOLD)
    assert back.flags.destination_stable and back.flags.authoritative


def test_nat_extension_of_the_registration_reply_keeps_both_cies():
    _, back = wire("registration_reply")
    (nat,) = [e for e in back.extensions if e.type == 9]
    assert nat.sprintf("%NHRPExtension.type%") == "NAT Address" and nat.compulsory == 0
    assert [(c.cli_nbma, c.cli_proto) for c in nat.cies] == [(HUB_NBMA, HUB_PROTO), (NAT_OUTSIDE, NAT_PROTO)]


def test_indications_carry_the_packet_that_caused_them():
    _, error = wire("error_indication")
    assert (error.error_code, error.error_offset) == (11, 0)
    assert error.sprintf("%NHRP.error_code%") == "Authentication Failure"
    assert summary(error.error_packet) == EXPECTED["registration_request"]
    _, traffic = wire("traffic_indication")
    assert (traffic.orig_packet[IP].dst, traffic.orig_packet[ICMP].seq) == ("192.168.3.10", 1)


def test_authentication_and_vendor_private_extensions_round_trip():
    nhrp = registration_request(extensions=[
        NHRPExtension(type=7, auth_data=b"secret"), NHRPExtension(type=8, vendor_id=0x00000C, vendor_data=b"\x01\x02"),
        NHRPExtension(type=0x1234, value=b"\xaa" * 3), END])
    auth, vendor, unknown, end = NHRP(bytes(nhrp)).extensions
    assert (auth.compulsory, auth.len, auth.auth_type, auth.auth_data) == (1, 10, 1, b"secret")
    assert (vendor.compulsory, vendor.len, vendor.vendor_id, vendor.vendor_data) == (0, 5, 0x0C, b"\x01\x02")
    assert (unknown.type, unknown.value) == (0x1234, b"\xaa" * 3)
    assert (end.type, end.len) == (0, 0)


def test_explicit_values_are_kept_and_bind_is_idempotent():
    nhrp = registration_request(checksum=0x1234, pkt_size=200, ext_offset=0)
    raw = bytes(nhrp)
    assert (raw[10:12], raw[12:14], raw[14:16]) == (b"\x00\xc8", b"\x12\x34", b"\x00\x00")
    bind()
    bind()
    assert sum(cls is NHRP for _, cls in GRE.payload_guess) == 1


def _malformed() -> dict[str, bytes]:
    """A registration reply cut short, or with one length field lying; by case name."""
    raw, back = wire("registration_reply")
    nat_at = back.ext_offset + sum(len(bytes(e)) for e in back.extensions[:3])  # after fwd, rev, responder
    responder_at = back.ext_offset + sum(len(bytes(e)) for e in back.extensions[:2])

    def patch(at: int, value: bytes) -> bytes:
        return raw[:at] + value + raw[at + len(value):]

    cases = {f"truncated-{n}": raw[:n] for n in (1, 5, 19, 20, 27, 30, 45, len(raw) - 3)}
    cases.update({
        "pkt_size-huge": patch(10, b"\xff\xff"), "pkt_size-tiny": patch(10, b"\x00\x05"),
        "ext_offset-in-fixed-header": patch(14, b"\x00\x03"), "ext_offset-past-end": patch(14, b"\xff\xf0"),
        "shtl-63": patch(18, b"\x3f"), "proto-lens-255": patch(20, b"\xff\xff"),
        "cie-lengths-past-end": patch(48, b"\x3f\x3f\xff"),  # the mandatory CIE's three lengths
        "ext-len-past-end": patch(nat_at + 2, b"\xff\xff"), "ext-len-inside-cie": patch(responder_at + 2, b"\x00\x03"),
    })
    return cases


MALFORMED = _malformed()


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_nhrp_dissects_without_raising(case):
    bad = MALFORMED[case]
    outer = Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01") / IP() / GRE(key_present=1, key=KEY, proto=0x2001)
    pkt = Ether(bytes(outer / Raw(bad)))
    assert NHRP in pkt or Raw in pkt[GRE]  # Scapy's usual fallback when even the fixed fields are cut
    pkt.show(dump=True)
    if len(bad) >= 28:  # the fixed-size fields are whole: NHRP itself copes, whatever the lengths claim
        assert NHRP in pkt
        nhrp = NHRP(bad)
        nhrp.show(dump=True)
        assert summary(nhrp)["type"] == "Registration Reply"


# --- tshark's dissector as a second opinion ----------------------------------------------------------------


@pytest.fixture(scope="module")
def tshark_nhrp(tmp_path_factory) -> dict[str, dict] | None:
    """tshark's NHRP tree (``-T json``) of every message in MESSAGES, by name; None without tshark.

    Name: tshark_nhrp. Scope: module (one tshark run). Depends: /usr/bin/tshark.
    """
    if shutil.which("tshark") is None:
        return None
    names = sorted(MESSAGES)
    pcap = tmp_path_factory.mktemp("nhrp") / "nhrp.pcap"
    wrpcap(str(pcap), [frame(name) for name in names])
    trees = nhrp_wire.tshark_tree(str(pcap))
    assert len(trees) == len(names)
    return dict(zip(names, trees))


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_tshark_decodes_the_message_as_our_summary_says(name, tshark_nhrp):
    if tshark_nhrp is None:
        pytest.fail("tshark is not installed; the NHRP cross-check needs it: apt-get install tshark")
    nhrp, ours = tshark_nhrp[name], summary(Ether(bytes(frame(name))))
    fixed, mand = nhrp["NHRP Fixed Header"], nhrp["NHRP Mandatory Part"]
    assert TYPES[int(fixed["nhrp.hdr.op.type"])] == ours["type"]
    assert fixed["nhrp.hdr.chksum.status"] == "1"  # Wireshark: checksum good
    assert int(fixed["nhrp.hdr.extoff"]) == wire(name)[1].ext_offset
    assert mand["nhrp.src.nbma.addr"] == ours["src_nbma"]
    assert mand["nhrp.src.prot.addr"] == ours["src_proto"]
    assert mand["nhrp.dst.prot.addr"] == ours["dst_proto"]
    if ours["type"] == "Error Indication":
        assert int(mand["nhrp.err.code"]) == ours["code"]
        inner = nhrp["Packet Causing Indication"]["nhrp"]["NHRP Mandatory Part"]
        assert int(inner["nhrp.reqid"], 16) == EXPECTED["registration_request"]["request_id"]
        return
    if ours["type"] == "Traffic Indication":  # tshark 4.0 shows neither request id nor traffic code
        assert "nhrp.reqid" not in mand and ours["request_id"] is None
        assert nhrp["Packet Causing Indication"]["ip"]["ip.dst"] == ours["dst_proto"]
        return
    assert int(mand["nhrp.reqid"], 16) == ours["request_id"]
    codes = nhrp_wire.find_all(mand.get("Client Information Entry", []), "nhrp.code")
    assert (int(codes[0]) if codes else None) == ours["code"]
    if ours["nat_address"]:
        assert ours["nat_address"] in nhrp_wire.find_all(nhrp["Cisco NAT Address Extension"], "nhrp.client.nbma.addr")


def test_a_sequence_is_found_in_order_with_other_messages_between():
    from labkit.probes.nhrp_wire import in_order

    seen = ["Registration Request", "Registration Reply", "Traffic Indication", "Resolution Request",
            "Resolution Request", "Resolution Reply"]
    assert in_order(seen, ["Registration Request", "Traffic Indication", "Resolution Reply"])
    assert not in_order(seen, ["Traffic Indication", "Registration Reply"])


def test_tshark_messages_reads_a_pcap_as_the_layer_does(tmp_path):
    """labkit.probes.nhrp_wire: tshark's reading and labkit's of the same pcap, compared field by field."""
    names = sorted(MESSAGES)
    pcap = tmp_path / "nhrp.pcap"
    wrpcap(str(pcap), [frame(name) for name in names])
    ours, theirs = nhrp_wire.pcap_messages(str(pcap)), nhrp_wire.tshark_messages(str(pcap))
    assert [m["type"] for m in ours] == [m["type"] for m in theirs] and len(ours) == len(names)
    assert nhrp_wire.disagreements(ours, theirs) == []
    assert any(m["code"] is not None for m in theirs)  # codes are compared, not both None


def test_disagreements_name_the_packet_and_field():
    a = {"type": "Resolution Reply", "src_nbma": "192.0.2.2", "src_proto": "172.16.0.2", "dst_proto": "10.0.2.2",
         "request_id": 7, "code": 0}
    assert nhrp_wire.disagreements([a], [{**a, "code": 4}]) == ["packet 1 (Resolution Reply): code labkit 0 tshark 4"]
    assert nhrp_wire.disagreements([a], []) == ["labkit found 1 NHRP packets, tshark 0"]
    ti = {**a, "type": "Traffic Indication", "request_id": None, "code": 0}
    assert nhrp_wire.disagreements([ti], [{**ti, "code": None}]) == []  # tshark 4.0 shows no traffic code


def test_retries_count_repeated_requests():
    seen = [{"type": "Resolution Request", "dst_proto": "10.0.2.2"}] * 3 + [{"type": "Resolution Request",
                                                                              "dst_proto": "10.0.9.9"}]
    assert nhrp_wire.retries(seen, "Resolution Request", dst_proto="10.0.2.2") == 2
    assert nhrp_wire.retries(seen, "Resolution Request", dst_proto="10.0.9.9") == 0
    assert nhrp_wire.retries(seen, "Purge Request") == 0


# --- a recorded capture of real FRR 8.4.4 traffic: spoke1's gre1 while a phase 2 shortcut forms ---------------

RECORDED = Path(__file__).resolve().parents[1] / "data" / "nhrp" / "frr844_phase2_spoke1_gre1.pcap"


def test_recorded_frr_capture_decodes_as_tshark_reads_it():
    ours, theirs = nhrp_wire.pcap_messages(str(RECORDED)), nhrp_wire.tshark_messages(str(RECORDED))
    assert len(ours) == 7 and nhrp_wire.disagreements(ours, theirs) == []


def test_recorded_frr_capture_holds_a_shortcuts_sequence():
    seen = nhrp_wire.pcap_messages(str(RECORDED))
    assert nhrp_wire.in_order([m["type"] for m in seen], ["Registration Request", "Registration Reply",
                                                          "Traffic Indication", "Resolution Request",
                                                          "Resolution Reply"])
    [request] = nhrp_wire.matching(seen, "Resolution Request", src_nbma="192.0.2.2", dst_proto="10.0.2.2")
    [reply] = nhrp_wire.matching(seen, "Resolution Reply", src_nbma="192.0.2.2", dst_proto="10.0.2.2")
    assert reply["request_id"] == request["request_id"] and reply["code"] == 0
    assert nhrp_wire.retries(seen, "Resolution Request", src_nbma="192.0.2.2") == 0
