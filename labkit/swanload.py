"""Load swanctl.conf into charon over vici from Python (what ``swanctl --load-all`` does).

Under software emulation ``swanctl`` costs ~20 s per call (it initialises every crypto plugin);
this module parses the same file format and sends ``load-conn`` / ``load-shared`` messages.
Supported: ``connections`` and ``secrets`` (``ike*`` and ``eap*``/``xauth*`` shared secrets).
"""

from __future__ import annotations

import re
import socket

from .errors import LabError

# keys whose comma-separated values swanctl sends as lists (swanctl/commands/load_conns.c)
LIST_KEYS = {"local_addrs", "remote_addrs", "proposals", "esp_proposals", "ah_proposals", "local_ts",
             "remote_ts", "vips", "pools", "groups", "cert_policy", "certs", "cacerts", "pubkeys"}
_TOKEN = re.compile(r'\s*(?:(#[^\n]*)|(\{)|(\})|([^\s={}#]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\n#{}]*)|([^\s={}#]+)\s*(?=\{))')


class SwanctlSyntaxError(LabError):
    """swanctl.conf text that labkit cannot parse."""


def parse(text: str) -> dict:
    """Parse the strongSwan settings format into nested dicts of strings."""
    root: dict = {}
    stack = [root]
    pos = 0
    pending: str | None = None
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            bad = len(text) - len(text[pos:].lstrip())  # the offending token, not the whitespace before it
            line = text.count("\n", 0, bad) + 1
            raise SwanctlSyntaxError(f"swanctl.conf line {line}: cannot parse {text[pos:pos + 40].strip()!r}")
        pos = m.end()
        comment, opening, closing, key, value, section = m.groups()
        if comment:
            continue
        if section:
            pending = section
        elif opening:
            if pending is None:
                raise SwanctlSyntaxError("swanctl.conf: '{' without a section name")
            stack.append(stack[-1].setdefault(pending, {}))
            pending = None
        elif closing:
            if len(stack) == 1:
                raise SwanctlSyntaxError("swanctl.conf: unbalanced '}'")
            stack.pop()
        elif key:
            value = value.strip()
            if value.startswith('"') and value.endswith('"'):
                value = value[1:-1]
            stack[-1][key] = value
    if len(stack) != 1:
        raise SwanctlSyntaxError("swanctl.conf: missing '}'")
    return root


def _vici_section(section: dict) -> dict:
    out = {}
    for key, value in section.items():
        if isinstance(value, dict):
            out[key] = _vici_section(value)
        elif key in LIST_KEYS:
            out[key] = [v.strip() for v in value.split(",") if v.strip()]
        else:
            out[key] = value
    return out


def _shared(name: str, section: dict) -> dict:
    kind = "IKE" if name.startswith("ike") else "EAP" if name.startswith("eap") else "XAUTH"
    owners = [v for k, v in section.items() if k.startswith("id")]
    return {"id": name, "type": kind, "data": section.get("secret", ""), "owners": owners}


def load(vici_socket_path: str, conf_text: str, timeout: float = 30.0) -> list[str]:
    """Load every connection and shared secret of ``conf_text`` into charon; return conn names."""
    import vici

    conf = parse(conf_text)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(vici_socket_path)
        session = vici.Session(sock)
        for name, section in conf.get("secrets", {}).items():
            answer = session.load_shared(_shared(name, section))
            _ok(answer, f"load-shared {name}")
        names = []
        for name, section in conf.get("connections", {}).items():
            answer = session.load_conn({name: _vici_section(section)})
            _ok(answer, f"load-conn {name}")
            names.append(name)
        return names
    except OSError as exc:
        raise LabError(f"cannot load swanctl.conf through {vici_socket_path}: {exc}") from exc
    finally:
        sock.close()


def _ok(answer, what: str) -> None:
    success = answer.get("success") if answer else b"yes"
    if isinstance(success, bytes):
        success = success.decode()
    if success != "yes":
        errmsg = answer.get("errmsg", b"")
        errmsg = errmsg.decode() if isinstance(errmsg, bytes) else errmsg
        raise LabError(f"charon refused {what}: {errmsg}")
