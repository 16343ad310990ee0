"""Render strongSwan (charon + swanctl) configuration protecting mGRE with ESP transport mode.

Stock strongSwan 5.9 lacks the patches FRR's ``tunnel protection vici`` needs, so labkit uses
trap policies instead: a transport-mode CHILD_SA with GRE selectors to any peer, negotiated on
the first GRE packet towards a new NBMA address (hub-spoke and spoke-spoke alike).
"""

from __future__ import annotations

import ipaddress

from ..model import IPsec, Node
from .plan import DaemonPlan

SWAN_DIR = "/run/labkit/strongswan"
CHARON_LOG = "/run/labkit/log/charon.log"
VICI_SOCKET = "/run/charon.vici"


def strongswan_conf() -> str:
    return f"""\
# rendered by labkit: charon-systemd reads its settings from the 'charon' section
charon {{
  load_modular = yes
  install_routes = no
  retransmit_tries = 3
  retransmit_timeout = 2.0
  plugins {{
    include /etc/strongswan.d/charon/*.conf
  }}
  filelog {{
    labkit {{
      path = {CHARON_LOG}
      time_format = %T
      default = 1
      ike = 2
      flush_line = yes
    }}
  }}
  journal {{
    default = -1
  }}
  syslog {{
    daemon {{
      default = -1
    }}
  }}
}}
include /etc/strongswan.d/*.conf
"""


def swanctl_conf(node: Node, nbma: ipaddress.IPv4Address, ipsec: IPsec, psk: str) -> str:
    ike = ",".join(ipsec.ike_proposals)
    esp = ",".join(ipsec.esp_proposals)
    inactivity = f"\n        inactivity = {ipsec.inactivity}s" if ipsec.inactivity else ""
    start = "trap" if ipsec.mode == "trap" else "none"  # vici mode: nhrpd initiates each SA
    child = "gre" if ipsec.mode == "trap" else "dmvpn"  # vici mode: nhrpd names the child by its profile
    extra = f"\n# --- swanctl_extra (from the topology) ---\n{node.swanctl_extra.rstrip()}\n" if node.swanctl_extra else ""
    return f"""\
# rendered by labkit for {node.name}: ESP transport mode protecting GRE to any DMVPN peer
connections {{
  dmvpn {{
    version = 2
    local_addrs = {nbma}
    remote_addrs = %any
    proposals = {ike}
    encap = no
    dpd_delay = 10s
    local {{
      auth = psk
      id = {nbma}
    }}
    remote {{
      auth = psk
    }}
    children {{
      {child} {{
        mode = transport
        local_ts = dynamic[gre]
        remote_ts = dynamic[gre]
        esp_proposals = {esp}
        start_action = {start}
        dpd_action = clear{inactivity}
      }}
    }}
  }}
}}
secrets {{
  ike-dmvpn {{
    secret = "{psk}"
  }}
}}
{extra}"""


def site_conf(node: Node, local: ipaddress.IPv4Address, remote: ipaddress.IPv4Address, mode: str,
              local_ts: str, remote_ts: str, ike: tuple[str, ...], esp: tuple[str, ...], psk: str,
              start: str = "trap", if_id: int | None = None) -> str:
    """A site-to-site connection to one peer: one CHILD_SA in ``mode`` between the given selectors."""
    ids = f"\n        if_id_in = {if_id}\n        if_id_out = {if_id}" if if_id is not None else ""
    extra = f"\n# --- swanctl_extra (from the topology) ---\n{node.swanctl_extra.rstrip()}\n" if node.swanctl_extra else ""
    return f"""\
# rendered by labkit for {node.name}: ESP {mode} mode, {local_ts} <-> {remote_ts}
connections {{
  site {{
    version = 2
    local_addrs = {local}
    remote_addrs = {remote}
    proposals = {",".join(ike)}
    encap = no
    local {{
      auth = psk
      id = {local}
    }}
    remote {{
      auth = psk
      id = {remote}
    }}
    children {{
      site {{
        mode = {mode}
        local_ts = {local_ts}
        remote_ts = {remote_ts}
        esp_proposals = {",".join(esp)}
        start_action = {start}{ids}
      }}
    }}
  }}
}}
secrets {{
  ike-site {{
    id-local = {local}
    id-remote = {remote}
    secret = "{psk}"
  }}
}}
{extra}"""


def render(node: Node, nbma: ipaddress.IPv4Address, ipsec: IPsec | None, psk: str,
           conf: str | None = None) -> tuple[dict[str, str], list[DaemonPlan], str]:
    """charon's files and daemon: the DMVPN connection, or ``conf`` (a site-to-site one) when given."""
    files = {
        f"{SWAN_DIR}/strongswan.conf": strongswan_conf(),
        f"{SWAN_DIR}/swanctl.conf": conf if conf is not None else swanctl_conf(node, nbma, ipsec, psk),
    }
    charon = DaemonPlan(
        name="charon", argv=("/usr/sbin/charon-systemd",),
        env=(("STRONGSWAN_CONF", f"{SWAN_DIR}/strongswan.conf"),), ready=VICI_SOCKET, stage=0,
    )
    return files, [charon], f"{SWAN_DIR}/swanctl.conf"
