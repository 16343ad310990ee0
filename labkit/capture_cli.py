"""Packets on the command line: ``labkit capture`` writes pcaps, ``labkit nhrp`` reads NHRP from them.

``labkit capture WHERE``: a pcap of a running lab's node interface or segment, for Wireshark.

    labkit capture spoke1:gre1 -w spoke1.pcap          # until Ctrl-C
    labkit capture underlay -c 20 --filter esp         # a segment, 20 ESP frames
    labkit capture hub:eth0 -w - | wireshark -k -i -   # live

Frames are written as they arrive, so the file is usable even if the capture is killed.

``labkit nhrp PCAP...`` lists every NHRP message labkit's Scapy layer finds; ``--tshark`` asks
Wireshark's dissector too and fails unless both read every packet the same way.
"""

from __future__ import annotations

import json
import sys
import threading
import time

from .errors import LabkitError
from .probes.capture import ARPHRD_RAW_IP, Capture, PcapWriter, compile_filter, link_type


def _target(rec, where: str) -> tuple[str, str | None, str]:
    """(namespace key, interface or None, label) for NODE:IFACE, NODE, SEGMENT or @SEGMENT."""
    node, _, ifname = where.partition(":")
    if node in rec.pids and not node.startswith("@"):
        return node, ifname or None, f"{node}-{ifname or 'all'}"
    key = node if node.startswith("@") else f"@{node}"
    if key in rec.pids and not ifname:
        return key, None, key[1:]
    nodes = sorted(n for n in rec.pids if not n.startswith("@"))
    segments = sorted(n[1:] for n in rec.pids if n.startswith("@"))
    raise LabkitError(f"nothing called {where!r} in lab {rec.id}: give NODE:IFACE, NODE or a segment; "
                      f"nodes: {', '.join(nodes)}; segments: {', '.join(segments) or 'none'}")


def cmd_capture(args) -> int:
    from .cli import _pick

    rec = _pick(args.lab)
    key, ifname, label = _target(rec, args.where)
    pid = rec.pids[key]
    direction = args.direction or ("in" if key.startswith("@") else "both")  # a bridge port sees every frame twice
    raw_ip = bool(ifname) and link_type(pid, ifname) in ARPHRD_RAW_IP
    if args.filter:
        try:  # before the file exists: a typo in the filter leaves nothing behind
            compile_filter(args.filter, raw_ip)
        except ValueError as exc:
            raise LabkitError(str(exc)) from None
    path = args.write or f"{label}.pcap"
    out = sys.stdout.buffer if path == "-" else open(path, "wb")
    writer = PcapWriter(out, raw_ip=raw_ip)
    out.flush()
    done = threading.Event()

    def keep(frame) -> None:
        writer.write(frame)
        out.flush()
        if args.count and writer.count >= args.count:
            done.set()

    t0 = time.monotonic()
    cap = Capture(pid, ifname, label=label, direction=direction, bpf=args.filter, on_frame=keep)
    print(f"labkit: capturing on {args.where} in lab {rec.id} ({direction}"
          f"{', filter ' + repr(args.filter) if args.filter else ''}) into {'stdout' if path == '-' else path}; "
          f"Ctrl-C stops", file=sys.stderr, flush=True)
    interrupted = False
    try:
        deadline = t0 + args.duration if args.duration else None
        # bounded by --duration or --count when given; otherwise until Ctrl-C, as tcpdump does
        while not done.wait(0.2):
            if deadline is not None and time.monotonic() >= deadline:
                break
            if not rec.alive():
                raise LabkitError(f"lab {rec.id} went away during the capture")
    except KeyboardInterrupt:
        interrupted = True
    finally:
        cap.stop()
        if out is not sys.stdout.buffer:
            out.close()
    kinds = ", ".join(f"{k} {n}" for k, n in cap.counts().most_common())
    print(f"labkit: {writer.count} frame(s) in {time.monotonic() - t0:.1f}s{' (' + kinds + ')' if kinds else ''}"
          f"{'' if path == '-' else ' written to ' + path}", file=sys.stderr)
    return 130 if interrupted and not (args.count or args.duration) and writer.count == 0 else 0


def cmd_nhrp(args) -> int:
    from .probes import nhrp_wire

    rc = 0
    for pcap in args.pcaps:
        try:
            ours = nhrp_wire.pcap_messages(pcap)
        except (OSError, ValueError) as exc:  # scapy: a missing file, or not a pcap
            raise LabkitError(f"cannot read {pcap}: {exc}") from None
        if args.json:
            print(json.dumps({"pcap": pcap, "messages": ours}))
        else:
            print(f"{pcap}: {len(ours)} NHRP message(s)")
            for i, m in enumerate(ours, 1):
                extra = "".join(f" {k}={m[k]}" for k in ("request_id", "code", "nat_address") if m[k] is not None)
                print(f"  {i:>3} {m['type']:<22} from {m['src_nbma']} ({m['src_proto']}) about {m['dst_proto']}{extra}")
        if args.tshark:
            problems = nhrp_wire.disagreements(ours, nhrp_wire.tshark_messages(pcap))
            for p in problems:
                print(f"  tshark disagrees: {p}", file=sys.stderr)
            if problems:
                rc = 1
            else:
                print(f"  tshark agrees on all {len(ours)} (type, addresses, request id, code)", file=sys.stderr)
    return rc


def add_parser(sub) -> None:
    sp = sub.add_parser("capture", help="write a pcap of a running lab's interface or segment: "
                        "labkit capture NODE:IFACE [-w FILE]")
    sp.add_argument("where", metavar="NODE:IFACE|NODE|SEGMENT",
                    help="a node's interface, every interface of a node, or every port of a segment")
    sp.add_argument("-w", "--write", default=None, metavar="FILE",
                    help="the pcap file (default WHERE.pcap here; '-' streams to stdout for 'wireshark -k -i -')")
    sp.add_argument("-c", "--count", type=int, default=None, help="stop after this many frames")
    sp.add_argument("--duration", type=float, default=None, metavar="SECONDS", help="stop after this long")
    sp.add_argument("--filter", default=None, metavar="BPF", help="a tcpdump filter, e.g. 'udp port 4500' or 'esp'")
    sp.add_argument("--direction", choices=("in", "out", "both"), default=None,
                    help="frames the interface receives, sends, or both (default: both; 'in' on a segment)")
    sp.add_argument("--lab", default=None, help="lab id (needed when several labs run)")
    sp.set_defaults(func=cmd_capture)
    sp = sub.add_parser("nhrp", help="list the NHRP messages in pcaps; --tshark cross-checks them with Wireshark's dissector")
    sp.add_argument("pcaps", nargs="+", metavar="PCAP")
    sp.add_argument("--tshark", action="store_true", help="fail unless tshark reads every packet the same way")
    sp.add_argument("--json", action="store_true", help="one JSON object per pcap")
    sp.set_defaults(func=cmd_nhrp)
