"""Write a :class:`labkit.graph.Drawing` as Graphviz DOT or as a Mermaid flowchart.

One style table per language; the legend is in docs/graph.md. Output depends only on the
drawing, line by line in its order, so the same topology always gives the same text.
"""

from __future__ import annotations

from .graph import Drawing

# role -> (DOT shape, fill colour, Mermaid opening and closing brackets)
NODE_STYLE = {
    "hub": ("doubleoctagon", "#f4a261", '{{"', '"}}'),
    "spoke": ("octagon", "#8ecae6", '(["', '"])'),
    "router": ("ellipse", "#b7e4c7", '("', '")'),
    "host": ("box", "#e9ecef", '["', '"]'),
    "nat": ("trapezium", "#ffd166", '[/"', '"\\]'),
    "segment": ("box", "#ffffff", '[["', '"]]'),
}
UNDERLAY, OVERLAY, SHORTCUT, NAT = "#555555", "#1d70b8", "#8e44ad", "#c0392b"

# edge kind -> DOT attributes (besides the labels)
DOT_EDGE = {
    "member": {},
    "link": {"minlen": "2"},
    "registration": {"style": "dashed", "color": OVERLAY, "fontcolor": OVERLAY, "penwidth": "1.5",
                     "dir": "forward", "constraint": "false"},
    "shortcut": {"style": "dotted", "color": SHORTCUT, "fontcolor": SHORTCUT, "penwidth": "1.5",
                 "dir": "both", "constraint": "false"},
    "tunnel": {"style": "dashed", "color": OVERLAY, "fontcolor": OVERLAY, "penwidth": "2", "dir": "both"},
}
# edge kind -> (Mermaid arrow, linkStyle)
MERMAID_EDGE = {
    "member": ("---", f"stroke:{UNDERLAY}"),
    "link": ("---", f"stroke:{UNDERLAY}"),
    "registration": ("-.->", f"stroke:{OVERLAY},stroke-width:2px,color:{OVERLAY}"),
    "shortcut": ("<-.->", f"stroke:{SHORTCUT},stroke-width:2px,stroke-dasharray:2 4,color:{SHORTCUT}"),
    "tunnel": ("<-.->", f"stroke:{OVERLAY},stroke-width:3px,color:{OVERLAY}"),
}


def _q(text: str) -> str:
    """A DOT double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot_label(lines) -> str:
    """Lines as one DOT label, each escaped, joined by DOT's centred line break."""
    return '"' + "\\n".join(line.replace("\\", "\\\\").replace('"', '\\"') for line in lines) + '"'


def _attrs(pairs: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in pairs.items())


def _dot_box(box, indent: str) -> str:
    shape, fill, _, _ = NODE_STYLE.get(box.kind, NODE_STYLE["host"])
    attrs = {"label": _dot_label(box.lines), "shape": shape, "fillcolor": _q(fill)}
    if box.kind == "segment":
        attrs.update(style='"rounded,filled"', fontsize="9", color=_q(UNDERLAY))
    return f"{indent}{_q(box.id)} [{_attrs(attrs)}];"


def dot(d: Drawing) -> str:
    """The drawing as a DOT digraph: left to right, overlay edges not constraining the layout."""
    out = [
        f"digraph {_q(d.name)} {{",
        (f'  graph [rankdir=LR, labelloc=t, fontname="Helvetica", fontsize=12, nodesep=0.5, ranksep=1.1, '
         f"label={_dot_label(d.title)}];"),
        '  node [fontname="Helvetica", fontsize=10, style=filled, color="#333333"];',
        f'  edge [fontname="Helvetica", fontsize=8, dir=none, color={_q(UNDERLAY)}];',
    ]
    boxes = {b.id: b for b in d.boxes}
    clustered = {m for c in d.clusters for m in c.members}
    for c in d.clusters:
        out.append(f"  subgraph {_q('cluster_' + c.id)} {{")
        out.append(f'    label={_dot_label(c.lines)}; style="dashed,rounded"; color={_q(NAT)}; fontcolor={_q(NAT)}; '
                   'fontsize=10;')
        out += [_dot_box(boxes[m], "    ") for m in c.members]
        out.append("  }")
    out += [_dot_box(b, "  ") for b in d.boxes if b.id not in clustered]
    for e in d.edges:
        attrs = {k: _q(v) for k, v in DOT_EDGE[e.kind].items()}
        if e.lines:
            attrs["label"] = _dot_label(e.lines)
        if e.a_end:
            attrs["taillabel"] = _dot_label(e.a_end)
        if e.b_end:
            attrs["headlabel"] = _dot_label(e.b_end)
        if e.a_end or e.b_end:
            attrs.update(labeldistance="2.5", labelangle="25")
        out.append(f"  {_q(e.a)} -> {_q(e.b)} [{_attrs(attrs)}];")
    out.append("}")
    return "\n".join(out) + "\n"


def _mid(box_id: str) -> str:
    """A Mermaid node id: node names and segment names cannot clash, nor hit a keyword ('end')."""
    kind, _, name = box_id.rpartition(":")
    return ("s_" if kind == "seg" else "n_") + name.replace("-", "_")


def _mtext(lines) -> str:
    return "<br/>".join(line.replace('"', "#quot;") for line in lines)


def _mermaid_box(box, indent: str) -> str:
    _, _, opening, closing = NODE_STYLE.get(box.kind, NODE_STYLE["host"])
    return f"{indent}{_mid(box.id)}{opening}{_mtext(box.lines)}{closing}"


def mermaid(d: Drawing) -> str:
    """The drawing as a Mermaid ``flowchart LR``; NAT insides are subgraphs, styles by class and linkStyle."""
    out = ["flowchart LR", f"  %% {' - '.join(d.title)}"]
    boxes = {b.id: b for b in d.boxes}
    clustered = {m for c in d.clusters for m in c.members}
    for c in d.clusters:
        out.append(f'  subgraph c_{c.id}["{_mtext(c.lines)}"]')
        out += [_mermaid_box(boxes[m], "    ") for m in c.members]
        out.append("  end")
    out += [_mermaid_box(b, "  ") for b in d.boxes if b.id not in clustered]
    by_kind: dict[str, list[int]] = {}
    for i, e in enumerate(d.edges):
        arrow = MERMAID_EDGE[e.kind][0]
        if e.a_end and e.b_end:
            label = [f"{' '.join(e.a_end)} ↔ {' '.join(e.b_end)}", *e.lines]
        else:
            label = [*e.a_end, *e.lines, *e.b_end]
        out.append(f'  {_mid(e.a)} {arrow}|"{_mtext(label)}"| {_mid(e.b)}')
        by_kind.setdefault(e.kind, []).append(i)
    for kind in sorted({b.kind for b in d.boxes}):
        fill = NODE_STYLE.get(kind, NODE_STYLE["host"])[1]
        out.append(f"  classDef role_{kind} fill:{fill},stroke:#333333,color:#000000")
        out.append(f"  class {','.join(_mid(b.id) for b in d.boxes if b.kind == kind)} role_{kind}")
    for c in d.clusters:
        out.append(f"  style c_{c.id} fill:#fff5f5,stroke:{NAT},stroke-dasharray:5 5")
    for kind, idx in by_kind.items():
        out.append(f"  linkStyle {','.join(map(str, idx))} {MERMAID_EDGE[kind][1]}")
    return "\n".join(out) + "\n"
